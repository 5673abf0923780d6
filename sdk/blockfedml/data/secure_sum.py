"""Secure sum: several parties add integer vectors and only the total is revealed.

This is the seam the federated statistics are written against
(:func:`secure_total`, :class:`SecureSum`). A party never sends its vector;
it sends the vector plus pairwise masks that cancel in the sum (Bonawitz et
al.): for every other party ``j`` it adds ``+m_ij`` when its name sorts
before ``j`` and ``-m_ij`` otherwise, all modulo 2**64. Whoever adds the
masked vectors of *all* parties gets the exact total; one masked vector alone
is indistinguishable from random.

``m_ij`` comes from an X25519 agreement between ``i`` and ``j`` (each party
publishes only its public key), stretched by HKDF-SHA256 into a 256-bit
AES key, whose CTR keystream is read as little-endian uint64: the full
pairwise secret keys the mask. The ``context`` (channel, statistics epoch)
goes into HKDF's info, so masks never repeat across uses.

This implementation is deliberately small: it has no dropout recovery (a
party that publishes a key and never sends leaves the sum unrecoverable; the
statistics are then simply started again). The project's secure-aggregation
package (``blockfedml.crypto``) is the place for recovery; a
:class:`SecureSum` built on it slots in here unchanged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

import numpy as np
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from blockfedml.errors import CryptoError, InvalidInputError

DTYPE = np.dtype("<u8")
"""Vectors are uint64; sums wrap modulo 2**64."""


class SecureSum(ABC):
    """A way for parties to reveal only the sum of their uint64 vectors."""

    name: str

    @abstractmethod
    def keypair(self) -> tuple[bytes, bytes]:
        """A fresh (private, public) key pair for one party and one use."""

    @abstractmethod
    def mask(self, me: str, private_key: bytes, public_keys: Mapping[str, bytes],
             vector: np.ndarray, context: bytes) -> np.ndarray:
        """``vector`` hidden so that only the sum over all of ``public_keys``'s parties is revealed.

        ``public_keys`` holds every party's public key, the caller's included.
        """

    def combine(self, masked: Mapping[str, np.ndarray]) -> np.ndarray:
        """The total of all parties' vectors (modulo 2**64) from their masked vectors."""
        if not masked:
            raise InvalidInputError("no masked vectors to combine")
        lengths = {len(v) for v in masked.values()}
        if len(lengths) != 1:
            raise InvalidInputError(f"masked vectors differ in length: {sorted(lengths)}")
        total = np.zeros(lengths.pop(), dtype=DTYPE)
        for org in sorted(masked):
            total += np.asarray(masked[org], dtype=DTYPE)  # wraps modulo 2**64
        return total


class PairwiseMasking(SecureSum):
    """Pairwise additive masks from X25519 + HKDF-SHA256 + AES-256-CTR."""

    name = "masking"

    def keypair(self) -> tuple[bytes, bytes]:
        private = X25519PrivateKey.generate()
        raw = serialization.Encoding.Raw
        return (
            private.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()),
            private.public_key().public_bytes(raw, serialization.PublicFormat.Raw),
        )

    def mask(self, me: str, private_key: bytes, public_keys: Mapping[str, bytes],
             vector: np.ndarray, context: bytes) -> np.ndarray:
        if me not in public_keys:
            raise InvalidInputError(f"{me} is not among the parties of this sum {sorted(public_keys)}")
        if len(public_keys) < 2:
            raise InvalidInputError("a secure sum needs at least two parties (one alone reveals its vector)")
        out = np.array(vector, dtype=DTYPE, copy=True)
        try:
            private = X25519PrivateKey.from_private_bytes(private_key)
        except ValueError as exc:
            raise CryptoError(f"{me}'s private key is unusable: {exc}") from None
        own_public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        if own_public != public_keys[me]:
            raise CryptoError(f"the public key published for {me} is not the key of this private key")
        for other in sorted(public_keys):
            if other == me:
                continue
            try:
                shared = private.exchange(X25519PublicKey.from_public_bytes(public_keys[other]))
            except ValueError as exc:
                raise CryptoError(f"the public key of {other} is unusable: {exc}") from None
            stream = _keystream(shared, context, *sorted((me, other)), n=len(out))
            if me < other:
                out += stream
            else:
                out -= stream
        return out


def _keystream(shared: bytes, context: bytes, first: str, second: str, n: int) -> np.ndarray:
    """n uint64 words of AES-256-CTR keystream keyed by HKDF(shared, context, pair)."""
    info = b"blockfedml/secure-sum/1|" + context + b"|" + first.encode() + b"|" + second.encode()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)
    encryptor = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    return np.frombuffer(encryptor.update(bytes(8 * n)) + encryptor.finalize(), dtype=DTYPE)


def secure_total(vectors: Mapping[str, np.ndarray], scheme: SecureSum | None = None,
                 context: bytes = b"") -> np.ndarray:
    """The seam: each party's vector in, only their total (mod 2**64) out.

    In one process this plays every party: each generates a key pair, masks
    its own vector with everybody's public keys, and only masked vectors are
    combined. Across processes the same three steps run through the ledger
    and the store (:mod:`blockfedml.data.federated`).
    """
    scheme = scheme or PairwiseMasking()
    keys = {org: scheme.keypair() for org in vectors}
    public = {org: pair[1] for org, pair in keys.items()}
    masked = {org: scheme.mask(org, keys[org][0], public, vec, context) for org, vec in vectors.items()}
    return scheme.combine(masked)
