"""A round goes on without a member that vanished, on the real embedded ledger; the audit agrees."""

from __future__ import annotations

import pytest

from blockfedml.audit.verify import audit_consortium
from blockfedml.consortium import Consortium
from blockfedml.errors import InvalidInputError
from blockfedml.fl.recovery import close_when_due, describe, pending
from blockfedml.fl.session import Session
from blockfedml.fl.task import TaskSpec


@pytest.fixture
def quick(tmp_path):
    """Three members whose update phase may be closed one second after it starts."""
    c = Consortium.create(tmp_path / "c", n_orgs=3, task=TaskSpec(), settings={"update_deadline": 1})
    yield c
    c.close()


def test_consortium_of_one_refused_before_anything_is_written(tmp_path):
    with pytest.raises(InvalidInputError, match="min_participants=2"):
        Consortium.create(tmp_path / "solo", n_orgs=1)
    assert not (tmp_path / "solo").exists()


def _to_update(session: Session) -> int:
    admin = session.admin
    number = admin.submit_json("OpenRound", "plaintext")["round"]
    session._step(number, "selection")
    assert admin.submit_json("CloseSelection", number)["phase"] == "update"  # all accepted while screening
    return number


def test_member_vanishing_before_commit_the_round_goes_on_and_audit_verifies(quick):
    session = Session(quick)
    session.join_all()
    number = _to_update(session)
    round_ = session.admin.evaluate_json("GetRound", number)
    vanished = next(m for m in session.members if m.msp_id != round_["aggregator"])
    stayed = [m for m in session.members if m is not vanished]
    for member in stayed:
        member.act(round_)
    state = pending(session.admin, number)
    assert state["waiting_for"] == [vanished.msp_id]
    assert f"waiting for {vanished.msp_id}" in describe(state)
    closed = close_when_due(stayed[1].contract, number, limit=30)   # a member, not the admin, closes
    assert closed["absent"] == [vanished.msp_id] and closed["phase"] == "update"
    aggregator = next(m for m in stayed if m.msp_id == closed["aggregator"])
    proposed = aggregator.aggregate(closed)
    assert proposed["proposal"]["contributors"] == sorted(m.msp_id for m in stayed)
    session._step(number, "feedback")
    decided = session.admin.submit_json("Decide", number)
    assert decided["decision"]["status"] == "accepted" and decided["decision"]["endorsements"] == 2
    assert session.admin.evaluate_json("GetReputation", vanished.msp_id)["balance"] == 95
    assert session.run_round().status == "accepted"                # everyone is back next round
    report = audit_consortium(quick)
    assert report.ok, [str(f) for f in report.findings]


def test_an_aborted_round_keeps_the_head_penalizes_who_accepted_and_is_audited(quick):
    session = Session(quick)
    session.join_all()
    number = _to_update(session)
    round_ = session.admin.evaluate_json("GetRound", number)
    session.members[0].act(round_)                                  # one commits, two vanish
    aborted = close_when_due(session.members[0].contract, number, limit=30)
    decision = aborted["decision"]
    assert decision["status"] == "aborted" and len(decision["penalized"]) == 2
    assert session.admin.evaluate_json("GetHead")["round"] == 0
    assert audit_consortium(quick).ok


@pytest.mark.parametrize("mode", ["plaintext", "masking"])
def test_admin_round_run_resumes_a_round_left_open_by_a_crash(consortium, mode):
    """The driver died after the members had accepted (masking: and shared their keys): a new
    Session (as `admin round run` after a restart) resumes the round; repeated actions are recognized."""
    first = Session(consortium, mode=mode)
    first.join_all()
    number = first.admin.submit_json("OpenRound", mode)["round"]
    first._step(number, "selection")
    if first.admin.submit_json("CloseSelection", number)["phase"] == "configuration":  # masking: shares
        first._step(number, "configuration")
    del first                                                       # the process is gone
    again = Session(consortium, mode=mode)                         # new members: nothing in memory
    [resumed] = again.run(1)
    assert resumed.round == number and resumed.status == "accepted"
    assert len(resumed.participants) == 3
    assert audit_consortium(consortium).ok
    again.admin.submit_json("OpenRound", mode)
    with pytest.raises(InvalidInputError, match=f"open in mode {mode}"):
        Session(consortium, mode="plaintext" if mode == "masking" else "masking").run_round(resume=True)


@pytest.mark.slow
def test_drive_takes_an_attribution_round_through_its_groups_across_processes(tmp_path):
    """The driver's phase loop with attribution on: groups endorsed, scored, the accepted
    groups' aggregate proposed and decided, every member in its own process."""
    import json
    import subprocess
    import sys

    consortium = Consortium.create(tmp_path / "c", n_orgs=4, task=TaskSpec(), settings={"attribution": 1})
    w = str(consortium.workdir)
    command = [sys.executable, "-m", "blockfedml.cli.main"]
    procs = [subprocess.Popen([*command, "member", "round", "-w", w, "--org", org, "--exchange", "store",
                               "--timeout", "120", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for org in ("Org1", "Org2", "Org3", "Org4")]
    drive = subprocess.run([*command, "admin", "round", "drive", "-w", w, "--timeout", "120", "--json"],
                           capture_output=True, text=True, timeout=180)
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert drive.returncode == 0, drive.stderr
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in outputs]
    [summary] = json.loads(drive.stdout)
    assert summary["status"] == "accepted"
    round_ = consortium.contract("Auditor").evaluate_json("GetRound", 1)
    # 4 participants: one group of min_group_size + 1 = 3 at least (docs/secure-aggregation.md)
    assert [g["verdict"] for g in round_["attribution"]["groups"]] == ["accepted"]
    assert audit_consortium(consortium).ok
    consortium.close()
