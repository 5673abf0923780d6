"""Selection-phase screening: does a member's data agree with a reference SVM?

The paper's answer to poisoned data before a round: each party checks its own
contribution with an SVM obtained by transfer learning and reports a binarized
verdict (1 favorable, 0 harmful). Here:

- the **seed set** is a small labelled sample the consortium holds in common
  (in the demo: ``per_class`` samples of each class drawn, seeded, from the
  held-out split; it never trains the federated model);
- the **reference SVM** (scikit-learn ``SVC``, RBF kernel) is trained on the
  seed set — the source task — and transferred to the member's own data by
  transductive transfer learning (Pan & Yang's setting: labelled source,
  unlabelled target): the source SVM labels the member's features, the
  confident half of those pseudo-labels joins the seed set, and the SVM is
  refit. The member's own labels are never used to build the reference, so
  poisoned labels cannot teach it their mistakes;
- the **score** is the share of the member's training labels that the
  reference predicts (label consistency), reported as a fixed-point integer;
  the **verdict** is 1 when it reaches ``min_agreement``.

Measured on digits and breast cancer (10 organizations, IID and label-skewed,
10 seed samples per class): honest members agree on 0.80–1.0 of their labels,
flipped labels on at most 0.03, random labels on 0.05 (digits) to 0.53
(breast cancer), data with half its samples backdoored on 0.41–0.67 — so the
default threshold is 0.7. What this can and cannot catch is in docs/integrity.md: in
short, a member can lie about its own verdict, so the contract does not trust
the report alone — the groups' aggregates are screened by everyone
(``blockfedml.fl.attribution``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from blockfedml.errors import InvalidInputError
from blockfedml.ml.datasets import FederatedSplit

METRIC_SCALE = 1_000_000
_STREAM_SEED = 7  # the seed set's own random stream


@dataclass(frozen=True, eq=False)
class SeedSet:
    """The consortium's small public labelled set (the source task of the reference SVM)."""

    X: np.ndarray
    y: np.ndarray
    n_classes: int

    @classmethod
    def from_split(cls, split: FederatedSplit, per_class: int = 10, seed: int = 0) -> "SeedSet":
        """``per_class`` samples of every class from the split's held-out part, seeded."""
        if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
            raise InvalidInputError(f"per_class must be an integer >= 1, got {per_class!r}")
        rng = np.random.default_rng([seed, _STREAM_SEED])
        chosen = []
        for label in range(split.n_classes):
            members = np.flatnonzero(split.y_test == label)
            if len(members) < per_class:
                raise InvalidInputError(f"the held-out split has {len(members)} samples of class {label}, "
                                        f"fewer than per_class={per_class}")
            chosen.append(rng.choice(members, size=per_class, replace=False))
        index = np.sort(np.concatenate(chosen))
        return cls(split.X_test[index], split.y_test[index], split.n_classes)


@dataclass(frozen=True)
class ScreeningReport:
    """What a member reports at selection: the verdict and its score (fixed point)."""

    verdict: int
    score: int
    agreement: float
    samples: int


class ReferenceSVM:
    """An SVM trained on the seed set, transferred to a member's (unlabelled) features."""

    def __init__(self, seed: SeedSet, C: float = 1.0, confident_share: float = 0.5) -> None:
        if not 0.0 <= confident_share <= 1.0:
            raise InvalidInputError(f"confident_share must be in [0, 1], got {confident_share!r}")
        self.seed, self.C, self.confident_share = seed, C, confident_share
        self.source = _svm(C).fit(seed.X, seed.y)

    def transfer(self, X_target: np.ndarray):
        """The source SVM adapted to ``X_target``: refit with its confident pseudo-labels added."""
        if self.confident_share == 0.0 or len(X_target) == 0:
            return self.source
        labels = self.source.predict(X_target)
        margin = _margin(self.source.decision_function(X_target))
        keep = margin >= np.quantile(margin, 1.0 - self.confident_share)
        X = np.vstack([self.seed.X, X_target[keep]])
        y = np.concatenate([self.seed.y, labels[keep]])
        if len(np.unique(y)) < 2:
            return self.source
        return _svm(self.C).fit(X, y)

    def agreement(self, X: np.ndarray, y: np.ndarray) -> float:
        """Share of ``y`` that the transferred reference predicts on ``X``."""
        return float(np.mean(self.transfer(X).predict(X) == y))


class Screener:
    """Screens a member's training data: label consistency with the reference SVM.

    Reports are cached by the data's digest: a member's data does not change
    between rounds, so its screening runs once per session.
    """

    def __init__(self, seed: SeedSet, min_agreement: float = 0.7, confident_share: float = 0.5) -> None:
        if not 0.0 <= min_agreement <= 1.0:
            raise InvalidInputError(f"min_agreement must be in [0, 1], got {min_agreement!r}")
        self.reference = ReferenceSVM(seed, confident_share=confident_share)
        self.min_agreement = min_agreement
        self._cache: dict[str, ScreeningReport] = {}

    def screen(self, X: np.ndarray, y: np.ndarray) -> ScreeningReport:
        """The member's verdict (1 when agreement >= ``min_agreement``) and score."""
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
        if X.ndim != 2 or X.shape[1] != self.reference.seed.X.shape[1] or len(X) != len(y) or len(y) == 0:
            raise InvalidInputError(
                f"screening needs a non-empty (n, {self.reference.seed.X.shape[1]}) feature matrix and n labels, "
                f"got X {X.shape} and y {y.shape}")
        key = hashlib.sha256(X.tobytes() + y.astype(np.int64).tobytes()).hexdigest()
        if key not in self._cache:
            agreement = self.reference.agreement(X, y)
            self._cache[key] = ScreeningReport(
                verdict=int(agreement >= self.min_agreement), score=int(round(agreement * METRIC_SCALE)),
                agreement=agreement, samples=len(y))
        return self._cache[key]


def _svm(C: float):
    """An RBF support vector classifier (scikit-learn, imported only when screening runs)."""
    from sklearn.svm import SVC

    return SVC(C=C, kernel="rbf", gamma="scale")


def _margin(decision: np.ndarray) -> np.ndarray:
    """How sure the SVM is of each prediction: |f(x)| (binary) or top-1 minus top-2 score."""
    if decision.ndim == 1:
        return np.abs(decision)
    ordered = np.sort(decision, axis=1)
    return ordered[:, -1] - ordered[:, -2]
