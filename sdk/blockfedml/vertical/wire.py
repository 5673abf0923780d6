"""The one byte format of a vertical-protocol message, and its digest.

Every message the parties exchange is ``MAGIC``, a one-line canonical JSON
header, then the named binary fields back to back::

    BFML-VFL/1\\n
    {"blobs":{"cipher":233472},"iteration":3,"kind":"u","meta":{},"session":"s1"}\\n
    <233472 bytes>

The header names the session, the iteration and the kind of message, small
values (``meta``: integers and strings only, like everything that is hashed)
and the length of every binary field; fields follow in sorted order. There is
exactly one encoding per message, so its SHA-256 — what each party records on
the ledger for every message it sent or received — identifies it. Parsing is
strict: a message that is not in this form is refused with an error naming
its sender.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from blockfedml.errors import InvalidInputError
from blockfedml.ledger.base import canonical_json
from blockfedml.store import sha256_hex

MAGIC = b"BFML-VFL/1\n"
MAX_HEADER = 1 << 20


@dataclass(frozen=True)
class Message:
    """One protocol message: what it is (``kind``), for which session and iteration, and its fields."""

    kind: str
    session: str
    iteration: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        header = {"blobs": {name: len(self.blobs[name]) for name in sorted(self.blobs)},
                  "iteration": self.iteration, "kind": self.kind, "meta": self.meta, "session": self.session}
        return MAGIC + canonical_json(header).encode() + b"\n" + b"".join(
            bytes(self.blobs[name]) for name in sorted(self.blobs))

    @classmethod
    def from_bytes(cls, data: bytes, sender: str = "a peer") -> "Message":
        """Parse strictly; ``InvalidInputError`` naming ``sender`` for anything else."""
        def bad(why: str) -> InvalidInputError:
            return InvalidInputError(f"malformed message from {sender}: {why}")

        if not data.startswith(MAGIC):
            raise bad("it does not start with the BFML-VFL/1 marker")
        end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER)
        if end < 0:
            raise bad("its header is not terminated")
        raw = data[len(MAGIC):end]
        try:
            header = json.loads(raw)
        except ValueError:
            raise bad("its header is not JSON") from None
        if not isinstance(header, dict) or sorted(header) != ["blobs", "iteration", "kind", "meta", "session"]:
            raise bad("its header lacks or adds fields")
        if canonical_json(header).encode() != raw:
            raise bad("its header is not in canonical form")
        lengths, kind, iteration = header["blobs"], header["kind"], header["iteration"]
        if not isinstance(kind, str) or not isinstance(header["session"], str) or not isinstance(header["meta"], dict):
            raise bad("kind, session and meta have the wrong types")
        if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
            raise bad(f"iteration {iteration!r} is not a non-negative integer")
        if not isinstance(lengths, dict) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in lengths.values()):
            raise bad("its field lengths are not non-negative integers")
        offset, blobs = end + 1, {}
        for name in sorted(lengths):
            blobs[name] = data[offset:offset + lengths[name]]
            offset += lengths[name]
        if offset != len(data):
            raise bad(f"it has {len(data)} bytes, its header announces {offset}")
        return cls(kind, header["session"], iteration, header["meta"], blobs)

    def blob(self, name: str, sender: str = "a peer") -> bytes:
        if name not in self.blobs:
            raise InvalidInputError(f"malformed message from {sender}: {self.kind} lacks the field {name!r}")
        return self.blobs[name]

    def int_meta(self, name: str, sender: str = "a peer", minimum: int | None = None) -> int:
        value = self.meta.get(name)
        if isinstance(value, str) and value.lstrip("-").isdigit():  # big integers travel as text
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
            raise InvalidInputError(f"malformed message from {sender}: {self.kind} field {name!r} "
                                    f"must be an integer{'' if minimum is None else f' >= {minimum}'}, got {value!r}")
        return value


def digest(data: bytes) -> str:
    """The SHA-256 recorded on the ledger for a message's bytes."""
    return sha256_hex(data)
