"""The auditor keeps its own copy of the chain (audit/copy.py): pulled over the ledger service's
Deliver protocol, held to a pinned genesis and to members' signed tips."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from blockfedml import ledger_host
from blockfedml.audit.copy import AuditorCopy
from blockfedml.audit.verify import audit_consortium
from blockfedml.cli.main import app
from blockfedml.consortium import Consortium

runner = CliRunner()


def test_the_auditor_pulls_its_copy_over_the_ledger_service(session_copy) -> None:
    with ledger_host.serving(session_copy):
        consortium = Consortium.open(session_copy, ledger_access="service")
        report = audit_consortium(consortium)
        height = consortium.ledger_height()
        consortium.close()
    assert report.ok, [str(f) for c in report.checks for f in c.findings]
    assert [c.status for c in report.checks] == ["pass"] * 7
    copy = AuditorCopy(session_copy / "orgs" / "Auditor" / "audit")
    with copy.ledger() as mine:
        assert mine.height() == height and not mine.writable
    assert any("pinned on first use" in note for note in report.notes)


def test_a_chain_from_another_genesis_than_the_pinned_one_is_refused(session_copy) -> None:
    AuditorCopy(session_copy / "orgs" / "Auditor" / "audit").pin("ab" * 32)
    consortium = Consortium.open(session_copy)
    try:
        try:
            audit_consortium(consortium)
        except Exception as exc:  # nothing could be copied: the audit cannot even start
            assert "not to the pinned" in str(exc)
        else:
            raise AssertionError("a foreign genesis was accepted")
    finally:
        consortium.close()


def test_pin_tip_and_witness_from_the_command_line(session_copy, tmp_path) -> None:
    w = str(session_copy)
    genesis = Consortium.open(session_copy).ledger.block_row(0).hash.hex()
    assert runner.invoke(app, ["audit", "pin", "-w", w, "--genesis", "xyz"]).exit_code == 1
    pinned = runner.invoke(app, ["audit", "pin", "-w", w, "--genesis", genesis])
    assert pinned.exit_code == 0 and genesis in pinned.output
    again = runner.invoke(app, ["audit", "pin", "-w", w, "--genesis", "cd" * 32])
    assert again.exit_code == 1 and "never re-pins" in again.output
    with ledger_host.serving(session_copy):  # a member's process reads the chain through the service
        tip = runner.invoke(app, ["member", "tip", "-w", w, "--org", "Org2"])
    assert tip.exit_code == 0
    record = json.loads(tip.output)
    witness = tmp_path / "tip.json"
    witness.write_text(tip.output)
    verified = runner.invoke(app, ["audit", "verify", "-w", w, "--witness", str(witness), "--json"])
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.output)["blocks"] == record["number"] + 1
    witness.write_text(json.dumps({**record, "number": record["number"] + 5}))
    refused = runner.invoke(app, ["audit", "verify", "-w", w, "--witness", str(witness), "--json"])
    assert refused.exit_code == 1 and "orderer signature does not verify" in refused.output
