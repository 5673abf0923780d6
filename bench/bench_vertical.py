"""Vertical FL (the A/B/C protocol): quality, cost of encryption, PSI time.

Prints a table and writes bench/results/vertical.json:

1. **Quality** on scikit-learn's diabetes (linear regression) and breast
   cancer (logistic regression, Taylor loss), columns split between A and B:
   the session run to convergence against centralized training on the joined
   rows (``blockfedml.vertical.baseline``). The long runs use the plain ring;
   a Paillier run of the first iterations is checked to give the very same
   losses (the protocol is exact, so the encrypted run would end identically).
2. **Time per iteration**, Paillier (2048-bit key) against the same protocol
   with encryption off, each with its ledger commits: three threads in one
   process, and three processes over the mutual-TLS exchange. The first
   iteration (which builds the fixed-base tables) is left out of the mean.
   In process also with the encryption randomness made before iteration 1
   (the online cost; the time spent making it is reported beside).
3. **PSI** of 10,000 and 100,000 IDs per party (half of them common): A and
   B as two processes over the consortium's mutual-TLS exchange (as on two
   machines), and for 10,000 also as two threads of one process.

Run: ``.venv/bin/python bench/bench_vertical.py`` (a few minutes on 2 cores);
``--quick`` skips the 100k PSI and the multi-process runs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from blockfedml.cli.vertical import LEARNING_RATES, _write_split, run_party_processes
from blockfedml.vertical import psi
from blockfedml.vertical.baseline import centralized
from blockfedml.vertical.data import split_dataset
from blockfedml.vertical.protocol import VerticalSettings
from blockfedml.vertical.session import create_vertical_consortium, new_session_id, run_in_process
from blockfedml.vertical.transport import LocalHub, Link

RESULTS = Path(__file__).parent / "results"
DATASETS = ("diabetes", "breast_cancer")
FATE_RATIO = 7.5
TIMED_ITERATIONS = 6


def settings(name: str, encryption: str, iterations: int, tolerance: float = 0.0) -> VerticalSettings:
    return VerticalSettings.of(model=split_dataset(name).model, learning_rate=LEARNING_RATES[name],
                               encryption=encryption, max_iterations=iterations, tolerance=tolerance)


def quality(name: str) -> dict:
    split = split_dataset(name)
    converged = settings(name, "plain", 1000, 1e-6)
    run = run_in_process(split.a, split.b, converged, test_ids=split.test_ids)
    reference = centralized(split, converged)
    check = [run_in_process(split.a, split.b, settings(name, enc, 5)).b.losses for enc in ("plain", "paillier")]
    metric = "test_mse" if name == "diabetes" else "test_accuracy"
    return {
        "entities": {"A": split.a.n, "B": split.b.n, "aligned": run.b.alignment_size,
                     "trained": run.parties["B"].n, "test": int(run.b.metrics["test_entities"])},
        "features": {"A": split.a.X.shape[1], "B": split.b.X.shape[1]},
        "iterations": run.b.iterations, "metric": metric,
        "vertical": run.b.metrics[metric], "centralized": reference[metric],
        "relative_gap": abs(run.b.metrics[metric] / reference[metric] - 1),
        "final_loss": run.b.losses[-1], "centralized_optimum_loss": reference["optimum_loss"],
        "loss_gap": run.b.losses[-1] / reference["optimum_loss"] - 1,
        "paillier_equals_plain_first_5_iterations": check[0] == check[1],
    }


def mean_after_first(seconds: list[float]) -> float:
    return statistics.mean(seconds[1:]) if len(seconds) > 1 else seconds[0]


def timing_in_process(name: str, workdir: Path) -> dict:
    split = split_dataset(name)
    consortium = create_vertical_consortium(workdir, overwrite=True)
    out = {}
    try:
        for label, encryption, precompute in (("plain", "plain", 0), ("paillier", "paillier", 0),
                                              ("paillier_precomputed", "paillier", TIMED_ITERATIONS)):
            run = run_in_process(split.a, split.b, settings(name, encryption, TIMED_ITERATIONS),
                                 consortium=consortium, precompute=precompute)
            out[label] = {"s_per_iteration": mean_after_first(run.b.seconds), "first_iteration_s": run.b.seconds[0],
                          "ledger_s_per_iteration_per_party": run.b.ledger_seconds / run.b.iterations,
                          "precompute_s": max(run.a.precompute_seconds, run.b.precompute_seconds)}
    finally:
        consortium.close()
    out["ratio"] = out["paillier"]["s_per_iteration"] / out["plain"]["s_per_iteration"]
    out["ratio_online"] = out["paillier_precomputed"]["s_per_iteration"] / out["plain"]["s_per_iteration"]
    compute = {e: out[e]["s_per_iteration"] - out[e]["ledger_s_per_iteration_per_party"] for e in ("plain", "paillier")}
    out["ratio_without_ledger_time"] = compute["paillier"] / compute["plain"]
    return out


def timing_processes(name: str, workdir: Path) -> dict:
    split = split_dataset(name)
    out = {}
    for encryption in ("plain", "paillier"):
        consortium = create_vertical_consortium(workdir / encryption, overwrite=True)
        consortium.close()
        _write_split(split, workdir / encryption / "data")
        results = run_party_processes(workdir / encryption, new_session_id(),
                                      settings(name, encryption, TIMED_ITERATIONS), split.model)
        out[encryption] = {"s_per_iteration": mean_after_first(results["B"]["seconds"]),
                           "first_iteration_s": results["B"]["seconds"][0]}
    out["ratio"] = out["paillier"]["s_per_iteration"] / out["plain"]["s_per_iteration"]
    return out


def psi_ids(count: int, party: str) -> list[str]:
    start = 0 if party == "A" else count // 2
    return [f"customer-{i:07d}" for i in range(start, start + count)]


def psi_time(count: int) -> dict:
    """A and B on two threads of this process (pynacl keeps the GIL: they take turns)."""
    hub, results = LocalHub(), {}

    def run(party: str) -> None:
        results[party] = psi.align(Link(hub.endpoint(party), "bench", timeout=600), psi_ids(count, party))

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(p,)) for p in "AB"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    assert results["A"].ids == results["B"].ids and results["A"].size == count // 2
    assert results["A"].transcript == results["B"].transcript
    return {"ids_per_party": count, "common": count // 2, "seconds": seconds, "mode": "threads"}


def _psi_party(workdir: str, party: str, count: int, ready: Any, go: Any, out: Any) -> None:
    """One party's process: its exchange server, then the PSI when both are ready."""
    from blockfedml.consortium import Consortium
    from blockfedml.vertical.session import DEFAULT_ROLES
    from blockfedml.vertical.transport import ExchangeEndpoint

    consortium = Consortium.open(workdir)
    msp = {p: consortium.org(org).msp_id for p, org in DEFAULT_ROLES.items()}
    endpoint = ExchangeEndpoint(party, msp, consortium.tls_material(DEFAULT_ROLES[party]), consortium.exchange_peers())
    ids = psi_ids(count, party)
    ready.put(party)
    go.wait()
    started = time.perf_counter()
    result = psi.align(Link(endpoint, "bench", timeout=600), ids)
    out.put((party, time.perf_counter() - started, result.size, result.transcript))
    time.sleep(0.5)  # let the peer read our last message before the server stops
    endpoint.close()


