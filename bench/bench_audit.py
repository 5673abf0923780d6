"""How long an auditor waits: ``audit verify``, ``report`` and ``export`` on finished sessions.

3 organizations, plaintext rounds on the embedded ledger, 10 and 30 rounds.
For each: reading world state through the contract's queries, reading the
blocks (the ledger's verification plus the contract re-executing every
transaction), the recomputations, the whole ``audit_consortium``; the HTML
report (time and size) and a provenance export. Median of 3 runs. Prints a
table and writes bench/results/audit.json. Target: a 10-round session verifies
in well under a second.

With FABRIC_BIN set (Fabric's release binaries), one more row: the same
10-round 3-org session on a real Fabric network (brought up in a temporary run
folder and down at the end), and ``audit_consortium`` timed from an empty
auditor folder each run, so the timed part *includes* pulling every block over
Deliver from the three organizations' peers and comparing them, as well as
verifying signatures and endorsements, the MVCC replay, the contract's
re-execution and the recomputations; it excludes the network's start and the
session. Target: under 5 s. Without FABRIC_BIN the row says it was skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from blockfedml.audit.evidence import WorldState, auditor_contract, local_store
from blockfedml.audit.provenance import consortium_provenance
from blockfedml.audit.replay import read_blocks
from blockfedml.audit.report import consortium_report
from blockfedml.audit.verify import audit, audit_consortium
from blockfedml.consortium import Consortium
from blockfedml.fl.session import Session
from blockfedml.fl.task import TaskSpec

RESULTS = Path(__file__).parent / "results"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "network.sh"


def timed(fn, repeat: int = 3):
    """Median seconds of ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def measure(workdir: Path, rounds: int, orgs: int) -> dict:
    consortium = Consortium.create(workdir, n_orgs=orgs, task=TaskSpec())
    Session(consortium).run(rounds)
    contract, store = auditor_contract(consortium), local_store(consortium)
    state_s, state = timed(lambda: WorldState.read(contract))
    blocks_s, blocks = timed(lambda: read_blocks(consortium.ledger))
    checks_s, report = timed(lambda: audit(state, store, blocks))
    total_s, full = timed(lambda: audit_consortium(consortium))
    assert report.ok and full.ok, [str(f) for f in full.findings]
    html = workdir.parent / "report.html"
    report_s, _ = timed(lambda: consortium_report(consortium, html))
    export_s, _ = timed(lambda: consortium_provenance(consortium, rounds))
    figures = {
        "rounds": rounds, "orgs": orgs, "blocks": blocks.height, "transactions_replayed": blocks.replayed,
        "world_state_ms": round(1000 * state_s, 1), "blocks_verify_and_replay_ms": round(1000 * blocks_s, 1),
        "recompute_checks_ms": round(1000 * checks_s, 1), "verify_total_ms": round(1000 * total_s, 1),
        "report_ms": round(1000 * report_s, 1), "report_bytes": html.stat().st_size,
        "export_ms": round(1000 * export_s, 1),
    }
    consortium.close()
    return figures


def measure_fabric(tmp: Path, rounds: int) -> dict:
    """The Fabric row (see the module docstring); the network is always brought down."""
    env = {**os.environ, "FABRIC_RUN_DIR": str(tmp / "run")}
    try:
        for verb in ("up", "deploy"):
            subprocess.run(["bash", str(SCRIPT), verb], check=True, env=env, stderr=subprocess.DEVNULL)
        consortium = Consortium.attach_fabric(tmp / "c", tmp / "run" / "network.json", task=TaskSpec())
        Session(consortium).run(rounds)

        def fresh_audit():
            shutil.rmtree(consortium.workdir / "audit", ignore_errors=True)  # nothing held: pull every block
            return audit_consortium(consortium)

        total_s, full = timed(fresh_audit)
        assert full.ok and not any(c.status == "skip" for c in full.checks), [str(f) for f in full.findings]
        ledger = full.check("ledger")
        figures = {"ledger": "fabric", "rounds": rounds, "orgs": 3, "blocks": int(ledger.detail.split()[0]),
                   "transactions_replayed": int(full.check("replay").detail.split()[0]),
                   "verify_total_ms": round(1000 * total_s, 1), "target_ms": 5000}
        consortium.close()
        return figures
    finally:
        subprocess.run(["bash", str(SCRIPT), "down"], env=env, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--orgs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for rounds in args.rounds:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(measure(Path(tmp) / "c", rounds, args.orgs))
    columns = list(rows[0])
    print(" | ".join(f"{c:>12}" for c in columns))
    for row in rows:
        print(" | ".join(f"{row[c]!s:>12}" for c in columns))
    fabric: dict = {"skipped": "FABRIC_BIN is not set (Fabric's release binaries)"}
    if os.environ.get("FABRIC_BIN"):
        with tempfile.TemporaryDirectory() as tmp:
            fabric = measure_fabric(Path(tmp), 10)
        embedded = next((r for r in rows if r["rounds"] == 10), rows[0])
        print(f"\nFabric, {fabric['rounds']} rounds, {fabric['orgs']} orgs: {fabric['blocks']} blocks pulled from 3 peers "
              f"and compared, {fabric['transactions_replayed']} transactions re-executed; audit verify "
              f"{fabric['verify_total_ms']} ms (target < 5000 ms; same-run embedded reference: "
              f"{embedded['verify_total_ms']} ms for {embedded['rounds']} rounds)")
    else:
        print(f"\nFabric row skipped: {fabric['skipped']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "audit.json").write_text(json.dumps({"sessions": rows, "fabric": fabric}, indent=2) + "\n")


if __name__ == "__main__":
    main()
