"""Only the ledger node writes the ledger: its peer endorses what the contract computed,
its orderer signs every block (ledger/embedded/node.py).

Each attack is made as an organization would make it, with its own keys but not the
node's, and must leave the world state as it was."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest
from fabric_protos.common import common_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.peer import proposal_pb2, proposal_response_pb2, transaction_pb2
from ledger_test_contract import CHANNEL, chaincodes
from test_ledger_verify import _rehash_from

from blockfedml.errors import IntegrityError, NotAuthorizedError
from blockfedml.identity import create_organization
from blockfedml.ledger.embedded import EmbeddedLedger
from blockfedml.ledger.embedded import blocks as blk
from blockfedml.ledger.embedded.node import LedgerNode
from blockfedml.ledger.embedded.store import LedgerStore


def state_digest(path) -> str:
    """SHA-256 of every world-state row: what no refused attack may change."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT namespace, key, value, block, txnum FROM state ORDER BY 1, 2").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def forge_write(payload: bytes, key: str, value: bytes) -> bytes:
    """The transaction payload with ``key`` written as ``value``: a write set built by the client."""
    p = common_pb2.Payload.FromString(payload)
    tx = transaction_pb2.Transaction.FromString(p.data)
    cap = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
    prp = proposal_response_pb2.ProposalResponsePayload.FromString(cap.action.proposal_response_payload)
    action = proposal_pb2.ChaincodeAction.FromString(prp.extension)
    txrw = rwset_pb2.TxReadWriteSet.FromString(action.results)
    kv = kv_rwset_pb2.KVRWSet.FromString(txrw.ns_rwset[0].rwset)
    kv.writes.append(kv_rwset_pb2.KVWrite(key=key, value=value))
    txrw.ns_rwset[0].rwset = kv.SerializeToString()
    action.results = txrw.SerializeToString()
    prp.extension = action.SerializeToString()
    cap.action.proposal_response_payload = prp.SerializeToString()
    tx.actions[0].payload = cap.SerializeToString()
    p.data = tx.SerializeToString()
    return p.SerializeToString()


def test_every_block_carries_a_valid_orderer_signature(ledger, contract) -> None:
    contract.submit("Put", "a", "1")
    contract.submit("Put", "b", "2")
    node = ledger.node_certificates
    for number in range(1, ledger.height()):
        row = ledger.block_row(number)
        header = blk.block_header_bytes(row.number, row.previous_hash, row.data_hash)
        assert node.block_signature_ok(header, row.orderer_signature)
        parsed = blk.parse_envelope(row.data, row.proposal_signature)
        assert node.endorsement_problem(parsed.response_payload, list(parsed.endorsements)) is None
    assert ledger.verify().ok


def test_a_write_set_built_by_the_client_is_refused(ledger, contract, orgs) -> None:
    """The attack of the issue: a member adds a write (makes itself admin) and re-signs."""
    contract.submit("Put", "role~Org1MSP", "member")
    before, height = state_digest(ledger.path), ledger.height()
    tx = contract.new_proposal("Put", "k", "v").endorse()
    envelope = common_pb2.Envelope.FromString(tx.envelope)
    forged = forge_write(envelope.payload, "role~Org1MSP", b"admin")
    resigned = blk.sign_envelope(forged, orgs[0].admin())
    with pytest.raises(IntegrityError, match="endorsement signature does not verify"):
        ledger.commit(resigned, tx.proposal_signature)
    assert (state_digest(ledger.path), ledger.height()) == (before, height)
    # Handed the node's own record of what it endorsed, the commit still decodes and checks the
    # forged payload in full (only a byte-identical payload is taken as endorsed) ...
    with pytest.raises(IntegrityError, match="endorsement signature does not verify"):
        ledger.commit(resigned, tx.proposal_signature, tx.endorsement.endorsed)
    # ... and the identical payload signed by another organization fails its envelope signature.
    other = blk.sign_envelope(envelope.payload, orgs[1].admin())
    with pytest.raises(IntegrityError, match="envelope signature does not verify"):
        ledger.commit(other, tx.proposal_signature, tx.endorsement.endorsed)
    assert (state_digest(ledger.path), ledger.height()) == (before, height)
    tx.submit()  # the genuine transaction still commits
    assert ledger.height() == height + 1 and ledger.verify().ok


