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
