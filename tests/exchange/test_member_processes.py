"""Three members, each its own ``blockfedml member round`` process, talking over the
mutual-TLS exchange while the admin advances the phases: an accepted checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from blockfedml import ledger_host
from blockfedml.consortium import Consortium
from blockfedml.fl.task import TaskSpec


def _member_process(workdir, org: str, number: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "blockfedml.cli.main", "member", "round", "-w", str(workdir),
               "--org", org, "--round", str(number), "--exchange", "grpc", "--timeout", "120", "--json"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_until(consortium: Consortium, procs, done, what: str, timeout: float = 120.0) -> None:
    """Wait on new blocks (from any process) until ``done()``; fail early if a member died."""
    ledger, deadline = consortium.ledger, time.monotonic() + timeout
    while True:
        height = ledger.height()
        if done():
            return
        for proc in procs:
            if proc.poll() is not None and proc.returncode != 0:
                pytest.fail(f"a member process failed while waiting for {what}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        try:
            ledger.wait_for_height(height + 1, timeout=1.0)
        except Exception:
            pass


def _calls(consortium: Consortium, function: str) -> int:
    return sum(1 for b in consortium.ledger.iter_blocks(1)
               if b["validation_code"] == "VALID" and b["transaction"]["function"] == function)


def test_three_member_processes_finish_a_round_over_the_exchange(tmp_path):
    """Every transaction, the admin's too, goes through the ledger service process."""
    Consortium.create(tmp_path / "c", n_orgs=3, task=TaskSpec(), auditor=False).close()
    ledger_host.start_background(tmp_path / "c")
    consortium = Consortium.open(tmp_path / "c", ledger_access="service")
    admin = consortium.contract("Org1")
    for org in ("Org1", "Org2", "Org3"):
        consortium.contract(org).submit_json("Join")
    number = admin.submit_json("OpenRound", "plaintext")["round"]
    procs = [_member_process(consortium.workdir, org, number) for org in ("Org1", "Org2", "Org3")]
    try:
        _wait_until(consortium, procs, lambda: len(admin.evaluate_json("GetScreenings", number)) == 3,
                    "three screenings")
        # every member accepted the terms in its screening transaction (EnterRound): allocated at once
        assert admin.submit_json("CloseSelection", number)["phase"] == "update"
        assert _calls(consortium, "EnterRound") == 3 and _calls(consortium, "AcceptTerms") == 0
        _wait_until(consortium, procs, lambda: len(admin.evaluate_json("GetEndorsements", number)) == 3,
                    "the aggregate and three endorsements")
        decided = admin.submit_json("Decide", number)
        outputs = [proc.communicate(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    reports = [json.loads(out) for out, _ in outputs]

    assert decided["decision"]["status"] == "accepted"
    assert admin.evaluate_json("GetHead")["checkpoint"] == decided["proposal"]["digest"]
    assert all(r["decision"]["status"] == "accepted" for r in reports)
    aggregator = decided["aggregator"]
    for org, report in zip(("Org1MSP", "Org2MSP", "Org3MSP"), reports):
        actions = [a["action"] for a in report["actions"]]
        assert actions[:2] == ["screen", "train_and_commit"] and actions[-1] == "endorse"  # screen accepts too
        assert ("aggregate" in actions) == (org == aggregator)
    # The sealed updates travelled over the exchange only: none is in the shared store,
    # so no third organization could read another's update there.
    updates = admin.evaluate_json("GetUpdates", number)
    assert len(updates) == 3 and not any(u["digest"] in consortium.store for u in updates)
    consortium.close()
