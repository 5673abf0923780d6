"""Entity alignment by private set intersection (Diffie-Hellman, commutative blinding).

Each ID is hashed to a point of the ed25519 group (SHA-512 of a
session-bound encoding, then ``crypto_core_ed25519_from_uniform``); party A
raises its points to a secret scalar a, B to b
(``crypto_scalarmult_ed25519_noclamp``; scalars from
``crypto_core_ed25519_scalar_reduce`` of 64 random bytes). Two simultaneous
rounds::

    round 1   A -> B: sorted {H(x)^a}         B -> A: sorted {H(y)^b}
    round 2   A -> B: {(H(y)^b)^a} in B's order   B -> A: {(H(x)^a)^b} in A's order

Now each party holds H(.)^(ab) for both sets and keeps its IDs whose doubly
blinded point the other set also has: both learn the intersection (and the
other set's size), nothing else — an ID of B's that A lacks reaches A only as
H(y)^(ab), which A cannot link to y without b (a dictionary attack would need
b, too). The transcript digest is the SHA-256 of the four messages' digests
in that order; both parties compute the same one, and approve it with the
intersection size on the ledger.

Each party blinds on its own machine; ``workers`` processes spread a
party's blinding over its cores (pynacl keeps the GIL, so threads would not).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from nacl import bindings, exceptions

from blockfedml.errors import CryptoError, InvalidInputError
from blockfedml.vertical.transport import ROLE_NAMES, Link
from blockfedml.vertical.wire import digest

ID_TYPES = ("int", "str")
POINT = 32
PARALLEL_MINIMUM = 20_000
_DOMAIN = b"blockfedml-vertical-psi/1\x00"


def canonical_ids(ids: Iterable[object], owner: str = "the party") -> tuple[str, list[bytes]]:
    """``(id_type, encodings)``: IDs are all integers or all strings, distinct, at least one.

    Integers encode as their decimal text, strings as UTF-8, each tagged with
    its type, so the integer 7 and the string "7" are different entities.
    """
    values = list(ids)
    if not values:
        raise InvalidInputError(f"{owner} has no IDs to align")
    kinds = {_id_type(v, owner) for v in values}
    if len(kinds) > 1:
        raise InvalidInputError(f"{owner} mixes integer and string IDs; use one type for every entity")
    id_type = kinds.pop()
    encoded = [(b"i:" + str(int(v)).encode()) if id_type == "int" else (b"s:" + str(v).encode("utf-8"))
               for v in values]
    if len(set(encoded)) != len(encoded):
        seen: set[bytes] = set()
        duplicate = next(e for e in encoded if e in seen or seen.add(e))  # type: ignore[func-returns-value]
        raise InvalidInputError(f"{owner} lists the ID {duplicate[2:].decode('utf-8')!r} twice; IDs must be unique")
    return id_type, encoded


def _id_type(value: object, owner: str) -> str:
    if isinstance(value, (bool, np.bool_)):
        raise InvalidInputError(f"{owner}: an ID may be an integer or a string, not a boolean")
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, str) and value:
        return "str"
    raise InvalidInputError(f"{owner}: ID {value!r} is not an integer or a non-empty string")


def hash_to_group(session: str, encoded: Sequence[bytes]) -> list[bytes]:
    """Points H(id) of the prime-order group, bound to the session (no reuse across sessions)."""
    prefix = _DOMAIN + session.encode() + b"\x00"
    return [bindings.crypto_core_ed25519_from_uniform(hashlib.sha512(prefix + e).digest()[:32]) for e in encoded]


def new_scalar() -> bytes:
    while True:
        scalar = bindings.crypto_core_ed25519_scalar_reduce(os.urandom(64))
        if any(scalar):
            return scalar


def blind(points: Sequence[bytes], scalar: bytes, workers: int = 1, what: str = "points") -> list[bytes]:
    """Every point raised to ``scalar``; ``CryptoError`` naming the first point that is not valid.

    pynacl holds the GIL while it computes, so ``workers`` > 1 uses processes
    (for large sets only: a worker costs ~0.2 s to start).
    """
    if workers <= 1 or len(points) < PARALLEL_MINIMUM:
        return _blind(points, scalar, 0, what)
    step = -(-len(points) // workers)
    context = multiprocessing.get_context("spawn")  # never fork a process that runs gRPC threads
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        parts = pool.map(_blind_joined, [scalar] * workers, [b"".join(points[s:s + step])
                                                             for s in range(0, len(points), step)],
                         range(0, len(points), step), [what] * workers)
        return [point for part in parts for point in split_points(part, what)]


def _blind(points: Sequence[bytes], scalar: bytes, start: int, what: str) -> list[bytes]:
    out = []
    for offset, point in enumerate(points):
        try:
            out.append(bindings.crypto_scalarmult_ed25519_noclamp(scalar, point))
        except exceptions.RuntimeError:
            raise CryptoError(f"{what}: entry {start + offset} is not a valid group element") from None
    return out


def _blind_joined(scalar: bytes, data: bytes, start: int, what: str) -> bytes:
    """A worker's share: concatenated points in, concatenated blinded points out."""
    return b"".join(_blind(split_points(data, what), scalar, start, what))


