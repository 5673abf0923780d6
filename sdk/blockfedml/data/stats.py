"""Federated feature statistics and the standard scaler built from them.

Standardizing features needs the consortium-wide mean and standard deviation
of each feature, which nobody may compute by pooling the data. Each member
instead reduces its table to per-feature *counts, sums and sums of squares*,
encodes them as exact integers and contributes them to a secure sum
(:mod:`blockfedml.data.secure_sum`); only the totals are revealed, and from
the totals everyone derives the same scaler with integer arithmetic.

Encoding. A value ``x`` is quantized to ``round(x * FIXED_POINT)`` (1e-6
resolution); sums and sums of squares of these integers are exact Python
integers. Each statistic is written modulo 2**256 as eight 32-bit limbs in
uint64 words, so the modulo-2**64 secure sum adds limbs without ever carrying
out of a word (fewer than 2**32 members) and the totals are recombined
exactly. A statistic beyond ±2**240 (never seen with real data) is refused
rather than wrapped.

The scaler (``mean`` and ``scale`` as integers in units of 1e-6) equals
scikit-learn's ``StandardScaler`` fitted on the union of the members' rows to
fixed-point precision: population variance, and scale 1 for a constant
feature. Under ``impute_mean`` the mean is over the cells present and the
variance is that of the column after imputation (imputed cells sit at the
mean), i.e. exactly ``SimpleImputer(mean)`` then ``StandardScaler``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from blockfedml.data.schema import DataSchema
from blockfedml.data.table import LocalTable
from blockfedml.errors import IntegrityError, InvalidInputError
from blockfedml.ml.datasets import OrgData

FIXED_POINT = 1_000_000
LIMB_BITS, LIMBS = 32, 8
MODULUS = 1 << (LIMB_BITS * LIMBS)
_BOUND = 1 << 240
_MAX_ABS = float(2 ** 53) / FIXED_POINT  # beyond this, x * FIXED_POINT is not an exact float


# -- local statistics ----------------------------------------------------------

def local_statistics(table: LocalTable) -> list[int]:
    """``[rows, count_1..d, sum_1..d, sumsq_1..d]`` of one member's table, as exact integers.

    ``count_j`` counts the cells present in feature ``j``; sums are over the
    fixed-point values of those cells.
    """
    X = table.X
    present = ~np.isnan(X)
    too_big = present & (np.abs(np.where(present, X, 0.0)) >= _MAX_ABS)
    if too_big.any():
        j = int(np.argmax(too_big.any(axis=0)))
        raise InvalidInputError(
            f"{table.path}: feature {table.schema.feature_names[j]!r} has values of magnitude "
            f">= {_MAX_ABS:.3g}, beyond the exact fixed-point range; rescale the column (other units)")
    q = np.rint(np.where(present, X, 0.0) * FIXED_POINT).astype(np.int64).astype(object)
    counts = [int(c) for c in present.sum(axis=0)]
    sums = [int(s) for s in q.sum(axis=0)] if len(q) else [0] * X.shape[1]
    squares = [int(s) for s in (q * q).sum(axis=0)] if len(q) else [0] * X.shape[1]
    return [int(X.shape[0])] + counts + sums + squares


def encode(values: list[int]) -> np.ndarray:
    """Integers as 32-bit limbs (least significant first) of their value modulo 2**256."""
    words = []
    for value in values:
        if not -_BOUND < value < _BOUND:
            raise InvalidInputError(f"statistic {value} is beyond the ±2**240 the secure sum carries")
        v = value % MODULUS
        words.extend((v >> (LIMB_BITS * k)) & 0xFFFFFFFF for k in range(LIMBS))
    return np.array(words, dtype=np.uint64)


def decode(words: np.ndarray) -> list[int]:
    """Recombine summed limbs into signed integers (inverse of :func:`encode` for sums)."""
    words = np.asarray(words, dtype=np.uint64)
    if words.ndim != 1 or len(words) % LIMBS:
        raise InvalidInputError(f"a statistics vector has a multiple of {LIMBS} words, got {words.shape}")
    out = []
    for i in range(0, len(words), LIMBS):
        v = sum(int(w) << (LIMB_BITS * k) for k, w in enumerate(words[i:i + LIMBS])) % MODULUS
        out.append(v - MODULUS if v >= MODULUS // 2 else v)
    return out


# -- the scaler ------------------------------------------------------------------

@dataclass(frozen=True)
class Scaler:
    """Per-feature ``mean`` and ``scale`` in units of 1/``fixed_point``; applied identically by all."""

    features: tuple[str, ...]
    mean: tuple[int, ...]
    scale: tuple[int, ...]
    rows: int
    counts: tuple[int, ...]
    fixed_point: int = FIXED_POINT

    def to_record(self) -> dict[str, Any]:
        """The integers-only record the ledger stores (``data:SetScaler``)."""
        return {"features": list(self.features), "mean": list(self.mean), "scale": list(self.scale),
                "rows": self.rows, "counts": list(self.counts), "fixed_point": self.fixed_point}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Scaler":
        try:
            return cls(tuple(record["features"]), tuple(record["mean"]), tuple(record["scale"]),
                       int(record["rows"]), tuple(record["counts"]), int(record["fixed_point"]))
        except (KeyError, TypeError) as exc:
            raise InvalidInputError(f"malformed scaler record: {exc}") from None

    @property
    def digest(self) -> str:
        """SHA-256 of the record's canonical JSON (the contract computes the same)."""
        text = json.dumps(self.to_record(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def mean_(self) -> np.ndarray:
        return np.array(self.mean, dtype=np.float64) / self.fixed_point

    @property
    def scale_(self) -> np.ndarray:
        return np.array(self.scale, dtype=np.float64) / self.fixed_point

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Impute missing cells with the mean, then standardize."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise InvalidInputError(f"expected {len(self.features)} feature columns, got shape {X.shape}")
        X = np.where(np.isnan(X), self.mean_, X)
        return (X - self.mean_) / self.scale_


def scaler_from_totals(totals: list[int], schema: DataSchema) -> Scaler:
    """The scaler every member derives from the secure sum's totals (integer arithmetic only)."""
    d = schema.n_features
    if len(totals) != 1 + 3 * d:
        raise IntegrityError(f"the statistics total has {len(totals)} values, the schema needs {1 + 3 * d}")
    rows, counts, sums, squares = totals[0], totals[1:1 + d], totals[1 + d:1 + 2 * d], totals[1 + 2 * d:]
    if rows < 1:
        raise InvalidInputError("the members' tables hold no rows in all")
    means, scales = [], []
    for name, c, s1, s2 in zip(schema.feature_names, counts, sums, squares):
        if c < 1:
            raise InvalidInputError(f"feature {name!r} has no value in any member's table")
        if not 0 < c <= rows:
            raise IntegrityError(f"feature {name!r}: count {c} is outside 1..{rows}")
        means.append(_div_round(s1, c))
        spread = c * s2 - s1 * s1  # = c^2 * variance, in (1/FIXED_POINT)^2 units
        if spread < 0:
            raise IntegrityError(f"feature {name!r}: the statistics are inconsistent (negative variance)")
        # variance of the imputed column = spread / (c * rows); scale = its root, rounded
        scale = (math.isqrt(4 * spread // (c * rows)) + 1) // 2
        scales.append(scale if scale > 0 else FIXED_POINT)
    return Scaler(tuple(schema.feature_names), tuple(means), tuple(scales), rows, tuple(counts))


def _div_round(a: int, b: int) -> int:
    """a / b rounded to the nearest integer (halves away from zero), b > 0."""
    q, r = divmod(abs(a), b)
    q += 2 * r >= b
    return q if a >= 0 else -q


# -- a member's prepared data ----------------------------------------------------

def prepare(table: LocalTable, scaler: Scaler | None, val_fraction: float = 0.2, seed: int = 0) -> OrgData:
    """Scale (and impute) a member's table and split it into local train and validation parts.

    The split is seeded, so a member rebuilds the same parts every time; the
    validation part is what the member evaluates aggregates on.
    """
    if not 0.0 < val_fraction < 1.0:
        raise InvalidInputError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if table.n_rows < 2:
        raise InvalidInputError(f"{table.path}: {table.n_rows} usable row(s); at least 2 are needed "
                                "(one to train on, one to validate)")
    if scaler is not None and tuple(scaler.features) != tuple(table.schema.feature_names):
        raise IntegrityError("the scaler's features are not the schema's features")
    X = scaler.transform(table.X) if scaler is not None else table.X
    if np.isnan(X).any():
        raise InvalidInputError(f"{table.path}: missing cells remain and no scaler imputes them")
    order = np.random.default_rng([seed, 3]).permutation(table.n_rows)
    n_val = min(max(1, round(val_fraction * table.n_rows)), table.n_rows - 1)
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    return OrgData(X[train], table.y[train], X[val], table.y[val], np.concatenate([train, val]))
