"""Datasets: reproducible splits, exact partitions, label skew, clear errors."""

import numpy as np
import pytest

from blockfedml.errors import InvalidInputError
from blockfedml.ml.datasets import (
    DATASETS, load_dataset, make_federated_split, partition_indices,
)


@pytest.mark.parametrize("name,n_classes,n_features", [("breast_cancer", 2, 30), ("digits", 10, 64)])
def test_load_dataset_types(name, n_classes, n_features):
    ds = load_dataset(name)
    assert ds.n_classes == n_classes and ds.n_features == n_features
    assert ds.X.dtype == np.float64 and np.issubdtype(ds.y.dtype, np.integer)
    assert set(np.unique(ds.y)) == set(range(n_classes))
    assert len(ds.feature_names) == n_features


def test_unknown_dataset_names_allowed_values():
    with pytest.raises(InvalidInputError, match="dataset 'mnist'.*breast_cancer, digits"):
        load_dataset("mnist")


@pytest.mark.parametrize("partition", ["iid", "non-iid"])
def test_same_seed_same_split_other_seed_differs(partition):
    a = make_federated_split("breast_cancer", 3, partition, seed=7)
    b = make_federated_split("breast_cancer", 3, partition, seed=7)
    c = make_federated_split("breast_cancer", 3, partition, seed=8)
    assert np.array_equal(a.X_test, b.X_test) and np.array_equal(a.y_test, b.y_test)
    for oa, ob in zip(a.orgs, b.orgs):
        assert np.array_equal(oa.X_train, ob.X_train) and np.array_equal(oa.y_val, ob.y_val)
    assert not all(np.array_equal(oa.indices, oc.indices) for oa, oc in zip(a.orgs, c.orgs))


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("partition", ["iid", "non-iid"])
@pytest.mark.parametrize("n_orgs", [1, 3, 5])
def test_orgs_cover_the_pool_exactly_once(name, partition, n_orgs):
    split = make_federated_split(name, n_orgs, partition, seed=1)
    everything = np.concatenate([org.indices for org in split.orgs])
    assert np.array_equal(np.sort(everything), np.arange(len(split.y_pool)))
    for org in split.orgs:
        n_tr = org.n_train
        assert np.array_equal(org.X_train, split.X_pool[org.indices[:n_tr]])
        assert np.array_equal(org.y_val, split.y_pool[org.indices[n_tr:]])
        assert org.n_train >= 1 and len(org.y_val) >= 1
        assert len(org.indices) >= 10


def test_test_set_is_stratified_and_disjoint_size():
    ds = load_dataset("digits")
    split = make_federated_split("digits", 3, seed=0, test_fraction=0.2)
    assert len(split.y_test) + len(split.y_pool) == len(ds.y)
    assert set(np.unique(split.y_test)) == set(range(10))
    assert abs(len(split.y_test) - 0.2 * len(ds.y)) <= 10


def test_standardized_with_pool_statistics_only():
    split = make_federated_split("breast_cancer", 2, seed=0)
    assert np.allclose(split.X_pool.mean(axis=0), 0.0, atol=1e-12)
    assert np.allclose(split.X_pool.std(axis=0), 1.0)
    assert not np.allclose(split.X_test.mean(axis=0), 0.0, atol=1e-12)  # not refitted on test
    digits = make_federated_split("digits", 2, seed=0)  # constant pixels: no NaN
    assert np.all(np.isfinite(digits.X_pool)) and np.all(np.isfinite(digits.X_test))


def test_iid_sizes_equal_ish():
    parts = partition_indices(np.zeros(100, dtype=int), 3, "iid", seed=0)
    assert sorted(len(p) for p in parts) == [33, 33, 34]


def _skew(split):
    """Mean total-variation distance between each org's label mix and the pool's."""
    k = split.n_classes
    pool = np.bincount(split.y_pool, minlength=k) / len(split.y_pool)
    tvs = []
    for org in split.orgs:
        y = split.y_pool[org.indices]
        tvs.append(0.5 * np.abs(np.bincount(y, minlength=k) / len(y) - pool).sum())
    return float(np.mean(tvs))


def test_non_iid_is_skewed_and_iid_is_not():
    iid = make_federated_split("digits", 5, "iid", seed=3)
    skewed = make_federated_split("digits", 5, "non-iid", alpha=0.3, seed=3)
    assert _skew(iid) < 0.1
    assert _skew(skewed) > 0.3
    mild = make_federated_split("digits", 5, "non-iid", alpha=100.0, seed=3)
    assert _skew(mild) < _skew(skewed)


def test_non_iid_min_samples_guaranteed_even_with_extreme_skew():
    y = np.repeat(np.arange(10), 20)
    parts = partition_indices(y, 10, "non-iid", alpha=0.01, min_samples=15, seed=0)
    assert min(len(p) for p in parts) >= 15
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(y)))


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_orgs=0), "n_orgs"),
    (dict(n_orgs=2.5), "n_orgs"),
    (dict(n_orgs=1000), "n_orgs=1000 is too many.*allowed values: 1\\.\\."),
    (dict(n_orgs=3, partition="dirichlet"), "partition 'dirichlet'.*iid, non-iid"),
    (dict(n_orgs=3, partition="non-iid", alpha=0), "alpha"),
    (dict(n_orgs=3, partition="non-iid", alpha=-1.0), "alpha"),
    (dict(n_orgs=3, test_fraction=1.0), "test_fraction"),
    (dict(n_orgs=3, val_fraction=0.0), "val_fraction"),
    (dict(n_orgs=3, min_samples=1), "min_samples"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        make_federated_split("breast_cancer", **kwargs)


def test_union_train_is_all_local_training_data():
    split = make_federated_split("breast_cancer", 3, seed=0)
    X, y = split.union_train()
    assert len(y) == sum(org.n_train for org in split.orgs)
    assert X.shape == (len(y), split.n_features)
