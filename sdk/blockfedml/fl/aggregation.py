"""How members' updates travel to the aggregator and become one model.

This is the seam for secure aggregation. A mode decides what a member seals
(the bytes it sends and commits to on the ledger) and how the aggregator turns
the sealed blobs of a round into the aggregated parameters. The plaintext mode
sends parameters in the clear; the Paillier and masking modes (secure
aggregation) implement the same two methods, so the round driver never changes.

A secure mode cannot combine in one step: the aggregator can only *sum* the
sealed blobs (homomorphically, or by adding masked vectors); the sum is opened
by someone else — the key holder decrypts it, or the members reveal the
shares that remove the masks — and only once the ledger has authorized that
sum (its contributors, ``min_group_size`` of them besides anyone who sees it). So a
``SecureAggregation`` adds ``sum`` and ``finish`` around that opening step,
and takes a :class:`RoundContext`: the round's public facts (participants,
key, mask keys, weights) and, for a member, its own secrets. The
cryptography itself is in :mod:`blockfedml.crypto`; docs/secure-aggregation.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from blockfedml.crypto import secagg
from blockfedml.crypto.encoding import FixedPoint
from blockfedml.crypto.graph import MaskingGraph
from blockfedml.crypto.masking import MaskSecrets
from blockfedml.crypto.packing import DEFAULT_WEIGHT_BITS, SlotLayout
from blockfedml.crypto.paillier import PaillierPrivateKey, PaillierPublicKey
from blockfedml.crypto.randomness import FreshRandomness, RandomSource
from blockfedml.errors import CryptoError, InvalidInputError
from blockfedml.fl.strategy import ClientUpdate, FedAvg, Strategy
from blockfedml.ml.serialization import params_from_bytes, params_to_bytes


@dataclass(frozen=True)
class RoundContext:
    """What a secure mode needs to know about a round; the caller reads it from the ledger.

    Public facts (participants, committed weights, the Paillier key, the
    advertised mask and share keys, the masking threshold and graph: who masks with
    whom, threshold of shares per member) plus, for the member acting, its own secrets
    (never sent anywhere). Without a graph, masking uses the complete graph.
    """

    round: int
    participants: tuple[str, ...] = ()
    weights: Mapping[str, int] = field(default_factory=dict)  # committed num_samples by organization
    public_key: PaillierPublicKey | None = None
    randomness: RandomSource | None = None
    mask_keys: Mapping[str, bytes] = field(default_factory=dict)
    share_keys: Mapping[str, bytes] = field(default_factory=dict)
    threshold: int = 0
    secrets: MaskSecrets | None = None
    graph: MaskingGraph | None = None


class AggregationMode(ABC):
    """What members seal and how the aggregator combines it."""

    name: str
    secure: bool = False

    @abstractmethod
    def seal(self, update: ClientUpdate, context: RoundContext | None = None) -> bytes:
        """Turn one member's update into the bytes it sends and commits to."""

    @abstractmethod
    def combine(self, sealed: Mapping[str, bytes], context: RoundContext | None = None) -> np.ndarray:
        """Turn the sealed updates of a round (by organization) into new parameters."""


class PlaintextAggregation(AggregationMode):
    """Updates in the clear, combined by a plaintext strategy (FedAvg by default).

    Kept for comparison with the secure modes and for sessions whose members
    accept that the aggregator sees their updates.
    """

    name = "plaintext"

    def __init__(self, strategy: Strategy | None = None) -> None:
        self.strategy = strategy or FedAvg()

    def seal(self, update: ClientUpdate, context: RoundContext | None = None) -> bytes:
        return params_to_bytes(update.params, {"org": update.org, "num_samples": int(update.num_samples)})

    def combine(self, sealed: Mapping[str, bytes], context: RoundContext | None = None) -> np.ndarray:
        updates = []
        for org in sorted(sealed):
            params, meta = params_from_bytes(sealed[org])
            if meta.get("org") != org:
                raise InvalidInputError(
                    f"the update sent by {org} is labelled as {meta.get('org')!r}: refusing it"
                )
            updates.append(ClientUpdate(org=org, params=params, num_samples=int(meta["num_samples"])))
        return self.strategy.aggregate(updates)


class SecureAggregation(AggregationMode):
    """A mode where the aggregator only sums; the sum is opened elsewhere, once authorized.

    The round's result is FedAvg on fixed-point values: each member seals
    ``n_i * encode(x_i)``; the opened sum is ``sum(n_i * q_i)`` exactly (a
    ``sum-result`` blob), and ``finish`` divides by the total weight.
    """

    secure = True

    def __init__(self, codec: FixedPoint | None = None) -> None:
        self.codec = codec or FixedPoint()

    def combine(self, sealed: Mapping[str, bytes], context: RoundContext | None = None) -> np.ndarray:
        raise CryptoError(f"a {self.name} aggregate cannot be combined from the sealed updates alone: the "
                          "aggregator sums them, the ledger authorizes opening that sum, and only the "
                          "opened sum (a sum-result blob) becomes parameters")

    @abstractmethod
    def sum(self, sealed: Mapping[str, bytes], context: RoundContext) -> bytes:
        """The aggregator's sum of the contributors' sealed blobs (still unreadable)."""

    def finish(self, result: bytes, round_number: int, contributors: Sequence[str], weight: int) -> np.ndarray:
        """The new parameters from an opened sum authorized for these contributors and weight."""
        return secagg.result_from_bytes(result, round_number, contributors, weight).decode()

    def finish_sums(self, opened: Sequence[tuple[bytes, Sequence[str], int]], round_number: int) -> np.ndarray:
        """The parameters of several whole opened sums ``(result, contributors, weight)``: each one
        finished, weighted by its total weight (FedAvg of their union). The aggregator forms an
        attribution round's aggregate from its accepted groups' sums this way, and the auditor
        recomputes it with the same function."""
        total = sum(weight for _, _, weight in opened)
        return sum(weight * self.finish(result, round_number, contributors, weight)
                   for result, contributors, weight in opened) / total


