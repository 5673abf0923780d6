"""Sessions on the embedded ledger, in every mode: ledger bytes and ledger time per round.

For each mode (plaintext, masking, paillier) a consortium of ``--orgs``
organizations (plus, for Paillier, a Collaborator key holder) runs ``--rounds``
rounds in one process with the demo task (breast cancer, logistic regression).
Two protocols side by side, in the same run:

- *now*: one member transaction per phase where the protocol allows it
  (``EnterRound``: screening, the terms and, masking, the mask keys) and the
  selection closed and allocated in one admin transaction when nothing is left
  to configure (docs/protocol.md);
- *before*: the transactions one by one as earlier versions sent them
  (``ReportScreening``, ``AdvertiseMaskKey``, ``AcceptTerms``, then
  ``CloseSelection`` and ``Allocate``), still accepted by the contract.

Printed and written (bench/results/session.json), per mode and protocol:

- transactions per round;
- *logical* ledger bytes per organization per round (the figure PERFORMANCE.md
  targets at 2 KB): what the rounds added to the stored records — every
  block's stored transaction and proposal signature, plus any new certificate
  and compression dictionary (docs/ledger-storage.md), divided by the member
  organizations; ``last half`` is the same over the second half of the rounds,
  once the one-time costs (first dictionaries) are paid;
- the growth of the SQLite file per organization per round (adds SQLite's
  pages, indexes, block headers and world state);
- wall time per round and the ledger's share of it: the time spent inside
  ledger calls (every submit and evaluate, signatures and durable commits
  included) over the round's wall time. Timed: ``Session.run_round`` (local
  training, encryption, masking, the store, the ledger); left out: consortium
  creation, joins, Paillier key generation.

A same-run reference: the raw SQLite commit rate (INSERT + COMMIT, WAL,
synchronous=FULL) on the same file system, so a loaded machine shows as such.

    .venv/bin/python bench/bench_session.py [--orgs 3] [--rounds 10] [--modes plaintext,masking,paillier]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from blockfedml.consortium import Consortium
from blockfedml.fl.member import Member
from blockfedml.fl.session import Session
from blockfedml.fl.task import TaskSpec
from common import raw_sqlite_rate

RESULTS = Path(__file__).parent / "results"
TARGET_BYTES_PER_ROUND_PER_ORG = 2048
TARGET_LEDGER_SHARE = 0.10
MODES = ("plaintext", "masking", "paillier")


class OneByOneMember(Member):
    """A member that sends the selection and configuration transactions one by one (the
    protocol before EnterRound), for the side-by-side figures."""

    def screen(self, round_: dict[str, Any]) -> dict[str, Any]:
        result = self.contract.submit_json("ReportScreening", round_["round"], *self.screening(round_))
        if round_.get("mode") == "masking":
            self.advertise_mask_key(round_)
        return result

    def _actions_for(self, round_: dict[str, Any]) -> list:
        if round_["phase"] == "configuration" and self.msp_id in round_.get("selected", []):
            return [self.accept, self.share_mask_keys] if round_.get("mode") == "masking" else [self.accept]
        return super()._actions_for(round_)


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


def run_session(mode: str, orgs: int, rounds: int, dataset: str, one_by_one: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        consortium = Consortium.create(Path(tmp) / "c", n_orgs=orgs, task=TaskSpec(dataset=dataset),
                                       collaborator=(mode == "paillier"))
        session = Session(consortium, mode=mode)
        if one_by_one:
            for member in session.members:
                member.__class__ = OneByOneMember
        session.join_all()
        path = consortium.ledger_path
        size_before, height_before = ledger_bytes(path), consortium.ledger.height()
        stored = [stored_bytes(path)]
        results, wall = [], 0.0
        for _ in range(rounds):
            started = time.perf_counter()
            results.append(session.run_round())
            wall += time.perf_counter() - started
            stored.append(stored_bytes(path))  # outside the timed part
        ledger_seconds = sum(r.ledger_seconds for r in results)
        size_after, height_after = ledger_bytes(path), consortium.ledger.height()
        consortium.close()
    half = rounds // 2
    return {
        "mode": mode, "protocol": "one by one (before)" if one_by_one else "one per phase (now)",
        "orgs": orgs, "rounds": rounds, "dataset": dataset,
        "statuses": sorted({r.status for r in results}),
        "wall_seconds": round(wall, 4),
        "per_round_ms": round(1000 * wall / rounds, 2),
        "ledger_per_round_ms": round(1000 * ledger_seconds / rounds, 2),
        "ledger_share": round(ledger_seconds / wall, 4),
        "transactions_per_round": (height_after - height_before) / rounds,
        "ledger_bytes_per_round_per_org": round((stored[-1] - stored[0]) / rounds / orgs),
        "ledger_bytes_per_round_per_org_last_half": round((stored[-1] - stored[half]) / (rounds - half) / orgs),
        "ledger_bytes_by_round": [round((b - a) / orgs) for a, b in zip(stored, stored[1:])],
        "ledger_file_bytes_per_round_per_org": round((size_after - size_before) / rounds / orgs),
        "final_test_accuracy": results[-1].test_accuracy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--dataset", default="breast_cancer")
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        reference = raw_sqlite_rate(Path(tmp))
    rows = [run_session(mode, args.orgs, args.rounds, args.dataset, one_by_one)
            for mode in args.modes.split(",") for one_by_one in (True, False)]
    figures = {"machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()[0]},
               "raw_sqlite_commits_per_s": round(reference, 1),
               "ledger_bytes_target": TARGET_BYTES_PER_ROUND_PER_ORG, "ledger_share_target": TARGET_LEDGER_SHARE,
               "sessions": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "session.json").write_text(json.dumps(figures, indent=2))
    print(f"{args.orgs} organizations, {args.rounds} rounds each; same-run reference: raw SQLite "
          f"{reference:,.0f} commits/s (WAL, FULL)")
    print(f"{'mode':<10} {'protocol':<20} {'tx/round':>8} {'B/org/round':>11} {'last half':>9} {'file B':>7} "
          f"{'ms/round':>8} {'ledger ms':>9} {'share':>6}")
    for r in rows:
        print(f"{r['mode']:<10} {r['protocol']:<20} {r['transactions_per_round']:>8.1f} "
              f"{r['ledger_bytes_per_round_per_org']:>11,} {r['ledger_bytes_per_round_per_org_last_half']:>9,} "
              f"{r['ledger_file_bytes_per_round_per_org']:>7,} {r['per_round_ms']:>8.1f} "
              f"{r['ledger_per_round_ms']:>9.1f} {r['ledger_share']:>6.0%}")
    print(f"targets: <= {TARGET_BYTES_PER_ROUND_PER_ORG:,} B per organization per round, ledger share "
          f"<= {TARGET_LEDGER_SHARE:.0%}")


if __name__ == "__main__":
    main()
