"""What the three parties agree on: settings, the two models' algebra, fixed point.

**The algebra.** With u_A = X_A theta_A and u_B = X_B theta_B (B's columns
include the intercept) both models train by gradient descent on a loss whose
per-entity terms split into a part only A can compute, a cross term, and a
part only B can compute; the gradient of each party's parameters is
``grad_scale / N * X^T d`` with the residual ``d = u_A + u_B - k * y``:

===========  ===  ==========  ========================================================
model        k    grad_scale  loss per entity = a*u_A^2 + u_A*w + b_part
===========  ===  ==========  ========================================================
linear       1    1           1/2 (z - y)^2:  a = 1/2, w = u_B - y, b_part = 1/2 (u_B - y)^2
logistic     2    1/4         log 2 - y z / 2 + z^2 / 8 (Taylor, y in {-1, 1}):
                              a = 1/8, w = u_B/4 - y/2, b_part = log 2 - y u_B / 2 + u_B^2 / 8
===========  ===  ==========  ========================================================

(z = u_A + u_B). Logistic regression uses the usual second-order Taylor
expansion of log(1 + e^(-yz)) around 0, which makes its gradient linear in z
— what additive encryption can compute.

**Fixed point.** Everything encrypted is an integer: predictions and
residuals are scaled by 2**frac_bits (F) and must stay below 2**int_bits (U)
in magnitude; features are scaled by 2**feature_frac_bits (G). So the
gradient integers are sums of N products below 2**(F+U+1) * max|x_q|, the loss
integer is at scale 2**(2F), and every bound is checked before a number is
sent (``EncodingOverflowError``), never after a silent wrap.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from blockfedml.crypto.encoding import EncodingOverflowError
from blockfedml.crypto.paillier import KEY_SIZES
from blockfedml.errors import InvalidInputError

MODELS = ("linear", "logistic")
ENCRYPTIONS = ("paillier", "plain")
PPM = 1_000_000
LOSS_SCALE = 1_000_000
"""The loss on the ledger is an integer: round down of loss x 1e6."""

_LIMITS = {  # the contract checks the same ranges (chaincode/blockfedml_chaincode/vertical.py)
    "lr_ppm": (1, 10_000_000), "l2_ppm": (0, 10_000_000), "tol_ppm": (0, 1_000_000),
    "max_iterations": (1, 100_000), "frac_bits": (4, 30), "feature_frac_bits": (2, 30),
    "int_bits": (1, 30), "key_bits": (256, 8192),
}


@dataclass(frozen=True)
class VerticalSettings:
    """The session's terms, as integers (they go on the ledger); floats are derived the same way everywhere."""

    model: str = "linear"
    encryption: str = "paillier"
    lr_ppm: int = 500_000
    l2_ppm: int = 0
    tol_ppm: int = 100
    max_iterations: int = 200
    frac_bits: int = 16
    feature_frac_bits: int = 12
    int_bits: int = 8
    key_bits: int = 2048

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise InvalidInputError(f"model must be one of {list(MODELS)}, got {self.model!r}")
        if self.encryption not in ENCRYPTIONS:
            raise InvalidInputError(f"encryption must be one of {list(ENCRYPTIONS)}, got {self.encryption!r}")
        for name, (low, high) in _LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidInputError(f"setting {name} must be an integer in {low}..{high}, got {value!r}")
        if self.encryption == "paillier" and self.key_bits not in KEY_SIZES:
            raise InvalidInputError(f"key_bits must be one of {list(KEY_SIZES)} for Paillier, got {self.key_bits}")

    @classmethod
    def of(cls, model: str = "linear", learning_rate: float = 0.5, l2: float = 0.0,
           tolerance: float = 1e-4, **others: Any) -> "VerticalSettings":
        """Settings from floats (rounded to millionths, as the ledger keeps them)."""
        return cls(model=model, lr_ppm=round(learning_rate * PPM), l2_ppm=round(l2 * PPM),
                   tol_ppm=round(tolerance * PPM), **others)

    @property
    def learning_rate(self) -> float:
        return self.lr_ppm / PPM

    @property
    def l2(self) -> float:
        return self.l2_ppm / PPM

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "VerticalSettings":
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) != names:
            raise InvalidInputError(f"vertical settings must have exactly the keys {sorted(names)}, got {data!r}")
        return cls(**data)

    def converged(self, iteration: int, loss: int, previous: int | None) -> bool:
        """Stop after this iteration? Integer arithmetic on the decrypted loss, so every party agrees."""
        if iteration >= self.max_iterations:
            return True
        return previous is not None and abs(loss - previous) * PPM <= self.tol_ppm * abs(previous)


