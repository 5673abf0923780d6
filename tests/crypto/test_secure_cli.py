"""``--secure`` on the demo and on ``admin round run``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from blockfedml.cli.main import app
from blockfedml.consortium import Consortium
from blockfedml.errors import InvalidInputError
from blockfedml.fl.session import Session

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize("secure", ["paillier", "masking"])
def test_the_demo_runs_secure_rounds(tmp_path, secure):
    result = run("demo", "--rounds", "1", "--secure", secure, "--workdir", str(tmp_path / secure), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["mode"] == secure and summary["rounds"][0]["status"] == "accepted"
    c = Consortium.open(tmp_path / secure)
    try:
        requests = c.contract("Auditor").evaluate_json("GetDecryptions", 1)
        assert len(requests) == 1 and requests[0]["result"] is not None
        if secure == "paillier":
            assert c.contract("Auditor").evaluate_json("GetRound", 1)["keyholder"] == "CollaboratorMSP"
    finally:
        c.close()


def test_paillier_without_a_collaborator_fails_before_anything_is_written(tmp_path):
    workdir = tmp_path / "c"
    assert run("admin", "consortium", "create", "-w", str(workdir), "--json").exit_code == 0
    c = Consortium.open(workdir)
    height = c.ledger.height()
    with pytest.raises(InvalidInputError, match="Collaborator"):
        Session(c, mode="paillier")
    c.close()
    result = run("admin", "round", "run", "-w", str(workdir), "--secure", "paillier")
    assert result.exit_code == 1 and "--collaborator" in result.output
    assert run("demo", "--secure", "rsa", "-w", str(tmp_path / "d")).exit_code != 0
    c = Consortium.open(workdir)
    assert c.ledger.height() == height
    c.close()
