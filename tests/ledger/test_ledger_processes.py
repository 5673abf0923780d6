"""Several processes on one ledger file, and a writer killed mid-commit."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ledger_test_contract import CHANNEL, chaincodes

from blockfedml.errors import ConflictError, LedgerError
from blockfedml.ledger.embedded import EmbeddedLedger

WRITER = Path(__file__).with_name("ledger_writer.py")


def _writer(ledger: EmbeddedLedger, org, prefix: str, count: int, node) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WRITER), str(ledger.path), str(org.admin_msp_dir), org.msp_id, prefix, str(count),
         str(node.org_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_four_processes_commit_concurrently(make_ledger, orgs, ledger_node_material) -> None:
    ledger = make_ledger(members=4)
    per = 40
    procs = [_writer(ledger, org, f"w{i}", per, ledger_node_material) for i, org in enumerate(orgs)]
    ledger.wait_for_height(1 + 4 * per, timeout=120)
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.splitlines()[-1] == f"committed {per - 1}"
    assert ledger.height() == 1 + 4 * per
    creators = [b["transaction"]["creator_msp"] for b in ledger.iter_blocks(1)]
    assert {c: creators.count(c) for c in set(creators)} == {o.msp_id: per for o in orgs}
    contract = ledger.connect(orgs[0].admin()).network(CHANNEL).contract()
    assert len(contract.evaluate_json("Scan", "w", "x")) == 4 * per
    report = ledger.verify()
    assert report.ok, report


def test_conflict_across_connections(make_ledger, orgs, ledger_node) -> None:
    ledger = make_ledger()
    contract = ledger.connect(orgs[0].admin()).network(CHANNEL).contract()
    contract.submit("Put", "n", "1")
    pending = contract.new_proposal("Incr", "n").endorse()
    with EmbeddedLedger.open(ledger.path, chaincodes(), node=ledger_node) as second:
        second.connect(orgs[1].admin()).network(CHANNEL).contract().submit("Incr", "n")
    with pytest.raises(ConflictError):
        pending.submit()
    assert contract.evaluate("Get", "n") == b"2"


def test_wait_for_height_times_out(ledger) -> None:
    start = time.monotonic()
    with pytest.raises(LedgerError, match="below 5"):
        ledger.wait_for_height(5, timeout=0.2)
    assert time.monotonic() - start < 2


def test_writer_killed_mid_run_leaves_a_consistent_ledger(make_ledger, orgs, ledger_node,
                                                           ledger_node_material) -> None:
    """SIGKILL at arbitrary points (three times): every commit is whole or absent."""
    ledger = make_ledger()
    for round_, delay in enumerate((0.05, 0.23, 0.41)):
        before = ledger.height()
        proc = _writer(ledger, orgs[round_ % 2], f"r{round_}", 0, ledger_node_material)
        ledger.wait_for_height(before + 20, timeout=60)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        promised = int(out.splitlines()[-1].split()[1]) + 1  # commits the writer saw return

        with EmbeddedLedger.open(ledger.path, chaincodes(), node=ledger_node) as reopened:
            report = reopened.verify()
            assert report.ok, report
            height = reopened.height()
            written = height - before
            assert promised <= written <= promised + 1  # at most the one in flight, never half
            assert report.blocks == height == report.valid_transactions + 1
            scan = reopened.connect(orgs[0].admin()).network(CHANNEL).contract().evaluate_json(
                "Scan", f"r{round_}-", f"r{round_}.")
            assert scan == {f"r{round_}-{i:06d}": str(i) for i in range(written)}
    contract = ledger.connect(orgs[0].admin()).network(CHANNEL).contract()
    contract.submit("Put", "after", "crash")  # the surviving connection keeps working
    assert ledger.verify().ok
