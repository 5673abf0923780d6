"""kill -9 at any point: the consortium reaches its next accepted round with documented commands only.

Every organization runs in its own process, as docs/operations.md shows:
``blockfedml member round`` per member (gRPC exchange), ``blockfedml member
keyholder`` for Paillier, ``blockfedml admin round drive`` for the admin. One
process is killed with SIGKILL at a point read from the ledger; what happens
next is only what the docs say to do (restart the same command). Each case ends
with an accepted round after the kill and ``blockfedml audit verify`` passing.
Waits are on ledger state (woken by each new block), never fixed sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from blockfedml.consortium import Consortium, wait_for_service
from blockfedml.errors import NotFoundError
from blockfedml.fl.task import TaskSpec

pytestmark = pytest.mark.slow

MEMBERS = ("Org1", "Org2", "Org3")
#: Short deadlines keep the matrix quick, long enough that a loaded machine is not taken for a dropout
#: (bench/bench_recovery.py measures the default update_deadline).
SETTINGS = {"selection_deadline": 10, "configuration_deadline": 10, "update_deadline": 10, "feedback_deadline": 8}
LIMIT = 180.0


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "blockfedml.cli.main", *args, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _member(w: str, org: str, rounds: int = 2) -> subprocess.Popen:
    return _cli("member", "round", "-w", w, "--org", org, "--rounds", str(rounds), "--exchange", "grpc",
                "--timeout", str(LIMIT))


def _drive(w: str, secure: str = "none", rounds: int = 2) -> subprocess.Popen:
    return _cli("admin", "round", "drive", "-w", w, "--rounds", str(rounds), "--secure", secure,
                "--timeout", str(LIMIT))


def _until(consortium: Consortium, check: Callable[[], Any], what: str) -> Any:
    """``check()``'s first true value, re-read at each new block."""
    give_up = time.monotonic() + LIMIT
    while True:
        height = consortium.ledger_height()
        value = check()
        if value:
            return value
        assert time.monotonic() < give_up, f"gave up waiting for {what}"
        consortium.wait_for_block(height, timeout=1.0)


def _records(admin, query: str, number: int) -> set[str]:
    try:
        return {r["msp_id"] for r in admin.evaluate_json(query, number)}
    except NotFoundError:  # not opened yet
        return set()


def _round(admin, number: int) -> dict | None:
    try:
        return admin.evaluate_json("GetRound", number)
    except NotFoundError:
        return None


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _finish(procs: dict[str, subprocess.Popen]) -> dict[str, tuple[int, str, str]]:
    """Each process's exit code and output, once it has ended."""
    outputs = {name: proc.communicate(timeout=LIMIT) for name, proc in procs.items()}
    return {name: (procs[name].returncode, *out) for name, out in outputs.items()}


