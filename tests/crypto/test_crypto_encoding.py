"""Fixed-point encoding and BatchCrypt-style packing: exact, explicit about range and overflow."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from blockfedml.crypto import EncodingOverflowError, FixedPoint, SlotLayout, encoded_sum
from blockfedml.errors import InvalidInputError

CODEC = FixedPoint()
finite = st.floats(min_value=-127.99, max_value=127.99, allow_nan=False, allow_infinity=False)


@given(arrays(np.float64, st.integers(1, 200), elements=finite))
def test_encode_decode_round_trip_within_half_a_step(values):
    decoded = CODEC.encode(values).decode()
    assert np.all(np.abs(decoded - values) <= 0.5 / CODEC.scale)


@given(st.lists(st.tuples(arrays(np.float64, 17, elements=finite), st.integers(1, 5000)), min_size=1, max_size=8))
def test_weighted_sum_decodes_to_the_weighted_average(members):
    total = encoded_sum([CODEC.encode(x, weight=w) for x, w in members])
    expected = sum(w * x for x, w in members) / sum(w for _, w in members)
    assert total.weight == sum(w for _, w in members)
    assert np.all(np.abs(total.decode() - expected) <= 0.5 / CODEC.scale)


def test_out_of_range_raises_naming_the_value_unless_clipping_is_asked():
    values = np.array([0.5, 128.0, -3.0])
    with pytest.raises(EncodingOverflowError, match=r"value 1 is 128.0.*\|x\| < 128"):
        CODEC.encode(values)
    clipped = CODEC.encode(values, clip=True).decode()
    assert clipped[1] == pytest.approx(128 - 1 / CODEC.scale) and clipped[0] == 0.5
    with pytest.raises(EncodingOverflowError):  # rounds up onto the limit
        CODEC.encode([128 - 0.4 / CODEC.scale])


@pytest.mark.parametrize("bad", [[np.nan], [np.inf], [[1.0, 2.0]]])
def test_nan_infinity_and_shapes_are_refused(bad):
    with pytest.raises(InvalidInputError):
        CODEC.encode(np.array(bad))


@pytest.mark.parametrize("weight", [0, -1, 1 << 24, 2.5, True])
def test_weights_are_positive_integers(weight):
    with pytest.raises(EncodingOverflowError, match="weight"):
        CODEC.encode([1.0], weight=weight)


def test_codecs_are_bounded():
    with pytest.raises(InvalidInputError, match="exceeds"):
        FixedPoint(frac_bits=30, int_bits=20)
    assert FixedPoint.from_dict(CODEC.to_dict()) == CODEC


# -- packing ---------------------------------------------------------------------------

LAYOUT = SlotLayout.for_round(CODEC, key_bits=2048, participants=4)


def test_layout_has_headroom_for_the_sum():
    assert LAYOUT.slot_bytes * 8 >= CODEC.value_bits + LAYOUT.max_weight.bit_length()
    assert LAYOUT.slots * LAYOUT.slot_bytes * 8 <= 2047
    assert SlotLayout.from_dict(LAYOUT.to_dict()) == LAYOUT


@settings(max_examples=60)
@given(st.lists(st.tuples(arrays(np.float64, st.just(100), elements=finite), st.integers(1, 65535)),
                min_size=1, max_size=4))
def test_packed_plaintexts_add_slot_by_slot_exactly(members):
    """Adding packed plaintexts (what Paillier does under encryption) gives the exact encoded sum."""
    encoded = [CODEC.encode(x, weight=w) for x, w in members]
    packed = [LAYOUT.pack(e) for e in encoded]
    summed = [sum(column) for column in zip(*packed)]
    total = encoded_sum(encoded)
    assert LAYOUT.unpack(summed, 100, total.weight) == total


def test_a_sum_beyond_the_headroom_is_an_error_not_a_wrong_number():
    big = CODEC.encode(np.full(10, 127.0), weight=65535)
    packed = LAYOUT.pack(big)
    with pytest.raises(EncodingOverflowError, match="exceeds"):
        LAYOUT.unpack([5 * p for p in packed], 10, 5 * 65535)  # five summands, layout made for four
    with pytest.raises(EncodingOverflowError):
        LAYOUT.unpack([1 << (8 * LAYOUT.plaintext_bytes)], 10, 1)


def test_unpack_needs_the_exact_weight():
    encoded = CODEC.encode(np.array([1.5, -2.25]), weight=3)
    packed = LAYOUT.pack(encoded)
    assert LAYOUT.unpack(packed, 2, 3).decode().tolist() == [1.5, -2.25]
    assert LAYOUT.unpack(packed, 2, 4).decode().tolist() != [1.5, -2.25]
