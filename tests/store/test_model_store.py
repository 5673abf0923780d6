"""Content-addressed store: digests name blobs, tampering is caught."""

import hashlib
import multiprocessing
import os

import pytest

from blockfedml.errors import IntegrityError, InvalidInputError, NotFoundError
from blockfedml.store import ModelStore, check_digest


@pytest.fixture
def store(tmp_path):
    return ModelStore(tmp_path / "blobs")


def test_put_get(store):
    digest = store.put(b"model bytes")
    assert digest == hashlib.sha256(b"model bytes").hexdigest()
    assert store.get(digest) == b"model bytes"
    assert store.has(digest) and digest in store
    assert store.path(digest) == store.root / digest[:2] / digest[2:]
    assert store.path(digest).read_bytes() == b"model bytes"
    assert store.put(b"") == hashlib.sha256(b"").hexdigest()
    assert store.get(hashlib.sha256(b"").hexdigest()) == b""


def test_put_is_idempotent_and_leaves_no_temp_files(store):
    d1 = store.put(b"x" * 1000)
    mtime = store.path(d1).stat().st_mtime_ns
    assert store.put(bytearray(b"x" * 1000)) == d1
    assert store.path(d1).stat().st_mtime_ns == mtime  # not rewritten
    assert list(store.digests()) == [d1]
    assert [p.name for p in store.path(d1).parent.iterdir()] == [d1[2:]]


def test_tampered_file_raises_integrity_error_naming_digest_and_path(store):
    digest = store.put(b"honest model")
    store.path(digest).write_bytes(b"poisoned model")
    with pytest.raises(IntegrityError) as err:
        store.get(digest)
    assert digest in str(err.value) and str(store.path(digest)) in str(err.value)
    store.put(b"honest model")  # put repairs: the name says what the bytes must be
    assert store.get(digest) == b"honest model"


def test_missing_blob(store):
    with pytest.raises(NotFoundError, match="a" * 64):
        store.get("a" * 64)
    assert not store.has("a" * 64)


@pytest.mark.parametrize("bad", ["", "abc", "A" * 64, "g" * 64, "a" * 63, "a" * 65,
                                 "../" + "a" * 61, None, 42])
def test_bad_digest(store, bad):
    with pytest.raises(InvalidInputError, match="SHA-256"):
        store.get(bad)
    with pytest.raises(InvalidInputError):
        check_digest(bad)


def test_put_refuses_non_bytes(store):
    with pytest.raises(InvalidInputError):
        store.put("text")


def test_digests_lists_blobs_sorted_and_ignores_strangers(store):
    ds = sorted(store.put(bytes([i])) for i in range(5))
    (store.root / "README").write_text("hi")
    (store.path(ds[0]).parent / ".tmp-abandoned").write_bytes(b"partial")
    assert list(store.digests()) == ds


def _writer(root, payloads):
    s = ModelStore(root)
    for p in payloads:
        s.put(p)


def test_several_processes_share_a_folder(tmp_path):
    root = tmp_path / "shared"
    payloads = [bytes([i]) * 50_000 for i in range(20)]
    ctx = multiprocessing.get_context("spawn" if os.name == "nt" else "fork")
    procs = [ctx.Process(target=_writer, args=(root, payloads)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    store = ModelStore(root)
    for p in payloads:
        assert store.get(hashlib.sha256(p).hexdigest()) == p
    assert len(list(store.digests())) == len(payloads)
    assert not any(f.name.startswith(".tmp-") for f in root.rglob("*"))
