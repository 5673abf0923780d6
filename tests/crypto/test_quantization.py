"""Quantized packing (BatchCrypt-style): exact sums of quantized values, headroom, more slots, CRT workers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockfedml.crypto import FixedPoint, FreshRandomness, SlotLayout, paillier
from blockfedml.crypto.encoding import EncodingOverflowError, Quantization
from blockfedml.crypto.packing import QuantizedLayout
from blockfedml.errors import InvalidInputError

KEY_BITS = 2048


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(2, 20), summands=st.integers(1, 300), length=st.integers(1, 400), seed=st.integers(0, 2**32))
def test_headroom_never_overflows_for_the_declared_number_of_summands(bits, summands, length, seed):
    """Every member at the extreme of the range (+L or -L): the plaintext sum (what Paillier
    addition gives) still unpacks to the exact sum; no slot carries into its neighbour."""
    quantization = Quantization(bits=bits)
    layout = QuantizedLayout.for_round(quantization, KEY_BITS, summands)
    rng = np.random.default_rng(seed)
    levels = quantization.levels
    members = [rng.choice([-levels, levels, 0], size=length).astype(np.int64) for _ in range(summands)]
    members[0][:] = levels  # the worst case for the top slot bits
    packed = [layout.pack(q) for q in members]
    summed = [sum(column) for column in zip(*packed)]
    assert all(p < 1 << (KEY_BITS - 1) for p in summed)  # below n for any 2048-bit key
    assert np.array_equal(layout.unpack(summed, length, summands), np.sum(members, axis=0))


def test_the_decrypted_sum_equals_the_sum_of_the_quantized_values(private_key):
    public_key, quantization = private_key.public_key, Quantization(bits=12, clip=4.0, max_weight=1000)
    layout = QuantizedLayout.for_round(quantization, KEY_BITS, 10)
    rng = np.random.default_rng(3)
    updates = {f"Org{i}": (rng.normal(0, 1, 3000), int(rng.integers(1, 1001))) for i in range(10)}
    quantized = {o: quantization.quantize(x, w, rng) for o, (x, w) in updates.items()}
    randomness = FreshRandomness(public_key)
    ciphertexts = [public_key.encrypt(layout.pack(q), randomness.take(layout.count(3000))) for q in quantized.values()]
    total = layout.unpack(private_key.decrypt(public_key.add(ciphertexts)), 3000, 10)
    assert np.array_equal(total, np.sum(list(quantized.values()), axis=0))
    # the average is FedAvg up to the quantization step (unbiased rounding averages out)
    weights = [w for _, w in updates.values()]
    fedavg = sum(w * x for x, w in updates.values()) / sum(weights)
    error = quantization.average(total, weights) - fedavg
    assert np.max(np.abs(error)) < 10 * quantization.step / quantization.weight_ratio(weights)
    assert abs(float(np.mean(error))) < quantization.step / 10  # no drift in one direction


def test_stochastic_rounding_is_unbiased_and_clips():
    quantization = Quantization(bits=4, clip=1.0, max_weight=1)  # 7 levels: a coarse grid
    x = np.full(200_000, 0.3)
    q = quantization.quantize(x, rng=np.random.default_rng(5))
    assert set(np.unique(q)) == {2, 3}  # 0.3 * 7 = 2.1: the two neighbouring grid points
    assert abs(float(q.mean()) * quantization.step - 0.3) < 1e-3
    assert set(quantization.quantize(np.array([5.0, -5.0]))) == {7, -7}  # clipped to the range


def test_a_2048_bit_plaintext_carries_at_least_three_times_more_values():
    for members in (3, 10, 30):
        exact = SlotLayout.for_round(FixedPoint(), KEY_BITS, members)
        quantized = QuantizedLayout.for_round(Quantization(), KEY_BITS, members)
        assert quantized.slots >= 3 * exact.slots, (members, quantized.slots, exact.slots)


@pytest.mark.parametrize("make, message", [
    (lambda: Quantization(bits=1), "bits must be an integer in 2..32"),
    (lambda: Quantization(bits=40), "bits must be an integer in 2..32"),
    (lambda: Quantization(clip=0.0), "clipping range must be a positive"),
    (lambda: Quantization(clip=float("nan")), "clipping range must be a positive"),
    (lambda: Quantization(max_weight=0), "weight must be an integer"),
    (lambda: QuantizedLayout.for_round(Quantization(), KEY_BITS, 0), "summands >= 1"),
    (lambda: QuantizedLayout.for_round(Quantization(bits=32), KEY_BITS, 1 << 33), "more than 63"),
    (lambda: Quantization(max_weight=10).quantize([1.0], weight=11), "weight must be an integer in 1..10"),
    (lambda: Quantization().quantize([1.0, float("inf")]), "value 1 is inf"),
])
def test_a_bad_parameter_is_refused_with_a_clear_error(make, message):
    with pytest.raises((InvalidInputError, EncodingOverflowError), match=message):
        make()


def test_a_sum_of_more_members_than_the_headroom_is_refused():
    layout = QuantizedLayout.for_round(Quantization(), KEY_BITS, 4)
    packed = layout.pack(np.zeros(10, dtype=np.int64))
    with pytest.raises(EncodingOverflowError, match="headroom for 1..4"):
        layout.unpack(packed, 10, 5)
    with pytest.raises(EncodingOverflowError, match=r"in \[-2047, 2047\]"):
        layout.pack(np.array([4000]))


def test_large_batches_decrypt_in_worker_processes_with_the_same_results(private_key, monkeypatch):
    public_key = private_key.public_key
    monkeypatch.setattr(paillier, "PROCESS_BATCH", 8)
    plaintexts = [int(v) for v in np.random.default_rng(9).integers(0, 1 << 62, 40)]
    ciphertexts = public_key.encrypt(plaintexts, FreshRandomness(public_key).take(40))
    assert private_key.decrypt(ciphertexts, workers=2) == plaintexts
    assert private_key._pool is not None and len(private_key._pool.processes) == 2
    assert private_key.randomness(ciphertexts, workers=2) == private_key.randomness(ciphertexts, workers=1)
    private_key.close()
    assert private_key._pool is None
