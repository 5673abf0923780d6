"""BlockFedML on a real Fabric v3 network (FABRIC_BIN), side by side with the embedded ledger.

Brings a network up in a temporary run folder, deploys the chaincode, then
measures: network up and deploy times; Gateway submit+commit and evaluate
latency (median, p95); member transactions per second with 1 and 3
concurrent submitters (the members' own per-round transactions, which never
conflict); and the wall time of the same 3-org session on both ledgers.
Prints a table and writes bench/results/fabric.json. The network is always
brought down at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from blockfedml.consortium import Consortium
from blockfedml.fl.session import Session
from blockfedml.fl.task import TaskSpec
from blockfedml.ledger.base import Contract

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SCRIPT = REPO / "scripts" / "network.sh"


def network(verb: str, run_dir: Path) -> float:
    """Run scripts/network.sh VERB; seconds it took."""
    started = time.perf_counter()
    subprocess.run(["bash", str(SCRIPT), verb], check=True, env={**os.environ, "FABRIC_RUN_DIR": str(run_dir)},
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def timed(fn: Callable[[], object], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def summary_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"median_ms": round(1000 * statistics.median(ordered), 2), "p95_ms": round(1000 * p95, 2),
            "count": len(ordered)}


def member_throughput(consortium: Consortium, rounds: int, concurrent: bool) -> dict[str, float]:
    """Drive ``rounds`` rounds by hand; time only the members' own transactions.

    Each round the three members screen, accept, commit and endorse (12
    transactions, each on keys of its own); with ``concurrent`` the three
    members of a phase submit at the same time.
    """
    names = [m.name for m in consortium.members]
    contracts: dict[str, Contract] = {n: consortium.contract(n) for n in names}
    admin = consortium.contract(consortium.admin.name)
    pool = ThreadPoolExecutor(max_workers=len(names)) if concurrent else None
    member_seconds, count = 0.0, 0

    def phase(make_args: Callable[[str], tuple]) -> None:
        nonlocal member_seconds, count
        calls = [(contracts[n], make_args(n)) for n in names]
        started = time.perf_counter()
        if pool:
            list(pool.map(lambda c: c[0].submit_json(*c[1]), calls))
        else:
            for contract, args in calls:
                contract.submit_json(*args)
        member_seconds += time.perf_counter() - started
        count += len(calls)

    for _ in range(rounds):
        number = admin.submit_json("OpenRound", "plaintext")["round"]
        phase(lambda n: ("ReportScreening", number, 1, 1))
        admin.submit_json("CloseSelection", number)
        base = admin.evaluate_json("GetRound", number)["base_checkpoint"]
        phase(lambda n: ("AcceptTerms", number, base))
        round_ = admin.submit_json("Allocate", number)
        phase(lambda n: ("CommitUpdate", number, f"{names.index(n):02x}" * 32, 100, 10))
        digest = "ee" * 32
        aggregator = consortium.org(round_["aggregator"]).name
        contracts[aggregator].submit_json("ProposeAggregate", number, digest, round_["participants"])
        phase(lambda n: ("Endorse", number, digest, 950000, 900000))
        admin.submit_json("Decide", number)
    if pool:
        pool.shutdown()
    return {"transactions": count, "seconds": round(member_seconds, 3),
            "tx_per_s": round(count / member_seconds, 2)}


def session_seconds(consortium: Consortium, rounds: int) -> float:
    session = Session(consortium)
    session.join_all()
    started = time.perf_counter()
    for _ in range(rounds):
        session.run_round()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="session rounds on each ledger")
    parser.add_argument("--samples", type=int, default=40, help="sequential submits for the latency figures")
    parser.add_argument("--throughput-rounds", type=int, default=4)
    args = parser.parse_args()
    if not os.environ.get("FABRIC_BIN"):
        sys.exit("error: set FABRIC_BIN to the bin/ folder of a Fabric v3 release (e.g. /opt/fabric/bin)")

    figures: dict[str, object] = {"orgs": 3, "session_rounds": args.rounds, "dataset": "breast_cancer"}
    with tempfile.TemporaryDirectory() as tmp:
        embedded = Consortium.create(Path(tmp) / "embedded", n_orgs=3, task=TaskSpec(), auditor=False)
        figures["embedded_session_seconds"] = round(session_seconds(embedded, args.rounds), 3)
        embedded.close()

        run_dir = Path(tmp) / "fabric-run"
        try:
            figures["network_up_seconds"] = round(network("up", run_dir), 2)
            figures["chaincode_deploy_seconds"] = round(network("deploy", run_dir), 2)
            consortium = Consortium.attach_fabric(Path(tmp) / "fabric", run_dir / "network.json", task=TaskSpec())
            figures["fabric_session_seconds"] = round(session_seconds(consortium, args.rounds), 3)
            figures["session_ratio_fabric_to_embedded"] = round(
                figures["fabric_session_seconds"] / figures["embedded_session_seconds"], 1)

            admin = consortium.contract(consortium.admin.name)
            figures["submit_commit"] = summary_ms(
                timed(lambda: admin.submit_json("SetSettings", {"reward": 10}), args.samples))
            figures["evaluate"] = summary_ms(timed(lambda: admin.evaluate("GetSettings"), 200))
            figures["throughput_1_submitter"] = member_throughput(consortium, args.throughput_rounds, False)
            figures["throughput_3_submitters"] = member_throughput(consortium, args.throughput_rounds, True)
            consortium.close()
        finally:
            network("down", run_dir)

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fabric.json").write_text(json.dumps(figures, indent=2) + "\n")
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
