"""Content-addressed, off-chain blob store (models, encrypted updates).

The ledger holds only SHA-256 digests; the bytes live here, in files named by
their digest (``root/ab/cdef…`` for digest ``abcdef…``), so a blob's name is
its proof of integrity: :meth:`ModelStore.get` re-hashes what it reads and
refuses bytes that do not match.

Several processes (the organizations of a local demo) may share one folder:
a blob is written to a temporary file in the target directory, flushed and
fsynced, then renamed into place atomically. A reader never sees a partial
file, and two writers of the same blob write the same bytes, so whichever
rename wins is correct.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from blockfedml.errors import IntegrityError, InvalidInputError, NotFoundError

_DIGEST = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes) -> str:
    """The digest this store (and the ledger) uses: lowercase hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is 64 lowercase hex characters, else raise InvalidInputError."""
    if not isinstance(digest, str) or _DIGEST.fullmatch(digest) is None:
        raise InvalidInputError(
            f"digest {digest!r} is not a SHA-256 hex digest (64 lowercase hex characters)"
        )
    return digest


class ModelStore:
    """Blobs in a folder, addressed by their SHA-256."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        """Where the blob with this digest lives (whether or not it exists)."""
        check_digest(digest)
        return self.root / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    __contains__ = has

    def available(self, digest: str) -> bool:
        """Whether the blob can be read (a store that fetches from others also tries them)."""
        return self.has(digest)

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its digest. Idempotent.

        If the file exists but its content is damaged, it is replaced with the
        correct bytes (we have them; the name says what they must be).
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidInputError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        digest = sha256_hex(data)
        target = self.path(digest)
        if target.is_file() and _file_digest(target) == digest:
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
        return digest

    def get(self, digest: str) -> bytes:
        """The blob's bytes, after checking that they hash to ``digest``."""
        target = self.path(digest)
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(
                f"blob {digest} is not in the store at {self.root}; "
                f"fetch it from the organization that produced it"
            ) from None
        actual = sha256_hex(data)
        if actual != digest:
            raise IntegrityError(
                f"blob {digest} at {target} is corrupt or tampered with: its content "
                f"hashes to {actual}"
            )
        return data

    def digests(self) -> Iterator[str]:
        """Digests of every blob present (unchecked), in sorted order."""
        for sub in sorted(self.root.iterdir()):
            if not (sub.is_dir() and len(sub.name) == 2):
                continue
            for f in sorted(sub.iterdir()):
                name = sub.name + f.name
                if f.is_file() and _DIGEST.fullmatch(name):
                    yield name

    def __repr__(self) -> str:
        return f"ModelStore({str(self.root)!r})"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
