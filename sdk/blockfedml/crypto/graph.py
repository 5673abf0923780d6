"""Which members mask with which: a sparse random graph, as SecAgg+ does (Bell et al., CCS 2020).

With a complete graph every member agrees a mask with every other and shares its secrets
with all of them, so a member's work and bytes grow with n and the round's with n^2. In
SecAgg+ each member masks only with its k neighbours in a random k-regular graph and
sends its Shamir shares only to them; k grows like log n, and the sum stays exact because
pairwise masks still cancel pair by pair. Privacy and dropout recovery then hold with high
probability rather than always, for a bounded fraction of colluders and of dropouts:

- **privacy**: no honest member may have ``threshold`` colluders among its neighbours
  (they could rebuild its mask key and, with the aggregator, its self-mask seed too), and
  the graph left after removing colluders and dropped members must stay connected (else
  the aggregator would learn the partial sum of a component);
- **recovery**: every member must keep ``threshold`` share holders that survive.

:func:`choose_degree` takes the smallest even k for which, by exact hypergeometric tails
and a union bound over the members, each failure has probability at most ``2**-sigma``
(privacy, connectivity) or ``2**-eta`` (recovery), for at most ``COLLUSION`` of the members
colluding and ``DROPOUT`` of them dropping out. When no k below n - 1 does, the graph is
complete and everything is as in the original protocol (every consortium of up to
19 members at the defaults). The analysis is docs/secure-aggregation.md.

The graph is a Harary graph (each member linked to the k/2 members on either side of it
on a ring, as Flower's SecAgg+ builds it) over a ring order shuffled by a seed that every
party derives from the ledger: the round number, its base checkpoint, the selected members
and the mask keys they advertised before selection. Nobody picks it; everyone, the auditor
included, computes the same one. Pure integer arithmetic: no floats decide anything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from math import comb
from typing import Any

from blockfedml.errors import InvalidInputError
from blockfedml.ledger.base import canonical_json

COLLUSION = Fraction(1, 5)
"""Fraction of the selected members (the aggregator included) assumed at most to collude."""
DROPOUT = Fraction(1, 5)
"""Fraction of the selected members allowed to drop out between selection and unmasking."""
SIGMA = 40
"""Privacy: a sparse graph is used only if it fails with probability at most 2**-SIGMA."""
ETA = 20
"""Recovery: ... and if a round fails to unmask for lack of shares with probability at most 2**-ETA."""


def _tail_at_least(population: int, marked: int, draws: int, at_least: int) -> int:
    """Numerator of P[X >= at_least], X hypergeometric; the denominator is comb(population, draws)."""
    return sum(comb(marked, i) * comb(population - marked, draws - i)
               for i in range(max(at_least, 0), min(marked, draws) + 1))


def neighbourhood_threshold(degree: int, members: int, mask_threshold: int) -> int:
    """Shares that rebuild one member's secret out of the ``degree + 1`` it made (neighbours and
    itself): the ledger's threshold fraction ``mask_threshold / members``, rounded up, at least 2.
    For the complete graph (``degree = members - 1``) it is the ledger's ``mask_threshold``."""
    return max(2, -(-mask_threshold * (degree + 1) // members))


@lru_cache(maxsize=256)
def choose_degree(members: int, mask_threshold: int, collusion: Fraction = COLLUSION,
                  dropout: Fraction = DROPOUT, sigma: int = SIGMA, eta: int = ETA) -> int:
    """The smallest even degree k that meets the privacy and recovery bounds, or ``members - 1``
    (the complete graph) when none below it does."""
    if members < 2 or not 1 <= mask_threshold <= members:
        raise InvalidInputError(f"a masking graph needs at least 2 members and a threshold in 1..members, "
                                f"got {members} and {mask_threshold}")
    colluders, dropped = -(-collusion.numerator * members // collusion.denominator), \
        -(-dropout.numerator * members // dropout.denominator)  # rounded up: the bounds stay conservative
    bad = colluders + dropped
    for k in range(2, members - 1, 2):
        t = neighbourhood_threshold(k, members, mask_threshold)
        if t > k + 1:
            continue
        # privacy: an honest member's k neighbours (out of the n - 1 others) hold >= t colluders
        private = members * _tail_at_least(members - 1, colluders, k, t) << sigma <= comb(members - 1, k)
        # recovery: fewer than t of a member's k + 1 share holders survive
        lost = members * _tail_at_least(members, dropped, k + 1, k + 2 - t) << eta <= comb(members, k + 1)
        # connectivity: k/2 ring neighbours in a row all removed (one cut; a ring needs two)
        connected = bad < k // 2 or members * comb(bad, k // 2) << sigma <= comb(members, k // 2)
        if private and lost and connected:
            return k
    return members - 1


def graph_seed(round_number: int, base_checkpoint: str, mask_keys: Mapping[str, bytes]) -> str:
    """The round's graph seed (hex): SHA-256 of its number, base checkpoint and the selected
    members' advertised mask public keys, all on the ledger before anyone knows the graph."""
    text = canonical_json({"graph": "blockfedml/secagg-graph/v1", "round": round_number,
                           "base_checkpoint": base_checkpoint,
                           "mask_keys": {m: bytes(k).hex() for m, k in sorted(mask_keys.items())}})
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class MaskingGraph:
    """Who masks with whom and who holds whose shares in one round."""

    members: tuple[str, ...]  # the selected members, sorted
    seed: str
    degree: int
    threshold: int

    def __post_init__(self) -> None:
        n = len(self.members)
        if n < 2 or list(self.members) != sorted(set(self.members)):
            raise InvalidInputError(f"a masking graph needs at least 2 distinct sorted members, got {self.members}")
        if not (self.degree == n - 1 or (self.degree % 2 == 0 and 2 <= self.degree < n - 1)):
            raise InvalidInputError(f"degree {self.degree} is neither n - 1 = {n - 1} nor even in 2..{n - 2}")
        if not 2 <= self.threshold <= self.degree + 1 and not (n == 2 and self.threshold <= 2):
            raise InvalidInputError(f"threshold {self.threshold} must lie in 2..degree + 1 = {self.degree + 1}")

    @classmethod
    def for_round(cls, round_number: int, base_checkpoint: str, mask_keys: Mapping[str, bytes],
                  mask_threshold: int) -> "MaskingGraph":
        """The round's graph, from ledger facts: ``mask_keys`` are the selected members' advertised
        mask public keys, ``mask_threshold`` the round record's threshold."""
        members = tuple(sorted(mask_keys))
        n = len(members)
        degree = choose_degree(n, mask_threshold, COLLUSION, DROPOUT, SIGMA, ETA) if n >= 2 else 1
        threshold = mask_threshold if degree == n - 1 else neighbourhood_threshold(degree, n, mask_threshold)
        return cls(members, graph_seed(round_number, base_checkpoint, mask_keys), degree, threshold)

    @classmethod
    def complete(cls, members: Sequence[str], threshold: int) -> "MaskingGraph":
        """Everyone with everyone (the original protocol), e.g. for a handful of members."""
        return cls(tuple(sorted(members)), "", len(members) - 1, threshold)

    @property
    def is_complete(self) -> bool:
        return self.degree == len(self.members) - 1

    @property
    def order(self) -> tuple[str, ...]:
        """The ring: members sorted by SHA-256(seed | member)."""
        return _ring(self.members, self.seed)

    def neighbours(self, member: str) -> tuple[str, ...]:
        """The members ``member`` masks with (sorted, itself excluded)."""
        return _neighbours(self.members, self.seed, self.degree)[self._known(member)]

    def holders(self, member: str) -> tuple[str, ...]:
        """Who holds shares of ``member``'s secrets: its neighbours and itself, sorted."""
        return tuple(sorted((*self.neighbours(member), member)))

    def _known(self, member: str) -> str:
        if member not in self.members:
            raise InvalidInputError(f"{member} is not one of the round's selected members {list(self.members)}")
        return member

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "degree": self.degree, "threshold": self.threshold}


@lru_cache(maxsize=16)
def _ring(members: tuple[str, ...], seed: str) -> tuple[str, ...]:
    return tuple(sorted(members, key=lambda m: hashlib.sha256(f"{seed}|{m}".encode()).digest()))


@lru_cache(maxsize=16)
def _neighbours(members: tuple[str, ...], seed: str, degree: int) -> dict[str, tuple[str, ...]]:
    n = len(members)
    if degree >= n - 1:
        return {m: tuple(o for o in members if o != m) for m in members}
    ring, half = _ring(members, seed), degree // 2
    return {m: tuple(sorted(ring[(i + d) % n] for d in range(-half, half + 1) if d))
            for i, m in enumerate(ring)}


def graph_of_round(round_record: Mapping[str, Any], mask_key_rows: Mapping[str, Mapping[str, Any]]) -> MaskingGraph:
    """The graph of a masking round from what the ledger says: its record (number, base
    checkpoint, selected members, ``mask_threshold``) and the mask keys advertised for it
    (``GetMaskKeys`` rows by MSP ID). Members, the aggregator and the auditor all call this."""
    selected = round_record.get("selected") or []
    missing = sorted(set(selected) - set(mask_key_rows))
    if missing:
        raise InvalidInputError(f"round {round_record.get('round')}: selected members {missing} advertised no mask key")
    keys = {m: bytes.fromhex(mask_key_rows[m]["mask_key"]) for m in selected}
    return MaskingGraph.for_round(int(round_record["round"]), str(round_record["base_checkpoint"]), keys,
                                  int(round_record["mask_threshold"]))
