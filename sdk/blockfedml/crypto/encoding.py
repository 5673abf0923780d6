"""Fixed-point encoding: the integers that secure aggregation adds.

Paillier plaintexts and masked vectors are integers, so every parameter x
becomes ``q = round(x * 2**frac_bits)``. The range is explicit, as in
python-paillier's ``EncodedNumber``: ``|x| < 2**int_bits``. A value outside it
raises :class:`EncodingOverflowError` naming the index and the value (or is
clipped, but only when the caller asks for it), so an overflow is never a
silently wrong number.

A member contributes its update weighted by its sample count n (FedAvg), so
an :class:`EncodedVector` carries the integers ``n * q`` and the weight n. Two
encoded vectors add exactly; the sum of all members' encoded vectors is the
"plaintext fixed-point sum" that a secure round must reproduce bit for bit,
and ``decode`` turns it into the weighted average.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from blockfedml.errors import CryptoError, InvalidInputError

MAX_VALUE_BITS = 40
"""q needs 1 + int_bits + frac_bits bits; 40 leaves room for weights in an int64."""


class EncodingOverflowError(CryptoError):
    """A value, a weight or a sum does not fit the agreed fixed-point range."""


@dataclass(frozen=True)
class FixedPoint:
    """Parameters as integers ``round(x * 2**frac_bits)`` with ``|x| < 2**int_bits``.

    The defaults (20 fractional bits, |x| < 128) keep 1e-6 precision, far
    below what changes a model's accuracy, and leave every value in 28 bits
    so that slots stay narrow (see :mod:`blockfedml.crypto.packing`).
    """

    frac_bits: int = 20
    int_bits: int = 7

    def __post_init__(self) -> None:
        for name in ("frac_bits", "int_bits"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"{name} must be a non-negative integer, got {value!r}")
        if self.value_bits > MAX_VALUE_BITS:
            raise InvalidInputError(
                f"1 + int_bits + frac_bits = {self.value_bits} bits exceeds {MAX_VALUE_BITS}; "
                "lower the precision or the range")

    @property
    def scale(self) -> int:
        return 1 << self.frac_bits

    @property
    def limit(self) -> int:
        """The largest |q| allowed: 2**(int_bits + frac_bits) - 1."""
        return (1 << (self.int_bits + self.frac_bits)) - 1

    @property
    def offset(self) -> int:
        """Added to q to make it positive (Paillier slots cannot hold negatives): q + offset > 0."""
        return 1 << (self.int_bits + self.frac_bits)

    @property
    def value_bits(self) -> int:
        """Bits of ``q + offset``, which lies in [1, 2**value_bits)."""
        return 1 + self.int_bits + self.frac_bits

    @property
    def bound(self) -> float:
        """Values must satisfy |x| < bound (after rounding to the grid)."""
        return float(1 << self.int_bits)

    def encode(self, values: Any, weight: int = 1, clip: bool = False) -> "EncodedVector":
        """Encode a flat float vector with this weight; out-of-range values raise unless ``clip``."""
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 1:
            raise InvalidInputError(f"can only encode a flat vector, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            bad = int(np.flatnonzero(~np.isfinite(x))[0])
            raise InvalidInputError(f"value {bad} is {float(x[bad])}: NaN and infinity cannot be encoded")
        weight = check_weight(weight)
        q = np.rint(x * self.scale)  # exact: scaling by a power of two, rounding half to even
        over = np.abs(q) > self.limit
        if over.any():
            if not clip:
                index = int(np.flatnonzero(over)[0])
                raise EncodingOverflowError(
                    f"value {index} is {float(x[index])!r}, outside the fixed-point range |x| < {self.bound:g} "
                    f"(int_bits={self.int_bits}); {int(over.sum())} value(s) overflow. Clip the update "
                    "explicitly or agree on a larger int_bits")
            q = np.clip(q, -self.limit, self.limit)
        return EncodedVector(self, q.astype(np.int64) * weight, weight)

    def to_dict(self) -> dict[str, int]:
        return {"frac_bits": self.frac_bits, "int_bits": self.int_bits}

    @classmethod
    def from_dict(cls, data: Any) -> "FixedPoint":
        if not isinstance(data, dict) or set(data) != {"frac_bits", "int_bits"}:
            raise InvalidInputError(f"a fixed-point codec is {{frac_bits, int_bits}}, got {data!r}")
        return cls(**data)


def check_weight(weight: Any, limit: int = 1 << 24) -> int:
    """A weight is a positive integer (a sample count) below ``limit``."""
    if isinstance(weight, bool) or not isinstance(weight, (int, np.integer)) or not 1 <= weight < limit:
        raise EncodingOverflowError(f"weight must be an integer in 1..{limit - 1}, got {weight!r}")
    return int(weight)


@dataclass(frozen=True, eq=False)
class EncodedVector:
    """Weighted fixed-point integers ``sum(n_i * q_i)`` and their total weight ``sum(n_i)``."""

    codec: FixedPoint
    ints: np.ndarray  # int64
    weight: int

    def __add__(self, other: "EncodedVector") -> "EncodedVector":
        if not isinstance(other, EncodedVector):
            return NotImplemented
        if other.codec != self.codec or other.ints.shape != self.ints.shape:
            raise InvalidInputError("cannot add encoded vectors of different codecs or lengths")
        return EncodedVector(self.codec, self.ints + other.ints, self.weight + other.weight)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, EncodedVector) and self.codec == other.codec
                and self.weight == other.weight and np.array_equal(self.ints, other.ints))

    __hash__ = None  # type: ignore[assignment]

    def decode(self) -> np.ndarray:
        """The weighted average ``sum(n_i * x_i) / sum(n_i)`` as float64."""
        return self.ints.astype(np.float64) / (float(self.weight) * self.codec.scale)


def encoded_sum(vectors: list[EncodedVector]) -> EncodedVector:
    """The exact sum of encoded vectors (the plaintext reference of a secure round)."""
    if not vectors:
        raise InvalidInputError("cannot sum an empty list of encoded vectors")
    total = vectors[0]
    for vector in vectors[1:]:
        total = total + vector
    return total


MAX_QUANTIZATION_BITS = 32


@dataclass(frozen=True)
class Quantization:
    """Values quantized to the precision a model needs, with stochastic rounding (BatchCrypt).

    A value x, clipped to ``|x| <= clip``, becomes an integer in ``[-levels, levels]``
    (``levels = 2**(bits-1) - 1``): ``floor(x / clip * levels + u)`` with u uniform in
    [0, 1), so the rounding is unbiased — its expectation is ``x / clip * levels`` — and
    the errors of many members average out instead of adding up in one direction. Fewer
    bits per value means more values per Paillier plaintext (``packing.QuantizedLayout``).

    The weighted average (FedAvg) is kept the way Flower's SecAgg+ keeps it: a member
    first multiplies its values by ``weight / max_weight`` (at most 1, so the clip range
    still holds), and the decoder divides the sum by the sum of those ratios, computed from
    the committed weights. Only the quantized integers travel; their sum is exact.
    """

    bits: int = 12
    clip: float = 8.0
    max_weight: int = 1 << 16

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 2 <= self.bits <= MAX_QUANTIZATION_BITS:
            raise InvalidInputError(f"quantization bits must be an integer in 2..{MAX_QUANTIZATION_BITS}, "
                                    f"got {self.bits!r}")
        if not isinstance(self.clip, (int, float)) or not np.isfinite(self.clip) or self.clip <= 0:
            raise InvalidInputError(f"the clipping range must be a positive finite number, got {self.clip!r}")
        check_weight(self.max_weight, limit=1 << 31)

    @property
    def levels(self) -> int:
        """The largest |q|."""
        return (1 << (self.bits - 1)) - 1

    @property
    def step(self) -> float:
        """The grid's spacing in the values' units: the precision kept."""
        return self.clip / self.levels

    def quantize(self, values: Any, weight: int = 1, rng: np.random.Generator | None = None) -> np.ndarray:
        """``weight / max_weight`` times the values, clipped and stochastically rounded to int64."""
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 1:
            raise InvalidInputError(f"can only quantize a flat vector, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            bad = int(np.flatnonzero(~np.isfinite(x))[0])
            raise InvalidInputError(f"value {bad} is {float(x[bad])}: NaN and infinity cannot be quantized")
        weight = check_weight(weight, limit=self.max_weight + 1)
        scaled = np.clip(x * (weight / self.max_weight), -self.clip, self.clip) * (self.levels / self.clip)
        rng = rng if rng is not None else np.random.default_rng()
        q = np.floor(scaled + rng.random(x.size))
        return np.clip(q, -self.levels, self.levels).astype(np.int64)

    def weight_ratio(self, weights: list[int] | tuple[int, ...]) -> float:
        """The sum of ``weight / max_weight`` over the summands: what the quantized sum is divided by."""
        return sum(check_weight(w, limit=self.max_weight + 1) for w in weights) / self.max_weight

    def average(self, total: np.ndarray, weights: list[int] | tuple[int, ...]) -> np.ndarray:
        """The FedAvg parameters from the exact sum of the members' quantized values."""
        return np.asarray(total, dtype=np.float64) * self.step / self.weight_ratio(weights)

    def to_dict(self) -> dict[str, Any]:
        return {"bits": self.bits, "clip": float(self.clip), "max_weight": self.max_weight}

    @classmethod
    def from_dict(cls, data: Any) -> "Quantization":
        if not isinstance(data, dict) or set(data) != {"bits", "clip", "max_weight"}:
            raise InvalidInputError(f"a quantization is {{bits, clip, max_weight}}, got {data!r}")
        return cls(**data)
