"""What members' own data adds to a session: the schema check and the federated scaler, vs one round.

Two configurations, both on the embedded ledger in one process (the
measurements are the members' own work plus the real signed transactions):

- ``hospitals``: the walkthrough (docs/own-data.md): three CSV files of
  140-166 rows and 30 features, scikit-learn LogisticRegression;
- ``large``: three members with 20,000 rows each of the same 30 features
  (the breast-cancer rows resampled with noise), same model.

For each: the schema check (read + validate one member's file, the mean over
members), the federated scaler (keys, masking, 8 ledger transactions, the
sum, the scaler, every member's verification), and one training round (the
median of ``--rounds`` rounds, all five phases); both costs relative to the
round. Also the ledger bytes the statistics added per member.

Prints a table and writes bench/results/own_data.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from blockfedml.consortium import Consortium
from blockfedml.data import load_schema, load_table
from blockfedml.data.federated import StatsParty, run_statistics
from blockfedml.data.run import own_member
from blockfedml.fl.session import Session
from blockfedml.fl.task import TaskSpec

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
EXAMPLE = ROOT / "examples" / "hospitals"


def write_files(out: Path, rows_per_member: int | None) -> list[Path]:
    spec = importlib.util.spec_from_file_location("make_hospitals", EXAMPLE / "make_hospitals.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_hospitals(out)
    files = [out / f"hospital{i}.csv" for i in (1, 2, 3)]
    if rows_per_member is None:
        return files
    import pandas as pd

    base = pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False) for f in files])
    rng = np.random.default_rng(0)
    big = []
    for i in range(3):
        frame = base.sample(rows_per_member, replace=True, random_state=i).reset_index(drop=True)
        for column in frame.columns[:-1]:
            values = pd.to_numeric(frame[column].replace("", np.nan))
            noisy = (values * (1 + 0.01 * rng.normal(size=len(values)))).round(6)
            frame[column] = noisy.astype(str).replace("nan", "")
        path = out / f"large{i + 1}.csv"
        frame.to_csv(path, index=False)
        big.append(path)
    return big


def ledger_logical_bytes(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT SUM(LENGTH(data) + IFNULL(LENGTH(proposal_signature), 0)) FROM blocks").fetchone()[0]


def measure(name: str, files: list[Path], rounds: int, workdir: Path) -> dict:
    schema = load_schema(EXAMPLE / "schema.json")
    c = Consortium.create(workdir, n_orgs=3, task=TaskSpec(model="sklearn:LogisticRegression"), schema=schema)
    orgs = ["Org1", "Org2", "Org3"]
    for org in orgs:
        c.contract(org).submit_json("Join")

    started = time.perf_counter()
    tables = [load_table(path, schema, "diagnosis") for path in files]
    check = (time.perf_counter() - started) / len(files)

    before = ledger_logical_bytes(c.ledger_path)
    started = time.perf_counter()
    parties = [StatsParty(f"{org}MSP", c.contract(org), c.store, t) for org, t in zip(orgs, tables)]
    scaler = run_statistics(c.contract("Org1"), c.store, schema, parties)
    from blockfedml.data.federated import stats_status, verified_scaler

    for org in orgs[1:]:  # every member verifies (the admin's run_statistics verified once already)
        verified_scaler(c.store, schema, stats_status(c.contract(org)))
    scaler_seconds = time.perf_counter() - started
    stats_bytes = ledger_logical_bytes(c.ledger_path) - before

    members = [own_member(c, org, t, scaler) for org, t in zip(orgs, tables)]
    session = Session(c, members=members)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        result = session.run_round()
        times.append(time.perf_counter() - started)
    round_seconds = statistics.median(times)
    c.close()
    return {
        "config": name, "rows_per_member": [t.n_rows for t in tables], "features": schema.n_features,
        "schema_check_seconds": check, "scaler_seconds": scaler_seconds, "round_seconds": round_seconds,
        "check_over_round": check / round_seconds, "scaler_over_round": scaler_seconds / round_seconds,
        "statistics_ledger_bytes_per_member": stats_bytes / 3, "last_status": result.status,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--large-rows", type=int, default=20_000)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, size in (("hospitals", None), ("large", args.large_rows)):
            files = write_files(tmp / f"data-{name}", size)
            rows.append(measure(name, files, args.rounds, tmp / f"c-{name}"))
    print(f"{'config':<10} {'rows/member':>14} {'check (ms)':>11} {'scaler (ms)':>12} {'round (ms)':>11} "
          f"{'check/round':>12} {'scaler/round':>13} {'stats bytes/member':>19}")
    for r in rows:
        print(f"{r['config']:<10} {max(r['rows_per_member']):>14,} {r['schema_check_seconds'] * 1e3:>11.1f} "
              f"{r['scaler_seconds'] * 1e3:>12.1f} {r['round_seconds'] * 1e3:>11.1f} "
              f"{r['check_over_round']:>12.2f} {r['scaler_over_round']:>13.2f} "
              f"{r['statistics_ledger_bytes_per_member']:>19,.0f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "own_data.json").write_text(json.dumps({"rounds": args.rounds, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