def split_points(data: bytes, what: str, count: int | None = None) -> list[bytes]:
    if len(data) % POINT or (count is not None and len(data) != POINT * count):
        raise CryptoError(f"{what}: expected {count if count is not None else 'whole'} points of {POINT} bytes, "
                          f"got {len(data)} bytes")
    return [data[i:i + POINT] for i in range(0, len(data), POINT)]


@dataclass(frozen=True)
class Alignment:
    """The result of a PSI for one party: the common IDs (sorted by encoding) and their positions in its input."""

    ids: list[object]
    positions: list[int]
    transcript: str
    own_count: int
    other_count: int

    @property
    def size(self) -> int:
        return len(self.ids)


def align(link: Link, ids: Sequence[object], workers: int = 1) -> Alignment:
    """Run the PSI as party A or B over ``link`` (the peer is the other of the two)."""
    me = link.party
    peer = "B" if me == "A" else "A"
    id_type, encoded = canonical_ids(ids, ROLE_NAMES[me])
    scalar = new_scalar()
    own = blind(hash_to_group(link.session, encoded), scalar, workers, "own IDs")
    order = sorted(range(len(own)), key=own.__getitem__)
    sent1 = link.send(peer, "psi.blind", meta={"count": len(own), "id_type": id_type},
                      blobs={"points": b"".join(own[i] for i in order)})
    got1 = link.recv(peer, "psi.blind")
    if got1.meta.get("id_type") != id_type:
        raise InvalidInputError(
            f"mismatched ID types: {ROLE_NAMES[me]}'s IDs are {_type_name(id_type)} but {ROLE_NAMES[peer]}'s "
            f"are {_type_name(got1.meta.get('id_type'))}; both must key entities the same way")
    theirs = split_points(got1.blob("points", ROLE_NAMES[peer]), f"PSI points from {ROLE_NAMES[peer]}",
                          got1.int_meta("count", ROLE_NAMES[peer], minimum=1))
    theirs_doubled = blind(theirs, scalar, workers, f"PSI points from {ROLE_NAMES[peer]}")
    sent2 = link.send(peer, "psi.double", blobs={"points": b"".join(theirs_doubled)})
    got2 = link.recv(peer, "psi.double")
    own_doubled = split_points(got2.blob("points", ROLE_NAMES[peer]),
                               f"PSI answer from {ROLE_NAMES[peer]}", len(own))
    common = set(theirs_doubled)
    matched = [order[k] for k, point in enumerate(own_doubled) if point in common]
    if not matched:
        raise InvalidInputError(f"no common IDs: the intersection of {ROLE_NAMES[me]}'s {len(own)} and "
                                f"{ROLE_NAMES[peer]}'s {len(theirs)} IDs is empty; nothing was written")
    matched.sort(key=encoded.__getitem__)
    parts = [sent1, got1, sent2, got2] if me == "A" else [got1, sent1, got2, sent2]
    transcript = hashlib.sha256("".join(digest(m.to_bytes()) for m in parts).encode()).hexdigest()
    return Alignment([ids[i] for i in matched], matched, transcript, len(own), len(theirs))


def _type_name(id_type: object) -> str:
    return {"int": "integers", "str": "strings"}.get(id_type, repr(id_type))  # type: ignore[arg-type]
