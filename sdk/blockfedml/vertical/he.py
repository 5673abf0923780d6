"""Additively homomorphic encryption for the vertical protocol, behind one small seam.

The protocol only ever needs a ring ``Z_M`` in which signed fixed-point
integers live (a value v is stored as v mod M and read back as the
representative in (-M/2, M/2]), and these operations on "ciphertexts" of it:
encrypt a vector, add two, add a plaintext, multiply a vector of them by an
integer matrix (the gradient ``X^T d``), pack several into one (Horner, so C
decrypts one number instead of m) and, for the key holder only, decrypt.

Two schemes implement it:

- :class:`PaillierScheme`: Paillier with ``g = n + 1``, ``M = n``, on the
  project's packed-Paillier building blocks (``blockfedml.crypto``): its keys
  (2048 or 3072 bits), its CRT decryption on every core, and its sources of
  the random factor r^n, which is 98% of an encryption (see :data:`RANDOMNESS`
  for the default here and why). What is vertical-specific lives here:
  ``X^T d`` as one multi-exponentiation per column (bucket method, columns on
  all cores), signed-slot packing of the results, masks, and strict parsing
  of received ciphertexts (range and invertibility).
- :class:`PlainScheme`: no encryption, ``M = 2**64`` with numpy's wrapping
  uint64 arithmetic: the same protocol, same integers, same masks, so an
  encrypted run reproduces a plain run bit for bit; it is the baseline for
  "time per iteration with encryption off".

Horizontal aggregation packs unsigned, offset values (``crypto.packing``);
here slots are signed (balanced digits), because masked gradients are
decoded by the party that knows its mask, without any offset bookkeeping.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from abc import ABC, abstractmethod
from typing import Any, Sequence

import gmpy2
import numpy as np
from gmpy2 import mpz

from blockfedml.crypto.paillier import (
    DEFAULT_KEY_BITS, KEY_SIZES, PaillierPrivateKey, PaillierPublicKey, generate_keypair, parallel,
)
from blockfedml.crypto.randomness import SOURCES, RandomSource, make_randomness
from blockfedml.errors import CryptoError, InvalidInputError

__all__ = ["DEFAULT_KEY_BITS", "KEY_SIZES", "RANDOMNESS", "SOURCES", "PaillierKeyPair", "PaillierPublicKey",
           "PaillierScheme", "PlainScheme", "Scheme", "centered", "unpack_signed"]

RANDOMNESS = "fixed-base"
"""The vertical protocol's default source of r^n. Every iteration encrypts 2N values on
its critical path with little idle time to hide a pool's fill in (fresh r^n: ~10 s per
iteration for 370 entities at 2048 bits), so the default is the fixed-base table, which
rests on the DJN short-exponent assumption (``blockfedml.crypto.randomness``). ``pool``
and ``fresh`` keep the standard assumption at that price."""


class Scheme(ABC):
    """What a party holding only the public key does; ciphertext vectors are opaque to the protocol."""

    name: str
    modulus: int  # the plaintext ring Z_M

    @abstractmethod
    def encrypt(self, values: np.ndarray) -> Any:
        """Encrypt int64 values (each with fresh randomness)."""

    @abstractmethod
    def add(self, a: Any, b: Any) -> Any:
        """Elementwise sum of two ciphertext vectors."""

    @abstractmethod
    def add_plain(self, a: Any, values: Sequence[int] | np.ndarray) -> Any:
        """Elementwise sum of a ciphertext vector and plaintext integers (not re-randomized)."""

    @abstractmethod
    def matvec(self, a: Any, X: np.ndarray) -> Any:
        """``out[j] = sum_i a[i] * X[i, j]`` for an int64 matrix X of shape (len(a), m)."""

    @abstractmethod
    def pack(self, a: Any, slot_bits: int) -> Any:
        """``sum_j a[j] * 2**(slot_bits*j)`` per group of :meth:`slots` values (signed slots)."""

    @abstractmethod
    def slots(self, slot_bits: int) -> int:
        """How many signed slots of ``slot_bits`` one ciphertext holds."""

    @abstractmethod
    def masks(self, count: int) -> list[int]:
        """Uniform elements of Z_M: added to a value, they hide it perfectly."""

    @abstractmethod
    def length(self, a: Any) -> int: ...

    @abstractmethod
    def to_bytes(self, a: Any) -> bytes: ...

    @abstractmethod
    def from_bytes(self, data: bytes, count: int | None = None, what: str = "ciphertexts") -> Any:
        """Parse ciphertexts; ``CryptoError`` naming ``what`` if they are malformed."""

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """SHA-256 of the public key (what goes on the ledger)."""

    def prepare(self, count: int) -> None:
        """Make ``count`` encryptions' randomness ahead of time, if the scheme can (default: nothing)."""

    def precompute(self, count: int) -> None:
        """Make ``count`` encryptions' randomness now, synchronously (default: nothing)."""

    def plain_width(self) -> int:
        """Bytes of one element of Z_M on the wire."""
        return (self.modulus.bit_length() + 7) // 8

    def ring_bits(self) -> int:
        """Signed values must stay below ``2**ring_bits()`` in magnitude to be read back."""
        return self.modulus.bit_length() - 2


