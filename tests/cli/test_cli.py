"""The command line as the three kinds of user run it."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from blockfedml.cli.main import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_help_is_everywhere():
    for command in ([], ["admin"], ["admin", "round"], ["member"], ["audit"], ["demo"]):
        result = run(*command, "--help")
        assert result.exit_code == 0, command
        assert "Usage" in result.output


def test_demo_json_reports_every_round_and_where_things_are(tmp_path):
    workdir = tmp_path / "demo"
    result = run("demo", "--rounds", "2", "--workdir", str(workdir), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert [r["round"] for r in summary["rounds"]] == [1, 2]
    assert all(r["status"] == "accepted" for r in summary["rounds"])
    assert (workdir / "ledger.sqlite").exists() and summary["ledger"].endswith("ledger.sqlite")
    assert summary["blocks"] > 2 * 10


def test_demo_runs_a_sleeper_that_turns_in_the_round_asked(tmp_path):
    """--attack-start: the sleeper trains honestly in round 1 and sign-flips from round 2; with
    attribution its group is scored harmful only then."""
    result = run("demo", "--orgs", "4", "--rounds", "2", "--attack", "sleeper", "--attackers", "0.25",
                 "--attack-start", "2", "--attribution", "--setting", "min_group_size=1",
                 "--workdir", str(tmp_path / "d"), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["attackers"] == ["Org4MSP"]
    verdicts = [{g["members"][0]: g["verdict"] for g in r["groups"]} for r in summary["rounds"]]
    assert verdicts[0]["Org4MSP"] == "accepted" and verdicts[1]["Org4MSP"] == "harmful"
    assert all(v == "accepted" for r in verdicts for m, v in r.items() if m != "Org4MSP")


def test_demo_table_names_the_ledger_and_store(tmp_path):
    result = runner.invoke(app, ["demo", "--rounds", "1", "--workdir", str(tmp_path / "d")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Org1" in result.output and "accepted" in result.output and "accuracy" in result.output
    assert "ledger.sqlite" in result.output and "store" in result.output


def test_admin_member_and_auditor_workflow(tmp_path):
    w = str(tmp_path / "c")
    assert run("admin", "consortium", "create", "-w", w, "--orgs", "3", "--json").exit_code == 0
    assert run("admin", "settings", "set", "penalty=30", "-w", w, "--json").exit_code == 0
    settings = json.loads(run("admin", "settings", "show", "-w", w, "--json").output)
    assert settings["penalty"] == 30
    for org in ("Org1", "Org2", "Org3"):
        assert run("member", "join", "-w", w, "--org", org, "--json").exit_code == 0
    result = run("admin", "round", "run", "-w", w, "--rounds", "2", "--json")
    assert result.exit_code == 0, result.output
    rounds = json.loads(run("audit", "rounds", "-w", w, "--json").output)
    assert [r["phase"] for r in rounds] == ["closed", "closed"]
    lineage = json.loads(run("audit", "checkpoint", "2", "-w", w, "--json").output)
    assert [c["round"] for c in lineage] == [2, 1, 0]
    history = json.loads(run("audit", "reputation", "-w", w, "--org", "Org2MSP", "--json").output)
    improved = [r["decision"]["improvement"] > 0 for r in rounds]  # no reward without improvement
    assert improved[0]                                                # round 1 beats the random genesis model
    assert [e["balance"] for e in history] == [100 + 10 * k for k in range(1 + sum(improved))]
    verify = run("audit", "verify", "-w", w, "--json")
    assert verify.exit_code == 0 and json.loads(verify.output)["ok"] is True


def test_errors_are_one_clear_line_and_exit_code_1(tmp_path):
    result = runner.invoke(app, ["audit", "rounds", "-w", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "no consortium in" in result.output
    w = str(tmp_path / "c")
    run("admin", "consortium", "create", "-w", w)
    result = runner.invoke(app, ["admin", "round", "advance", "7", "-w", w])
    assert result.exit_code == 1 and "round 7 does not exist" in result.output
    result = runner.invoke(app, ["admin", "settings", "set", "penalty=lots", "-w", w])
    assert result.exit_code != 0 and "penalty" in result.output
