"""Pairwise additive masks (Bonawitz et al.) from X25519 and AES-256-CTR.

Every pair of members (i, j) of a round agrees on a 256-bit seed without
talking: X25519 between i's mask key and j's advertised public key, then
HKDF-SHA256 bound to the round and the pair. The seed keys an AES-256-CTR
stream read as uint64 (numpy, no Python loop): i adds it, j subtracts it, so
the pair's masks cancel in the sum and only the sum is ever in the clear.
Arithmetic wraps modulo 2^64, like the sum itself.

Each member also adds a self-mask from its own random seed (double masking):
if the aggregator learns a member's pairwise seeds (because that member was
declared dropped), the self-mask still hides its input. The aggregator gets
either a member's self-mask seed (it contributed) or its mask key (it
dropped), rebuilt from Shamir shares, never both: which one is fixed by the
contributor set recorded on the ledger.

Shares travel encrypted: AES-256-GCM under a key from X25519 between the
sender's and the recipient's *share* keys (a second key pair, so that
revealing a dropped member's mask key does not open the shares it received).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from blockfedml.errors import CryptoError

KEY_BYTES = 32
_SALT = b"blockfedml/secagg/v1"


def public_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def private_bytes(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


@dataclass(frozen=True)
class MaskSecrets:
    """One member's secrets for one round; they leave it only as Shamir shares."""

    mask_key: X25519PrivateKey
    share_key: X25519PrivateKey
    self_seed: bytes

    @classmethod
    def generate(cls) -> "MaskSecrets":
        return cls(X25519PrivateKey.generate(), X25519PrivateKey.generate(), secrets.token_bytes(KEY_BYTES))

    @property
    def mask_public(self) -> bytes:
        return public_bytes(self.mask_key)

    @property
    def share_public(self) -> bytes:
        return public_bytes(self.share_key)


def load_public(data: bytes, what: str) -> X25519PublicKey:
    if len(data) != KEY_BYTES:
        raise CryptoError(f"{what} must be a {KEY_BYTES}-byte X25519 public key, got {len(data)} bytes")
    return X25519PublicKey.from_public_bytes(data)


def _derive(secret: bytes, info: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=_SALT, info=info.encode()).derive(secret)


def pair_seed(private: X25519PrivateKey, peer_public: bytes, round_number: int, a: str, b: str) -> bytes:
    """The 256-bit seed of the pair (a, b) in this round; both members derive the same one."""
    first, second = sorted((a, b))
    shared = private.exchange(load_public(peer_public, f"the mask key of {b if a < b else a}"))
    return _derive(shared, f"mask|{round_number}|{first}|{second}")


def self_mask_seed(self_seed: bytes, round_number: int, msp_id: str) -> bytes:
    return _derive(self_seed, f"self|{round_number}|{msp_id}")


def expand(seed: bytes, length: int) -> np.ndarray:
    """``length`` pseudo-random uint64 values: the AES-256-CTR keystream of ``seed``."""
    encryptor = Cipher(algorithms.AES(seed), modes.CTR(bytes(16))).encryptor()
    return np.frombuffer(encryptor.update(_zeros(8 * length)), dtype="<u8")


@lru_cache(maxsize=2)
def _zeros(size: int) -> bytes:
    """A reused block of zero bytes: the keystream is the AES-CTR encryption of zeros."""
    return bytes(size)


def pair_sign(me: str, peer: str) -> int:
    """The smaller MSP ID adds the pair's mask, the larger subtracts it."""
    return 1 if me < peer else -1


def total_mask(me: str, secrets_: MaskSecrets, peers: Mapping[str, bytes], round_number: int,
               length: int) -> np.ndarray:
    """Self-mask plus the signed pairwise masks with every peer (by MSP ID: mask public key)."""
    total = expand(self_mask_seed(secrets_.self_seed, round_number, me), length).copy()
    for peer in sorted(peers):
        if peer == me:
            continue
        stream = expand(pair_seed(secrets_.mask_key, peers[peer], round_number, me, peer), length)
        if pair_sign(me, peer) > 0:
            total += stream
        else:
            total -= stream
    return total


def share_cipher(private: X25519PrivateKey, peer_public: bytes, round_number: int,
                 sender: str, recipient: str) -> tuple[AESGCM, bytes]:
    """The AES-GCM key for shares from ``sender`` to ``recipient`` and the associated data."""
    shared = private.exchange(load_public(peer_public, "a share key"))
    context = f"share|{round_number}|{sender}|{recipient}"
    return AESGCM(_derive(shared, context)), context.encode()


def seal_share(private: X25519PrivateKey, peer_public: bytes, round_number: int, sender: str,
               recipient: str, plaintext: bytes) -> bytes:
    aead, associated = share_cipher(private, peer_public, round_number, sender, recipient)
    nonce = secrets.token_bytes(12)
    return nonce + aead.encrypt(nonce, plaintext, associated)


def open_share(private: X25519PrivateKey, peer_public: bytes, round_number: int, sender: str,
               recipient: str, sealed: bytes) -> bytes:
    aead, associated = share_cipher(private, peer_public, round_number, sender, recipient)
    try:
        return aead.decrypt(sealed[:12], sealed[12:], associated)
    except InvalidTag:
        raise CryptoError(f"the share sent by {sender} to {recipient} in round {round_number} does not "
                          "decrypt: it was altered or sealed for someone else") from None
