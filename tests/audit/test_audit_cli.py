"""``blockfedml audit verify | report | export`` as an auditor runs them."""

from __future__ import annotations

import json

from tamper import blob_copies, corrupt_blob
from typer.testing import CliRunner

from blockfedml.cli.main import app
from blockfedml.store import ModelStore

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["audit", *args], env={"COLUMNS": "200"}, catch_exceptions=False)


def test_verify_prints_every_check_and_exits_0_on_an_intact_history(finished_session):
    result = run("verify", "-w", str(finished_session))
    assert result.exit_code == 0, result.output
    for name in ("ledger", "replay", "checkpoints", "rounds", "aggregates", "reputation", "decisions"):
        assert f"PASS  {name}" in result.output
    assert "OK: 0 failed, 7 passed, 0 skipped" in result.output
    document = json.loads(run("verify", "-w", str(finished_session), "--json").output)
    assert document["ok"] is True and document["problems"] == [] and len(document["checks"]) == 7


def test_verify_names_round_transaction_and_object_and_exits_1_on_a_fault(session_copy):
    commitment = json.loads(run("round", "3", "-w", str(session_copy), "--json").output)["updates"][1]
    corrupt_blob(session_copy, commitment["digest"])
    result = run("verify", "-w", str(session_copy))
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if line.strip().startswith("FAIL round"))
    assert "round 3 | tx " in line and f"update blob {commitment['digest']} of {commitment['msp_id']}" in line
    assert "FAIL  aggregates" in result.output and "FAILED: 1 failed, 6 passed" in result.output
    document = json.loads(run("verify", "-w", str(session_copy), "--json").output)
    (finding,) = [f for c in document["checks"] for f in c["findings"]]
    assert finding["round"] == 3 and len(finding["tx"]) == 64


def test_export_gives_the_provenance_of_a_checkpoint_back_to_genesis(finished_session, tmp_path):
    result = run("export", "--checkpoint", "3", "-w", str(finished_session))
    assert result.exit_code == 0, result.output
    prov = json.loads(result.output)
    assert prov["rounds"] == [3, 1, 0]  # round 2 was rolled back: not an ancestor...
    assert [r["round"] for r in prov["rolled_back_on_lineage"]] == [2]  # ...but on record
    assert prov["organizations"] == ["Org1MSP", "Org2MSP"]
    assert prov["model"]["verified"] is True and prov["ledger"]["tip_hash"]
    step = prov["lineage"][0]
    assert step["checkpoint"]["parent"] == prov["lineage"][1]["checkpoint"]["digest"]
    assert [c["msp_id"] for c in step["commitments"]] == ["Org1MSP", "Org2MSP"]
    assert all(len(c["tx"]) == 64 for c in step["commitments"] + step["endorsements"])
    assert [p["phase"] for p in step["phases"]][-1] == "closed"
    assert all(p["transaction"]["valid"] for p in step["phases"])
    assert {(r["org"], r["reason"]) for r in step["reputation_changes"]} == {("Org1MSP", "reward"),
                                                                             ("Org2MSP", "reward")}
    assert prov["lineage"][-1]["genesis"] is True

    out = tmp_path / "prov.json"
    assert run("export", "-c", "3", "-o", str(out), "-w", str(finished_session)).exit_code == 0
    assert json.loads(out.read_text()) == prov


def test_export_of_a_missing_checkpoint_is_one_clear_error_and_writes_nothing(finished_session, tmp_path):
    out = tmp_path / "prov.json"
    result = run("export", "-c", "9", "-o", str(out), "-w", str(finished_session))
    assert result.exit_code == 1 and "no checkpoint of round 9" in result.output
    assert not out.exists()


def test_report_writes_one_html_file(finished_session, tmp_path):
    out = tmp_path / "report.html"
    result = run("report", "-o", str(out), "-w", str(finished_session))
    assert result.exit_code == 0, result.output
    assert "verified: every check recomputed everything" in result.output
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_verify_says_partly_verified_with_the_reasons_and_exits_3_when_something_was_not_recomputed(session_copy):
    rounds = json.loads(run("rounds", "-w", str(session_copy), "--json").output)
    for number in (r["round"] for r in rounds):  # as on a multi-process run: the updates went over gRPC
        for update in json.loads(run("round", str(number), "-w", str(session_copy), "--json").output)["updates"]:
            for path in blob_copies(session_copy, update["digest"]):
                path.unlink()
    result = run("verify", "-w", str(session_copy))
    assert result.exit_code == 3, result.output
    summary = result.output.strip().splitlines()[-1]
    assert summary.startswith("PARTLY VERIFIED: 0 failed") and "OK" not in summary
    assert "aggregates not run: round 1: the update blobs of" in summary and "not kept in the store" in summary
    assert summary.endswith("(exit 3)")
    assert "skip round 2: the update blobs" in " ".join(result.output.split())  # reasons beneath the check
    document = json.loads(run("verify", "-w", str(session_copy), "--json").output)
    assert document["verdict"] == "partly verified" and document["exit_code"] == 3 and document["ok"] is True
    assert len(document["unchecked"]) == len(rounds) and document["summary"].startswith("PARTLY VERIFIED")
    report = run("report", "-o", str(session_copy / "r.html"), "-w", str(session_copy))
    assert report.exit_code == 0 and "partly verified" in report.output
    page = (session_copy / "r.html").read_text()
    assert "partly verified: nothing failed" in page and "every check recomputed" not in page
