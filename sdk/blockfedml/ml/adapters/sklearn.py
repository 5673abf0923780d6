"""scikit-learn estimators as federated models.

Any estimator whose fitted state is ``coef_``/``intercept_`` (linear models:
LogisticRegression, SGDClassifier, Ridge, SGDRegressor, LinearRegression…)
or ``coefs_``/``intercepts_`` (MLPClassifier, MLPRegressor) fits, because
that state is a few arrays that can be averaged.

Flat layout (row-major, the estimator's own array shapes):

- linear: ``coef_`` then ``intercept_`` — ``(k, d)`` and ``(k,)`` for k
  classes, ``(1, d)`` and ``(1,)`` for two classes (scikit-learn's binary
  form), ``(d,)`` and ``(1,)`` for a regressor;
- MLP: ``coefs_[0], intercepts_[0], coefs_[1], intercepts_[1], …``, each
  ``coefs_[i]`` of shape ``(fan_in, fan_out)``; the output layer has one
  unit for two classes or a regressor.

Training continues from the global parameters (warm start): estimators with
``partial_fit`` (SGD*, MLP*) run one ``partial_fit`` pass per epoch, shuffled
by the round's seed; the others (LogisticRegression with ``warm_start``,
Ridge) run their own solver once, starting from the global parameters where
the solver can. The estimator's own hyperparameters apply (its learning rate,
regularization, batch size); ``lr``, ``batch_size`` and ``l2`` of the task
are for the numpy and PyTorch models.

Class labels are the schema's class indices ``0..k-1``; a member whose data
lacks a class still trains (``partial_fit`` knows every class), except with
estimators that refit their classes from the data (LogisticRegression),
which refuse with a clear error.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np

from blockfedml.errors import InvalidInputError
from blockfedml.ml.adapters.base import AdapterModel


class SklearnModel(AdapterModel):
    """A scikit-learn estimator behind the flat-vector interface."""

    kind = "sklearn"

    def __init__(self, estimator: Any, n_features: int, n_classes: int | None, seed: int = 0) -> None:
        from sklearn.base import is_classifier, is_regressor

        if not (hasattr(estimator, "get_params") and hasattr(estimator, "fit")):
            raise InvalidInputError(f"{type(estimator).__name__} is not a scikit-learn estimator")
        self.estimator = copy.deepcopy(estimator)
        self.name = type(estimator).__name__
        self._mlp = hasattr(estimator, "hidden_layer_sizes")
        if not self._mlp and not _is_linear(estimator):
            raise InvalidInputError(f"{self.name} keeps no coef_/intercept_ or coefs_/intercepts_; "
                                    "federated averaging needs one of those (linear models, MLPs)")
        if n_classes and not is_classifier(estimator):
            raise InvalidInputError(f"{self.name} is not a classifier, but the task has {n_classes} classes")
        if not n_classes and not is_regressor(estimator):
            raise InvalidInputError(f"{self.name} is not a regressor, but the task is regression")
        if "random_state" in self.estimator.get_params():
            self.estimator.set_params(random_state=seed)
        self._primed = False
        super().__init__(n_features, n_classes, seed)

    def meta(self) -> dict[str, Any]:
        return {**super().meta(), "estimator": self.name}

    # -- layout ---------------------------------------------------------------
    @property
    def _outputs(self) -> int:
        return self.n_classes if self.n_classes > 2 else 1

    def _param_shapes(self) -> list[tuple[int, ...]]:
        d, k = self.n_features, self._outputs
        if self._mlp:
            sizes = [d, *_hidden(self.estimator), k]
            shapes: list[tuple[int, ...]] = []
            for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
                shapes += [(fan_in, fan_out), (fan_out,)]
            return shapes
        return [(k, d), (k,)] if self.n_classes else [(d,), (1,)]

    def _init_params(self, rng: np.random.Generator) -> np.ndarray:
        if not self._mlp:
            return np.zeros(self.n_params)
        # scikit-learn's own initialization (Glorot uniform), from the seed
        factor = 2.0 if self.estimator.activation == "logistic" else 6.0
        blocks = []
        for shape in self._shapes[::2]:
            bound = np.sqrt(factor / (shape[0] + shape[1]))
            blocks += [rng.uniform(-bound, bound, shape).ravel(), rng.uniform(-bound, bound, shape[1])]
        return np.concatenate(blocks)

    # -- moving parameters ------------------------------------------------------
    def _push(self) -> None:
        blocks = [b.copy() for b in self._views(self._params)]
        est = self.estimator
        if self._mlp:
            self._prime()
            est.coefs_, est.intercepts_ = blocks[0::2], blocks[1::2]
            return
        est.coef_, est.intercept_ = blocks
        est.n_features_in_ = self.n_features
        if self.n_classes:
            est.classes_ = np.arange(self.n_classes)

    def _pull(self) -> np.ndarray:
        est = self.estimator
        arrays = ([a for pair in zip(est.coefs_, est.intercepts_) for a in pair] if self._mlp
                  else [est.coef_, np.atleast_1d(est.intercept_)])
        return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])

    def _prime(self) -> None:
        """Let an MLP build its internal state once (layers, optimizer) on a dummy batch.

        scikit-learn offers no public way to give an MLP its weights before
        the first fit; one ``partial_fit`` on zeros does it without data, and
        the weights it produced are overwritten right after.
        """
        if self._primed:
            return
        X = np.zeros((max(2, self.n_classes), self.n_features))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.n_classes:
                y = np.arange(X.shape[0]) % self.n_classes
                self.estimator.partial_fit(X, y, classes=np.arange(self.n_classes))
            else:
                self.estimator.partial_fit(X, np.zeros(X.shape[0]))
        self._primed = True

    # -- training and inference ---------------------------------------------------
    def _fit_framework(self, X: np.ndarray, y: np.ndarray, epochs: int, lr: float,
                       batch_size: int, seed: int, l2: float) -> None:
        est = self.estimator
        if "random_state" in est.get_params():
            est.set_params(random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: a few local epochs are not convergence
            if hasattr(est, "partial_fit"):
                for _ in range(epochs):
                    if self.n_classes:
                        est.partial_fit(X, y, classes=np.arange(self.n_classes))
                    else:
                        est.partial_fit(X, y)
                return
            if self.n_classes and len(np.unique(y)) < self.n_classes:
                raise InvalidInputError(
                    f"{self.name} refits its classes from the data, and this member's training data "
                    f"holds {len(np.unique(y))} of the {self.n_classes} classes; use an estimator with "
                    "partial_fit (SGDClassifier, MLPClassifier)")
            if "warm_start" in est.get_params():
                est.set_params(warm_start=True)
            est.fit(X, y)
        if not self._mlp and np.ndim(est.intercept_) == 0:
            est.intercept_ = np.atleast_1d(est.intercept_)

    def _predict_framework(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.predict(X)

    def _proba_framework(self, X: np.ndarray) -> np.ndarray:
        est = self.estimator
        try:
            return est.predict_proba(X)
        except AttributeError:  # e.g. SGDClassifier with hinge loss: squash the decision function
            scores = np.asarray(est.decision_function(X), dtype=np.float64)
            if scores.ndim == 1:
                scores = np.stack([-scores / 2, scores / 2], axis=1)
            scores -= scores.max(axis=1, keepdims=True)
            exp = np.exp(scores)
            return exp / exp.sum(axis=1, keepdims=True)

    def to_estimator(self) -> Any:
        """The estimator holding the current parameters, ready for ``predict`` in scikit-learn."""
        self._push()
        return self.estimator


def _is_linear(estimator: Any) -> bool:
    """scikit-learn's linear models (and subclasses of them) keep ``coef_``/``intercept_``."""
    return any(cls.__module__.startswith("sklearn.linear_model") for cls in type(estimator).__mro__)


def _hidden(estimator: Any) -> list[int]:
    sizes = estimator.hidden_layer_sizes
    return [int(sizes)] if np.isscalar(sizes) else [int(s) for s in sizes]
