"""A member's round secrets kept in its own folder, so a restarted process picks up where it was.

With masking a member's X25519 keys and self-mask seed are needed from the
selection phase (when their public halves go on the ledger) until the round
closes: to share them, to mask the update and to reveal shares. Kept only in
memory they die with the process, and the restarted member could not finish
its part (docs/operations.md). Each round's secrets are written before their
public halves are submitted, atomically, readable by the owner only, in the
organization's own key folder; they never leave it.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from blockfedml.crypto.masking import KEY_BYTES, MaskSecrets, private_bytes
from blockfedml.errors import CryptoError

MASK_FILE = "round-{:08d}.mask"
UPDATE_FILE = "round-{:08d}.update"


class RoundSecrets:
    """Masking secrets and the sealed update, by round, in ``folder`` (``<workdir>/keys/<org>/rounds``),
    mode 0600: what a restarted member needs to finish its part of an open round."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, number: int) -> Path:
        return self.folder / MASK_FILE.format(number)

    def save(self, number: int, secrets: MaskSecrets) -> None:
        """Write the round's secrets (temporary file, fsync, rename: never half a file)."""
        data = private_bytes(secrets.mask_key) + private_bytes(secrets.share_key) + secrets.self_seed
        self._write(self.path(number), data)

    def save_update(self, number: int, sealed: bytes) -> None:
        """Keep this member's sealed update of the round: it is sent again to a new (or restarted) aggregator."""
        self._write(self.folder / UPDATE_FILE.format(number), sealed)

    def load_update(self, number: int) -> bytes | None:
        path = self.folder / UPDATE_FILE.format(number)
        return path.read_bytes() if path.exists() else None

    def _write(self, path: Path, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)

    def load(self, number: int) -> MaskSecrets | None:
        """The round's secrets, or None when this member never generated any for it."""
        path = self.path(number)
        if not path.exists():
            return None
        data = path.read_bytes()
        if len(data) != 3 * KEY_BYTES:
            raise CryptoError(f"{path} holds {len(data)} bytes, not the {3 * KEY_BYTES} of a round's mask "
                              "secrets: it is damaged; this member cannot finish that round (the others go on "
                              "without it at the deadline)")
        return MaskSecrets(X25519PrivateKey.from_private_bytes(data[:KEY_BYTES]),
                           X25519PrivateKey.from_private_bytes(data[KEY_BYTES:2 * KEY_BYTES]),
                           data[2 * KEY_BYTES:])

    def forget_before(self, number: int) -> None:
        """Delete the secrets of earlier rounds (they are closed)."""
        if not self.folder.exists():
            return
        for path in [*self.folder.glob("round-*.mask"), *self.folder.glob("round-*.update")]:
            if int(path.name[len("round-"):len("round-") + 8]) < number:
                path.unlink()
