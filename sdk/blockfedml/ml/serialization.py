"""The one byte format for model parameters (what the store holds, what the ledger hashes).

The ledger records the SHA-256 of a model, so the same parameters and metadata
must always give the same bytes. Format, version 1::

    BLOCKFEDML-PARAMS/1\\n
    <header: canonical JSON, one line>\\n
    <payload: length * 8 bytes, IEEE-754 float64, little-endian>

The header is ``{"dtype":"<f8","length":N,"meta":{...}}`` serialized with
sorted keys, no whitespace, ASCII only. ``meta`` is the caller's description of
the vector (for models: :meth:`blockfedml.ml.models.Model.meta` — kind, sizes,
options). It may hold strings, integers, booleans, null, lists and objects but
no floats: float text differs between JSON writers, and another implementation
(an auditor, the chaincode) must be able to reproduce the bytes exactly.

Reading is strict — a header that is not in canonical form is rejected — so
there is exactly one encoding per content and a digest identifies a model.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from blockfedml.errors import IntegrityError, InvalidInputError

if TYPE_CHECKING:
    from blockfedml.ml.models import Model
    from blockfedml.store import ModelStore

MAGIC = b"BLOCKFEDML-PARAMS/1\n"
DTYPE = "<f8"
MAX_HEADER_BYTES = 1 << 16


def params_to_bytes(vec: np.ndarray, meta: dict[str, Any] | None = None) -> bytes:
    """Encode a flat finite parameter vector and its metadata, deterministically."""
    arr = np.asarray(vec)
    if arr.ndim != 1:
        raise InvalidInputError(f"parameters must be a flat 1-D vector, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InvalidInputError(f"parameters must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(DTYPE)
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError("parameters contain NaN or infinity; refusing to store them")
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        raise InvalidInputError(f"meta must be a dict, got {type(meta).__name__}")
    _check_meta(meta, "meta")
    header = _canonical({"dtype": DTYPE, "length": int(arr.size), "meta": meta})
    if len(header) > MAX_HEADER_BYTES:
        raise InvalidInputError(f"meta is too large ({len(header)} bytes header)")
    return MAGIC + header + b"\n" + arr.tobytes()


def params_from_bytes(data: bytes) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode :func:`params_to_bytes` output; returns a writable float64 vector and meta.

    Raises InvalidInputError for a wrong magic or a malformed header and
    IntegrityError when the payload does not have the length the header says
    (a truncated or padded blob).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidInputError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data.startswith(MAGIC):
        raise InvalidInputError(
            f"not a BlockFedML parameter blob: expected it to start with {MAGIC!r}"
        )
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER_BYTES + 1)
    if end < 0:
        raise InvalidInputError("parameter blob has no header line (missing newline)")
    raw_header = data[len(MAGIC):end]
    try:
        header = json.loads(raw_header.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError(f"parameter blob header is not ASCII JSON: {exc}") from None
    if not isinstance(header, dict) or set(header) != {"dtype", "length", "meta"}:
        raise InvalidInputError(
            "parameter blob header must be an object with exactly dtype, length, meta"
        )
    if header["dtype"] != DTYPE:
        raise InvalidInputError(f"unsupported dtype {header['dtype']!r}; only {DTYPE!r}")
    length = header["length"]
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise InvalidInputError(f"header length must be an integer >= 0, got {length!r}")
    if not isinstance(header["meta"], dict):
        raise InvalidInputError("header meta must be an object")
    try:
        _check_meta(header["meta"], "meta")
        canonical = _canonical(header)
    except InvalidInputError as exc:
        raise InvalidInputError(f"parameter blob header: {exc}") from None
    if canonical != raw_header:
        raise InvalidInputError("parameter blob header is not in canonical JSON form")
    payload = data[end + 1:]
    if len(payload) != 8 * length:
        raise IntegrityError(
            f"parameter blob payload has {len(payload)} bytes, header says {length} "
            f"float64 values ({8 * length} bytes): the blob is truncated or padded"
        )
    vec = np.frombuffer(payload, dtype=DTYPE).astype(np.float64)  # copy: writable
    if not np.all(np.isfinite(vec)):
        raise InvalidInputError("parameter blob holds NaN or infinity")
    return vec, header["meta"]


def model_to_bytes(model: Model) -> bytes:
    """A model's parameters with its :meth:`Model.meta` as metadata."""
    return params_to_bytes(model.get_params(), model.meta())


def model_from_bytes(data: bytes) -> Model:
    """Rebuild the model that :func:`model_to_bytes` encoded."""
    from blockfedml.ml.models import model_from_meta

    vec, meta = params_from_bytes(data)
    return model_from_meta(meta, vec)


def put_model(store: ModelStore, model: Model) -> str:
    """Store a model's blob; returns its SHA-256 digest (what goes on the ledger)."""
    return store.put(model_to_bytes(model))


def load_model(store: ModelStore, digest: str) -> Model:
    """Fetch (hash-checked) and rebuild the model with this digest."""
    return model_from_bytes(store.get(digest))


def load_params(store: ModelStore, digest: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Fetch (hash-checked) the parameter vector and metadata with this digest."""
    return params_from_bytes(store.get(digest))


def _canonical(obj: Any) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _check_meta(value: Any, where: str) -> None:
    """Allow only JSON values whose text form is unambiguous (no floats)."""
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_meta(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"{where} keys must be strings, got {key!r}")
            _check_meta(item, f"{where}.{key}")
        return
    raise InvalidInputError(
        f"{where} holds a {type(value).__name__} ({value!r}); allowed: str, int, bool, "
        f"None, list, dict (no floats, so the bytes are reproducible)"
    )