def centered(value: int, modulus: int) -> int:
    """The representative of ``value mod modulus`` in (-modulus/2, modulus/2]."""
    value %= modulus
    return value - modulus if value > modulus // 2 else value


def unpack_signed(value: int, count: int, slot_bits: int) -> list[int]:
    """Split ``sum_j v_j * 2**(slot_bits*j)`` (signed v_j, |v_j| < 2**(slot_bits-1)) into the v_j."""
    size, half, out = 1 << slot_bits, 1 << (slot_bits - 1), []
    for _ in range(count):
        digit = value & (size - 1)
        if digit >= half:
            digit -= size
        out.append(digit)
        value = (value - digit) >> slot_bits
    if value != 0:
        raise CryptoError("a packed value does not decode into its slots: a slot overflowed, "
                          "or a party sent a malformed ciphertext")
    return out


# --------------------------------------------------------------------------
# No encryption: Z_{2^64}
# --------------------------------------------------------------------------

class PlainScheme(Scheme):
    """The protocol with encryption off: uint64 arithmetic, wrapping mod 2**64."""

    name = "plain"
    modulus = 1 << 64

    def encrypt(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.int64).astype(np.uint64)

    def add(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a + b

    def add_plain(self, a: np.ndarray, values: Sequence[int] | np.ndarray) -> np.ndarray:
        return a + _as_u64(values)

    def matvec(self, a: np.ndarray, X: np.ndarray) -> np.ndarray:
        return X.astype(np.uint64).T @ a

    def pack(self, a: np.ndarray, slot_bits: int) -> np.ndarray:
        return a  # one slot per element: nothing to gain

    def slots(self, slot_bits: int) -> int:
        return 1

    def masks(self, count: int) -> list[int]:
        return [secrets.randbits(64) for _ in range(count)]

    def length(self, a: np.ndarray) -> int:
        return int(a.shape[0])

    def to_bytes(self, a: np.ndarray) -> bytes:
        return a.astype("<u8").tobytes()

    def from_bytes(self, data: bytes, count: int | None = None, what: str = "ciphertexts") -> np.ndarray:
        if len(data) % 8 or (count is not None and len(data) != 8 * count):
            raise CryptoError(f"{what}: expected {count if count is not None else 'a whole number of'} "
                              f"values of 8 bytes, got {len(data)} bytes")
        return np.frombuffer(data, dtype="<u8").astype(np.uint64)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(b"blockfedml-vertical:plain").hexdigest()

    def decrypt(self, a: np.ndarray, what: str = "values") -> list[int]:
        return [int(v) for v in np.asarray(a, dtype=np.uint64).view(np.int64)]


def _as_u64(values: Sequence[int] | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype == np.int64:
        return values.astype(np.uint64)
    return np.array([int(v) % (1 << 64) for v in values], dtype=np.uint64)


# --------------------------------------------------------------------------
# Paillier (keys, random factors and decryption from blockfedml.crypto)
# --------------------------------------------------------------------------

class PaillierKeyPair:
    """Collaborator C's key pair; only C ever holds one."""

    def __init__(self, bits: int = DEFAULT_KEY_BITS, private: PaillierPrivateKey | None = None) -> None:
        self.private = private or generate_keypair(bits)
        self.public = self.private.public_key

    def decrypt(self, ciphertexts: Sequence[int], what: str = "ciphertexts") -> list[int]:
        """Signed plaintexts (CRT, on every core); ``CryptoError`` for a value that is not a ciphertext."""
        _check_ciphertexts(ciphertexts, self.public, what)
        n = int(self.public.n)
        return [centered(m, n) for m in self.private.decrypt(list(ciphertexts))]


class Precomputed(RandomSource):
    """Random factors of another source made in advance (session setup), each handed out once.

    Every iteration needs 2N factors on its critical path; made before
    iteration 1, they leave only one multiplication per encryption online.
    When the stock runs out, the rest comes from the source as it would anyway.
    """

    def __init__(self, source: RandomSource) -> None:
        super().__init__(source.public_key)
        self.source, self.name = source, f"precomputed {source.name}"
        self._stock: list[mpz] = []

    def fill(self, count: int) -> None:
        self._stock.extend(self.source.take(count))

    def take(self, count: int) -> list[mpz]:
        taken, self._stock = self._stock[:count], self._stock[count:]
        return taken + (self.source.take(count - len(taken)) if len(taken) < count else [])


class PaillierScheme(Scheme):
    """Paillier arithmetic on raw integers for a party that holds only the public key."""

    name = "paillier"

    def __init__(self, public: PaillierPublicKey, randomness: str = RANDOMNESS) -> None:
        self.public = public
        self.modulus = int(public.n)
        self.randomness: RandomSource = make_randomness(randomness, public)
        self._width = public.ciphertext_bytes

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint

    def prepare(self, count: int) -> None:
        """Make ``count`` random factors ahead of time (a pool fills in the background)."""
        self.randomness.prepare(count)

    def precompute(self, count: int) -> None:
        """Make ``count`` random factors now, before they are needed (see :class:`Precomputed`)."""
        if not isinstance(self.randomness, Precomputed):
            self.randomness = Precomputed(self.randomness)
        self.randomness.fill(count)

    def encrypt(self, values: np.ndarray) -> list[mpz]:
        n = self.modulus
        return self.public.encrypt([int(v) % n for v in values], self.randomness.take(len(values)))

    def add(self, a: list[mpz], b: list[mpz]) -> list[mpz]:
        n2 = self.public.nsquare
        return [x * y % n2 for x, y in zip(a, b)]

    def add_plain(self, a: list[mpz], values: Sequence[int] | np.ndarray) -> list[mpz]:
        n, n2 = self.public.n, self.public.nsquare
        return [c * (1 + n * (int(v) % n)) % n2 for c, v in zip(a, values)]

    def matvec(self, a: list[mpz], X: np.ndarray) -> list[mpz]:
        n2, columns = self.public.nsquare, [X[:, j].tolist() for j in range(X.shape[1])]
        return parallel(lambda chunk: [_multi_exp(a, col, n2) for col in chunk], columns)

    def pack(self, a: list[mpz], slot_bits: int) -> list[mpz]:
        n2, per, shift = self.public.nsquare, self.slots(slot_bits), mpz(1) << slot_bits
        packed = []
        for start in range(0, len(a), per):
            group = a[start:start + per]
            acc = group[-1]
            for c in reversed(group[:-1]):  # Horner: acc = acc * 2^slot_bits + c, in the exponent
                acc = gmpy2.powmod(acc, shift, n2) * c % n2
            packed.append(acc)
        return packed

    def slots(self, slot_bits: int) -> int:
        per = self.ring_bits() // slot_bits
        if per < 1:
            raise InvalidInputError(f"a {self.public.bits}-bit key cannot hold a {slot_bits}-bit slot")
        return per

    def masks(self, count: int) -> list[int]:
        return [secrets.randbelow(self.modulus) for _ in range(count)]

    def length(self, a: list[mpz]) -> int:
        return len(a)

    def to_bytes(self, a: list[mpz]) -> bytes:
        return self.public.ciphertexts_to_bytes(a)

    def from_bytes(self, data: bytes, count: int | None = None, what: str = "ciphertexts") -> list[mpz]:
        width = self._width
        if len(data) % width or (count is not None and len(data) != width * count):
            expected = f"{count} ciphertexts" if count is not None else "whole ciphertexts"
            raise CryptoError(f"{what}: expected {expected} of {width} bytes, got {len(data)} bytes")
        values = [mpz(int.from_bytes(data[i:i + width], "big")) for i in range(0, len(data), width)]
        _check_ciphertexts(values, self.public, what)
        return values


def _check_ciphertexts(values: Sequence[int], public: PaillierPublicKey, what: str) -> None:
    """Every value in 1..n^2-1 and coprime to n (one gcd for all: of their product mod n)."""
    n, n2, product = public.n, public.nsquare, mpz(1)
    for index, value in enumerate(values):
        if not 0 < value < n2:
            raise CryptoError(f"{what}: value {index} is not a ciphertext of this key (out of range)")
        product = product * value % n
    if values and gmpy2.gcd(product, n) != 1:
        raise CryptoError(f"{what}: a value is not a ciphertext of this key (not invertible mod n)")


def _multi_exp(bases: list[mpz], exponents: list[int], modulus: mpz) -> mpz:
    """``prod bases[i] ** exponents[i] mod modulus`` for small signed exponents (bucket method).

    Negative exponents are gathered apart and inverted once at the end.
    """
    positive = [(b, e) for b, e in zip(bases, exponents) if e > 0]
    negative = [(b, -e) for b, e in zip(bases, exponents) if e < 0]
    result = _bucket_exp(positive, modulus)
    if negative:
        inverse = gmpy2.invert(_bucket_exp(negative, modulus), modulus)
        result = result * inverse % modulus
    return result


def _bucket_exp(pairs: list[tuple[mpz, int]], modulus: mpz) -> mpz:
    if not pairs:
        return mpz(1)
    bits = max(e for _, e in pairs).bit_length()
    window = min(range(1, 11), key=lambda w: math.ceil(bits / w) * (len(pairs) + (2 << w)))
    mask, acc = (1 << window) - 1, mpz(1)
    for shift in range((math.ceil(bits / window) - 1) * window, -1, -window):
        if acc != 1:
            acc = gmpy2.powmod(acc, 1 << window, modulus)
        buckets: dict[int, mpz] = {}
        for base, exponent in pairs:
            digit = (exponent >> shift) & mask
            if digit:
                held = buckets.get(digit)
                buckets[digit] = base if held is None else held * base % modulus
        if not buckets:
            continue
        running, total = None, None  # sum_k k * bucket_k as a running product, highest k first
        for digit in range(max(buckets), 0, -1):
            held = buckets.get(digit)
            if held is not None:
                running = held if running is None else running * held % modulus
            if running is not None:
                total = running if total is None else total * running % modulus
        acc = acc * total % modulus
    return acc
