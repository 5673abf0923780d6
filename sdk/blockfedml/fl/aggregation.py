"""How members' updates travel to the aggregator and become one model.

This is the seam for secure aggregation. A mode decides what a member seals
(the bytes it sends and commits to on the ledger) and how the aggregator turns
the sealed blobs of a round into the aggregated parameters. The plaintext mode
sends parameters in the clear; the Paillier and masking modes (secure
aggregation) implement the same two methods, so the round driver never changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

import numpy as np

from blockfedml.errors import InvalidInputError
from blockfedml.fl.strategy import ClientUpdate, FedAvg, Strategy
from blockfedml.ml.serialization import params_from_bytes, params_to_bytes


class AggregationMode(ABC):
    """What members seal and how the aggregator combines it."""

    name: str

    @abstractmethod
    def seal(self, update: ClientUpdate) -> bytes:
        """Turn one member's update into the bytes it sends and commits to."""

    @abstractmethod
    def combine(self, sealed: Mapping[str, bytes]) -> np.ndarray:
        """Turn the sealed updates of a round (by organization) into new parameters."""


class PlaintextAggregation(AggregationMode):
    """Updates in the clear, combined by a plaintext strategy (FedAvg by default).

    Kept for comparison with the secure modes and for sessions whose members
    accept that the aggregator sees their updates.
    """

    name = "plaintext"

    def __init__(self, strategy: Strategy | None = None) -> None:
        self.strategy = strategy or FedAvg()

    def seal(self, update: ClientUpdate) -> bytes:
        return params_to_bytes(update.params, {"org": update.org, "num_samples": int(update.num_samples)})

    def combine(self, sealed: Mapping[str, bytes]) -> np.ndarray:
        updates = []
        for org in sorted(sealed):
            params, meta = params_from_bytes(sealed[org])
            if meta.get("org") != org:
                raise InvalidInputError(
                    f"the update sent by {org} is labelled as {meta.get('org')!r}: refusing it"
                )
            updates.append(ClientUpdate(org=org, params=params, num_samples=int(meta["num_samples"])))
        return self.strategy.aggregate(updates)


MODES: dict[str, type[AggregationMode]] = {"plaintext": PlaintextAggregation}


def make_aggregation(mode: str) -> AggregationMode:
    """The aggregation mode named on the ledger for a round."""
    try:
        return MODES[mode]()
    except KeyError:
        raise InvalidInputError(
            f"unknown aggregation mode {mode!r}; available: {', '.join(sorted(MODES))}"
        ) from None
