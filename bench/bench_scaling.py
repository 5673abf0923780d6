"""How a round scales with the consortium: 3, 10, 30 and 100 organizations (bench/results/scaling.json).

Two tables, each configuration in its own process (so its peak RSS is its own):

A. **Whole rounds** on the embedded ledger (``Session.run_round``; digits, softmax, 650
   parameters), plaintext, masking and Paillier, at 3, 10, 30 and 60 organizations (a
   ``Consortium`` has at most 64). Timed: everything a round does in this one
   process — every ledger transaction (signing, contract execution, validation, SQLite
   commit), the store, every member's training, sealing, sums, openings, evaluation; the
   members act in turn, so this is the total, not a critical path. Median of the rounds
   after one warm-up round. Consortium creation and joining are not timed. Masking runs
   twice where the graphs differ (20 members and more): on the round's sparse graph (after)
   and forced to the complete graph (before: the same code with ``choose_degree`` = n - 1).
B. **The secure-aggregation work of one round**, in memory (no ledger, no store, no
   training; blobs passed as bytes), 650 and 100,000 parameters. Each party's time per step
   is measured; *total* adds every party's time, *critical path* adds the slowest party of
   each step (members on their own machines work in parallel). Before/after in the same run:
   - masking on the **complete graph** (before: every member masks with every other) and on
     the **sparse graph** (after, SecAgg+; complete up to 19 members at the defaults);
   - Paillier with the **exact fixed-point layout** and threads (before) and the **quantized
     layout** (12 bits, headroom for the members) and CRT worker processes (after; the
     workers start once per key holder, before the timed part: ``worker_start`` in the JSON).
   Paillier's r^n factors are precomputed while members train (the default ``pool``): that
   precomputation is in *total* (each member's count x the r^n time measured in this run on
   32 factors, on every core), not in the critical path. Paillier's *limit* is ciphertexts x
   one CRT decryption (measured in this run, one core) / cores + one member's encryption;
   rows over 10 x 100k are **extrapolated** from the per-ciphertext times measured in the
   same run and say so (``extrapolated``).

Same-run references, printed first: the load average, one ``phe`` CRT decryption, and numpy
summing 10 vectors of 100k float64 (a loaded machine shows in them).

Run: ``.venv/bin/python bench/bench_scaling.py`` (``--quick``: 3 and 10 organizations only).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import Clock

RESULTS = Path(__file__).parent / "results"
ORGS = (3, 10, 30, 100)
ROUND_ORGS = (3, 10, 30, 60)  # Consortium.create makes at most 64 organizations
PARAMS = (650, 100_000)
CORES = os.cpu_count() or 1


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# -- A. whole rounds ---------------------------------------------------------------------

def whole_round(mode: str, orgs: int, rounds: int) -> dict:
    from blockfedml.consortium import Consortium
    from blockfedml.crypto import graph
    from blockfedml.fl.session import Session
    from blockfedml.fl.task import TaskSpec

    if mode == "masking-complete":  # before: every member masks with every other (degree n - 1)
        graph.choose_degree = lambda members, *_: members - 1
        mode = "masking"

    with tempfile.TemporaryDirectory() as tmp:
        c = Consortium.create(Path(tmp) / "c", n_orgs=orgs, task=TaskSpec(dataset="digits"),
                              collaborator=mode == "paillier")
        try:
            session = Session(c, mode=mode)
            session.join_all()
            times = []
            for _ in range(rounds + 1):
                started = time.perf_counter()
                result = session.run_round()
                times.append(time.perf_counter() - started)
                if result.status != "accepted":
                    raise RuntimeError(f"{mode} round with {orgs} orgs: {result.status}")
        finally:
            c.close()
    return {"seconds": round(statistics.median(times[1:]), 4), "peak_rss_mb": peak_rss_mb()}


# -- B. the secure-aggregation work ------------------------------------------------------

def _updates(orgs: int, params: int) -> dict[str, tuple[np.ndarray, int]]:
    rng = np.random.default_rng(1)
    return {f"Org{i:03d}MSP": (rng.normal(0, 0.5, params), int(rng.integers(50, 500))) for i in range(orgs)}


def plaintext_work(orgs: int, params: int) -> dict:
    from blockfedml.fl.aggregation import PlaintextAggregation
    from blockfedml.fl.strategy import ClientUpdate

    mode, clock, sealed = PlaintextAggregation(), Clock(), {}
    for org, (x, w) in _updates(orgs, params).items():
        with clock("seal", org):
            sealed[org] = mode.seal(ClientUpdate(org, x, w))
    with clock("combine", "aggregator"):
        mode.combine(sealed)
    return {"total": clock.total(), "critical_path": clock.critical_path()}


def masking_work(orgs: int, params: int, sparse: bool) -> dict:
    from blockfedml.crypto import FixedPoint, MaskSecrets, secagg
    from blockfedml.crypto.graph import MaskingGraph

    updates, clock, codec = _updates(orgs, params), Clock(), FixedPoint()
    members = sorted(updates)
    threshold = min(orgs, max(2, (51 * orgs + 99) // 100))  # the chaincode's default 51%
    secrets = {}
    for org in members:
        with clock("keys", org):
            secrets[org] = MaskSecrets.generate()
    mask_keys = {o: s.mask_public for o, s in secrets.items()}
    share_keys = {o: s.share_public for o, s in secrets.items()}
    graph = MaskingGraph.for_round(1, "ab" * 32, mask_keys, threshold) if sparse else \
        MaskingGraph.complete(members, threshold)
    bundles, sealed, reveals = {}, {}, {}
    for org in members:
        with clock("share", org):
            bundles[org] = secagg.share_bundle(secrets[org], round_number=1, org=org, share_keys=share_keys,
                                               threshold=graph.threshold, graph=graph)
    for org in members:
        x, w = updates[org]
        with clock("seal", org):
            sealed[org] = secagg.seal_masked(x, w, round_number=1, org=org, secrets_=secrets[org],
                                             mask_keys=mask_keys, codec=codec, graph=graph)
    weights = {o: updates[o][1] for o in members}
    aggregator = members[0]
    with clock("sum", aggregator):
        masked = secagg.sum_masked(sealed, round_number=1, weights=weights, participants=members)
    for org in members:
        held = {s: bundles[s] for s in graph.holders(org)}
        with clock("reveal", org):
            reveals[org] = secagg.reveal_shares(secrets[org], round_number=1, org=org, bundles=held,
                                                share_keys=share_keys, contributors=members, aggregator=aggregator,
                                                graph=graph)
    with clock("unmask", aggregator):
        secagg.unmask(masked, reveals, round_number=1, aggregator=aggregator, secrets_=secrets[aggregator],
                      bundles=bundles, share_keys=share_keys, mask_keys=mask_keys, contributors=members,
                      weight=sum(weights.values()), threshold=graph.threshold, graph=graph)
    return {"total": clock.total(), "critical_path": clock.critical_path(), "degree": graph.degree,
            "threshold": graph.threshold}


def paillier_work(orgs: int, params: int, quantized: bool, key_file: str, rates: dict | None) -> dict:
    """One Paillier round's cryptography; with ``rates`` (per-ciphertext seconds measured in the same
    run) the member and key-holder steps are computed from them instead (extrapolated)."""
    from blockfedml.crypto import FixedPoint, FreshRandomness, SlotLayout, load_private_key, paillier
    from blockfedml.crypto.encoding import Quantization
    from blockfedml.crypto.packing import QuantizedLayout

    key = load_private_key(key_file)
    public = key.public_key
    if quantized:
        layout = QuantizedLayout.for_round(Quantization(), public.bits, orgs)
        encode = lambda x, w: layout.pack(layout.quantization.quantize(x, w))  # noqa: E731
    else:
        layout = SlotLayout.for_round(FixedPoint(), public.bits, orgs)
        encode = lambda x, w: layout.pack(layout.codec.encode(x, weight=w))  # noqa: E731
        paillier.PROCESS_BATCH = 1 << 40  # before: threads only
    count, clock = layout.count(params), Clock()
    updates = _updates(orgs, params)
    measured = {}
    if quantized and count >= paillier.PROCESS_BATCH:  # the key holder's workers start once, not per round
        started = time.perf_counter()
        warm = public.encrypt([1], FreshRandomness(public, workers=1).take(1)) * paillier.WORKERS
        key._processes(count, paillier.WORKERS).map(b"d", warm)
        measured["worker_start"] = time.perf_counter() - started
    if rates is None:
        sample = min(count, 32)  # r^n costs the same for every ciphertext: timed on a sample, reused
        started = time.perf_counter()
        factors = FreshRandomness(public).take(sample)  # the pool's precomputation, on every core
        measured["rn"] = (time.perf_counter() - started) / sample
        factors = (factors * -(-count // sample))[:count]  # the bench's shortcut; a member never reuses r
        ciphertexts = []
        for org, (x, w) in updates.items():
            with clock("seal", org):
                ciphertexts.append(public.ciphertexts_to_bytes(public.encrypt(encode(x, w), factors)))
        with clock("sum", "aggregator"):
            vectors = [public.ciphertexts_from_bytes(b, count) for b in ciphertexts]
            product = public.add(vectors)
        measured["add"] = clock.steps["sum"]["aggregator"] / (count * max(1, orgs - 1))
        with clock("decrypt", "keyholder"):
            plaintexts = key.decrypt(product)
        with clock("randomness", "keyholder"):
            key.randomness(product)
        with clock("unpack", "keyholder"):
            if quantized:
                layout.unpack(plaintexts, params, orgs)
            else:
                layout.unpack(plaintexts, params, sum(w for _, w in updates.values()))
        measured.update(decrypt=clock.steps["decrypt"]["keyholder"] / count,
                        randomness=clock.steps["randomness"]["keyholder"] / count,
                        seal=statistics.median(clock.steps["seal"].values()) / count)
        for org in updates:
            clock.add("precompute", org, measured["rn"] * count)
    else:
        for org in updates:
            clock.add("seal", org, rates["seal"] * count)
            clock.add("precompute", org, rates["rn"] * count)
        clock.add("sum", "aggregator", rates["add"] * count * max(1, orgs - 1))
        for step in ("decrypt", "randomness"):
            clock.add(step, "keyholder", rates[step] * count)
    one_decryption = rates["one_crt"] if rates else _one_crt(key)
    limit = count * one_decryption / CORES + clock.critical_path(skip=("precompute", "sum", "decrypt",
                                                                       "randomness", "unpack"))
    key.close()
    return {"total": clock.total(), "critical_path": clock.critical_path(skip=("precompute",)),
            "ciphertexts": count, "slots": layout.slots, "limit": limit,
            "decrypt": clock.steps["decrypt"]["keyholder"], "rates": {**measured, "one_crt": one_decryption},
            "extrapolated": rates is not None}


def _one_crt(key) -> float:
    """One CRT decryption on one core (the unit of Paillier's limit), median of 20."""
    from blockfedml.crypto import FreshRandomness

    c = key.public_key.encrypt([12345], FreshRandomness(key.public_key, workers=1).take(1))
    times = []
    for _ in range(20):
        started = time.perf_counter()
        key.decrypt(c * 1, workers=1)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# -- driving ------------------------------------------------------------------------------

def one(args: argparse.Namespace) -> dict:
    """A single configuration, in this process (the parent runs each in its own)."""
    if args.part == "round":
        return whole_round(args.mode, args.orgs, args.rounds)
    if args.mode == "plaintext":
        out = plaintext_work(args.orgs, args.params)
    elif args.mode.startswith("masking"):
        out = masking_work(args.orgs, args.params, sparse=args.mode == "masking-sparse")
    else:
        rates = json.loads(args.rates) if args.rates else None
        out = paillier_work(args.orgs, args.params, args.mode == "paillier-quantized", args.key, rates)
    return {**out, "peak_rss_mb": peak_rss_mb()}


def run(part: str, mode: str, orgs: int, params: int = 650, **extra: str) -> dict:
    command = [sys.executable, __file__, "--one", part, mode, str(orgs), str(params)]
    for name, value in extra.items():
        command += [f"--{name}", str(value)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def references() -> dict:
    from phe import paillier as phe_paillier

    public, private = phe_paillier.generate_paillier_keypair(n_length=2048)
    c = public.encrypt(12345)
    started = time.perf_counter()
    for _ in range(20):
        private.decrypt(c)
    phe_decrypt = (time.perf_counter() - started) / 20
    vectors = [np.random.default_rng(i).normal(size=100_000) for i in range(10)]
    started = time.perf_counter()
    for _ in range(20):
        np.sum(vectors, axis=0)
    return {"load_average": list(os.getloadavg()), "cores": CORES,
            "phe_crt_decrypt_ms": round(phe_decrypt * 1e3, 3),
            "numpy_sum_10x100k_ms": round((time.perf_counter() - started) / 20 * 1e3, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 and 10 organizations only")
    parser.add_argument("--rounds", type=int, default=3, help="whole rounds timed per configuration")
    parser.add_argument("--one", nargs=4, metavar=("PART", "MODE", "ORGS", "PARAMS"), help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--rates", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        args.part, args.mode, args.orgs, args.params = args.one[0], args.one[1], int(args.one[2]), int(args.one[3])
        print(json.dumps(one(args)))
        return
    from blockfedml.crypto import generate_keypair, save_private_key

    orgs = ORGS[:2] if args.quick else ORGS
    round_orgs = ROUND_ORGS[:2] if args.quick else ROUND_ORGS
    report = {"references_before": references(), "whole_rounds": [], "secure_work": []}
    print(f"same-run references: {report['references_before']}", flush=True)
    print("\nA. whole rounds on the embedded ledger (digits, 650 params; members in turn, total)", flush=True)
    print(f"{'orgs':>5} {'plaintext s':>12} {'masking s':>10} {'complete s':>11} {'paillier s':>11} "
          f"{'mask/plain':>11} {'complete/plain':>15} {'paillier/plain':>15} {'peak RSS MB (p/m/P)':>21}")
    for n in round_orgs:
        modes = ("plaintext", "masking", "paillier") + (("masking-complete",) if n >= 20 else ())
        rows = {m: run("round", m, n, rounds=args.rounds) for m in modes}
        rows.setdefault("masking-complete", rows["masking"])  # the same graph below 20 members
        plain = rows["plaintext"]["seconds"]
        row = {"orgs": n, **rows,
               "masking_over_plaintext": round(rows["masking"]["seconds"] / plain, 2),
               "complete_masking_over_plaintext": round(rows["masking-complete"]["seconds"] / plain, 2),
               "paillier_over_plaintext": round(rows["paillier"]["seconds"] / plain, 2)}
        report["whole_rounds"].append(row)
        print(f"{n:>5} {plain:>12.3f} {rows['masking']['seconds']:>10.3f} "
              f"{rows['masking-complete']['seconds']:>11.3f} {rows['paillier']['seconds']:>11.3f} "
              f"{row['masking_over_plaintext']:>10.2f}x {row['complete_masking_over_plaintext']:>14.2f}x "
              f"{row['paillier_over_plaintext']:>14.2f}x "
              f"{'/'.join(str(rows[m]['peak_rss_mb']) for m in ('plaintext', 'masking', 'paillier')):>21}",
              flush=True)

    print("\nB. secure-aggregation work of one round, in memory (seconds: total / critical path)", flush=True)
    print(f"{'orgs':>5} {'params':>7} {'plaintext':>15} {'masking complete':>17} {'masking sparse (k)':>22} "
          f"{'paillier exact':>17} {'paillier quantized':>19} {'limit exact/quant':>18} {'RSS MB':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        key_file = str(save_private_key(Path(tmp) / "paillier.key", generate_keypair(2048)))
        rates: dict[str, dict] = {}
        for params in PARAMS:
            for n in orgs:
                row = {"orgs": n, "params": params, "plaintext": run("work", "plaintext", n, params)}
                row["masking_complete"] = run("work", "masking-complete", n, params)
                row["masking_sparse"] = run("work", "masking-sparse", n, params)
                for variant in ("exact", "quantized"):
                    big = params > 10_000 and n > 10
                    extra = {"key": key_file, **({"rates": json.dumps(rates[variant])} if big else {})}
                    row[f"paillier_{variant}"] = result = run("work", f"paillier-{variant}", n, params, **extra)
                    if not big and params > 10_000:
                        rates[variant] = result["rates"]
                report["secure_work"].append(row)
                print(_row(row), flush=True)
    report["references_after"] = references()
    summary = _summary(report)
    report["summary"] = summary
    print(f"\nsame-run references after: {report['references_after']}")
    print("\nbefore -> after, same run:")
    for line in summary:
        print("  " + line)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scaling.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'scaling.json'}")


def _row(row: dict) -> str:
    def pair(r: dict) -> str:
        return f"{r['total']:.3f}/{r['critical_path']:.3f}"

    pe, pq = row["paillier_exact"], row["paillier_quantized"]
    mark = "*" if pe["extrapolated"] else " "
    return (f"{row['orgs']:>5} {row['params']:>7} {pair(row['plaintext']):>15} {pair(row['masking_complete']):>17} "
            f"{pair(row['masking_sparse']) + ' (' + str(row['masking_sparse']['degree']) + ')':>22} "
            f"{pair(pe) + mark:>17} {pair(pq) + mark:>19} {pe['limit']:>8.2f}/{pq['limit']:<8.2f} "
            f"{max(r['peak_rss_mb'] for r in row.values() if isinstance(r, dict)):>7}")


def _summary(report: dict) -> list[str]:
    lines = [f"whole round, {r['orgs']:>3} orgs: masked/plaintext "
             f"{r['complete_masking_over_plaintext']:.2f}x (complete graph) -> {r['masking_over_plaintext']:.2f}x (round's graph); Paillier/plaintext "
             f"{r['paillier_over_plaintext']:.2f}x" for r in report["whole_rounds"]]
    for row in report["secure_work"]:
        mc, ms = row["masking_complete"], row["masking_sparse"]
        pe, pq = row["paillier_exact"], row["paillier_quantized"]
        lines.append(
            f"{row['orgs']:>3} orgs x {row['params']:>6}: masking critical path {mc['critical_path']:.3f}s "
            f"(k={mc['degree']})"
            f" -> {ms['critical_path']:.3f}s (k={ms['degree']}), total {mc['total']:.2f}s -> {ms['total']:.2f}s; "
            f"Paillier critical path {pe['critical_path']:.2f}s ({pe['ciphertexts']} ct) -> {pq['critical_path']:.2f}s "
            f"({pq['ciphertexts']} ct) = {pe['critical_path'] / pe['limit']:.2f}x -> "
            f"{pq['critical_path'] / pq['limit']:.2f}x its own limit{' (extrapolated)' if pe['extrapolated'] else ''}")
    return lines


if __name__ == "__main__":
    main()