def psi_time_processes(count: int, workdir: Path) -> dict:
    """A and B as two processes over the consortium's mutual-TLS exchange, as on two machines."""
    create_vertical_consortium(workdir, overwrite=True).close()
    context = multiprocessing.get_context("spawn")
    ready, out, go = context.Queue(), context.Queue(), context.Event()
    procs = [context.Process(target=_psi_party, args=(str(workdir), p, count, ready, go, out)) for p in "AB"]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=120)
    started = time.perf_counter()
    go.set()
    done = [out.get(timeout=900) for _ in procs]
    seconds = time.perf_counter() - started
    for proc in procs:
        proc.join()
    assert len({(size, transcript) for _, _, size, transcript in done}) == 1 and done[0][2] == count // 2
    return {"ids_per_party": count, "common": count // 2, "seconds": seconds, "mode": "two processes, mutual TLS"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip the 100k PSI and the multi-process runs")
    args = parser.parse_args()
    report: dict = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                "platform": platform.platform(), "load_before": os.getloadavg()[0]},
                    "key_bits": 2048, "randomness": "fixed-base", "fate_ratio": FATE_RATIO}
    with tempfile.TemporaryDirectory(prefix="bench-vertical-") as tmp:
        report["quality"] = {name: quality(name) for name in DATASETS}
        report["in_process"] = {name: timing_in_process(name, Path(tmp) / f"ip-{name}") for name in DATASETS}
        if not args.quick:
            report["processes"] = {name: timing_processes(name, Path(tmp) / f"mp-{name}") for name in DATASETS}
        report["psi"] = [psi_time(10_000), psi_time_processes(10_000, Path(tmp) / "psi")]
        if not args.quick:
            report["psi"].append(psi_time_processes(100_000, Path(tmp) / "psi"))
    report["machine"]["load_after"] = os.getloadavg()[0]
    print_table(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "vertical.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"\nwritten to {RESULTS / 'vertical.json'}")
    return 0


def print_table(report: dict) -> None:
    print("\nQuality: vertical (converged) vs centralized on the joined rows")
    print(f"{'dataset':15} {'metric':14} {'vertical':>10} {'central':>10} {'gap':>7} {'loss gap':>9} {'its':>5} "
          f"{'paillier==plain':>16}")
    for name, q in report["quality"].items():
        print(f"{name:15} {q['metric']:14} {q['vertical']:10.4f} {q['centralized']:10.4f} "
              f"{100 * q['relative_gap']:6.2f}% {100 * q['loss_gap']:8.2f}% {q['iterations']:5d} "
              f"{str(q['paillier_equals_plain_first_5_iterations']):>16}")
    print(f"\nTime per iteration, Paillier 2048 vs encryption off (FATE reports ~{FATE_RATIO}x)")
    print(f"{'dataset':15} {'mode':12} {'plain s':>9} {'paillier s':>11} {'ratio':>7}   online (precomputed r^n)")
    for mode in ("in_process", "processes"):
        for name, t in report.get(mode, {}).items():
            online = (f"{t['paillier_precomputed']['s_per_iteration']:8.4f} s {t['ratio_online']:6.1f}x "
                      f"(+{t['paillier_precomputed']['precompute_s']:.1f} s before)") if "ratio_online" in t else ""
            print(f"{name:15} {mode:12} {t['plain']['s_per_iteration']:9.4f} {t['paillier']['s_per_iteration']:11.4f} "
                  f"{t['ratio']:6.1f}x   {online}")
    print("\nPSI (Diffie-Hellman on ed25519, half of the IDs common)")
    for p in report["psi"]:
        print(f"{p['ids_per_party']:>9,} IDs per party, {p['common']:>7,} common: {p['seconds']:7.2f} s  ({p['mode']})")


if __name__ == "__main__":
    sys.exit(main())
