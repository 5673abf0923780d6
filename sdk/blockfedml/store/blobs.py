"""An organization's own blob store, which fetches what it lacks from the organization that has it.

Every organization keeps the blobs it produces (updates, public keys, mask
bundles, reveals, sums, checkpoints) in its own folder and serves them to the
consortium over its mutual-TLS exchange server (``exchange/server.py``,
``Fetch``). A blob another organization produced is fetched by digest from its
producer (the organization the ledger names, when the caller knows it), else
from any organization that holds it, re-hashed, and kept in this store; nothing
is read from another organization's folder. A blob that nobody can produce is a
``NotFoundError`` naming it and every holder asked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from blockfedml.errors import BlockFedMLError, IntegrityError, NotFoundError
from blockfedml.store.model_store import ModelStore, check_digest, sha256_hex


class BlobSource(Protocol):
    """Another organization that may hold a blob."""

    msp_id: str

    def fetch(self, digest: str) -> bytes | None:
        """The blob, or None if this source does not hold it; ``BlockFedMLError`` if unreachable."""


class LocalSource:
    """Another organization's store in this same process: the one-machine quick path, where one
    process acts for every organization (the demo, tests) and so holds every folder anyway."""

    def __init__(self, msp_id: str, store: ModelStore) -> None:
        self.msp_id = msp_id
        self.store = store

    def fetch(self, digest: str) -> bytes | None:
        return self.store.get(digest) if self.store.has(digest) else None


class BlobUnavailable(NotFoundError):
    """No holder produced the blob; ``answers`` says what each one said (short, for the ledger)."""

    def __init__(self, answers: list[str], message: str) -> None:
        super().__init__(message)
        self.answers = answers

    @property
    def summary(self) -> str:
        return "; ".join(a.split(" (")[0] for a in self.answers) or "no holder reachable"


class BlobStore(ModelStore):
    """``ModelStore`` of one organization plus the sources it may fetch missing blobs from."""

    def __init__(self, root: Path | str, msp_id: str,
                 sources: Callable[[], Sequence[BlobSource]] = lambda: (), patience: float = 30.0) -> None:
        super().__init__(root)
        self.msp_id = msp_id
        self._sources = sources
        self.patience = patience

    def get(self, digest: str, producer: str | None = None) -> bytes:
        """The blob, from this store or fetched (``producer`` first) and kept here.

        Holders that cannot be reached now (a process still starting, a restart) are asked again
        for up to ``patience`` seconds; once every holder answered without it, or the patience is
        spent, a ``NotFoundError`` names the blob and what each holder said.
        """
        check_digest(digest)
        if self.has(digest):
            return super().get(digest)
        deadline, delay = time.monotonic() + self.patience, 0.05
        while True:
            blob, unreachable, answers = self._fetch_once(digest, producer)
            if blob is not None:
                self.put(blob)
                return blob
            if not unreachable or time.monotonic() >= deadline:
                break
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 1.0)
        asked = "; ".join(answers) if answers else "no other organization is reachable from this process"
        raise BlobUnavailable(answers,f"blob {digest} is not in {self.msp_id}'s store at {self.root} and could not be fetched "
                            f"({asked}); the organization that produced it must serve it "
                            "(`blockfedml org start`, or a running `member round`/`member run`)")

    def _fetch_once(self, digest: str, producer: str | None) -> tuple[bytes | None, bool, list[str]]:
        """One pass over the sources: the blob, whether some holder was unreachable, what each said."""
        answers, damaged, unreachable = [], [], False
        for source in sorted(self._sources(), key=lambda s: s.msp_id != producer):
            try:
                blob = source.fetch(digest)
            except IntegrityError as exc:
                damaged.append(f"{source.msp_id}: {exc}")
                continue
            except BlockFedMLError as exc:
                unreachable = True
                answers.append(f"{source.msp_id}: {exc}")
                continue
            if blob is None:
                answers.append(f"{source.msp_id} does not hold it")
                continue
            if sha256_hex(blob) != digest:
                damaged.append(f"{source.msp_id} produced bytes hashing to {sha256_hex(blob)}")
                continue
            return blob, False, answers
        if damaged:
            raise IntegrityError(f"blob {digest}: every copy found is corrupt or tampered with ({'; '.join(damaged)})")
        return None, unreachable, answers

    def available(self, digest: str) -> bool:
        """Whether this store holds the blob or can fetch it now (fetching keeps it); a copy that
        turns out damaged counts as held: reading it then says what is wrong."""
        try:
            self.get(digest)
        except NotFoundError:
            return False
        except IntegrityError:
            return True
        return True

    def __repr__(self) -> str:
        return f"BlobStore({self.msp_id}, {str(self.root)!r})"