@dataclass(frozen=True)
class Objective:
    """The split of one model's loss and gradient between A and B (table in the module docstring)."""

    label_factor: int
    grad_scale: float
    a_coef: float

    def cross_weight(self, u_b: np.ndarray, y: np.ndarray) -> np.ndarray:
        return u_b - y if self.label_factor == 1 else 0.25 * u_b - 0.5 * y

    def b_part(self, u_b: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self.label_factor == 1:
            return 0.5 * (u_b - y) ** 2
        return math.log(2.0) - 0.5 * y * u_b + 0.125 * u_b ** 2


OBJECTIVES = {"linear": Objective(1, 1.0, 0.5), "logistic": Objective(2, 0.25, 0.125)}


def encode(values: np.ndarray, frac_bits: int, limit_bits: int, what: str) -> np.ndarray:
    """``round(values * 2**frac_bits)`` as int64; ``EncodingOverflowError`` if one reaches 2**limit_bits."""
    x = np.asarray(values, dtype=np.float64)
    limit_bits = min(limit_bits, 62)  # int64 holds the result whatever the ring
    if not np.all(np.isfinite(x)):
        raise EncodingOverflowError(f"{what} contains NaN or infinity (did training diverge? lower the learning rate)")
    q = np.rint(np.ldexp(x, frac_bits))
    over = np.abs(q) >= float(1 << limit_bits)
    if over.any():
        index = int(np.flatnonzero(over)[0])
        raise EncodingOverflowError(
            f"{what}[{index}] = {x.flat[index]:.6g} is outside the fixed-point range "
            f"|x| < {2.0 ** (limit_bits - frac_bits):g}; training diverged (lower the learning rate) "
            "or the session needs a larger int_bits")
    return q.astype(np.int64)


def encode_scalar(value: float, frac_bits: int, limit_bits: int, what: str) -> int:
    return int(encode(np.array([value]), frac_bits, limit_bits, what)[0])


def loss_fixed_point(loss_int: int, frac_bits: int, n: int) -> int:
    """The ledger's loss: floor(loss x 1e6) from the decrypted integer (scale 2**(2F), sum over n entities)."""
    return max(0, loss_int * LOSS_SCALE // ((1 << (2 * frac_bits)) * n))


def slot_bits(n: int, settings: VerticalSettings, x_int_max: int) -> int:
    """Width of a signed slot holding one gradient integer: sum of n products |d_q| * |x_q|."""
    d_bits = settings.frac_bits + settings.int_bits + 1
    return n.bit_length() + d_bits + max(1, int(x_int_max).bit_length()) + 2


def check_ring(scheme_ring_bits: int, n: int, settings: VerticalSettings, slot: int, who: str) -> None:
    """Refuse a session whose integers could exceed the scheme's ring (only the plain ring is that small)."""
    loss_bits = n.bit_length() + 2 * (settings.frac_bits + settings.int_bits) + 3
    need = max(slot, loss_bits)
    if need > scheme_ring_bits:
        raise InvalidInputError(
            f"{who}: {n} entities at frac_bits={settings.frac_bits}, int_bits={settings.int_bits} need "
            f"{need}-bit integers, more than this scheme's {scheme_ring_bits}; lower the precision or "
            "use Paillier (its ring has the key's size)")


def standardize(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and scales (1 for a constant column) of a party's training rows."""
    mean = X.mean(axis=0) if len(X) else np.zeros(X.shape[1])
    scale = X.std(axis=0) if len(X) else np.ones(X.shape[1])
    return mean, np.where(scale > 0, scale, 1.0)


def sigmoid(z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z, dtype=np.float64)
    positive = z >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-z[positive]))
    ez = np.exp(z[~positive])
    out[~positive] = ez / (1.0 + ez)
    return out
