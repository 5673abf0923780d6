"""The audit recomputes closures at deadlines, absences and aborts; forged ones are caught."""

from __future__ import annotations

import json

import pytest
from tamper import set_state, state_value

from blockfedml.audit.verify import audit_consortium
from blockfedml.consortium import Consortium
from blockfedml.fl.recovery import close_when_due
from blockfedml.fl.session import Session
from blockfedml.fl.task import TaskSpec


@pytest.fixture
def recovered(tmp_path):
    """Round 1: Org3 never commits and is recorded absent at the update deadline (1 s);
    round 2: Org3 never screens and then the admin aborts the round."""
    consortium = Consortium.create(tmp_path / "c", n_orgs=3, task=TaskSpec(), settings={"update_deadline": 1})
    session = Session(consortium)
    session.join_all()
    admin, (org1, org2, org3) = session.admin, session.members
    admin.submit_json("OpenRound", "plaintext")
    session._step(1, "selection")
    assert admin.submit_json("CloseSelection", 1)["phase"] == "update"  # all accepted while screening
    round_ = admin.evaluate_json("GetRound", 1)
    for member in (org1, org2):
        member.act(round_)
    closed = close_when_due(org2.contract, 1, limit=30)
    org1.aggregate(closed)
    for member in (org1, org2):
        member.act(admin.evaluate_json("GetRound", 1))
    assert admin.submit_json("Decide", 1)["decision"]["status"] == "accepted"
    admin.submit_json("OpenRound", "plaintext")
    for member in (org1, org2):
        member.act(admin.evaluate_json("GetRound", 2))
    admin.submit_json("AbortRound", 2, "Org3 is gone")
    workdir = consortium.workdir
    consortium.close()
    return workdir


def audit(workdir):
    consortium = Consortium.open(workdir)
    try:
        return audit_consortium(consortium)
    finally:
        consortium.close()


def failed(report) -> dict[str, list]:
    return {c.name: c.findings for c in report.checks if c.status == "fail"}


def test_closures_absences_and_aborts_pass(recovered):
    report = audit(recovered)
    assert report.ok, [str(f) for f in report.findings]


def test_a_closure_before_its_deadline_is_caught(recovered):
    record = json.loads(state_value(recovered, "round~00000001"))
    allocated = next(h["time"] for h in record["history"] if h["phase"] == "update")
    record["closures"][0]["time"] = allocated  # closed the moment the phase began
    set_state(recovered, "round~00000001", json.dumps(record).encode())
    problems = failed(audit(recovered))
    assert any("before its deadline" in f.message for f in problems["rounds"])


def test_an_abort_that_penalizes_whoever_it_likes_is_caught(recovered):
    record = json.loads(state_value(recovered, "round~00000002"))
    record["decision"]["penalized"] = ["Org2MSP"]
    set_state(recovered, "round~00000002", json.dumps(record).encode())
    problems = failed(audit(recovered))
    assert any("the rules give []" in f.message for f in problems["decisions"])
