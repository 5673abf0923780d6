"""Offline datasets, split and partitioned among the organizations of a consortium.

The demo and the tests need data that every organization can reproduce on its
own machine without a network: scikit-learn ships ``breast_cancer`` (binary)
and ``digits`` (10 classes) inside the package. Everything here is a pure
function of ``(dataset name, arguments, seed)``, so two processes that build
the same split get bit-identical arrays — each simulated organization can
rebuild only its own share instead of receiving it from somewhere.

Pipeline of :func:`make_federated_split`:

1. load the dataset (float64 features, int64 labels);
2. stratified, seeded split into a held-out test set and a training pool;
3. standardize with statistics of the pool only (the test set must not leak);
4. partition the pool among the organizations, ``iid`` or ``non-iid``
   (label skew, Dirichlet);
5. split every organization's share into local train and local validation —
   the validation part is what the organization evaluates aggregates on before
   it endorses them (phase 5 of a round).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blockfedml.errors import InvalidInputError

DATASETS: tuple[str, ...] = ("breast_cancer", "digits")
"""Names accepted by :func:`load_dataset`."""

PARTITIONS: tuple[str, ...] = ("iid", "non-iid")
"""Names accepted as ``partition`` by :func:`partition_indices`."""

# Independent random streams per stage, so changing e.g. the validation
# fraction does not reshuffle the test split.
_STREAM_TEST, _STREAM_PARTITION, _STREAM_VALIDATION = 1, 2, 3


@dataclass(frozen=True, eq=False)
class Dataset:
    """A whole dataset as loaded, before any split."""

    name: str
    n_classes: int
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    X: np.ndarray  # (n_samples, n_features) float64
    y: np.ndarray  # (n_samples,) int64 in [0, n_classes)

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])


@dataclass(frozen=True, eq=False)
class OrgData:
    """One organization's private data: what it trains on and what it validates on.

    ``indices`` are the positions of these samples (train first, then
    validation) in the training pool, kept so tests and audits can check that
    the organizations' shares are disjoint and cover the pool.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    indices: np.ndarray

    @property
    def n_train(self) -> int:
        """Sample count an organization reports for FedAvg weighting."""
        return int(self.y_train.shape[0])


@dataclass(frozen=True, eq=False)
class FederatedSplit:
    """A dataset split for a federated session (standardized features)."""

    dataset: str
    n_classes: int
    feature_names: tuple[str, ...]
    orgs: list[OrgData]
    X_test: np.ndarray
    y_test: np.ndarray
    X_pool: np.ndarray
    y_pool: np.ndarray
    mean: np.ndarray  # standardization statistics of the pool
    scale: np.ndarray

    @property
    def n_features(self) -> int:
        return int(self.X_pool.shape[1])

    @property
    def n_orgs(self) -> int:
        return len(self.orgs)

    def union_train(self) -> tuple[np.ndarray, np.ndarray]:
        """All organizations' local training data together (centralized baseline)."""
        X = np.concatenate([org.X_train for org in self.orgs])
        y = np.concatenate([org.y_train for org in self.orgs])
        return X, y


def load_dataset(name: str) -> Dataset:
    """Load one of :data:`DATASETS` from scikit-learn's bundled files (no network)."""
    from sklearn import datasets as skd

    loaders = {"breast_cancer": skd.load_breast_cancer, "digits": skd.load_digits}
    if name not in loaders:
        raise InvalidInputError(
            f"dataset {name!r} is unknown; allowed values: {', '.join(DATASETS)}"
        )
    bunch = loaders[name]()
    X = np.ascontiguousarray(bunch.data, dtype=np.float64)
    y = np.ascontiguousarray(bunch.target, dtype=np.int64)
    feature_names = tuple(str(f) for f in bunch.feature_names)
    class_names = tuple(str(c) for c in bunch.target_names)
    return Dataset(name, len(class_names), feature_names, class_names, X, y)