def _stop(procs: dict[str, subprocess.Popen]) -> None:
    """Kill whatever a failed test left running (only the processes it started)."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _check_outcome(consortium: Consortium, outcomes: dict[str, tuple[int, str, str]]) -> list[dict]:
    """Every surviving process succeeded, the last round is accepted, and the audit passes."""
    for name, (_, _, err) in outcomes.items():
        assert outcomes[name][0] == 0 or name.endswith("(killed)"), f"{name} failed: {err}"
    admin = consortium.contract("Org1")
    rounds = admin.evaluate_json("ListRounds")
    assert rounds[-1]["decision"]["status"] == "accepted", rounds[-1]
    assert rounds[-1]["participants"] == ["Org1MSP", "Org2MSP", "Org3MSP"]  # everyone back
    verify = subprocess.run([sys.executable, "-m", "blockfedml.cli.main", "audit", "verify", "-w",
                             str(consortium.workdir), "--json"], capture_output=True, text=True)
    report = json.loads(verify.stdout)
    # 0, or 3 (partly verified): the sealed updates went to the aggregator only, over gRPC
    assert verify.returncode in (0, 3) and report["ok"], verify.stdout
    return rounds


@pytest.fixture
def consortium(tmp_path):
    c = Consortium.create(tmp_path / "c", n_orgs=3, task=TaskSpec(), settings=SETTINGS, auditor=True)
    yield c
    c.close()


@pytest.mark.parametrize("victim", ["Org3", "Org1"], ids=["member", "aggregator"])
def test_member_killed_before_committing(consortium, victim):
    """Killed once it accepted round 1: at the update deadline the round goes on without it (the
    aggregator Org1 is replaced by Org2); restarted, it takes part in round 2."""
    w, admin = str(consortium.workdir), consortium.contract("Org1")
    procs = {org: _member(w, org) for org in MEMBERS}
    procs["admin"] = _drive(w)
    try:
        _until(consortium, lambda: f"{victim}MSP" in _records(admin, "GetAcceptances", 1), f"{victim} to accept")
        _kill(procs[victim])
        procs[f"{victim} (killed)"] = procs.pop(victim)
        _until(consortium, lambda: (_round(admin, 1) or {}).get("phase") == "closed", "round 1 to close")
        procs[victim] = _member(w, victim, rounds=1)  # docs/operations.md: start it again
        outcomes = _finish(procs)
    finally:
        _stop(procs)
    rounds = _check_outcome(consortium, outcomes)
    first = rounds[0]
    assert first["decision"]["status"] == "accepted" and first["absent"] == [f"{victim}MSP"]
    assert first["aggregator"] == ("Org2MSP" if victim == "Org1" else "Org1MSP")


def test_member_killed_after_committing(consortium):
    """Org3 dies once its update is committed: the aggregate still holds it; at the feedback
    deadline the round is decided over the two that remain."""
    w, admin = str(consortium.workdir), consortium.contract("Org1")
    procs = {org: _member(w, org) for org in MEMBERS}
    procs["admin"] = _drive(w)
    try:
        _until(consortium, lambda: "Org3MSP" in _records(admin, "GetUpdates", 1), "Org3 to commit")
        _kill(procs["Org3"])
        procs["Org3 (killed)"] = procs.pop("Org3")
        _until(consortium, lambda: (_round(admin, 1) or {}).get("phase") == "closed", "round 1 to close")
        procs["Org3"] = _member(w, "Org3", rounds=1)
        outcomes = _finish(procs)
    finally:
        _stop(procs)
    first = _check_outcome(consortium, outcomes)[0]
    assert first["decision"]["status"] == "accepted"
    assert "Org3MSP" in first["proposal"]["contributors"]


def test_aggregator_killed_while_aggregating_and_restarted(consortium):
    """Org1, round 1's aggregator, dies as soon as every update is committed (while it collects,
    or just after it proposed); started again it picks up: its inbox and its own update were kept
    in its folder. Had it stayed down, the update deadline would have named a new aggregator."""
    w, admin = str(consortium.workdir), consortium.contract("Org1")
    procs = {org: _member(w, org) for org in MEMBERS}
    procs["admin"] = _drive(w)
    try:
        _until(consortium, lambda: len(_records(admin, "GetUpdates", 1)) == 3, "every update of round 1")
        _kill(procs["Org1"])
        procs["Org1 (killed)"] = procs.pop("Org1")
        procs["Org1"] = _member(w, "Org1")  # the same command again, at once
        outcomes = _finish(procs)
    finally:
        _stop(procs)
    rounds = _check_outcome(consortium, outcomes)
    assert [r["decision"]["status"] for r in rounds] == ["accepted", "accepted"]
    assert rounds[0]["aggregator"] == "Org1MSP" and rounds[0]["proposal"]["contributors"] == [
        "Org1MSP", "Org2MSP", "Org3MSP"]


def test_key_holder_killed_and_restarted(tmp_path):
    """Paillier: the key holder dies once a sum waits for it; started again, it decrypts it."""
    consortium = Consortium.create(tmp_path / "c", n_orgs=3, task=TaskSpec(), settings=SETTINGS, collaborator=True)
    w, admin = str(consortium.workdir), consortium.contract("Org1")
    keyholder = ("member", "keyholder", "-w", w, "--org", "Collaborator", "--timeout", str(LIMIT))
    procs = {org: _member(w, org) for org in MEMBERS}
    procs["keyholder"] = _cli(*keyholder, "--rounds", "2")
    procs["admin"] = _drive(w, "paillier")
    try:
        _until(consortium, lambda: _round(admin, 1) and _round(admin, 1)["phase"] == "update"
               and admin.evaluate_json("GetDecryptions", 1), "a sum to decrypt")
        _kill(procs["keyholder"])
        procs["keyholder (killed)"] = procs.pop("keyholder")
        procs["keyholder"] = _cli(*keyholder, "--round", "1", "--rounds", "2")
        outcomes = _finish(procs)
    finally:
        _stop(procs)
    rounds = _check_outcome(consortium, outcomes)
    assert [r["decision"]["status"] for r in rounds] == ["accepted", "accepted"]
    consortium.close()


def test_admin_driver_killed_mid_round(consortium):
    """The driver dies with round 1 open; `admin round drive` started again resumes it from its phase."""
    w, admin = str(consortium.workdir), consortium.contract("Org1")
    procs = {org: _member(w, org) for org in MEMBERS}
    procs["admin"] = _drive(w)
    try:
        # (a plaintext round whose members accepted while screening goes from selection to update at once)
        _until(consortium, lambda: (_round(admin, 1) or {}).get("phase") == "update", "round 1 to be in update")
        _kill(procs["admin"])
        procs["admin (killed)"] = procs.pop("admin")
        procs["admin"] = _drive(w)  # resumes round 1, then drives round 2
        outcomes = _finish(procs)
    finally:
        _stop(procs)
    rounds = _check_outcome(consortium, outcomes)
    assert [r["decision"]["status"] for r in rounds] == ["accepted", "accepted"]
    assert [r["round"] for r in json.loads(outcomes["admin"][1])] == [1, 2]


def test_ledger_service_killed_mid_round(consortium):
    """The ledger service dies with round 1 in its update phase: `blockfedml ledger start` brings it
    back (every acknowledged transaction was on disk), and every command that exited meanwhile is
    started again, as docs/operations.md says."""
    from blockfedml import ledger_host

    w, admin = str(consortium.workdir), consortium.contract("Org1")
    procs = {org: _member(w, org) for org in MEMBERS}
    procs["admin"] = _drive(w)
    try:
        _until(consortium, lambda: (_round(admin, 1) or {}).get("phase") == "update", "round 1 to be in update")
        os.kill(ledger_host.running_pid(w), signal.SIGKILL)
        wait_for_service(consortium.service.address, 30, up=False)  # the kernel closes its socket
        restarted = ledger_host.start_background(w)
        assert ledger_host.running_pid(w) == restarted
        restarted: set[str] = set()

        def restart_what_exited() -> bool:
            """Whatever noticed the outage exits (now or later): the same command again, once."""
            for name in [n for n in procs if not n.endswith("(killed)") and n not in restarted]:
                if procs[name].poll() is not None and procs[name].returncode != 0:
                    procs[f"{name} (killed)"] = procs.pop(name)
                    procs[name] = _drive(w) if name == "admin" else _member(w, name)
                    restarted.add(name)
            return all(proc.poll() is not None for proc in procs.values())

        _until(consortium, restart_what_exited, "every command to finish")
        outcomes = _finish(procs)
        for name in [n for n in procs if n.endswith("(killed)")]:
            outcomes.pop(name)
    finally:
        _stop(procs)
    rounds = _check_outcome(consortium, outcomes)
    assert [r["decision"]["status"] for r in rounds][-1] == "accepted"
