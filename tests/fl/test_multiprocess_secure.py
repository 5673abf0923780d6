"""Secure rounds with every organization in its own process (docs/secure-aggregation.md).

Three ``blockfedml member round --exchange grpc`` processes, the key holder's
``blockfedml member keyholder`` (Paillier) and the admin's ``blockfedml admin
round drive``, all through the ledger service (the drive starts it), then the
auditor's ``blockfedml audit verify``: each round ends with an accepted checkpoint whose parameters are
the in-process plaintext session's to the fixed-point step, and no sealed update
ever reaches the shared store. A member killed after committing is recovered
by the others' mask shares and the coordinator's timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from blockfedml import ledger_host
from blockfedml.consortium import Consortium
from blockfedml.errors import InvalidInputError, LedgerError, NotFoundError
from blockfedml.fl.coordinator import coordinate_rounds
from blockfedml.fl.session import Session
from blockfedml.fl.task import TaskSpec
from blockfedml.ml.serialization import load_params

MEMBERS = ("Org1", "Org2", "Org3")
FIXED_POINT_STEP = 2.0 ** -20  # crypto/encoding.py: FixedPoint(frac_bits=20)


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "blockfedml.cli.main", *args, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run_processes(workdir, secure: str, timeout: float = 90.0) -> dict[str, tuple[int, str, str]]:
    """Every organization and the coordinator in its own process; their exit codes and outputs."""
    w = str(workdir)
    procs = {org: _cli("member", "round", "-w", w, "--org", org, "--round", "1", "--exchange", "grpc",
                       "--timeout", str(timeout)) for org in MEMBERS}
    if secure == "paillier":
        procs["Collaborator"] = _cli("member", "keyholder", "-w", w, "--org", "Collaborator", "--round", "1",
                                     "--timeout", str(timeout))
    procs["admin"] = _cli("admin", "round", "drive", "-w", w, "--rounds", "1", "--secure", secure,
                          "--timeout", str(timeout))
    return _finish(procs, timeout)


def _finish(procs: dict[str, subprocess.Popen], timeout: float) -> dict[str, tuple[int, str, str]]:
    try:
        outputs = {name: proc.communicate(timeout=timeout) for name, proc in procs.items()}
        return {name: (procs[name].returncode, *out) for name, out in outputs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _params(consortium: Consortium, digest: str) -> np.ndarray:
    return load_params(consortium.store, digest)[0]


@pytest.fixture(scope="module")
def plaintext_params(tmp_path_factory) -> np.ndarray:
    """The in-process plaintext session's first checkpoint: what every secure round must reproduce."""
    consortium = Consortium.create(tmp_path_factory.mktemp("plain") / "c", n_orgs=3, task=TaskSpec(),
                                   auditor=False)
    result = Session(consortium).run(1)[0]
    assert result.status == "accepted"
    params = _params(consortium, result.digest)
    consortium.close()
    return params


@pytest.mark.parametrize("secure", ["masking", "paillier"])
def test_secure_round_with_every_organization_in_its_own_process(tmp_path, secure, plaintext_params):
    consortium = Consortium.create(tmp_path / "c", n_orgs=3, task=TaskSpec(), auditor=True,
                                   collaborator=secure == "paillier",
                                   settings={"update_deadline": 60})  # a loaded machine is not a dropout
    outcomes = _run_processes(consortium.workdir, secure)
    assert ledger_host.running_pid(consortium.workdir) is not None  # the drive started the service
    for name, (code, _, err) in outcomes.items():
        assert code == 0, f"{name} failed: {err}"
    [summary] = json.loads(outcomes["admin"][1])
    assert summary["mode"] == secure and summary["status"] == "accepted"
    assert summary["participants"] == ["Org1MSP", "Org2MSP", "Org3MSP"]

    admin = consortium.contract("Org1")
    round_ = admin.evaluate_json("GetRound", 1)
    assert admin.evaluate_json("GetHead")["checkpoint"] == round_["proposal"]["digest"] == summary["digest"]
    [request] = admin.evaluate_json("GetDecryptions", 1)  # exactly one sum opened, over all three
    assert request["contributors"] == round_["participants"] and request["result"] is not None
    # Secure aggregation is exact: the plaintext session's model, to the fixed-point step.
    secure_params = _params(consortium, summary["digest"])
    assert np.max(np.abs(secure_params - plaintext_params)) <= 2 * FIXED_POINT_STEP
    # The sealed updates travelled over the mutual-TLS exchange only. Masked updates never reach the
    # shared store; Paillier ciphertexts do, published by the aggregator for the key holder, which
    # multiplies the committed ciphertexts itself (only the key holder could read them).
    in_store = [u["digest"] in consortium.store for u in admin.evaluate_json("GetUpdates", 1)]
    assert all(in_store) if secure == "paillier" else not any(in_store)
    if secure == "paillier":
        [served] = json.loads(outcomes["Collaborator"][1])
        assert served["opened"] == ["decrypt [0]"] and round_["keyholder"] == "CollaboratorMSP"
    else:
        assert {r["msp_id"] for r in admin.evaluate_json("GetMaskReveals", 1)} == set(round_["participants"])
    # Every block was endorsed and signed by the ledger node, and no check of the auditor fails
    # (exit 3: the sealed updates went to the aggregator only, so they cannot all be re-summed).
    audit = subprocess.run([sys.executable, "-m", "blockfedml.cli.main", "audit", "verify", "-w",
                            str(consortium.workdir), "--json"], capture_output=True, text=True, timeout=300)
    assert audit.returncode in (0, 3), audit.stdout + audit.stderr
    checks = {c["name"]: c["status"] for c in json.loads(audit.stdout)["checks"]}
    assert checks["ledger"] == checks["replay"] == "pass" and "fail" not in checks.values()
    consortium.close()