def standardize(
    X_fit: np.ndarray, *others: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Z-score every array with the mean and std of ``X_fit`` only.

    Constant features (std 0, e.g. border pixels of ``digits``) get scale 1 so
    they become 0 instead of NaN. Returns ``(mean, scale, [X_fit, *others] scaled)``.

    In a real consortium nobody holds the pool, so these statistics would be
    computed federatedly (secure sums of per-organization counts, sums and sums
    of squares); that is a later issue — here the simulation computes them on
    the pool directly.
    """
    mean = X_fit.mean(axis=0)
    scale = X_fit.std(axis=0)
    scale[scale == 0.0] = 1.0
    return mean, scale, [(X - mean) / scale for X in (X_fit, *others)]


def partition_indices(
    y: np.ndarray,
    n_orgs: int,
    partition: str = "iid",
    *,
    alpha: float = 0.5,
    min_samples: int = 10,
    seed: int = 0,
) -> list[np.ndarray]:
    """Assign every index of ``y`` to exactly one of ``n_orgs`` organizations.

    ``iid``: a seeded shuffle cut into near-equal parts.
    ``non-iid``: label skew — for each class, the share of its samples that
    goes to each organization is drawn from Dirichlet(``alpha``); small alpha
    means strong skew. Draws are repeated (deterministically) until every
    organization has ``min_samples``; if that fails, the largest shares give
    random samples to the smallest until it holds.
    Every returned index array is sorted.
    """
    y = np.asarray(y)
    _check_partition_args(len(y), n_orgs, partition, alpha, min_samples)
    rng = np.random.default_rng([seed, _STREAM_PARTITION])
    if partition == "iid":
        parts = np.array_split(rng.permutation(len(y)), n_orgs)
        return [np.sort(p) for p in parts]
    return _dirichlet_partition(y, n_orgs, alpha, min_samples, rng)


def _dirichlet_partition(
    y: np.ndarray, n_orgs: int, alpha: float, min_samples: int, rng: np.random.Generator
) -> list[np.ndarray]:
    classes = np.unique(y)
    by_class = [rng.permutation(np.flatnonzero(y == c)) for c in classes]
    parts: list[list[int]] = []
    for _attempt in range(100):
        parts = [[] for _ in range(n_orgs)]
        for idx in by_class:
            shares = rng.dirichlet(np.full(n_orgs, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for org, chunk in enumerate(np.split(idx, cuts)):
                parts[org].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_samples:
            break
    else:  # repair: move random samples from the largest share to the smallest
        while min(len(p) for p in parts) < min_samples:
            small = min(range(n_orgs), key=lambda i: (len(parts[i]), i))
            large = max(range(n_orgs), key=lambda i: (len(parts[i]), -i))
            parts[small].append(parts[large].pop(int(rng.integers(len(parts[large])))))
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def make_federated_split(
    name: str,
    n_orgs: int,
    partition: str = "iid",
    *,
    alpha: float = 0.5,
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
    min_samples: int = 10,
    seed: int = 0,
) -> FederatedSplit:
    """Build the whole federated view of dataset ``name`` for ``n_orgs`` organizations.

    Deterministic in all arguments. ``min_samples`` is the least number of
    samples (train + validation) any organization gets; it must be at least 2
    so each has a local train and a validation part.
    """
    if not 0.0 < test_fraction < 1.0:
        raise InvalidInputError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if not 0.0 < val_fraction < 1.0:
        raise InvalidInputError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    ds = load_dataset(name)
    test_idx, pool_idx = _stratified_split(ds.y, test_fraction, seed)
    _check_partition_args(len(pool_idx), n_orgs, partition, alpha, min_samples)
    mean, scale, (X_pool, X_test) = standardize(ds.X[pool_idx], ds.X[test_idx])
    y_pool, y_test = ds.y[pool_idx], ds.y[test_idx]

    parts = partition_indices(
        y_pool, n_orgs, partition, alpha=alpha, min_samples=min_samples, seed=seed
    )
    val_rng = np.random.default_rng([seed, _STREAM_VALIDATION])
    orgs = []
    for part in parts:
        shuffled = val_rng.permutation(part)
        n_val = min(max(1, round(val_fraction * len(part))), len(part) - 1)
        tr, va = np.sort(shuffled[n_val:]), np.sort(shuffled[:n_val])
        orgs.append(
            OrgData(X_pool[tr], y_pool[tr], X_pool[va], y_pool[va], np.concatenate([tr, va]))
        )
    return FederatedSplit(
        ds.name, ds.n_classes, ds.feature_names, orgs,
        X_test, y_test, X_pool, y_pool, mean, scale,
    )


def _stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split; returns sorted (test indices, pool indices)."""
    rng = np.random.default_rng([seed, _STREAM_TEST])
    test: list[np.ndarray] = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test.append(idx[: int(round(fraction * len(idx)))])
    test_idx = np.sort(np.concatenate(test))
    pool_idx = np.setdiff1d(np.arange(len(y)), test_idx)
    return test_idx, pool_idx


def _check_partition_args(
    n_samples: int, n_orgs: int, partition: str, alpha: float, min_samples: int
) -> None:
    if partition not in PARTITIONS:
        raise InvalidInputError(
            f"partition {partition!r} is unknown; allowed values: {', '.join(PARTITIONS)}"
        )
    if isinstance(n_orgs, bool) or not isinstance(n_orgs, (int, np.integer)) or n_orgs < 1:
        raise InvalidInputError(f"n_orgs must be an integer >= 1, got {n_orgs!r}")
    if isinstance(min_samples, bool) or not isinstance(min_samples, (int, np.integer)) \
            or min_samples < 2:
        raise InvalidInputError(f"min_samples must be an integer >= 2, got {min_samples!r}")
    if n_orgs * min_samples > n_samples:
        raise InvalidInputError(
            f"n_orgs={n_orgs} is too many for {n_samples} training samples with "
            f"min_samples={min_samples}; allowed values: 1..{n_samples // min_samples}"
        )
    if partition == "non-iid" and not (isinstance(alpha, (int, float)) and alpha > 0
                                       and np.isfinite(alpha)):
        raise InvalidInputError(f"alpha must be a finite number > 0, got {alpha!r}")
