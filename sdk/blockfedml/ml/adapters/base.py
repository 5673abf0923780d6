"""What every framework adapter shares: the project's one model interface.

Federated learning only moves, sums and hashes one flat float64 vector per
model, so an adapter is a :class:`blockfedml.ml.models.Model` like the numpy
models: ``get_params`` / ``set_params`` (a flat vector in a documented block
order), ``fit`` for a number of epochs, ``evaluate``, ``predict``. The
aggregator, the secure-aggregation encoders, the store, the checkpoint chain
and the audit therefore treat a scikit-learn or PyTorch model exactly as a
numpy one.

The flat vector stays the source of truth (``self._params``, as in
``Model``): it is written into the framework's model before that model
trains or predicts (``_push``) and read back after training (``_pull``).
The adapter keeps the framework object, so optimizer state (Adam moments,
SGD's step counter) lives on between rounds, like a member's own optimizer.

Adapters do not run ``Model.__init__``: that builds numpy blocks from a
``(n_features, n_classes)`` classifier, while an adapter's blocks come from
its framework model and it may be a regressor (``n_classes == 0``).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from blockfedml.errors import InvalidInputError
from blockfedml.ml.models import Model, _check_int, check_training_args

TASKS = ("classification", "regression")


class AdapterModel(Model):
    """A framework's model behind the flat-vector interface.

    ``n_classes`` is the number of classes, or ``None`` / 0 for regression.
    """

    kind = "adapter"

    def __init__(self, n_features: int, n_classes: int | None, seed: int = 0) -> None:
        _check_int("n_features", n_features, 1)
        if n_classes:
            _check_int("n_classes", n_classes, 2)
        self.n_features = int(n_features)
        self.n_classes = int(n_classes or 0)
        self.seed = int(seed)
        self._shapes = self._param_shapes()
        self._params = np.asarray(self._init_params(np.random.default_rng([seed, 0])), dtype=np.float64)
        if self._params.shape != (self.n_params,):
            raise InvalidInputError(f"initial parameters have shape {self._params.shape}, "
                                    f"expected ({self.n_params},)")

    @property
    def task(self) -> str:
        return "classification" if self.n_classes else "regression"

    # -- framework hooks --------------------------------------------------------
    @abstractmethod
    def _push(self) -> None:
        """Write ``self._params`` into the framework's model."""

    @abstractmethod
    def _pull(self) -> np.ndarray:
        """The framework model's parameters as one flat vector."""

    @abstractmethod
    def _fit_framework(self, X: np.ndarray, y: np.ndarray, epochs: int, lr: float,
                       batch_size: int, seed: int, l2: float) -> None:
        """Train the framework's model (already holding ``self._params``) in place."""

    @abstractmethod
    def _predict_framework(self, X: np.ndarray) -> np.ndarray:
        """Class labels (indices) or regression targets."""

    @abstractmethod
    def _proba_framework(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes)."""

    def _grad(self, params: list[np.ndarray], X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError("adapters train with their framework's own optimizer (fit)")

    def _logits(self, params: list[np.ndarray], X: np.ndarray) -> np.ndarray:
        return np.log(np.clip(self.predict_proba(X), 1e-300, None))

    # -- the Model interface ----------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {"kind": self.kind, "task": self.task, "n_features": self.n_features,
                "n_classes": self.n_classes, "shapes": [list(s) for s in self._shapes]}

    def fit(self, X: np.ndarray, y: np.ndarray, epochs: int = 1, lr: float = 0.1,
            batch_size: int = 32, seed: int = 0, l2: float = 0.0) -> "AdapterModel":
        """Train for ``epochs`` from the current parameters (warm start), seeded by ``seed``."""
        X, y = self._check_xy(X, y)
        check_training_args(epochs, lr, batch_size, l2)
        if epochs == 0:
            return self
        self._push()
        self._fit_framework(X, y, int(epochs), float(lr), int(batch_size), int(seed), float(l2))
        params = np.asarray(self._pull(), dtype=np.float64)
        if not np.all(np.isfinite(params)):
            raise InvalidInputError("training diverged (NaN/inf parameters); lower the learning rate")
        self._params = params
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = self._check_x(X)
        self._push()
        out = np.asarray(self._predict_framework(X))
        return out.astype(np.int64) if self.n_classes else out.astype(np.float64).reshape(-1)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if not self.n_classes:
            raise InvalidInputError("a regression model has no class probabilities")
        X = self._check_x(X)
        self._push()
        return np.asarray(self._proba_framework(X), dtype=np.float64)

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Every metric of the task: accuracy, auc, f1 (classification) or rmse, r2 (regression)."""
        from blockfedml.data.metrics import score

        X, y = self._check_xy(X, y)
        if self.n_classes:
            proba = self.predict_proba(X)
            return {m: score(m, y, proba=proba) for m in ("accuracy", "auc", "f1")}
        predicted = self.predict(X)
        return {m: score(m, y, predicted=predicted) for m in ("rmse", "r2")}

    def _check_xy(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.n_classes:
            return super()._check_xy(X, y)
        X = self._check_x(X)
        y_arr = np.asarray(y, dtype=np.float64)
        if y_arr.shape != (X.shape[0],):
            raise InvalidInputError(f"y must have shape ({X.shape[0]},), got {y_arr.shape}")
        if X.shape[0] == 0:
            raise InvalidInputError("X and y must hold at least one sample")
        if not np.all(np.isfinite(y_arr)):
            raise InvalidInputError("y contains NaN or infinity")
        return X, y_arr