def test_a_ledger_opened_without_the_node_keys_is_read_only(ledger, contract, orgs) -> None:
    contract.submit("Put", "a", "1")
    pending = contract.new_proposal("Put", "b", "2").endorse()
    before = state_digest(ledger.path)
    with EmbeddedLedger.open(ledger.path, chaincodes()) as member_copy:
        assert not member_copy.writable
        member = member_copy.connect(orgs[1].admin()).network(CHANNEL).contract()
        assert member.evaluate("Get", "a") == b"1"  # reading is allowed
        with pytest.raises(NotAuthorizedError, match="ledger service"):
            member.submit("Put", "a", "2")
        with pytest.raises(NotAuthorizedError, match="does not hold the ledger node's keys"):
            member_copy.commit(pending.envelope, pending.proposal_signature)
    assert state_digest(ledger.path) == before


def test_another_nodes_keys_cannot_write_this_ledger(ledger, tmp_path) -> None:
    rogue = LedgerNode.from_material(create_organization(tmp_path, "Ledger", "LedgerMSP", "rogue.example.com",
                                                         orderer=True))
    with pytest.raises(NotAuthorizedError, match="not the ledger node"):
        EmbeddedLedger.open(ledger.path, chaincodes(), node=rogue)


def test_a_transaction_endorsed_by_another_node_is_refused(ledger, orgs, tmp_path) -> None:
    """A ledger of the same channel and members but another node: its endorsements do not count here."""
    rogue_node = LedgerNode.from_material(create_organization(tmp_path, "Ledger", "LedgerMSP",
                                                              "rogue.example.com", orderer=True))
    rogue = EmbeddedLedger.create(tmp_path / "rogue.db", CHANNEL, [(o.msp_id, o.ca_cert_pem) for o in orgs[:2]],
                                  chaincodes=chaincodes(), node=rogue_node)
    tx = rogue.connect(orgs[0].admin()).network(CHANNEL).contract().new_proposal("Put", "k", "v").endorse()
    rogue.close()
    before = state_digest(ledger.path)
    with pytest.raises(IntegrityError, match="not endorsed by the ledger node"):
        ledger.commit(tx.envelope, tx.proposal_signature)
    assert state_digest(ledger.path) == before


def test_a_block_edited_without_the_orderer_key_is_caught(ledger, contract) -> None:
    """Changing a block's validation code and re-hashing the chain: only the orderer could re-sign."""
    contract.submit("Put", "a", "1")
    contract.submit("Put", "b", "2")
    with sqlite3.connect(ledger.path) as db:
        db.execute("UPDATE blocks SET orderer_signature = (SELECT orderer_signature FROM blocks WHERE number = 1) "
                   "WHERE number = 2")
    problems = "\n".join(ledger.verify().problems)
    assert "block 2: the orderer signature does not verify" in problems
    assert "block 1:" not in problems


def test_an_organization_rewriting_its_own_past_transaction_is_caught(ledger, contract, orgs) -> None:
    """Org1 re-signs its own old transaction with another write set and re-hashes the chain
    (it has write access to the file and its own key, not the node's)."""
    contract.submit("Put", "a", "1")
    contract.submit("Put", "b", "2")
    store = LedgerStore(ledger.path)
    try:
        env = common_pb2.Envelope.FromString(store.block(1).data)
        store.rewrite_transaction(1, blk.sign_envelope(forge_write(env.payload, "a", b"999"), orgs[0].admin()))
    finally:
        store.close()
    _rehash_from(ledger, 1)
    problems = "\n".join(ledger.verify().problems)
    assert "block 1 (tx" in problems and "endorsement signature does not verify" in problems
    assert "block 1: the orderer signature does not verify" in problems
    assert "block 2: the orderer signature does not verify" in problems
