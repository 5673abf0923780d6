"""Ending rounds that cannot finish, from the command line (docs/operations.md)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from blockfedml import ledger_host, org_host
from blockfedml.cli.main import app
from blockfedml.consortium import Consortium

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_a_consortium_of_one_is_refused_at_creation_and_nothing_is_written(tmp_path):
    workdir = tmp_path / "solo"
    result = run("admin", "consortium", "create", "-w", str(workdir), "--orgs", "1")
    assert result.exit_code == 1
    assert "min_participants=2" in result.output and "--orgs" in result.output
    assert not workdir.exists()
    # Lowering the rules does not help: an opened sum needs min_group_size >= 2 others (issue 16).
    lowered = run("admin", "consortium", "create", "-w", str(workdir), "--orgs", "1", "-s", "min_participants=1",
                  "-s", "min_group_size=1", "--json")
    assert lowered.exit_code == 1 and "min_group_size" in lowered.output
    assert not workdir.exists()


def test_bad_settings_are_refused_before_anything_is_written(tmp_path):
    workdir = tmp_path / "bad"
    result = run("admin", "consortium", "create", "-w", str(workdir), "-s", "update_deadline=-3")
    assert result.exit_code == 1 and "update_deadline" in result.output
    assert not workdir.exists()


def test_admin_aborts_an_open_round_and_the_next_one_is_accepted(tmp_path):
    w = str(tmp_path / "c")
    assert run("admin", "consortium", "create", "-w", w, "--json").exit_code == 0
    for org in ("Org1", "Org2", "Org3"):
        assert run("member", "join", "-w", w, "--org", org, "--json").exit_code == 0
    assert run("admin", "round", "open", "-w", w, "--json").exit_code == 0
    assert run("admin", "round", "abort", "1", "-w", w).exit_code == 2            # --reason is required
    aborted = run("admin", "round", "abort", "1", "--reason", "wrong dataset", "-w", w, "--json")
    assert aborted.exit_code == 0, aborted.output
    decision = json.loads(aborted.output)["decision"]
    assert decision["status"] == "aborted" and decision["reason"] == "wrong dataset"
    assert decision["absentees"] == ["Org1MSP", "Org2MSP", "Org3MSP"] and decision["penalized"] == []
    again = runner.invoke(app, ["admin", "round", "abort", "1", "--reason", "again", "-w", w])
    assert again.exit_code == 1 and "already closed" in again.output
    result = run("admin", "round", "run", "-w", w, "--json")
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in json.loads(result.output)] == ["accepted"]
    verify = run("audit", "verify", "-w", w, "--json")
    assert verify.exit_code == 0 and json.loads(verify.output)["ok"] is True, verify.output


def test_admin_closes_a_phase_only_after_its_deadline(tmp_path):
    w = str(tmp_path / "c")
    assert run("admin", "consortium", "create", "-w", w, "-s", "selection_deadline=5", "--json").exit_code == 0
    for org in ("Org1", "Org2"):
        assert run("member", "join", "-w", w, "--org", org, "--json").exit_code == 0
    assert run("admin", "round", "open", "-w", w, "--json").exit_code == 0
    early = runner.invoke(app, ["admin", "round", "close", "1", "-w", w])
    assert early.exit_code == 1 and "may be closed in" in early.output and "--wait" in early.output
    closed = run("admin", "round", "close", "1", "--wait", "20", "-w", w, "--json")
    assert closed.exit_code == 0, closed.output
    decision = json.loads(closed.output)["decision"]   # nobody screened: too few, aborted
    assert decision["status"] == "aborted" and decision["absentees"] == ["Org1MSP", "Org2MSP"]


def test_member_round_says_what_it_waits_for_at_once(tmp_path):
    w = str(tmp_path / "c")
    assert run("admin", "consortium", "create", "-w", w, "--json").exit_code == 0
    founder = Consortium.open(w, org="Org1")
    # members take part through the ledger service, and fetch the genesis model from its producer
    with ledger_host.serving(w), org_host.serving_blobs(founder, "Org1"):
        result = runner.invoke(app, ["member", "round", "-w", w, "--org", "Org2", "--exchange", "store", "--timeout", "1"],
                               env={"COLUMNS": "300"})
        assert result.exit_code == 1
        lines = result.output.splitlines()
        assert lines[0].startswith("round 1: waiting for it to open")      # at once, before any timeout
        assert "did not close within 1 s" in result.output and "waiting for it to open" in lines[-1]
        assert run("member", "join", "-w", w, "--org", "Org1", "--json").exit_code == 0
        assert run("admin", "round", "open", "-w", w, "--json").exit_code == 0
        result = runner.invoke(app, ["member", "round", "-w", w, "--org", "Org2", "--exchange", "store", "--timeout", "1"],
                               env={"COLUMNS": "300"})
        assert "round 1: selection: screen" in result.output
        assert "round 1: selection: waiting for Org1MSP (deadline in" in result.output  # Org3 never joined
