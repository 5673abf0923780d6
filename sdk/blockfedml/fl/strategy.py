"""Aggregation rules over plain parameter vectors, in the manner of Flower's strategies.

A :class:`Strategy` turns the organizations' updates of one round into the
next global parameter vector. It sees only numpy arrays and sample counts —
no ledger, no crypto — so rules are easy to test and to swap: the round driver
takes a strategy object, and :func:`get_strategy` maps a setting's name to one.

FedAvg is a weighted sum, so secure aggregation can compute it. The robust
rules (coordinate-wise median, trimmed mean, Krum and multi-Krum) need the
individual updates in the clear, which secure aggregation forbids: they serve
plaintext sessions, for comparison with the defenses that work under
encryption (docs/integrity.md). ``Strategy.needs_individual_updates``
tells the driver which kind a rule is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from blockfedml.errors import InvalidInputError


@dataclass(frozen=True, eq=False)
class ClientUpdate:
    """What one organization contributes to a round: its locally trained parameters."""

    org: str
    params: np.ndarray
    num_samples: int


class Strategy(ABC):
    """An aggregation rule: updates of one round -> new flat parameter vector."""

    name: str = ""
    needs_individual_updates: bool = True
    """False when the rule is a (weighted) sum, computable under secure aggregation."""

    @abstractmethod
    def aggregate(self, updates: list[ClientUpdate]) -> np.ndarray:
        """The new global parameters (a fresh float64 array)."""

    @staticmethod
    def check_updates(updates: list[ClientUpdate]) -> list[ClientUpdate]:
        """Validate a round's updates and return them sorted by organization.

        Sorting makes the result independent of arrival order (floating-point
        sums depend on order), so every endorser recomputes the same bits.
        """
        if not updates:
            raise InvalidInputError("cannot aggregate an empty list of updates")
        seen: set[str] = set()
        length = None
        for u in updates:
            if not isinstance(u, ClientUpdate):
                raise InvalidInputError(f"expected ClientUpdate, got {type(u).__name__}")
            if not isinstance(u.org, str) or not u.org:
                raise InvalidInputError(f"update org must be a non-empty string, got {u.org!r}")
            if u.org in seen:
                raise InvalidInputError(f"organization {u.org!r} sent more than one update")
            seen.add(u.org)
            if isinstance(u.num_samples, bool) or not isinstance(u.num_samples, (int, np.integer)) \
                    or u.num_samples <= 0:
                raise InvalidInputError(
                    f"update from {u.org!r}: num_samples must be a positive integer, "
                    f"got {u.num_samples!r}"
                )
            p = np.asarray(u.params)
            if p.ndim != 1:
                raise InvalidInputError(
                    f"update from {u.org!r}: params must be a flat vector, got shape {p.shape}"
                )
            if length is None:
                length = p.shape[0]
            elif p.shape[0] != length:
                raise InvalidInputError(
                    f"update from {u.org!r} has {p.shape[0]} parameters, others have {length}"
                )
            if not np.all(np.isfinite(p)):
                raise InvalidInputError(f"update from {u.org!r} contains NaN or infinity")
        return sorted(updates, key=lambda u: u.org)


class FedAvg(Strategy):
    """Federated averaging: w = sum_i p_i w_i with p_i = n_i / n.

    The paper's objective f(w) = sum_i p_i F_i(w) weighs each organization by
    its share of the training samples; averaging the locally trained
    parameters with the same weights is McMahan et al.'s FedAvg.
    """

    name = "fedavg"
    needs_individual_updates = False

    def aggregate(self, updates: list[ClientUpdate]) -> np.ndarray:
        ordered = self.check_updates(updates)
        counts = np.array([int(u.num_samples) for u in ordered], dtype=np.float64)
        weights = counts / counts.sum()
        stacked = np.stack([np.asarray(u.params, dtype=np.float64) for u in ordered])
        return weights @ stacked


def _stack(updates: list[ClientUpdate]) -> np.ndarray:
    """The checked updates as rows of one float64 matrix (sorted by organization)."""
    return np.stack([np.asarray(u.params, dtype=np.float64) for u in Strategy.check_updates(updates)])


class CoordinateMedian(Strategy):
    """Coordinate-wise median (Yin et al., 2018): each parameter is the median of the members' values.

    Fewer than half of the members cannot drag any coordinate outside the
    range of the honest values, whatever they send. Sample counts are ignored:
    a member cannot buy weight by claiming more samples.
    """

    name = "median"

    def aggregate(self, updates: list[ClientUpdate]) -> np.ndarray:
        return np.median(_stack(updates), axis=0)


class TrimmedMean(Strategy):
    """Coordinate-wise trimmed mean: drop the ``floor(beta * n)`` largest and smallest values, average the rest."""

    name = "trimmed_mean"

    def __init__(self, beta: float = 0.2) -> None:
        if not (isinstance(beta, (int, float)) and 0.0 <= beta < 0.5):
            raise InvalidInputError(f"trimmed mean: beta must be in [0, 0.5), got {beta!r}")
        self.beta = float(beta)

    def aggregate(self, updates: list[ClientUpdate]) -> np.ndarray:
        stacked = np.sort(_stack(updates), axis=0)
        cut = int(self.beta * len(stacked))
        return stacked[cut:len(stacked) - cut].mean(axis=0)


class Krum(Strategy):
    """Krum and multi-Krum (Blanchard et al., 2017).

    Each update is scored by the sum of squared distances to its
    ``n - f - 2`` nearest neighbours; Krum keeps the best-scored one,
    multi-Krum averages the ``m`` best. Outliers — scaled, flipped or noisy
    updates — are far from the honest cluster and score badly. ``f`` (the
    number of attackers tolerated) defaults to the largest Krum allows,
    ``(n - 3) // 2``; ``m`` to 1 (Krum) or, for multi-Krum, ``n - f``.
    With ``f`` left to its default and fewer than 3 updates (an attribution
    group of 2) there is no majority to keep, so every update is kept (their
    average); an explicit ``f`` that the count cannot tolerate is an error.
    """

    name = "krum"

    def __init__(self, f: int | None = None, m: int | None = 1) -> None:
        for key, value in (("f", f), ("m", m)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise InvalidInputError(f"krum: {key} must be a non-negative integer or None, got {value!r}")
        if m == 0:
            raise InvalidInputError("krum: m must be at least 1 (or None for n - f)")
        self.f, self.m = f, m

    def select(self, updates: list[ClientUpdate]) -> list[int]:
        """Indices (in organization order) of the updates Krum keeps, best first."""
        stacked = _stack(updates)
        n = len(stacked)
        if n < 3 and self.f is None:
            # Too few updates to tell an outlier from the rest (e.g. one attribution group of 2):
            # Krum can tolerate no attacker here, so it keeps them all; attribution judges the group.
            return list(range(n))
        f = (n - 3) // 2 if self.f is None else self.f
        if n < 3 or n < 2 * f + 3:
            raise InvalidInputError(f"krum needs n >= 2f + 3 updates (and at least 3); got n={n}, f={f}")
        squared = np.sum((stacked[:, None, :] - stacked[None, :, :]) ** 2, axis=2)
        neighbours = n - f - 2
        scores = [np.sort(np.delete(squared[i], i))[:neighbours].sum() for i in range(n)]
        m = n - f if self.m is None else min(self.m, n)
        return [int(i) for i in np.argsort(scores, kind="stable")[:m]]

    def aggregate(self, updates: list[ClientUpdate]) -> np.ndarray:
        return _stack(updates)[self.select(updates)].mean(axis=0)


class MultiKrum(Krum):
    """Multi-Krum: the average of the ``m`` best-scored updates (default ``n - f``)."""

    name = "multi_krum"

    def __init__(self, f: int | None = None, m: int | None = None) -> None:
        super().__init__(f, m)


_STRATEGIES: dict[str, type[Strategy]] = {
    "fedavg": FedAvg, "median": CoordinateMedian, "trimmed_mean": TrimmedMean,
    "krum": Krum, "multi_krum": MultiKrum,
}
STRATEGIES: tuple[str, ...] = tuple(_STRATEGIES)


def get_strategy(name: str) -> Strategy:
    """The strategy called ``name`` (one of :data:`STRATEGIES`)."""
    if name not in _STRATEGIES:
        raise InvalidInputError(
            f"strategy {name!r} is unknown; allowed values: {', '.join(STRATEGIES)}"
        )
    return _STRATEGIES[name]()