@pytest.mark.slow
def test_masking_round_survives_a_member_killed_after_committing(tmp_path, plaintext_params):
    """Org3 dies once its update is committed: its self-mask is rebuilt from the survivors'
    shares, the coordinator stops waiting for its endorsement and decides with the quorum."""
    consortium = Consortium.create(tmp_path / "c", n_orgs=3, task=TaskSpec(), auditor=False)
    admin, w, patience = consortium.contract("Org1"), str(consortium.workdir), 12.0
    procs = {org: _cli("member", "round", "-w", w, "--org", org, "--round", "1", "--exchange", "grpc",
                       "--timeout", "90") for org in MEMBERS}
    procs["admin"] = _cli("admin", "round", "drive", "-w", w, "--secure", "masking", "--timeout", str(patience))
    victim = procs["Org3"]
    try:
        deadline = time.monotonic() + 90
        while True:  # woken by each new block
            height = consortium.ledger_height()
            if _committed(admin, "Org3MSP"):
                break
            assert time.monotonic() < deadline and victim.poll() is None, "Org3 never committed its update"
            consortium.wait_for_block(height, timeout=1.0)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        outcomes = _finish({k: v for k, v in procs.items() if k != "Org3"}, timeout=90)
    finally:
        _finish(procs, timeout=1)
    for name, (code, _, err) in outcomes.items():
        assert code == 0, f"{name} failed: {err}"
    [summary] = json.loads(outcomes["admin"][1])
    assert summary["status"] == "accepted"

    round_ = admin.evaluate_json("GetRound", 1)
    assert round_["aggregator"] == "Org1MSP" and round_["decision"]["endorsements"] == 2
    assert "Org3MSP" not in {e["msp_id"] for e in admin.evaluate_json("GetEndorsements", 1)}
    [request] = admin.evaluate_json("GetDecryptions", 1)
    assert request["contributors"] == ["Org1MSP", "Org2MSP", "Org3MSP"]  # its update counts ...
    revealed = {r["msp_id"] for r in admin.evaluate_json("GetMaskReveals", 1)}
    assert revealed == {"Org1MSP", "Org2MSP"}  # ... though it never revealed a share
    assert np.max(np.abs(_params(consortium, summary["digest"]) - plaintext_params)) <= 2 * FIXED_POINT_STEP
    consortium.close()


def _committed(admin, msp_id: str) -> bool:
    try:
        return msp_id in {u["msp_id"] for u in admin.evaluate_json("GetUpdates", 1)}
    except NotFoundError:  # round 1 not opened yet
        return False


def test_coordinator_names_what_it_waits_for(tmp_path):
    """Nobody runs: the coordinator gives up naming the members that never joined; a paillier
    drive without a key holder is refused before anything is written."""
    consortium = Consortium.create(tmp_path / "c", n_orgs=3, task=TaskSpec(), auditor=False)
    height = consortium.ledger.height()
    with pytest.raises(InvalidInputError, match="key holder that is not a member"):
        coordinate_rounds(consortium, 1, mode="paillier", timeout=0.2)
    with pytest.raises(LedgerError, match="Org1MSP, Org2MSP, Org3MSP to join"):
        coordinate_rounds(consortium, 1, mode="masking", timeout=0.2)
    assert consortium.ledger.height() == height  # nothing was written
    consortium.close()


def test_a_reveal_arriving_after_the_unmasking_is_not_needed(tmp_path):
    """Across processes the aggregator may unmask from the threshold (2 of 3) of reveals before
    the third member reveals; that member then has nothing to add and writes nothing."""
    consortium = Consortium.create(tmp_path / "c", n_orgs=3, task=TaskSpec(), auditor=False)
    session = Session(consortium, mode="masking")
    session.join_all()
    admin, members = session.admin, session.members

    def step() -> dict:
        round_ = admin.evaluate_json("GetRound", 1)
        for member in members:
            member.act(round_)
        return round_

    admin.submit_json("OpenRound", "masking")
    step()
    admin.submit_json("CloseSelection", 1)
    step()
    admin.submit_json("Allocate", 1)
    round_ = step()
    aggregator = next(m for m in members if m.msp_id == round_["aggregator"])
    late = next(m for m in reversed(members) if m is not aggregator)
    assert aggregator.aggregate(round_)["contributors"] == round_["participants"]  # the sum to open
    for member in members:
        if member is not late:
            member.reveal_mask_shares(round_)
    assert aggregator.aggregate(round_) is not None  # unmasked from two reveals, and proposed
    assert admin.evaluate_json("GetRound", 1)["phase"] == "feedback"
    height = consortium.ledger.height()
    assert late.reveal_mask_shares(round_) is None
    assert consortium.ledger.height() == height
    assert late.msp_id not in {r["msp_id"] for r in admin.evaluate_json("GetMaskReveals", 1)}
    consortium.close()
