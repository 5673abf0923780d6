"""Shamir sharing of 32-byte secrets and the pairwise masks built from X25519."""

from __future__ import annotations

import secrets

import gmpy2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockfedml.crypto import MaskSecrets, masking, shamir
from blockfedml.errors import CryptoError


def test_the_field_is_prime_and_holds_any_secret():
    assert gmpy2.is_prime(shamir.PRIME) and shamir.PRIME > 1 << 256


@settings(max_examples=30)
@given(st.binary(min_size=32, max_size=32), st.integers(2, 7), st.data())
def test_any_threshold_shares_rebuild_the_secret(secret, count, data):
    threshold = data.draw(st.integers(1, count))
    shares = shamir.split(secret, threshold, count)
    subset = data.draw(st.permutations(shares))[:threshold]
    assert shamir.reconstruct(subset, threshold) == secret


def test_fewer_than_the_threshold_fail_and_wrong_shares_are_not_a_secret():
    secret = secrets.token_bytes(32)
    shares = shamir.split(secret, 3, 5)
    with pytest.raises(CryptoError, match="1 more"):
        shamir.reconstruct(shares[:2], 3)
    with pytest.raises(CryptoError, match="duplicated"):
        shamir.reconstruct([shares[0], shares[0], shares[1]], 3)
    # Exactly the threshold is used: extra shares do not change the result.
    assert shamir.reconstruct(shares, 3) == secret
    # With threshold 3, two shares plus any forged third give (almost surely) no 32-byte secret.
    forged = [shares[0], shares[1], (3, secrets.randbelow(shamir.PRIME))]
    with pytest.raises(CryptoError):
        shamir.reconstruct(forged, 3)
    assert shamir.share_from_bytes(shamir.share_to_bytes(shares[4])) == shares[4]


def test_pair_seeds_agree_and_masks_cancel_in_the_sum():
    orgs = ["A", "B", "C", "D"]
    keys = {o: MaskSecrets.generate() for o in orgs}
    publics = {o: keys[o].mask_public for o in orgs}
    ab = masking.pair_seed(keys["A"].mask_key, publics["B"], 7, "A", "B")
    assert ab == masking.pair_seed(keys["B"].mask_key, publics["A"], 7, "B", "A") and len(ab) == 32
    assert ab != masking.pair_seed(keys["A"].mask_key, publics["B"], 8, "A", "B")  # bound to the round
    total = sum(masking.total_mask(o, keys[o], publics, 7, 1000) for o in orgs)
    self_masks = sum(masking.expand(masking.self_mask_seed(keys[o].self_seed, 7, o), 1000) for o in orgs)
    assert np.array_equal(total, self_masks)  # every pairwise mask cancelled (mod 2^64)
    assert np.mean(masking.total_mask("A", keys["A"], publics, 7, 1000) == 0) < 0.01


def test_mask_streams_are_aes_ctr_of_the_full_seed():
    seed = secrets.token_bytes(32)
    stream = masking.expand(seed, 5000)
    assert stream.dtype == np.uint64 and np.array_equal(stream, masking.expand(seed, 5000))
    other = bytearray(seed)
    other[31] ^= 1  # the last byte of the 256-bit secret matters
    assert not np.array_equal(stream[:4], masking.expand(bytes(other), 4))


def test_shares_are_sealed_to_their_recipient():
    a, b, c = (MaskSecrets.generate() for _ in range(3))
    sealed = masking.seal_share(a.share_key, b.share_public, 1, "A", "B", b"share")
    assert masking.open_share(b.share_key, a.share_public, 1, "A", "B", sealed) == b"share"
    for attempt in [lambda: masking.open_share(c.share_key, a.share_public, 1, "A", "B", sealed),
                    lambda: masking.open_share(b.share_key, a.share_public, 2, "A", "B", sealed),
                    lambda: masking.open_share(b.share_key, a.share_public, 1, "A", "B",
                                               sealed[:-1] + bytes([sealed[-1] ^ 1]))]:
        with pytest.raises(CryptoError, match="does not decrypt"):
            attempt()
    with pytest.raises(CryptoError, match="32-byte"):
        masking.pair_seed(a.mask_key, b"short", 1, "A", "B")
