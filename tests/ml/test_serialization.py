"""Parameter bytes: round trip, one encoding per content, strict reading."""

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from blockfedml.errors import IntegrityError, InvalidInputError
from blockfedml.ml.models import make_model
from blockfedml.ml.serialization import (
    MAGIC, load_model, load_params, model_from_bytes, model_to_bytes,
    params_from_bytes, params_to_bytes, put_model,
)
from blockfedml.store import ModelStore

finite_vectors = hnp.arrays(
    np.float64, st.integers(0, 50),
    elements=st.floats(allow_nan=False, allow_infinity=False, width=64),
)
json_leaf = st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.text(max_size=10)
metas = st.dictionaries(
    st.text(max_size=8),
    st.recursive(json_leaf, lambda kids: st.lists(kids, max_size=3)
                 | st.dictionaries(st.text(max_size=5), kids, max_size=3), max_leaves=8),
    max_size=4,
)


@given(finite_vectors, metas)
def test_round_trip(vec, meta):
    blob = params_to_bytes(vec, meta)
    out, meta_out = params_from_bytes(blob)
    assert out.dtype == np.float64 and out.tobytes() == vec.tobytes()
    assert meta_out == meta
    assert params_to_bytes(out, meta_out) == blob  # one encoding per content


@given(finite_vectors)
def test_bytes_independent_of_input_layout_and_key_order(vec):
    meta_a = {"kind": "softmax", "n_classes": 10, "n_features": 64}
    meta_b = dict(reversed(list(meta_a.items())))
    big_endian = vec.astype(">f8")
    assert params_to_bytes(vec, meta_a) == params_to_bytes(big_endian, meta_b)


def test_layout_is_documented_format():
    blob = params_to_bytes(np.array([1.0, -2.5]), {"kind": "logreg"})
    assert blob == (b'BLOCKFEDML-PARAMS/1\n{"dtype":"<f8","length":2,"meta":{"kind":"logreg"}}\n'
                    + np.array([1.0, -2.5], dtype="<f8").tobytes())
    # the digest is a stable constant: if this changes, every ledger entry breaks
    assert hashlib.sha256(blob).hexdigest() == (
        "26a38d33cf7023233e04a6337a474a16965850138e902bc8030d036c9b890ffb")


def test_returned_vector_is_writable():
    vec, _ = params_from_bytes(params_to_bytes(np.arange(3.0)))
    vec[0] = 5.0


@pytest.mark.parametrize("vec,meta", [
    (np.zeros((2, 2)), {}),
    (np.array([np.nan]), {}),
    (np.array([np.inf]), {}),
    (np.array(["a"]), {}),
    (np.zeros(2), {"lr": 0.1}),
    (np.zeros(2), {"x": [1, 2.5]}),
    (np.zeros(2), {1: "a"}),
    (np.zeros(2), ["not", "a", "dict"]),
    (np.zeros(2), {"n": np.int64(3)}),
])
def test_refuses_bad_input(vec, meta):
    with pytest.raises(InvalidInputError):
        params_to_bytes(vec, meta)


GOOD = params_to_bytes(np.array([1.0, 2.0, 3.0]), {"kind": "logreg"})


def _with_header(header: bytes, payload: bytes = np.zeros(1).tobytes()) -> bytes:
    return MAGIC + header + b"\n" + payload


@pytest.mark.parametrize("blob,match", [
    (b"", "start with"),
    (b"PK\x03\x04zipfile", "start with"),
    (b"BLOCKFEDML-PARAMS/2\n{}\n", "start with"),
    (MAGIC + b'{"dtype":"<f8"', "no header line"),
    (_with_header(b"not json"), "not ASCII JSON"),
    (_with_header(b"\xff\xfe"), "not ASCII JSON"),
    (_with_header(b"[1,2]"), "exactly dtype, length, meta"),
    (_with_header(b'{"dtype":"<f8","length":1}'), "exactly dtype, length, meta"),
    (_with_header(b'{"dtype":"<f4","length":1,"meta":{}}'), "dtype"),
    (_with_header(b'{"dtype":"<f8","length":-1,"meta":{}}'), "length"),
    (_with_header(b'{"dtype":"<f8","length":true,"meta":{}}'), "length"),
    (_with_header(b'{"dtype":"<f8","length":1,"meta":[]}'), "meta"),
    (_with_header(b'{"dtype":"<f8","length":1,"meta":{"a":0.5}}'), "float"),
    (_with_header(b'{"length":1,"dtype":"<f8","meta":{}}'), "canonical"),
    (_with_header(b'{"dtype": "<f8","length":1,"meta":{}}'), "canonical"),
    (_with_header(b'{"dtype":"<f8","length":1,"meta":{}}', np.array([np.nan]).tobytes()), "NaN"),
])
def test_malformed_blobs(blob, match):
    with pytest.raises(InvalidInputError, match=match):
        params_from_bytes(blob)


@pytest.mark.parametrize("blob", [GOOD[:-1], GOOD[:-8], GOOD + b"\x00" * 8, GOOD + b"x"])
def test_truncated_or_padded_payload(blob):
    with pytest.raises(IntegrityError, match="truncated or padded"):
        params_from_bytes(blob)


@given(st.binary(max_size=200))
def test_random_bytes_never_crash(data):
    try:
        params_from_bytes(data)
    except (InvalidInputError, IntegrityError):
        pass


@given(st.integers(0, len(GOOD) - 1), st.integers(1, 255))
def test_any_single_byte_flip_is_detected_or_changes_content(pos, delta):
    flipped = bytearray(GOOD)
    flipped[pos] = (flipped[pos] + delta) % 256
    try:
        vec, meta = params_from_bytes(bytes(flipped))
    except (InvalidInputError, IntegrityError):
        return
    assert params_to_bytes(vec, meta) == bytes(flipped)  # decoded a different, valid blob


def test_model_round_trip_through_store(tmp_path):
    model = make_model("mlp", 4, 3, seed=2, hidden=6, activation="relu")
    assert model_to_bytes(model) == model_to_bytes(model.clone())
    rebuilt = model_from_bytes(model_to_bytes(model))
    assert rebuilt.meta() == model.meta()
    store = ModelStore(tmp_path)
    digest = put_model(store, model)
    assert digest == hashlib.sha256(model_to_bytes(model)).hexdigest()
    assert np.array_equal(load_model(store, digest).get_params(), model.get_params())
    vec, meta = load_params(store, digest)
    assert meta == json.loads(json.dumps(model.meta())) and len(vec) == model.n_params
