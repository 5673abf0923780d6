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
    assert (workdir / "ledger" / "ledger.sqlite").exists() and summary["ledger"].endswith("ledger.sqlite")
    assert summary["blocks"] > 2 * 10


def test_demo_runs_a_sleeper_that_turns_in_the_round_asked(tmp_path):
    """--attack-start: the sleeper trains honestly in round 1 and sign-flips from round 2; with
    attribution its group is valued lowest only then (two honest partners dilute it: one round is
    not enough to call a group of three harmful)."""
    result = run("demo", "--orgs", "6", "--rounds", "2", "--attack", "sleeper", "--attackers", "0.2",
                 "--attack-start", "2", "--attribution", "--workdir", str(tmp_path / "d"), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    [attacker] = summary["attackers"]  # two groups of three (min_group_size + 1)
    first, second = summary["rounds"]
    assert all(g["verdict"] == "accepted" for g in first["groups"]), first["groups"]
    scores = {attacker in g["members"]: g["score"] for g in second["groups"]}
    assert scores[True] < scores[False], second["groups"]


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


def test_readme_attack_example_ends_with_a_table_when_every_member_is_banned(tmp_path):
    """The README's attack example: rollback alone bans everyone; the session stops cleanly, says why,
    and leaves no round stuck on the ledger."""
    w = str(tmp_path / "att")
    result = runner.invoke(app, ["demo", "--attack", "sign_flip", "--attackers", "0.3", "--lie", "-w", w],
                           env={"COLUMNS": "200"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "rolled back" in result.output and "Stopped after round 4 of 10" in result.output
    assert "every member is banned" in result.output and "min_participants=2" in result.output
    rounds = json.loads(run("audit", "rounds", "-w", w, "--json").output)
    assert [r["phase"] for r in rounds] == ["closed"] * 4  # no fifth round opened and left in selection
    as_json = json.loads(run("demo", "--attack", "sign_flip", "--lie", "--rounds", "6", "-w", w, "--json").output)
    assert len(as_json["rounds"]) == 4 and "every member is banned" in as_json["stopped"]


def test_demo_hint_runs_as_printed_when_the_venv_is_not_activated(tmp_path):
    """After ``make demo`` the venv is not on PATH: the closing hint names a command that works anyway."""
    import os
    import shlex
    import subprocess
    import sys

    env = {**os.environ, "PATH": "/usr/bin:/bin", "COLUMNS": "300"}
    demo = subprocess.run([sys.executable, "-m", "blockfedml.cli.main", "demo", "--rounds", "1", "-w", "d"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    hint = next(line for line in demo.stdout.splitlines() if line.startswith("Audit it:"))
    command = hint.removeprefix("Audit it:").split("(")[0].strip()
    assert not command.startswith("blockfedml "), command  # not on this PATH
    assert "/activate" in demo.stdout
    verify = subprocess.run(shlex.split(command), cwd=tmp_path, env=env, capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_every_number_says_what_it_is_and_on_which_data(tmp_path):
    """The demo table names dataset, model and metric and ends with the centralized baseline; the
    audit commands show the same validation metric as a fraction, not the ledger's integer."""
    w = str(tmp_path / "d")
    result = runner.invoke(app, ["demo", "--rounds", "2", "-w", w], env={"COLUMNS": "250"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())  # captions wrap at the table width
    assert "breast_cancer (iid), logreg model, 3 organizations" in out
    assert "test accuracy" in out and "validation accuracy" in out and "held-out test data (113 samples)" in out
    assert "Centralized baseline: test accuracy 0." in out and "gap to centralized" in out
    summary = json.loads(run("demo", "--rounds", "2", "-w", w, "--json").output)
    last = summary["rounds"][-1]
    assert 0 < last["validation_accuracy"] <= 1 and last["test_accuracy"] == last["head_accuracy"]
    assert summary["task"]["model"] == "logreg" and 0.5 < summary["task"]["centralized"]["test_accuracy"] <= 1
    ledger_int = json.loads(run("audit", "rounds", "-w", w, "--json").output)[-1]
    assert ledger_int["decision"]["metric"] == round(last["validation_accuracy"] * 1_000_000)  # raw, labelled
    assert ledger_int["validation_accuracy"] == last["validation_accuracy"]
    table = runner.invoke(app, ["audit", "rounds", "-w", w], env={"COLUMNS": "250"}).output
    assert "validation accuracy" in table and f"{last['validation_accuracy']:.4f}" in table
    assert str(ledger_int["decision"]["metric"]) not in table
    checkpoints = runner.invoke(app, ["audit", "checkpoints", "-w", w], env={"COLUMNS": "250"}).output
    assert "0.0000" not in checkpoints  # the genesis model was never endorsed: no placeholder 0 shown


def test_org_register_refuses_an_organization_the_consortium_does_not_have(tmp_path):
    w = str(tmp_path / "c")
    assert run("admin", "consortium", "create", "-w", w, "--orgs", "2", "--json").exit_code == 0
    before = json.loads(run("admin", "org", "list", "-w", w, "--json").output)
    refused = runner.invoke(app, ["admin", "org", "register", "Org9MSP", "-w", w])
    assert refused.exit_code == 1
    assert "'Org9MSP' is not in the consortium" in refused.output and "Org1MSP, Org2MSP" in refused.output
    assert json.loads(run("admin", "org", "list", "-w", w, "--json").output) == before  # nothing written
