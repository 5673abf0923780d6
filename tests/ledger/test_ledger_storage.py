"""The compact storage of transactions (store.py, codec.py): certificates once,
skeletons compressed against a trained dictionary, envelopes rebuilt byte for
byte, and every part of the stored form covered by verify()."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import zlib

import pytest
from fabric_protos.common import common_pb2
from ledger_test_contract import CHANNEL, chaincodes

from blockfedml.errors import IntegrityError, LedgerError
from blockfedml.ledger.embedded import EmbeddedLedger, codec
from blockfedml.ledger.embedded import blocks as blk
from blockfedml.ledger.embedded.store import LedgerStore


def _rows(ledger: EmbeddedLedger, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(ledger.path) as db:
        return db.execute(sql, args).fetchall()


def _sql(ledger: EmbeddedLedger, sql: str, *args: object) -> None:
    db = sqlite3.connect(ledger.path)
    db.execute(sql, args)
    db.commit()
    db.close()


def _problems(ledger: EmbeddedLedger) -> str:
    report = ledger.verify()
    assert not report.ok
    return "\n".join(report.problems)


def _stored_block(ledger: EmbeddedLedger, number: int):
    """Block ``number`` read by a fresh store (nothing cached)."""
    store = LedgerStore(ledger.path)
    try:
        return store.block(number)
    finally:
        store.close()


def _contracts(ledger: EmbeddedLedger, orgs):
    return [ledger.connect(o.admin()).network(CHANNEL).contract() for o in orgs[:2]]


def test_envelope_is_rebuilt_byte_for_byte(ledger, contract) -> None:
    tx = contract.new_proposal("Put", "k", "v").endorse()
    tx.submit()
    row = _stored_block(ledger, 1)
    assert row.data == tx.envelope and row.proposal_signature == tx.proposal_signature
    assert row.data_hash == blk.transaction_data_hash(tx.envelope, tx.proposal_signature, blk.VALID)
    block = ledger.block(1)
    assert block["envelope_bytes"] == len(tx.envelope)
    assert block["size_bytes"] < len(tx.envelope) // 2  # the certificate alone is ~60% of it
    assert block["transaction"]["writes"] == {"k": b"v"}


def test_each_creator_is_stored_once(ledger, orgs) -> None:
    first, second = _contracts(ledger, orgs)
    for i in range(3):
        first.submit("Put", f"a{i}", "1")
        second.submit("Put", f"b{i}", "2")
    stored = _rows(ledger, "SELECT creator FROM certificates ORDER BY id")
    assert [c for (c,) in stored] == [orgs[0].admin().serialize(), orgs[1].admin().serialize()]
    assert _rows(ledger, "SELECT COUNT(DISTINCT creator) FROM blocks WHERE kind = 'transaction'") == [(2,)]
    sizes = ledger.stored_bytes()
    assert sizes.certificates == sum(len(c) for (c,) in stored)
    assert sizes.total == sizes.blocks + sizes.certificates + sizes.dictionaries


def test_dictionary_is_trained_at_block_64_and_pays(ledger, contract, ledger_node) -> None:
    for i in range(81):
        contract.submit("Put", f"key-{i:04d}", f"value-{i}")
    assert [b for (b,) in _rows(ledger, "SELECT block FROM dictionaries")] == [64]
    # blocks 48 and 80 restart the chain (no previous body); only 80 has a dictionary
    assert ledger.block(80)["size_bytes"] < ledger.block(48)["size_bytes"] * 0.8
    with EmbeddedLedger.open(ledger.path, chaincodes(), node=ledger_node) as fresh:  # nothing cached
        assert fresh.block(79)["transaction"]["args"] == ["key-0078", "value-78"]
        assert fresh.verify().ok


def test_the_block_before_is_in_the_dictionary(ledger, contract) -> None:
    value = os.urandom(300).hex()  # incompressible on its own
    for i in range(1, 16):
        contract.submit("Put", f"k{i}", value)
    sizes = {n: ledger.block(n)["size_bytes"] for n in (1, 2, 15)}
    assert sizes[2] < sizes[1] - 250 and sizes[15] < sizes[1] - 250
    contract.submit("Put", "k16", value)  # block 16 restarts: it does not refer to block 15
    assert ledger.block(16)["size_bytes"] > sizes[1] - 50
    assert ledger.verify().ok


def test_tampered_dictionary_is_found(ledger, contract) -> None:
    for i in range(66):
        contract.submit("Put", f"key-{i:04d}", "v")
    (data,) = _rows(ledger, "SELECT data FROM dictionaries WHERE block = 64")[0]
    altered = zlib.decompress(data).replace(b"key-", b"kez-")
    _sql(ledger, "UPDATE dictionaries SET data = ? WHERE block = 64", zlib.compress(altered))
    problems = _problems(ledger)  # verify() ignores the ledger's cached dictionary
    assert "block 64" in problems and "block 66" in problems
    assert "block 63" not in problems


def test_tampered_certificate_is_found(ledger, orgs) -> None:
    first, second = _contracts(ledger, orgs)
    first.submit("Put", "a", "1")
    second.submit("Put", "b", "2")
    other = orgs[0].peer().serialize()  # a genuine Org1 certificate, not the signer's
    # the attacker files another certificate under Org1's row, digest and all
    _sql(ledger, "UPDATE certificates SET creator = ?, digest = ? WHERE id = 1",
         other, hashlib.sha256(other).digest())
    problems = _problems(ledger)
    assert "block 1" in problems and "block 2" not in problems
    _sql(ledger, "UPDATE certificates SET digest = ? WHERE id = 2", b"\x00" * 32)
    assert "certificate 2: its digest does not match its content" in _problems(ledger)


def test_missing_certificate_is_found(ledger, contract) -> None:
    contract.submit("Put", "a", "1")
    _sql(ledger, "DELETE FROM certificates")
    assert "certificate 1 is missing" in _problems(ledger)
    with pytest.raises(IntegrityError, match="block 1"):
        ledger.block(1)


def test_edited_tx_id_column_is_found(ledger, contract) -> None:
    contract.submit("Put", "a", "1")
    _sql(ledger, "UPDATE blocks SET tx_id = ? WHERE number = 1", "0" * 64)
    assert "block 1" in _problems(ledger)


def test_non_canonical_envelope_is_stored_whole_and_exact(ledger, contract) -> None:
    """An envelope whose fields come in another order (valid protobuf, signature
    intact) cannot be rebuilt from a skeleton: it is stored whole, still exact."""
    tx = contract.new_proposal("Put", "k", "v").endorse()
    env = common_pb2.Envelope.FromString(tx.envelope)
    reordered = (common_pb2.Envelope(signature=env.signature).SerializeToString()
                 + common_pb2.Envelope(payload=env.payload).SerializeToString())
    assert reordered != tx.envelope and common_pb2.Envelope.FromString(reordered) == env
    ledger.commit(reordered, tx.proposal_signature)
    (stored, creator), = _rows(ledger, "SELECT data, creator FROM blocks WHERE number = 1")
    assert stored[0] == codec.WHOLE and creator is None
    assert _stored_block(ledger, 1).data == reordered
    assert ledger.verify().ok


def test_a_ledger_in_another_format_is_refused(ledger, ledger_node) -> None:
    _sql(ledger, "UPDATE meta SET value = '1' WHERE name = 'schema_version'")
    with pytest.raises(LedgerError, match="storage format 1"):
        EmbeddedLedger.open(ledger.path, chaincodes(), node=ledger_node)


def test_codec_round_trip_and_refusals(ledger, contract) -> None:
    tx = contract.new_proposal("Put", "k", "v" * 100).endorse()
    zdict = codec.preset(b"some dictionary", b"previous body", ["a" * 64, "b" * 64], tx.tx_id)
    endorser = ledger.node_certificates.endorser
    stored, creator, body = codec.pack(tx.envelope, zdict, endorser)
    assert codec.inflate(stored, zdict) == (codec.SKELETON, body) and len(body) < len(tx.envelope) // 2
    assert stored[0] == codec.SKELETON and creator == contract.network.gateway.identity.serialize()
    assert endorser not in body  # the pinned node identity is left out of the stored form
    assert codec.unpack(stored, zdict, creator, endorser) == tx.envelope
    with pytest.raises(IntegrityError, match="no endorser"):
        codec.unpack(stored, zdict, creator)
    try:  # another tx ID in the dictionary: other bytes, or none at all
        other = codec.unpack(stored, zdict[:-1] + bytes([zdict[-1] ^ 1]), creator, endorser)
    except IntegrityError:
        other = None
    assert other != tx.envelope
    with pytest.raises(IntegrityError, match="layout"):
        codec.unpack(b"\x07" + stored[1:], zdict, creator)
    with pytest.raises(IntegrityError, match="truncated"):
        codec.unpack(stored[:-2], zdict, creator)
    with pytest.raises(IntegrityError, match="no certificate"):
        codec.unpack(stored, zdict, None)
    assert codec.strip(b"not an envelope") is None
    assert [codec.dictionary_block(n) for n in (1, 63, 64, 255, 256, 1023, 1024, 5000)] == \
        [None, None, 64, 64, 256, 256, 1024, 4096]