class PaillierAggregation(SecureAggregation):
    """Packed Paillier: members encrypt under the key holder's key; the key holder decrypts sums only."""

    name = "paillier"

    def __init__(self, codec: FixedPoint | None = None, weight_bits: int = DEFAULT_WEIGHT_BITS) -> None:
        super().__init__(codec)
        self.weight_bits = weight_bits

    def layout(self, context: RoundContext) -> SlotLayout:
        """The slot layout every member derives from the round's key size and participant count."""
        return SlotLayout.for_round(self.codec, _need(context.public_key, "the key holder's public key").bits,
                                    len(context.participants), self.weight_bits)

    def seal(self, update: ClientUpdate, context: RoundContext | None = None) -> bytes:
        context = _need(context, "a round context")
        public_key = _need(context.public_key, "the key holder's public key")
        return secagg.seal_paillier(update.params, int(update.num_samples), round_number=context.round,
                                    org=update.org, public_key=public_key, layout=self.layout(context),
                                    randomness=context.randomness or FreshRandomness(public_key))

    def sum(self, sealed: Mapping[str, bytes], context: RoundContext) -> bytes:
        return secagg.sum_paillier(sealed, round_number=context.round,
                                   public_key=_need(context.public_key, "the key holder's public key"),
                                   weights=context.weights)

    def open(self, blobs: Mapping[str, bytes], private_key: PaillierPrivateKey,
             context: RoundContext) -> tuple[bytes, bytes, bytes]:
        """The key holder's step: multiply the committed ciphertexts of an authorized sum itself,
        decrypt only that product; ``(sum_blob, sum_result, opening)`` (secagg.open_paillier)."""
        return secagg.open_paillier(blobs, private_key, round_number=context.round, weights=context.weights,
                                    layout=self.layout(context))


class MaskingAggregation(SecureAggregation):
    """Pairwise masks that cancel in the sum, with Shamir-shared dropout recovery."""

    name = "masking"

    def share_bundle(self, org: str, context: RoundContext) -> bytes:
        """A member's encrypted shares of its secrets for every recipient (configuration phase)."""
        return secagg.share_bundle(_need(context.secrets, "this member's mask secrets"),
                                   round_number=context.round, org=org, share_keys=context.share_keys,
                                   threshold=context.threshold, graph=context.graph)

    def seal(self, update: ClientUpdate, context: RoundContext | None = None) -> bytes:
        context = _need(context, "a round context")
        return secagg.seal_masked(update.params, int(update.num_samples), round_number=context.round,
                                  org=update.org, secrets_=_need(context.secrets, "this member's mask secrets"),
                                  mask_keys=context.mask_keys, codec=self.codec, graph=context.graph)

    def sum(self, sealed: Mapping[str, bytes], context: RoundContext) -> bytes:
        return secagg.sum_masked(sealed, round_number=context.round, weights=context.weights,
                                 participants=context.participants)

    def reveal(self, org: str, bundles: Mapping[str, bytes], contributors: Sequence[str], aggregator: str,
               context: RoundContext) -> bytes:
        """A member's released shares for the contributor set the ledger recorded."""
        return secagg.reveal_shares(_need(context.secrets, "this member's mask secrets"),
                                    round_number=context.round, org=org, bundles=bundles,
                                    share_keys=context.share_keys, contributors=contributors,
                                    aggregator=aggregator, graph=context.graph)

    def unmask(self, masked_sum: bytes, reveals: Mapping[str, bytes], bundles: Mapping[str, bytes],
               aggregator: str, contributors: Sequence[str], weight: int,
               context: RoundContext) -> tuple[bytes, bytes]:
        """The aggregator's step: remove every mask with exactly ``threshold`` shares per secret;
        ``(sum_result, mask_opening)`` (secagg.unmask)."""
        return secagg.unmask(masked_sum, reveals, round_number=context.round, aggregator=aggregator,
                             secrets_=_need(context.secrets, "the aggregator's mask secrets"), bundles=bundles,
                             share_keys=context.share_keys, mask_keys=context.mask_keys,
                             contributors=contributors, weight=weight, threshold=context.threshold,
                             graph=context.graph)


def _need(value, what: str):
    if value is None:
        raise CryptoError(f"this step of secure aggregation needs {what}, and it is missing")
    return value


MODES: dict[str, type[AggregationMode]] = {
    "plaintext": PlaintextAggregation,
    "paillier": PaillierAggregation,
    "masking": MaskingAggregation,
}


def make_aggregation(mode: str) -> AggregationMode:
    """The aggregation mode named on the ledger for a round."""
    try:
        return MODES[mode]()
    except KeyError:
        raise InvalidInputError(
            f"unknown aggregation mode {mode!r}; available: {', '.join(sorted(MODES))}"
        ) from None
