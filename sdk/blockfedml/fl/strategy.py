"""Aggregation rules over plain parameter vectors, in the manner of Flower's strategies.

A :class:`Strategy` turns the organizations' updates of one round into the
next global parameter vector. It sees only numpy arrays and sample counts —
no ledger, no crypto — so rules are easy to test and to swap: the round driver
takes a strategy object, and :func:`get_strategy` maps a setting's name to one.

Only FedAvg exists today. Robust rules (coordinate-wise median, trimmed mean,
Krum) are planned as further subclasses; they will need the individual
updates in the clear, which secure aggregation forbids, so they are meant for
screening experiments and plaintext mode. ``Strategy.needs_individual_updates``
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


_STRATEGIES: dict[str, type[Strategy]] = {"fedavg": FedAvg}
STRATEGIES: tuple[str, ...] = tuple(_STRATEGIES)


def get_strategy(name: str) -> Strategy:
    """The strategy called ``name`` (one of :data:`STRATEGIES`)."""
    if name not in _STRATEGIES:
        raise InvalidInputError(
            f"strategy {name!r} is unknown; allowed values: {', '.join(STRATEGIES)}"
        )
    return _STRATEGIES[name]()
