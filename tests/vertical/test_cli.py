"""``blockfedml vertical``: the demo (threads and real processes over mutual TLS), parties, audit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from blockfedml.cli.main import app
from blockfedml import ledger_host
from blockfedml.consortium import Consortium
from blockfedml.vertical.ledger import VerticalLedger

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_help_is_everywhere():
    for command in (["vertical"], ["vertical", "party"], ["vertical", "demo"], ["vertical", "verify"]):
        result = run(*command, "--help")
        assert result.exit_code == 0 and "Usage" in result.output, command


def test_demo_with_three_processes_trains_audits_and_matches_centralized(tmp_path):
    workdir = tmp_path / "v"
    result = run("vertical", "demo", "-w", str(workdir), "--encryption", "plain", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["audit"]["ok"], summary["audit"]["problems"]
    b = summary["parties"]["B"]
    assert b["iterations"] == summary["parties"]["A"]["iterations"] == summary["parties"]["C"]["iterations"] > 3
    assert abs(b["metrics"]["test_mse"] / summary["centralized"]["test_mse"] - 1) < 0.01
    listed = run("vertical", "sessions", "-w", str(workdir), "--json")
    assert [s["phase"] for s in json.loads(listed.output)] == ["finished"]
    verified = run("vertical", "verify", summary["session"], "-w", str(workdir), "--json")
    assert verified.exit_code == 0 and json.loads(verified.output)["models_checked"] == ["A", "B"]


def test_an_unreachable_collaborator_is_a_clear_error_and_writes_nothing(tmp_path):
    workdir = tmp_path / "v"
    assert run("vertical", "demo", "-w", str(workdir), "--encryption", "plain", "--in-process",
               "--max-iterations", "2", "--json").exit_code == 0
    with ledger_host.serving(workdir):  # the parties reach the ledger through its service
        _lonely_session(workdir)
    ledger = VerticalLedger(Consortium.open(workdir).contract("Auditor"))
    assert "lonely" not in [s["session"] for s in ledger.sessions()]


def _lonely_session(workdir):
    party_a = subprocess.Popen([sys.executable, "-m", "blockfedml.cli.main", "vertical", "party", "A", "-w",
                                str(workdir), "--data", str(workdir / "data" / "a.csv"), "--timeout", "30"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        result = runner.invoke(app, ["vertical", "party", "B", "-w", str(workdir), "--data",
                                     str(workdir / "data" / "b.csv"), "--label", "label", "--session", "lonely",
                                     "--timeout", "10"])
    finally:
        _, a_err = party_a.communicate(timeout=60)
    assert result.exit_code == 1
    assert "ExchangeError" in result.output and "collaborator C" in result.output
    assert "party B aborted" in a_err  # A was told, it did not wait for its timeout


@pytest.mark.slow
def test_demo_with_paillier_over_processes(tmp_path):
    result = run("vertical", "demo", "-w", str(tmp_path / "v"), "--max-iterations", "4", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["audit"]["ok"] and summary["parties"]["B"]["iterations"] == 4
