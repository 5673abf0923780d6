"""Paillier keys and vector operations on real 2048-bit keys (phe + gmpy2)."""

from __future__ import annotations

import os
import stat

import gmpy2
import pytest
from phe import paillier as phe_paillier

from blockfedml.crypto import (FixedBaseRandomness, PaillierPrivateKey, PaillierPublicKey, RandomnessPool,
                               generate_keypair, load_or_create_private_key, load_private_key, make_randomness,
                               save_private_key)
from blockfedml.crypto.paillier import check_key_bits
from blockfedml.errors import CryptoError, InvalidInputError, NotFoundError
from blockfedml.store import sha256_hex


def test_small_keys_are_refused():
    with pytest.raises(CryptoError, match="smaller keys are refused"):
        generate_keypair(1024)
    small, _ = phe_paillier.generate_paillier_keypair(n_length=1024)
    with pytest.raises(CryptoError):
        PaillierPublicKey(small.n)
    assert check_key_bits(3072) == 3072


def test_fingerprint_is_the_sha256_of_the_canonical_public_key(public_key):
    data = public_key.to_bytes()
    assert public_key.fingerprint == sha256_hex(data)
    assert PaillierPublicKey.from_bytes(data) == public_key
    with pytest.raises(CryptoError, match="canonical"):
        PaillierPublicKey.from_bytes(data.replace(b'"n":"', b'"n":"0'))
    with pytest.raises(CryptoError):
        PaillierPublicKey.from_bytes(b"not a key")


@pytest.mark.parametrize("source", ["pool", "fresh", "fixed-base"])
def test_encrypt_add_decrypt(private_key, public_key, source):
    randomness = make_randomness(source, public_key)
    a, b = [3, 0, 12345678901234567890], [4, 1, 1]
    ca = public_key.encrypt(a, randomness.take(3))
    cb = public_key.encrypt(b, randomness.take(3))
    assert private_key.decrypt(public_key.add([ca, cb])) == [7, 1, 12345678901234567891]
    assert ca[0] != public_key.encrypt([3], randomness.take(1))[0]  # randomized


def test_ciphertexts_are_standard_paillier(private_key, public_key):
    """phe decrypts what the vector code encrypts, so the packing rides on textbook Paillier."""
    phe_private = phe_paillier.PaillierPrivateKey(public_key.to_phe(), int(private_key.p), int(private_key.q))
    (c,) = public_key.encrypt([42], make_randomness("fresh", public_key).take(1))
    assert phe_private.raw_decrypt(int(c)) == 42


def test_decryption_on_several_threads_matches_one(private_key, public_key):
    plaintexts = list(range(40))
    ciphertexts = public_key.encrypt(plaintexts, FixedBaseRandomness(public_key).take(40))
    assert private_key.decrypt(ciphertexts, workers=2) == private_key.decrypt(ciphertexts, workers=1) == plaintexts


def test_a_pool_hands_out_each_factor_once_and_tops_up(public_key):
    pool = RandomnessPool(public_key)
    pool.prepare(4)
    taken = pool.take(6)  # 4 from the pool, 2 fresh
    assert len(pool) == 0 and len({int(r) for r in taken}) == 6
    assert all(0 < r < public_key.nsquare for r in taken)


def test_ciphertext_bytes_round_trip_and_are_checked(public_key):
    ciphertexts = public_key.encrypt([1, 2], make_randomness("fresh", public_key).take(2))
    data = public_key.ciphertexts_to_bytes(ciphertexts)
    assert len(data) == 2 * 512
    assert public_key.ciphertexts_from_bytes(data, 2) == ciphertexts
    with pytest.raises(CryptoError):
        public_key.ciphertexts_from_bytes(data[:-1], 2)
    with pytest.raises(CryptoError, match="outside"):
        public_key.ciphertexts_from_bytes(bytes(512), 1)
    with pytest.raises(CryptoError, match="plaintext"):
        public_key.encrypt([int(public_key.n)], [gmpy2.mpz(1)])
    with pytest.raises(InvalidInputError):
        public_key.encrypt([1, 2], [gmpy2.mpz(1)])


def test_private_key_file_is_owner_only_and_round_trips(tmp_path, private_key):
    path = save_private_key(tmp_path / "keys" / "paillier.key", private_key)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = load_private_key(path)
    assert loaded.public_key == private_key.public_key and loaded.p == private_key.p
    assert load_or_create_private_key(path).public_key == private_key.public_key
    with pytest.raises(NotFoundError):
        load_private_key(tmp_path / "missing.key")
    with pytest.raises(CryptoError, match="do not match"):
        PaillierPrivateKey(private_key.public_key, private_key.p, private_key.p)


def test_the_private_key_recovers_the_randomness_of_a_ciphertext(private_key, public_key):
    """With phe's encryption (its own random r): r comes back, and so for a homomorphic sum,
    whose r is the product of the summands' r."""
    phe_public = public_key.to_phe()
    n, nsquare = int(public_key.n), int(public_key.nsquare)
    secrets_r = [phe_public.get_random_lt_n() for _ in range(3)]
    raw = [phe_public.raw_encrypt(m, r_value=r) for m, r in zip([5, 0, 123456789], secrets_r)]
    assert private_key.randomness(raw, workers=1) == secrets_r
    product = raw[0] * raw[1] % nsquare
    assert private_key.randomness([product]) == [secrets_r[0] * secrets_r[1] % n]
    (m,) = private_key.decrypt([product])
    (r,) = private_key.randomness([product])
    assert (1 + m * n) * pow(r, n, nsquare) % nsquare == product  # re-encryption without the key
