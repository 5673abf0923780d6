"""The common path: submit, evaluate, refusals, blocks, files."""

from __future__ import annotations

import json

import pytest
from ledger_test_contract import CHANNEL, chaincodes

from blockfedml.errors import (
    ChaincodeError,
    ConflictError,
    InvalidInputError,
    LedgerError,
    NotFoundError,
    PhaseError,
)
from blockfedml.ledger.base import Gateway
from blockfedml.ledger.embedded import EmbeddedLedger


def test_submit_then_evaluate(ledger, contract) -> None:
    assert ledger.height() == 1  # genesis
    assert contract.submit("Put", "colour", "blue") == b"blue"
    assert contract.evaluate("Get", "colour") == b"blue"
    assert contract.submit("Incr", "n") == b"1"
    assert contract.submit("Incr", "n") == b"2"
    assert ledger.height() == 4
    assert contract.evaluate_json("Scan", "", "") == {"colour": "blue", "n": "2"}


def test_evaluate_commits_nothing(ledger, contract) -> None:
    contract.evaluate("Incr", "n")
    contract.evaluate("Put", "k", "v")
    assert ledger.height() == 1
    with pytest.raises(NotFoundError):
        contract.evaluate("Get", "k")


def test_gateway_shape(ledger, orgs) -> None:
    gateway = ledger.connect(orgs[1].admin())
    assert isinstance(gateway, Gateway) and gateway.msp_id == "Org2MSP"
    with gateway:
        with pytest.raises(NotFoundError, match="channel other"):
            gateway.network("other")
        with pytest.raises(NotFoundError, match="chaincode nope"):
            gateway.network(CHANNEL).contract("nope")
        whoami = gateway.network(CHANNEL).contract("blockfedml").evaluate_json("Whoami")
    assert whoami["msp"] == "Org2MSP" and whoami["channel"] == CHANNEL


def test_reads_do_not_see_own_writes(contract) -> None:
    contract.submit("Put", "k", "old")
    assert contract.submit("PutThenRead", "k", "new") == b"old"
    assert contract.evaluate("Get", "k") == b"new"


def test_chaincode_codes_map_to_sdk_errors(ledger, contract) -> None:
    with pytest.raises(NotFoundError, match=r"\[NOT_FOUND\] no such round"):
        contract.submit("Fail", "NOT_FOUND", "no such round")
    with pytest.raises(ConflictError):
        contract.submit("Fail", "EXISTS", "round 1 exists")
    with pytest.raises(InvalidInputError):
        contract.evaluate("Fail", "INVALID", "bad digest")
    with pytest.raises(ChaincodeError, match="without a code"):
        contract.submit("Fail", "OTHER", "without a code")
    with pytest.raises(ChaincodeError, match="not found"):
        contract.submit("NoSuchFunction")
    assert ledger.height() == 1


def test_failed_call_writes_nothing_and_adds_no_block(ledger, contract) -> None:
    contract.submit("Put", "k", "kept")
    height = ledger.height()
    with pytest.raises(PhaseError):
        contract.submit("PutThenFail", "k")
    assert ledger.height() == height
    assert contract.evaluate("Get", "k") == b"kept"
    assert ledger.verify().ok


def test_block_records_the_transaction(ledger, contract, orgs) -> None:
    contract.submit("Put", "a", "1")
    proposal = contract.new_proposal("Emit", "round-opened", "r1")
    tx = proposal.endorse()
    tx.submit()
    assert tx.status is not None and tx.status.valid and tx.status.block_number == 2
    block = ledger.block(2)
    assert block["previous_hash"] == ledger.block(1)["hash"]
    assert block["validation_code"] == "VALID"
    t = block["transaction"]
    assert t["tx_id"] == proposal.tx_id == tx.tx_id
    assert t["creator_msp"] == "Org1MSP" and "Admin@org1.example.com" in t["creator_subject"]
    assert t["function"] == "Emit" and t["args"] == ["round-opened", "r1"]
    assert t["event"] == {"name": "round-opened", "payload": b"r1"}
    assert t["response"]["payload"] == b"round-opened"
    assert ledger.block(1)["transaction"]["writes"] == {"a": b"1"}
    assert ledger.transaction_status(tx.tx_id).block_number == 2
    genesis = ledger.block(0)
    assert genesis["kind"] == "config" and genesis["channel"] == CHANNEL
    assert set(genesis["organizations"]) == {"Org1MSP", "Org2MSP"}
    assert [b["number"] for b in ledger.iter_blocks()] == [0, 1, 2]
    with pytest.raises(NotFoundError):
        ledger.block(3)


