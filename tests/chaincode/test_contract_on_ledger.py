"""The federation contract on the real embedded ledger: identities from real
certificates, refusals mapped to the SDK's exceptions, nothing written on refusal."""

from __future__ import annotations

import pytest

from blockfedml.errors import ConflictError, InvalidInputError, NotAuthorizedError, NotFoundError, PhaseError
from blockfedml.identity import create_organization
from blockfedml.ledger.base import DEFAULT_CHANNEL
from blockfedml.ledger.embedded import EmbeddedLedger

GENESIS = "ab" * 32


@pytest.fixture
def world(tmp_path, ledger_node):
    """Org1 (admin), Org2 (registered member), Stranger (in the channel, never registered),
    Outsider (has a CA, but is not in the channel at all)."""
    orgs = {name: create_organization(tmp_path / "crypto", name, f"{name}MSP", f"{name.lower()}.test")
            for name in ("Org1", "Org2", "Stranger", "Outsider")}
    channel_orgs = [(m.msp_id, m.ca_cert_pem) for n, m in orgs.items() if n != "Outsider"]
    ledger = EmbeddedLedger.create(tmp_path / "ledger.sqlite", DEFAULT_CHANNEL, channel_orgs, node=ledger_node)
    contracts = {n: ledger.connect(m.admin()).network(DEFAULT_CHANNEL).contract("blockfedml")
                 for n, m in orgs.items()}
    contracts["Org1"].submit_json("InitConsortium", {}, GENESIS, 0)
    contracts["Org1"].submit_json("RegisterOrg", "Org2MSP", ["member"])
    contracts["Org2"].submit_json("Join")
    yield ledger, contracts
    ledger.close()


def refused(ledger, call, error):
    height = ledger.height()
    with pytest.raises(error) as info:
        call()
    assert ledger.height() == height, "a refused transaction must not add a block"
    return str(info.value)


def test_the_caller_is_the_msp_of_the_signing_certificate(world):
    ledger, c = world
    assert c["Org2"].evaluate_json("GetOrg", "Org2MSP")["status"] == "active"
    message = refused(ledger, lambda: c["Stranger"].submit_json("Join"), NotAuthorizedError)
    assert "StrangerMSP" in message


def test_an_identity_outside_the_channel_is_refused_by_the_ledger(world):
    ledger, c = world
    refused(ledger, lambda: c["Outsider"].submit_json("OpenRound", "plaintext"), NotAuthorizedError)


def test_only_the_admin_opens_rounds_and_changes_settings(world):
    ledger, c = world
    refused(ledger, lambda: c["Org2"].submit_json("OpenRound", "plaintext"), NotAuthorizedError)
    refused(ledger, lambda: c["Org2"].submit_json("SetSettings", {"reward": 1}), NotAuthorizedError)


def test_malformed_arguments_are_invalid_input_naming_the_argument(world):
    ledger, c = world
    c["Org1"].submit_json("OpenRound", "plaintext")
    assert "verdict" in refused(ledger, lambda: c["Org2"].submit("ReportScreening", "1", "maybe", "0"),
                                InvalidInputError)
    assert "round" in refused(ledger, lambda: c["Org2"].submit("ReportScreening", "one", "1", "0"),
                              InvalidInputError)
    assert "settings" in refused(ledger, lambda: c["Org1"].submit("SetSettings", "{not json"),
                                 InvalidInputError).lower()


def test_unknown_round_wrong_phase_and_replay(world):
    ledger, c = world
    assert "round 9" in refused(ledger, lambda: c["Org2"].submit_json("ReportScreening", 9, 1, 0), NotFoundError)
    c["Org1"].submit_json("OpenRound", "plaintext")
    refused(ledger, lambda: c["Org2"].submit_json("AcceptTerms", 1, GENESIS), PhaseError)
    c["Org2"].submit_json("ReportScreening", 1, 1, 500000)
    refused(ledger, lambda: c["Org2"].submit_json("ReportScreening", 1, 1, 500000), ConflictError)


def test_two_members_writing_their_own_keys_never_conflict(world):
    ledger, c = world
    c["Org1"].submit_json("RegisterOrg", "StrangerMSP", ["member"])
    c["Stranger"].submit_json("Join")
    c["Org1"].submit_json("OpenRound", "plaintext")
    # Both simulate against the same state, then both commit: different keys, no MVCC conflict.
    first = c["Org2"].new_proposal("ReportScreening", "1", "1", "1").endorse()
    second = c["Stranger"].new_proposal("ReportScreening", "1", "1", "1").endorse()
    first.submit()
    second.submit()
    assert len(c["Org1"].evaluate_json("GetScreenings", 1)) == 2


def test_stale_admin_transaction_is_an_mvcc_conflict_and_changes_nothing(world):
    ledger, c = world
    c["Org1"].submit_json("RegisterOrg", "StrangerMSP", ["member"])  # a second member: min_participants=2
    c["Stranger"].submit_json("Join")
    c["Org1"].submit_json("OpenRound", "plaintext")
    c["Org2"].submit_json("ReportScreening", 1, 1, 1)
    c["Stranger"].submit_json("ReportScreening", 1, 1, 1)
    # Two admin transactions simulated on the same round record: the second commit is stale.
    close = c["Org1"].new_proposal("CloseSelection", "1").endorse()
    stale = c["Org1"].new_proposal("CloseSelection", "1").endorse()
    close.submit()
    with pytest.raises(ConflictError):
        stale.submit()
    assert c["Org1"].evaluate_json("GetRound", 1)["phase"] == "configuration"
    assert ledger.verify().ok
