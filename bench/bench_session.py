"""A 3-organization, 10-round plaintext session on the embedded ledger.

Prints and writes (bench/results/session.json): wall time, the share of it
spent in ledger calls, orchestration per round, and ledger bytes per round per
organization, two ways:

- *logical* bytes (``ledger_bytes_per_round_per_org``, the figure to compare
  with PERFORMANCE.md's target of 2 KB): what the rounds added to the stored
  records — every block's stored transaction and proposal signature, plus any
  new certificate and compression dictionary (docs/ledger-storage.md);
  ``..._last_half`` is the same over the second half of the rounds, once the
  one-time costs are paid, and ``ledger_bytes_by_round`` lists every round;
- the growth of the SQLite file (``ledger_file_bytes_per_round_per_org``),
  which adds SQLite's pages, the indexes, the block headers and the world
  state.

The logical bytes are read with SQL from the file, so the script also measures
a ledger written by an older version of the code (one without the
``certificates`` and ``dictionaries`` tables).
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


TARGET_BYTES_PER_ROUND_PER_ORG = 2048


def ledger_bytes(path: Path) -> int:
    """Bytes of the ledger file, its write-ahead log checkpointed into it."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(FULL)")
    return path.stat().st_size


def stored_bytes(path: Path) -> int:
    """Logical ledger bytes: stored blocks (data and proposal signature), certificates
    and dictionaries (the last two only where the storage format has them)."""
    with sqlite3.connect(path) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        total = db.execute("SELECT SUM(LENGTH(data) + IFNULL(LENGTH(proposal_signature), 0)) "
                           "FROM blocks").fetchone()[0] or 0
        for table, column in (("certificates", "creator"), ("dictionaries", "data")):
            if table in tables:
                total += db.execute(f"SELECT SUM(LENGTH({column})) FROM {table}").fetchone()[0] or 0
    return total


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
        path = consortium.ledger_path
        size_before, height_before = ledger_bytes(path), consortium.ledger.height()
        stored = [stored_bytes(path)]
        results, wall = [], 0.0
        for _ in range(args.rounds):
            started = time.perf_counter()
            results.append(session.run_round())
            wall += time.perf_counter() - started
            stored.append(stored_bytes(path))  # outside the timed part
        ledger_seconds = sum(r.ledger_seconds for r in results)
        size_after, height_after = ledger_bytes(path), consortium.ledger.height()
        consortium.close()
    by_round = [round((b - a) / args.orgs) for a, b in zip(stored, stored[1:])]
    half = args.rounds // 2
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
        "ledger_bytes_per_round_per_org": round((stored[-1] - stored[0]) / args.rounds / args.orgs),
        "ledger_bytes_per_round_per_org_last_half": round(
            (stored[-1] - stored[half]) / (args.rounds - half) / args.orgs),
        "ledger_bytes_target": TARGET_BYTES_PER_ROUND_PER_ORG,
        "ledger_bytes_by_round": by_round,
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
