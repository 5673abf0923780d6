"""verify() finds tampering: state rows, stored transactions, signatures,
validation codes and chain links, even when the attacker re-hashes the chain.

Transactions are stored in compact form (``store.py``, ``codec.py``): an
attacker who edits a transaction edits the envelope that ``LedgerStore.block``
rebuilds and stores it back with ``LedgerStore.rewrite_transaction``, as
these helpers do."""

from __future__ import annotations

import sqlite3

import pytest
from ledger_test_contract import CHANNEL, chaincodes

from blockfedml.errors import IntegrityError
from blockfedml.ledger.embedded import EmbeddedLedger
from blockfedml.ledger.embedded import blocks as blk
from blockfedml.ledger.embedded.store import LedgerStore


@pytest.fixture
def filled(ledger, contract, orgs) -> EmbeddedLedger:
    """Blocks 1-5: puts, an increment, and one MVCC-invalid transaction at block 5."""
    contract.submit("Put", "a", "1")
    contract.submit("Put", "b", "2")
    contract.submit("Incr", "n")
    late = contract.new_proposal("Incr", "n").endorse()
    contract.submit("Incr", "n")
    with pytest.raises(Exception):
        late.submit()
    assert ledger.height() == 6 and ledger.block(5)["validation_code"] == "MVCC_READ_CONFLICT"
    report = ledger.verify()
    assert report.ok, report
    assert (report.blocks, report.valid_transactions, report.invalid_transactions) == (6, 4, 1)
    return ledger


def _sql(ledger: EmbeddedLedger, statement: str, *args: object) -> None:
    db = sqlite3.connect(ledger.path)
    db.execute(statement, args)
    db.commit()
    db.close()


def _envelope(ledger: EmbeddedLedger, number: int) -> bytes:
    """The envelope of block ``number`` as signed (rebuilt from its stored form)."""
    store = LedgerStore(ledger.path)
    try:
        return store.block(number).data
    finally:
        store.close()


def _store_envelope(ledger: EmbeddedLedger, number: int, envelope: bytes) -> None:
    """Store an edited envelope in the ledger's own compact format."""
    store = LedgerStore(ledger.path)
    try:
        store.rewrite_transaction(number, envelope)
    finally:
        store.close()


def _rehash_from(ledger: EmbeddedLedger, start: int) -> None:
    """What a careful attacker does after an edit: recompute every hash from ``start`` on."""
    store = LedgerStore(ledger.path)
    rows = [(r.number, r.data, r.proposal_signature, r.validation_code) for r in store.iter_blocks(start)]
    prev = store.block(start - 1).hash
    store.close()
    db = sqlite3.connect(ledger.path)
    for number, envelope, sig, code in rows:
        data_hash = blk.transaction_data_hash(envelope, sig, code)
        block_hash = blk.block_header_hash(number, prev, data_hash)
        db.execute("UPDATE blocks SET previous_hash = ?, data_hash = ?, hash = ? WHERE number = ?",
                   (prev, data_hash, block_hash, number))
        prev = block_hash
    db.commit()
    db.close()


def _problems(ledger: EmbeddedLedger) -> str:
    report = ledger.verify()
    assert not report.ok
    return "\n".join(report.problems)


def test_edited_state_row_is_found(filled) -> None:
    _sql(filled, "UPDATE state SET value = ? WHERE key = 'a'", b"999")
    assert "state blockfedml/'a': value differs" in _problems(filled)


def test_deleted_and_invented_state_rows_are_found(filled) -> None:
    _sql(filled, "DELETE FROM state WHERE key = 'b'")
    _sql(filled, "INSERT INTO state VALUES ('blockfedml', 'free-money', x'31', 1, 0)")
    problems = _problems(filled)
    assert "'b': written at block 2 but missing" in problems
    assert "'free-money': present in the state table but written by no valid transaction" in problems


def test_edited_transaction_bytes_are_found(filled) -> None:
    _store_envelope(filled, 2, _envelope(filled, 2).replace(b"Put", b"Pux", 1))
    problems = _problems(filled)
    assert "block 2" in problems and "data hash" in problems
    assert "block 3" not in problems  # re-packed on the edited block: it still rebuilds


def test_corrupted_stored_bytes_are_found(filled) -> None:
    stored = sqlite3.connect(filled.path).execute("SELECT data FROM blocks WHERE number = 2").fetchone()[0]
    _sql(filled, "UPDATE blocks SET data = ? WHERE number = 2", stored[:-3] + b"xyz")
    problems = _problems(filled)
    assert "block 2" in problems and "cannot be rebuilt" in problems
    with pytest.raises(IntegrityError, match="block 2"):
        filled.block(2)


def test_edited_transaction_bytes_are_found_even_when_rehashed(filled) -> None:
    data = _envelope(filled, 2)
    assert data.count(b"\x1a\x012") == 2  # the value written to b ("2") and the response
    _store_envelope(filled, 2, data.replace(b"\x1a\x012", b"\x1a\x019"))
    _rehash_from(filled, 2)
    problems = _problems(filled)
    assert "block 2" in problems and "signature does not verify" in problems


def test_swapped_signature_is_found_even_when_rehashed(filled) -> None:
    other_sig = filled._store.block(1).proposal_signature
    _sql(filled, "UPDATE blocks SET proposal_signature = ? WHERE number = 3", other_sig)
    _rehash_from(filled, 3)
    problems = _problems(filled)
    tx_id = filled.block(3)["transaction"]["tx_id"]
    assert f"block 3 (tx {tx_id}): transaction {tx_id}: the proposal signature does not verify" in problems
    assert "hash" not in problems


def test_flipped_validation_code_is_found_by_replay(filled) -> None:
    _sql(filled, "UPDATE blocks SET validation_code = 0 WHERE number = 5")
    _rehash_from(filled, 5)
    problems = _problems(filled)
    assert "block 5" in problems and "recorded as VALID but replay finds MVCC_READ_CONFLICT" in problems


def test_broken_chain_link_is_found(filled) -> None:
    _sql(filled, "UPDATE blocks SET previous_hash = ? WHERE number = 4", b"\x00" * 32)
    problems = _problems(filled)
    assert "block 4: previous hash does not match" in problems


def test_removed_block_is_found(filled) -> None:
    _sql(filled, "DELETE FROM blocks WHERE number = 3")
    problems = _problems(filled)
    assert "block 4: expected block number 3" in problems


def test_edited_index_column_is_found(filled) -> None:
    _sql(filled, "UPDATE blocks SET creator_msp = 'Org2MSP' WHERE number = 1")
    assert "block 1" in _problems(filled)


def test_report_reads_well(filled) -> None:
    assert str(filled.verify()).startswith("ledger OK: 6 blocks")
    _sql(filled, "UPDATE state SET value = ? WHERE key = 'a'", b"999")
    assert "1 problem(s)" in str(filled.verify())


def test_ledger_verifies_after_reopen(filled, orgs, ledger_node) -> None:
    with EmbeddedLedger.open(filled.path, chaincodes(), node=ledger_node) as again:
        assert again.verify().ok
        again.connect(orgs[1].admin()).network(CHANNEL).contract().submit("Put", "c", "3")
    assert filled.height() == 7 and filled.verify().ok