def test_tx_timestamp_comes_from_the_proposal(contract) -> None:
    proposal = contract.new_proposal("Whoami")
    assert json.loads(proposal.evaluate())["seconds"] == proposal.proposal.timestamp_seconds


def test_range_reads_and_deletes(contract) -> None:
    for key in ("a1", "a2", "b1"):
        contract.submit("Put", key, key.upper())
    assert contract.evaluate_json("Scan", "a", "b") == {"a1": "A1", "a2": "A2"}
    contract.submit("Delete", "a1")
    assert contract.evaluate_json("Scan", "a", "b") == {"a2": "A2"}


def test_state_survives_reopening(tmp_path, orgs, ledger_node) -> None:
    path = tmp_path / "l.db"
    with EmbeddedLedger.create(path, CHANNEL, [(orgs[0].msp_id, orgs[0].ca_cert_pem)],
                               chaincodes=chaincodes(), node=ledger_node) as ledger:
        ledger.connect(orgs[0].admin()).network(CHANNEL).contract().submit("Put", "k", "v")
    with EmbeddedLedger.open(path, chaincodes(), node=ledger_node) as ledger:
        assert ledger.channel == CHANNEL and list(ledger.organizations) == ["Org1MSP"]
        assert ledger.synchronous == "FULL"
        assert ledger.height() == 2
        assert ledger.connect(orgs[0].admin()).network(CHANNEL).contract().evaluate("Get", "k") == b"v"


def test_create_refuses_an_existing_file_and_open_a_missing_one(tmp_path, orgs, ledger_node) -> None:
    path = tmp_path / "l.db"
    path.write_bytes(b"")
    with pytest.raises(ConflictError, match="already exists"):
        EmbeddedLedger.create(path, CHANNEL, [(orgs[0].msp_id, orgs[0].ca_cert_pem)], node=ledger_node)
    with pytest.raises(NotFoundError, match="no ledger"):
        EmbeddedLedger.open(tmp_path / "missing.db")


def test_create_checks_its_configuration(tmp_path, orgs, ledger_node) -> None:
    with pytest.raises(InvalidInputError):
        EmbeddedLedger.create(tmp_path / "a.db", CHANNEL, [], node=ledger_node)
    with pytest.raises(InvalidInputError, match="distinct"):
        EmbeddedLedger.create(tmp_path / "b.db", CHANNEL, [("X", orgs[0].ca_cert_pem)] * 2, node=ledger_node)
    with pytest.raises(InvalidInputError, match="not a CA"):
        EmbeddedLedger.create(tmp_path / "c.db", CHANNEL, [("X", orgs[0].admin().certificate)], node=ledger_node)
    assert not (tmp_path / "b.db").exists()


def test_closed_ledger_refuses_work(make_ledger, orgs) -> None:
    ledger = make_ledger()
    contract = ledger.connect(orgs[0].admin()).network(CHANNEL).contract()
    ledger.close()
    ledger.close()
    with pytest.raises(LedgerError, match="closed"):
        contract.submit("Put", "k", "v")


def test_submit_from_async_code(contract) -> None:
    import asyncio

    async def main() -> bytes:
        contract.submit("Put", "k", "from a coroutine")
        return await asyncio.to_thread(contract.evaluate, "Get", "k")

    assert asyncio.run(main()) == b"from a coroutine"


def test_a_file_that_is_no_ledger_is_refused(tmp_path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerError):
        EmbeddedLedger.open(junk)
