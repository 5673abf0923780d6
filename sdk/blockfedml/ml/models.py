"""Small numpy models with one flat parameter vector.

Federated learning only ever moves, sums and hashes parameters, so every model
exposes them as one flat float64 vector (``get_params`` / ``set_params``): the
aggregator, the secure-aggregation encoder and the store never need to know
the architecture. Training is plain minibatch SGD whose only randomness is a
``numpy.random.Generator`` seeded by the caller, so the same seed on the same
data gives bit-identical parameters — a round can be replayed and audited.

Flat layouts (row-major):

- ``logreg``:  ``w (d,)``, ``b (1,)``
- ``softmax``: ``W (d, k)``, ``b (k,)``
- ``mlp``:     ``W1 (d, h)``, ``b1 (h,)``, ``W2 (h, k)``, ``b2 (k,)``
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from blockfedml.errors import InvalidInputError

MODEL_KINDS: tuple[str, ...] = ("logreg", "softmax", "mlp")
ACTIVATIONS: tuple[str, ...] = ("tanh", "relu")


class Model(ABC):
    """A classifier whose whole state is one flat float64 parameter vector."""

    kind: ClassVar[str]

    def __init__(self, n_features: int, n_classes: int, seed: int = 0) -> None:
        _check_int("n_features", n_features, 1)
        _check_int("n_classes", n_classes, 2)
        self.n_features = int(n_features)
        self.n_classes = int(n_classes)
        self._shapes = self._param_shapes()
        self._params = self._init_params(np.random.default_rng([seed, 0]))
        assert self._params.shape == (self.n_params,)

    # -- architecture hooks ---------------------------------------------------
    @abstractmethod
    def _param_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the parameter blocks, in flat-vector order."""

    @abstractmethod
    def _init_params(self, rng: np.random.Generator) -> np.ndarray:
        """Seeded initial flat vector."""

    @abstractmethod
    def _logits(self, params: list[np.ndarray], X: np.ndarray) -> np.ndarray:
        """Class scores (n, n_classes) for views of the parameter blocks."""

    @abstractmethod
    def _grad(self, params: list[np.ndarray], X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        """Gradient blocks of the mean cross-entropy (no L2)."""

    def _l2_mask(self) -> np.ndarray:
        """1 for weights, 0 for biases: L2 never shrinks biases."""
        mask = [np.full(int(np.prod(s)), 1.0 if len(s) == 2 else 0.0) for s in self._shapes]
        return np.concatenate(mask)

    def meta(self) -> dict[str, Any]:
        """What is needed, besides the parameters, to rebuild this model."""
        return {"kind": self.kind, "n_features": self.n_features, "n_classes": self.n_classes}

    # -- parameters -----------------------------------------------------------
    @property
    def n_params(self) -> int:
        return int(sum(np.prod(s) for s in self._shapes))

    def get_params(self) -> np.ndarray:
        """A copy of the flat parameter vector."""
        return self._params.copy()

    def set_params(self, vec: np.ndarray) -> None:
        """Replace all parameters; the vector must be 1-D, finite, of length ``n_params``."""
        arr = np.asarray(vec, dtype=np.float64)
        if arr.shape != (self.n_params,):
            raise InvalidInputError(
                f"{self.kind} model expects a flat vector of {self.n_params} parameters, "
                f"got shape {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise InvalidInputError("parameters contain NaN or infinity")
        self._params = arr.copy()

    def _views(self, flat: np.ndarray) -> list[np.ndarray]:
        views, start = [], 0
        for shape in self._shapes:
            size = int(np.prod(shape))
            views.append(flat[start:start + size].reshape(shape))
            start += size
        return views

    # -- training and inference -----------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        epochs: int = 1,
        lr: float = 0.1,
        batch_size: int = 32,
        seed: int = 0,
        l2: float = 0.0,
    ) -> Model:
        """Minibatch SGD on the mean cross-entropy (+ ``l2/2 * ||weights||^2``).

        Each epoch visits the samples in an order drawn from ``seed``; nothing
        else is random, so the result is reproducible bit for bit.
        """
        X, y = self._check_xy(X, y)
        check_training_args(epochs, lr, batch_size, l2)
        rng = np.random.default_rng([seed, 1])
        mask = self._l2_mask() if l2 else None
        params = self._params.copy()
        n = len(y)
        for _ in range(int(epochs)):
            order = rng.permutation(n)
            for start in range(0, n, batch_size):
                batch = order[start:start + batch_size]
                grad = np.concatenate(
                    [g.ravel() for g in self._grad(self._views(params), X[batch], y[batch])]
                )
                if mask is not None:
                    grad += l2 * mask * params
                params -= lr * grad
        if not np.all(np.isfinite(params)):
            raise InvalidInputError("training diverged (NaN/inf parameters); lower lr")
        self._params = params
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), rows sum to 1."""
        X = self._check_x(X)
        return _softmax(self._logits(self._views(self._params), X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable class per sample (int64)."""
        X = self._check_x(X)
        return np.argmax(self._logits(self._views(self._params), X), axis=1).astype(np.int64)

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """``accuracy`` and mean cross-entropy ``loss`` (without the L2 term)."""
        X, y = self._check_xy(X, y)
        logits = self._logits(self._views(self._params), X)
        log_p = _log_softmax(logits)
        loss = float(-np.mean(log_p[np.arange(len(y)), y]))
        accuracy = float(np.mean(np.argmax(logits, axis=1) == y))
        return {"accuracy": accuracy, "loss": loss}

    def clone(self) -> Model:
        """An independent copy (same architecture and parameters)."""
        return copy.deepcopy(self)

    # -- input checks ---------------------------------------------------------
    def _check_x(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise InvalidInputError(
                f"X must have shape (n_samples, {self.n_features}), got {X.shape}"
            )
        if not np.all(np.isfinite(X)):
            raise InvalidInputError("X contains NaN or infinity")
        return X

    def _check_xy(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = self._check_x(X)
        y_arr = np.asarray(y)
        if y_arr.shape != (X.shape[0],):
            raise InvalidInputError(f"y must have shape ({X.shape[0]},), got {y_arr.shape}")
        if y_arr.size and (not np.issubdtype(y_arr.dtype, np.integer)
                           or y_arr.min() < 0 or y_arr.max() >= self.n_classes):
            raise InvalidInputError(f"y must hold integer labels in 0..{self.n_classes - 1}")
        if X.shape[0] == 0:
            raise InvalidInputError("X and y must hold at least one sample")
        return X, y_arr.astype(np.int64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.meta()}, n_params={self.n_params})"


class LogisticRegression(Model):
    """Binary logistic regression; ``predict_proba`` still returns two columns."""

    kind = "logreg"

    def __init__(self, n_features: int, n_classes: int = 2, seed: int = 0) -> None:
        if n_classes != 2:
            raise InvalidInputError(f"logreg is binary (n_classes=2), got {n_classes}; use softmax")
        super().__init__(n_features, 2, seed)

    def _param_shapes(self) -> list[tuple[int, ...]]:
        return [(self.n_features,), (1,)]

    def _l2_mask(self) -> np.ndarray:
        return np.concatenate([np.ones(self.n_features), np.zeros(1)])

    def _init_params(self, rng: np.random.Generator) -> np.ndarray:
        return np.concatenate([rng.normal(0.0, 0.01, self.n_features), np.zeros(1)])

    def _logits(self, params: list[np.ndarray], X: np.ndarray) -> np.ndarray:
        w, b = params
        z = X @ w + b[0]
        return np.stack([np.zeros_like(z), z], axis=1)  # softmax([0, z]) = [1-s(z), s(z)]

    def _grad(self, params: list[np.ndarray], X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        w, b = params
        g = (_sigmoid(X @ w + b[0]) - y) / len(y)
        return [X.T @ g, np.array([g.sum()])]


class SoftmaxRegression(Model):
    """Multinomial logistic regression."""

    kind = "softmax"

    def _param_shapes(self) -> list[tuple[int, ...]]:
        return [(self.n_features, self.n_classes), (self.n_classes,)]

    def _init_params(self, rng: np.random.Generator) -> np.ndarray:
        return np.concatenate([
            rng.normal(0.0, 0.01, self.n_features * self.n_classes), np.zeros(self.n_classes)
        ])

    def _logits(self, params: list[np.ndarray], X: np.ndarray) -> np.ndarray:
        W, b = params
        return X @ W + b

    def _grad(self, params: list[np.ndarray], X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        W, b = params
        g = _softmax(X @ W + b)
        g[np.arange(len(y)), y] -= 1.0
        g /= len(y)
        return [X.T @ g, g.sum(axis=0)]


class MLP(Model):
    """One hidden layer (tanh or relu), softmax output."""

    kind = "mlp"

    def __init__(
        self, n_features: int, n_classes: int, seed: int = 0,
        hidden: int = 32, activation: str = "tanh",
    ) -> None:
        _check_int("hidden", hidden, 1)
        if activation not in ACTIVATIONS:
            raise InvalidInputError(
                f"activation {activation!r} is unknown; allowed values: {', '.join(ACTIVATIONS)}"
            )
        self.hidden = int(hidden)
        self.activation = activation
        super().__init__(n_features, n_classes, seed)

    def meta(self) -> dict[str, Any]:
        return {**super().meta(), "hidden": self.hidden, "activation": self.activation}

    def _param_shapes(self) -> list[tuple[int, ...]]:
        d, h, k = self.n_features, self.hidden, self.n_classes
        return [(d, h), (h,), (h, k), (k,)]

    def _init_params(self, rng: np.random.Generator) -> np.ndarray:
        d, h, k = self.n_features, self.hidden, self.n_classes
        gain = 2.0 if self.activation == "relu" else 1.0  # He vs. Xavier-like
        return np.concatenate([
            rng.normal(0.0, np.sqrt(gain / d), d * h), np.zeros(h),
            rng.normal(0.0, np.sqrt(1.0 / h), h * k), np.zeros(k),
        ])

    def _hidden(self, W1: np.ndarray, b1: np.ndarray, X: np.ndarray) -> np.ndarray:
        a = X @ W1 + b1
        return np.tanh(a) if self.activation == "tanh" else np.maximum(a, 0.0)

    def _logits(self, params: list[np.ndarray], X: np.ndarray) -> np.ndarray:
        W1, b1, W2, b2 = params
        return self._hidden(W1, b1, X) @ W2 + b2

    def _grad(self, params: list[np.ndarray], X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        W1, b1, W2, b2 = params
        H = self._hidden(W1, b1, X)
        g = _softmax(H @ W2 + b2)
        g[np.arange(len(y)), y] -= 1.0
        g /= len(y)
        gH = g @ W2.T
        gA = gH * (1.0 - H * H) if self.activation == "tanh" else gH * (H > 0.0)
        return [X.T @ gA, gA.sum(axis=0), H.T @ g, g.sum(axis=0)]


_KINDS: dict[str, type[Model]] = {
    "logreg": LogisticRegression, "softmax": SoftmaxRegression, "mlp": MLP,
}


def default_kind(n_classes: int) -> str:
    """``logreg`` for two classes, ``softmax`` otherwise."""
    return "logreg" if n_classes == 2 else "softmax"


def make_model(kind: str, n_features: int, n_classes: int, seed: int = 0, **options: Any) -> Model:
    """Build a model of ``kind`` (one of :data:`MODEL_KINDS`) with seeded initial params.

    ``options`` go to the constructor (``hidden``, ``activation`` for ``mlp``).
    """
    if kind not in _KINDS:
        raise InvalidInputError(f"model kind {kind!r} is unknown; allowed values: "
                                f"{', '.join(MODEL_KINDS)}")
    try:
        return _KINDS[kind](n_features, n_classes, seed, **options)
    except TypeError as exc:  # unexpected option name
        raise InvalidInputError(f"bad options for {kind} model: {exc}") from None


def model_from_meta(meta: dict[str, Any], params: np.ndarray | None = None) -> Model:
    """Rebuild a model from :meth:`Model.meta` (and optionally set its parameters)."""
    if not isinstance(meta, dict) or "kind" not in meta:
        raise InvalidInputError("model metadata must be a dict with a 'kind'")
    options = {k: v for k, v in meta.items() if k not in ("kind", "n_features", "n_classes")}
    try:
        model = make_model(meta["kind"], meta["n_features"], meta["n_classes"], **options)
    except KeyError as exc:
        raise InvalidInputError(f"model metadata lacks {exc}") from None
    if params is not None:
        model.set_params(params)
    return model


def check_training_args(epochs: Any, lr: Any, batch_size: Any, l2: Any) -> None:
    """Refuse local-training settings that cannot train, naming the bad one (every Model.fit)."""
    _check_int("epochs", epochs, 0)
    _check_int("batch_size", batch_size, 1)
    if not (np.isfinite(lr) and lr > 0):
        raise InvalidInputError(f"lr must be a finite number > 0, got {lr!r}")
    if not (np.isfinite(l2) and l2 >= 0):
        raise InvalidInputError(f"l2 must be a finite number >= 0, got {l2!r}")


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(_log_softmax(logits))
