"""A 3-organization, 10-round plaintext session on the embedded ledger.

Prints and writes (bench/results/session.json): wall time, the share of it
spent in ledger calls, orchestration per round, and ledger bytes per round per
organization.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from blockfedml.consortium import Consortium
from blockfedml.fl.session import Session
from blockfedml.fl.task import TaskSpec

RESULTS = Path(__file__).parent / "results"


def ledger_bytes(path: Path) -> int:
    """Bytes of blocks (transactions with their read/write sets and signatures) in the ledger."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(FULL)")
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orgs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--dataset", default="breast_cancer")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        consortium = Consortium.create(Path(tmp) / "c", n_orgs=args.orgs, task=TaskSpec(dataset=args.dataset))
        session = Session(consortium)
        session.join_all()
        size_before, height_before = ledger_bytes(consortium.ledger_path), consortium.ledger.height()
        started = time.perf_counter()
        results = [session.run_round() for _ in range(args.rounds)]
        wall = time.perf_counter() - started
        ledger_seconds = sum(r.ledger_seconds for r in results)
        size_after, height_after = ledger_bytes(consortium.ledger_path), consortium.ledger.height()
        consortium.close()
    figures = {
        "orgs": args.orgs,
        "rounds": args.rounds,
        "dataset": args.dataset,
        "wall_seconds": round(wall, 4),
        "ledger_seconds": round(ledger_seconds, 4),
        "ledger_share": round(ledger_seconds / wall, 4),
        "per_round_ms": round(1000 * wall / args.rounds, 2),
        "ledger_per_round_ms": round(1000 * ledger_seconds / args.rounds, 2),
        "transactions_per_round": (height_after - height_before) / args.rounds,
        "ledger_file_bytes_per_round_per_org": round((size_after - size_before) / args.rounds / args.orgs),
        "final_test_accuracy": results[-1].test_accuracy,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "session.json").write_text(json.dumps(figures, indent=2))
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
