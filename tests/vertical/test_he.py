"""The homomorphic seam: Paillier and the plain ring compute the same integers; bad ciphertexts are refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from blockfedml.errors import CryptoError
from blockfedml.vertical.he import PaillierScheme, PlainScheme, centered, unpack_signed


def roundtrip(scheme, decrypt, values, X, slot_bits):
    """Encrypt, multiply by X, pack, mask, decrypt, unmask, unpack: the gradient path of a party."""
    packed = scheme.pack(scheme.matvec(scheme.encrypt(values), X), slot_bits)
    masks = scheme.masks(scheme.length(packed))
    opened = decrypt(scheme.add_plain(packed, masks))
    per, out = scheme.slots(slot_bits), []
    for k, (value, mask) in enumerate(zip(opened, masks)):
        out += unpack_signed(centered(value - mask, scheme.modulus), min(per, X.shape[1] - k * per), slot_bits)
    return out


def test_paillier_and_plain_give_the_exact_integer_products(keys):
    rng = np.random.default_rng(1)
    d = rng.integers(-2**24, 2**24, 40)
    X = rng.integers(-2**14, 2**14, (40, 7))
    expected = (X.T.astype(object) @ d.astype(object)).tolist()
    paillier = PaillierScheme(keys.public)
    assert roundtrip(paillier, keys.decrypt, d, X, 50) == expected
    plain = PlainScheme()
    assert roundtrip(plain, plain.decrypt, d, X, 50) == expected
    assert len(paillier.pack(paillier.matvec(paillier.encrypt(d), X), 50)) == 1  # 7 slots, one ciphertext


def test_addition_and_masks_hide_values_but_keep_sums(keys):
    scheme = PaillierScheme(keys.public, "fresh")
    a, b = np.array([5, -7, 2**40]), np.array([-5, 9, 1])
    total = keys.decrypt(scheme.add(scheme.encrypt(a), scheme.encrypt(b)))
    assert total == [0, 2, 2**40 + 1]
    masks = scheme.masks(3)
    opened = keys.decrypt(scheme.add_plain(scheme.encrypt(a), masks))
    assert all(abs(v) > 2**1900 for v in opened)  # uniform mod n: far from the tiny true values
    assert [centered(v - m, scheme.modulus) for v, m in zip(opened, masks)] == a.tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-2**40, 2**40 - 1), min_size=1, max_size=9))
def test_signed_slots_unpack_what_was_packed(values):
    packed = sum(v << (42 * j) for j, v in enumerate(values))
    assert unpack_signed(packed, len(values), 42) == values


def test_a_slot_overflow_is_an_error_not_a_wrong_number():
    with pytest.raises(CryptoError, match="does not decode"):
        unpack_signed(1 << 100, 2, 42)


@pytest.mark.parametrize("tamper, message", [
    (lambda c, n: c[:-1], "expected 3 ciphertexts"),
    (lambda c, n: bytes(len(c)), "out of range"),
    (lambda c, n: int(n).to_bytes(512, "big") + c[512:], "not invertible"),
])
def test_malformed_ciphertexts_are_refused_with_a_crypto_error(keys, tamper, message):
    scheme = PaillierScheme(keys.public)
    data = scheme.to_bytes(scheme.encrypt(np.array([1, 2, 3])))
    with pytest.raises(CryptoError, match=message):
        scheme.from_bytes(tamper(data, keys.public.n), 3, "test values")
    with pytest.raises(CryptoError, match="not invertible"):
        keys.decrypt([keys.public.n])


def test_the_plain_scheme_wraps_like_a_ring():
    plain = PlainScheme()
    values = plain.encrypt(np.array([-3, 2**62]))
    assert plain.decrypt(plain.add(values, values)) == [-6, -2**63]  # 2**63 wraps to the negative end
    with pytest.raises(CryptoError, match="values of 8 bytes"):
        plain.from_bytes(b"\x00" * 9)
