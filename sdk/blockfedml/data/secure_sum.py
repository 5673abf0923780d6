"""Secure sum: several parties add integer vectors and only the total is revealed.

This is the seam the federated statistics are written against
(:func:`secure_total`, :class:`SecureSum`). A party never sends its vector;
it sends the vector plus pairwise masks that cancel in the sum (Bonawitz et
al.): for every other party ``j`` it adds ``+m_ij`` when its name sorts
before ``j`` and ``-m_ij`` otherwise, all modulo 2**64. Whoever adds the
masked vectors of *all* parties gets the exact total; one masked vector alone
is indistinguishable from random.

``m_ij`` comes from the project's masking primitives
(``blockfedml.crypto.masking``, the secure-aggregation mode's own): an X25519
agreement between ``i`` and ``j`` (each party publishes only its public key),
HKDF-SHA256 bound to the context and the pair, and the AES-256-CTR keystream
of that 256-bit seed read as uint64. Keys are fresh for every use.

The statistics need no dropout recovery (they are computed once, before the
first round; a party that publishes a key and never sends leaves the sum
unrecoverable, and the statistics are simply started again), so this uses
pairwise masks only, without the self-masks and Shamir shares of the
training rounds. Another :class:`SecureSum` (Paillier, say) slots in here
unchanged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from blockfedml.crypto import masking
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
             vector: np.ndarray, context: int) -> np.ndarray:
        """``vector`` hidden so that only the sum over all of ``public_keys``'s parties is revealed.

        ``public_keys`` holds every party's public key, the caller's included;
        ``context`` (the statistics epoch) binds the masks to one use.
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
    """Pairwise additive masks from the project's masking primitives (``blockfedml.crypto.masking``).

    The seed of a pair is X25519 + HKDF-SHA256 bound to the epoch and the two
    names (``pair_seed``); its AES-256-CTR keystream is the mask (``expand``);
    the smaller name adds it, the larger subtracts it (``pair_sign``). There is
    no self-mask: without dropout recovery nothing ever reveals a pair's seed.
    """

    name = "masking"

    def keypair(self) -> tuple[bytes, bytes]:
        key = X25519PrivateKey.generate()
        return masking.private_bytes(key), masking.public_bytes(key)

    def mask(self, me: str, private_key: bytes, public_keys: Mapping[str, bytes],
             vector: np.ndarray, context: int) -> np.ndarray:
        if me not in public_keys:
            raise InvalidInputError(f"{me} is not among the parties of this sum {sorted(public_keys)}")
        if len(public_keys) < 2:
            raise InvalidInputError("a secure sum needs at least two parties (one alone reveals its vector)")
        try:
            private = X25519PrivateKey.from_private_bytes(private_key)
        except ValueError as exc:
            raise CryptoError(f"{me}'s private key is unusable: {exc}") from None
        if masking.public_bytes(private) != public_keys[me]:
            raise CryptoError(f"the public key published for {me} is not the key of this private key")
        out = np.array(vector, dtype=DTYPE, copy=True)
        for other in sorted(public_keys):
            if other == me:
                continue
            try:
                seed = masking.pair_seed(private, public_keys[other], context, me, other)
            except ValueError as exc:  # a low-order point: the agreement would be all zeros
                raise CryptoError(f"the public key of {other} is unusable: {exc}") from None
            stream = masking.expand(seed, len(out))
            if masking.pair_sign(me, other) > 0:
                out += stream
            else:
                out -= stream
        return out


def secure_total(vectors: Mapping[str, np.ndarray], scheme: SecureSum | None = None,
                 context: int = 0) -> np.ndarray:
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
