"""Cryptography of secure aggregation: fixed-point encoding, packed Paillier,
pairwise masking with Shamir-shared dropout recovery. See docs/secure-aggregation.md.

- ``encoding``: ``FixedPoint`` / ``EncodedVector`` (explicit range, overflow raises);
- ``packing``: ``SlotLayout`` (many values per Paillier plaintext, headroom for the sum);
- ``paillier``: keys (2048 or 3072 bits), vector encryption, CRT decryption on every core;
- ``randomness``: where r^n comes from (precomputed pool, fresh, fixed-base table);
- ``masking``: X25519 + HKDF pair seeds, AES-256-CTR masks, sealed shares;
- ``shamir``: threshold sharing of 32-byte secrets;
- ``secagg``: the blobs of a secure round and the operations on them.
"""

from blockfedml.crypto.encoding import EncodedVector, EncodingOverflowError, FixedPoint, encoded_sum
from blockfedml.crypto.masking import MaskSecrets
from blockfedml.crypto.packing import SlotLayout
from blockfedml.crypto.paillier import (
    DEFAULT_KEY_BITS,
    KEY_SIZES,
    PaillierPrivateKey,
    PaillierPublicKey,
    generate_keypair,
    load_or_create_private_key,
    load_private_key,
    save_private_key,
)
from blockfedml.crypto.randomness import (
    DEFAULT_SOURCE,
    SOURCES,
    FixedBaseRandomness,
    FreshRandomness,
    RandomnessPool,
    RandomSource,
    make_randomness,
)

__all__ = [
    "DEFAULT_KEY_BITS",
    "DEFAULT_SOURCE",
    "KEY_SIZES",
    "SOURCES",
    "EncodedVector",
    "EncodingOverflowError",
    "FixedBaseRandomness",
    "FixedPoint",
    "FreshRandomness",
    "MaskSecrets",
    "PaillierPrivateKey",
    "PaillierPublicKey",
    "RandomSource",
    "RandomnessPool",
    "SlotLayout",
    "encoded_sum",
    "generate_keypair",
    "load_or_create_private_key",
    "load_private_key",
    "save_private_key",
    "make_randomness",
]
