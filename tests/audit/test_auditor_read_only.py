"""An auditor's identity reads everything and writes nothing: the contract refuses
every write transaction it signs, in the very phase where a member's call succeeds,
and the refused call leaves the ledger's height and world state as they were."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from blockfedml.errors import ConflictError, NotAuthorizedError
from blockfedml.fl.session import Session

DIGEST = "ab" * 32


def state_digest(consortium) -> str:
    db = sqlite3.connect(consortium.ledger_path)
    try:
        rows = db.execute("SELECT namespace, key, value, block, txnum FROM state ORDER BY namespace, key").fetchall()
    finally:
        db.close()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def refused(consortium, auditor, function: str, *args, error=NotAuthorizedError) -> None:
    height, state = consortium.ledger.height(), state_digest(consortium)
    with pytest.raises(error) as caught:
        auditor.submit_json(function, *args)
    assert consortium.ledger.height() == height, f"{function} added a block"
    assert state_digest(consortium) == state, f"{function} changed the world state"
    if error is NotAuthorizedError:
        assert "auditor and may only read" in str(caught.value), (function, str(caught.value))


def advance(session, number: int, phase: str) -> dict:
    """Let every member act in the round's current phase (as the session driver does)."""
    round_ = session.admin.evaluate_json("GetRound", number)
    assert round_["phase"] == phase
    for member in session.members:
        member.act(round_)
    return round_


def test_every_write_by_the_auditor_is_refused_and_changes_nothing(consortium):
    auditor = consortium.contract("Auditor")
    session = Session(consortium)
    # Before joining (registered): the auditor may not become active either.
    refused(consortium, auditor, "Join")
    session.join_all()
    refused(consortium, auditor, "Join")
    refused(consortium, auditor, "SetSettings", {"reward": 1})
    refused(consortium, auditor, "RegisterOrg", "Org9MSP", ["member"])
    refused(consortium, auditor, "OpenRound", "plaintext")
    # InitConsortium is open to anyone exactly once (its caller founds the consortium);
    # once founded it is refused to everyone, the auditor included.
    refused(consortium, auditor, "InitConsortium", {}, DIGEST, 0, error=ConflictError)

    number = session.admin.submit_json("OpenRound", "plaintext")["round"]
    refused(consortium, auditor, "ReportScreening", number, 1, 900000)
    base = session.admin.evaluate_json("GetRound", number)["base_checkpoint"]
    refused(consortium, auditor, "EnterRound", number, 1, 900000, base, "", "")
    refused(consortium, auditor, "CloseSelection", number)
    for member in session.members:  # screening alone (not EnterRound), so the round has a configuration phase
        member.contract.submit_json("ReportScreening", number, 1, 900000)
    session.admin.submit_json("CloseSelection", number)
    round_ = advance(session, number, "configuration")
    refused(consortium, auditor, "AcceptTerms", number, round_["base_checkpoint"])
    refused(consortium, auditor, "Allocate", number)
    session.admin.submit_json("Allocate", number)
    round_ = advance(session, number, "update")
    refused(consortium, auditor, "CommitUpdate", number, DIGEST, 100, 10)
    refused(consortium, auditor, "ProposeAggregate", number, DIGEST, ["Org1MSP", "Org2MSP"])
    aggregator = next(m for m in session.members if m.msp_id == round_["aggregator"])
    aggregator.aggregate(round_)
    round_ = advance(session, number, "feedback")
    proposed = round_["proposal"]["digest"]
    refused(consortium, auditor, "Endorse", number, proposed, 900000, 800000)
    refused(consortium, auditor, "Decide", number)
    decided = session.admin.submit_json("Decide", number)
    assert decided["phase"] == "closed"  # the round itself went through: only the auditor was refused
    assert consortium.contract("Auditor").evaluate_json("GetOrg", "AuditorMSP")["status"] == "registered"
    assert consortium.ledger.verify().ok
