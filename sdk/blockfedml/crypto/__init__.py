"""Cryptography of secure aggregation: fixed-point encoding, packed Paillier,
pairwise masking with Shamir-shared dropout recovery. See docs/secure-aggregation.md.

- ``encoding``: ``FixedPoint`` / ``EncodedVector`` (explicit range, overflow raises),
  ``Quantization`` (BatchCrypt-style stochastic rounding to the precision a model needs);
- ``packing``: ``SlotLayout`` (many values per Paillier plaintext, headroom for the sum),
  ``QuantizedLayout`` (bit-packed quantized values, headroom for exactly the summands);
- ``paillier``: keys (2048 or 3072 bits), vector encryption, CRT decryption on every core
  (worker processes for a round's batch);
- ``randomness``: where r^n comes from (precomputed pool, fresh, fixed-base table);
- ``masking``: X25519 + HKDF pair seeds, AES-256-CTR masks, sealed shares;
- ``graph``: who masks with whom (SecAgg+'s sparse random graph, derived from the ledger);
- ``shamir``: threshold sharing of 32-byte secrets;
- ``secagg``: the blobs of a secure round and the operations on them.
"""

from blockfedml.crypto.encoding import EncodedVector, EncodingOverflowError, FixedPoint, Quantization, encoded_sum
from blockfedml.crypto.graph import MaskingGraph, graph_of_round
from blockfedml.crypto.masking import MaskSecrets
from blockfedml.crypto.packing import QuantizedLayout, SlotLayout
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
    "MaskingGraph",
    "PaillierPrivateKey",
    "PaillierPublicKey",
    "Quantization",
    "QuantizedLayout",
    "RandomSource",
    "RandomnessPool",
    "SlotLayout",
    "encoded_sum",
    "generate_keypair",
    "graph_of_round",
    "load_or_create_private_key",
    "load_private_key",
    "save_private_key",
    "make_randomness",
]
