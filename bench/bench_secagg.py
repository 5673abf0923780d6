"""Secure aggregation, side by side in one run (bench/results/secagg.json).

1. Per-value encryption throughput on a 2048-bit key: ``phe`` encrypting each
   float (the naive way, measured on a sample) against packed fixed-point
   Paillier with r^n fresh, from a fixed-base table, and precomputed (pool:
   the online part only; the precomputation is the "fresh" cost, paid off the
   critical path while the member trains).
2. A round of 10 organizations x 100,000 parameters through the aggregation
   seam (seal, content-addressed store in and out, sum, open, finish) in each
   mode against the plaintext round. Two figures per mode: everything done in
   sequence on this machine, and the critical path of a deployed round
   (members on their own machines work in parallel: the slowest member of
   each step counts). The ``_in_memory`` rows replace the store (which fsyncs
   every blob) by a dictionary: the protocol's computation alone.
   The Paillier rows also break the key holder's opening down: its own product
   of the committed ciphertexts, the decryption, recovering each ciphertext's r,
   publishing the opening, and what an auditor spends re-encrypting it.
3. Bytes each member sends per round, relative to float32 parameters.
4. Accuracy of 3-organization digits and breast-cancer sessions on the
   embedded ledger in the three modes.

Run: ``.venv/bin/python bench/bench_secagg.py`` (about three minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from blockfedml.audit import recompute
from blockfedml.consortium import Consortium
from blockfedml.crypto import secagg
from blockfedml.crypto import (FixedBaseRandomness, FreshRandomness, MaskSecrets, RandomnessPool, RandomSource,
                               SlotLayout, generate_keypair, save_private_key)
from blockfedml.fl.aggregation import MaskingAggregation, PaillierAggregation, PlaintextAggregation, RoundContext
from blockfedml.fl.session import Session
from blockfedml.fl.strategy import ClientUpdate
from blockfedml.fl.task import TaskSpec
from blockfedml.ml.serialization import load_params
from blockfedml.store import ModelStore, sha256_hex
from common import Clock

RESULTS = Path(__file__).parent / "results"


# -- 1. per-value throughput ----------------------------------------------------------

def per_value(key, samples: int) -> dict:
    public = key.public_key
    layout = SlotLayout.for_round(PaillierAggregation().codec, public.bits, 10)
    rng = np.random.default_rng(0)
    phe_key = public.to_phe()
    values = rng.normal(0, 0.5, samples["phe"])
    started = time.perf_counter()
    for v in values:
        phe_key.encrypt(float(v))
    phe_rate = samples["phe"] / (time.perf_counter() - started)

    def packed_rate(source, count: int) -> float:
        params = rng.normal(0, 0.5, count * layout.slots)
        codec = layout.codec
        started = time.perf_counter()
        plaintexts = layout.pack(codec.encode(params, weight=100))
        public.ciphertexts_to_bytes(public.encrypt(plaintexts, source.take(len(plaintexts))))
        return params.size / (time.perf_counter() - started)

    fresh_rate = packed_rate(FreshRandomness(public), samples["fresh"])
    started = time.perf_counter()
    table = FixedBaseRandomness(public)
    table_seconds = time.perf_counter() - started
    fixed_rate = packed_rate(table, samples["fixed"])
    pool = RandomnessPool(public)
    started = time.perf_counter()
    pool.fill(samples["pool"])
    pool_seconds = time.perf_counter() - started
    pool_rate = packed_rate(pool, samples["pool"])
    return {
        "key_bits": public.bits, "slots_per_ciphertext": layout.slots, "slot_bits": 8 * layout.slot_bytes,
        "phe_encrypt_values_per_s": round(phe_rate, 1),
        "packed_fresh_values_per_s": round(fresh_rate),
        "packed_fixed_base_values_per_s": round(fixed_rate),
        "packed_pool_online_values_per_s": round(pool_rate),
        "pool_precompute_seconds_per_ciphertext": round(pool_seconds / samples["pool"], 5),
        "fixed_base_table_seconds": round(table_seconds, 3),
        "speedup_fresh": round(fresh_rate / phe_rate, 1),
        "speedup_fixed_base": round(fixed_rate / phe_rate, 1),
        "speedup_pool_online": round(pool_rate / phe_rate, 1),
        "speedup_pool_amortized": round(1 / (1 / pool_rate + pool_seconds / samples["pool"] / layout.slots)
                                        / phe_rate, 1),
        "phe_sample": samples["phe"],
    }


# -- 2. a round of 10 x 100k ------------------------------------------------------------

class CountingStore(ModelStore):
    """The model store, counting its (fsynced) writes."""

    writes = 0

    def put(self, data: bytes) -> str:
        self.writes += 1
        return super().put(data)


class MemoryStore:
    """Content-addressed blobs in memory (hash-checked, no disk): the round's compute alone."""

    def __init__(self, root: Path) -> None:
        self.blobs: dict[str, bytes] = {}
        self.writes = 0

    def put(self, data: bytes) -> str:
        self.writes += 1
        digest = sha256_hex(data)
        self.blobs[digest] = bytes(data)
        return digest

    def get(self, digest: str) -> bytes:
        data = self.blobs[digest]
        assert sha256_hex(data) == digest
        return data


class Precomputed(RandomSource):
    """Factors made before the round: what a filled pool hands out."""

    name = "precomputed"

    def __init__(self, public_key, factors) -> None:
        super().__init__(public_key)
        self.factors = list(factors)

    def take(self, count: int) -> list:
        taken, self.factors = self.factors[:count], self.factors[count:]
        return taken


def round_updates(orgs: int, length: int) -> dict[str, ClientUpdate]:
    rng = np.random.default_rng(1)
    return {f"Org{i + 1}MSP": ClientUpdate(f"Org{i + 1}MSP", rng.normal(0, 0.5, length), int(rng.integers(100, 1000)))
            for i in range(orgs)}


def plaintext_round(updates, store: ModelStore) -> tuple[Clock, dict]:
    mode, clock, digests = PlaintextAggregation(), Clock(), {}
    for org, update in updates.items():
        with clock("seal", org):
            blob = mode.seal(update)
            digests[org] = store.put(blob)
    with clock("aggregate", "aggregator"):
        params = mode.combine({org: store.get(d) for org, d in digests.items()})
    return clock, {"params": params, "bytes": len(blob)}


def paillier_round(updates, store: ModelStore, key, source: str) -> tuple[Clock, dict]:
    mode, clock, digests = PaillierAggregation(), Clock(), {}
    public, participants = key.public_key, tuple(sorted(updates))
    layout = mode.layout(RoundContext(1, participants, public_key=public))
    count = layout.count(next(iter(updates.values())).params.size)
    table = FixedBaseRandomness(public) if source != "fresh" else None
    for org, update in updates.items():
        # pool: factors precomputed before the round, off the clock (made here with the table to keep the
        # bench short: the online cost does not depend on how they were made; the fresh cost is reported)
        randomness = Precomputed(public, table.take(count)) if source == "pool" else table
        context = RoundContext(1, participants, public_key=public, randomness=randomness)
        with clock("seal", org):
            blob = mode.seal(update, context)
            digests[org] = store.put(blob)
    weights = {org: u.num_samples for org, u in updates.items()}
    with clock("sum", "aggregator"):
        summed = mode.sum({org: store.get(d) for org, d in digests.items()},
                          RoundContext(1, participants, weights, public_key=public))
        sum_digest = store.put(summed)
    with clock("open", "keyholder"):  # fetch the committed blobs, multiply, decrypt, recover r, publish
        own_sum, result, opening = mode.open({org: store.get(d) for org, d in digests.items()}, key,
                                             RoundContext(1, participants, weights, public_key=public))
        assert sha256_hex(own_sum) == sum_digest
        result_digest = store.put(result)
        store.put(opening)
    with clock("finish", "aggregator"):
        params = mode.finish(store.get(result_digest), 1, participants, sum(weights.values()))
    return clock, {"params": params, "bytes": len(blob), "ciphertexts": count,
                   "keyholder": keyholder_breakdown(store, digests, key, summed, opening)}


def keyholder_breakdown(store: ModelStore, digests: dict[str, str], key, summed: bytes, opening: bytes) -> dict:
    """The key holder's opening, step by step (issue 16): its own product of the committed
    ciphertexts and publishing r are what verifiable openings add to the decryption."""
    public = key.public_key
    header, payload = secagg.unpack(summed, "paillier-sum")
    started = time.perf_counter()
    vectors = []
    for digest in digests.values():
        blob_header, blob_payload = secagg.unpack(store.get(digest), "paillier-update")
        vectors.append(public.ciphertexts_from_bytes(blob_payload, blob_header["count"]))
    product = public.add(vectors)
    multiply = time.perf_counter() - started
    started = time.perf_counter()
    key.decrypt(product)
    decrypt = time.perf_counter() - started
    started = time.perf_counter()
    key.randomness(product)
    randomness = time.perf_counter() - started
    started = time.perf_counter()
    store.put(opening)
    publish = time.perf_counter() - started
    _, plaintexts, rs = secagg.opening_from_bytes(opening)
    started = time.perf_counter()
    assert recompute.verify_paillier_opening(opening, [int(c) for c in product], int(public.n)) == plaintexts
    audit = time.perf_counter() - started
    return {"ciphertexts": len(product), "multiply_seconds": round(multiply, 3), "decrypt_seconds": round(decrypt, 3),
            "recover_r_seconds": round(randomness, 3), "publish_opening_seconds": round(publish, 4),
            "opening_bytes": len(opening),
            "audit_reencrypt_seconds": round(audit, 3)}


def masking_round(updates, store: ModelStore) -> tuple[Clock, dict]:
    mode, clock = MaskingAggregation(), Clock()
    participants = tuple(sorted(updates))
    threshold = len(participants) // 2 + 1
    secrets, bundles, digests, reveals = {}, {}, {}, {}
    for org in participants:  # selection and configuration: keys, then sealed shares
        with clock("keys+shares", org):
            secrets[org] = MaskSecrets.generate()
    mask_keys = {o: s.mask_public for o, s in secrets.items()}
    share_keys = {o: s.share_public for o, s in secrets.items()}

    def context(org: str, weights=None) -> RoundContext:
        return RoundContext(1, participants, weights or {}, mask_keys=mask_keys, share_keys=share_keys,
                            threshold=threshold, secrets=secrets[org])

    for org in participants:
        with clock("keys+shares", org):
            bundles[org] = store.get(store.put(mode.share_bundle(org, context(org))))
    for org, update in updates.items():
        with clock("seal", org):
            blob = mode.seal(update, context(org))
            digests[org] = store.put(blob)
    aggregator = participants[0]
    weights = {org: u.num_samples for org, u in updates.items()}
    with clock("sum", "aggregator"):
        masked_sum = mode.sum({org: store.get(d) for org, d in digests.items()}, context(aggregator, weights))
        store.put(masked_sum)
    for org in participants:  # every survivor answers; the aggregator uses exactly the threshold
        with clock("reveal", org):
            reveals[org] = store.get(store.put(mode.reveal(org, bundles, participants, aggregator, context(org))))
    with clock("unmask+finish", "aggregator"):
        result, _ = mode.unmask(masked_sum, reveals, bundles, aggregator, participants, sum(weights.values()),
                                context(aggregator))
        params = mode.finish(result, 1, participants, sum(weights.values()))
    sent = len(blob) + len(bundles[participants[-1]]) + len(reveals[participants[-1]])
    return clock, {"params": params, "bytes": sent, "threshold": threshold}


def rounds(key, orgs: int, length: int, tmp: Path) -> dict:
    updates = round_updates(orgs, length)
    runs = {
        "plaintext": lambda s: plaintext_round(updates, s),
        "masking": lambda s: masking_round(updates, s),
        "plaintext_in_memory": lambda s: plaintext_round(updates, s),
        "masking_in_memory": lambda s: masking_round(updates, s),
        "paillier_pool": lambda s: paillier_round(updates, s, key, "pool"),
        "paillier_fixed_base": lambda s: paillier_round(updates, s, key, "fixed-base"),
    }
    figures, reference = {}, None
    for name, run in runs.items():
        store = (MemoryStore if name.endswith("_in_memory") else CountingStore)(tmp / name)
        clock, info = run(store)
        if reference is None:
            reference = info["params"]
        figures[name] = {
            "total_seconds": round(clock.total(), 3),
            "critical_path_seconds": round(clock.critical_path(), 3),
            "steps": {step: round(max(p.values()), 4) for step, p in clock.steps.items()},
            "store_writes": store.writes,
            "bytes_per_member": info["bytes"],
            "bytes_vs_float32": round(info["bytes"] / (4 * length), 2),
            "max_abs_diff_vs_plaintext": float(np.max(np.abs(info["params"] - reference))),
        }
        if "keyholder" in info:
            k = info["keyholder"]
            added = k["multiply_seconds"] + k["recover_r_seconds"] + k["publish_opening_seconds"]
            figures[name]["keyholder"] = {**k, "verifiable_opening_share_of_round": round(
                added / clock.critical_path(), 3)}
    for name, f in figures.items():  # each against the plaintext round over the same kind of store
        base = figures["plaintext_in_memory" if name.endswith("_in_memory") else "plaintext"]
        f["ratio_total"] = round(f["total_seconds"] / base["total_seconds"], 2)
        f["ratio_critical_path"] = round(f["critical_path_seconds"] / base["critical_path_seconds"], 2)
    pool_offline = FreshRandomness(key.public_key)
    started = time.perf_counter()
    pool_offline.take(40)
    per_factor = (time.perf_counter() - started) / 40
    ciphertexts = SlotLayout.for_round(PaillierAggregation().codec, key.public_key.bits, orgs).count(length)
    figures["paillier_pool"]["offline_precompute_seconds_per_member"] = round(per_factor * ciphertexts, 1)
    return figures


# -- 4. sessions -------------------------------------------------------------------------

def sessions(key, tmp: Path, rounds_: int) -> dict:
    out = {}
    for dataset in ("breast_cancer", "digits"):
        finals = {}
        for mode in ("plaintext", "paillier", "masking"):
            c = Consortium.create(tmp / f"{dataset}-{mode}", n_orgs=3, task=TaskSpec(dataset=dataset),
                                  collaborator=mode == "paillier")
            save_private_key(c.workdir / "keys" / "Collaborator" / "paillier.key", key)
            started = time.perf_counter()
            results = Session(c, mode=mode).run(rounds_)
            finals[mode] = load_params(c.store, results[-1].digest)[0]
            out.setdefault(dataset, {})[mode] = {
                "final_test_accuracy": round(results[-1].test_accuracy, 4),
                "seconds_per_round": round((time.perf_counter() - started) / rounds_, 3),
                "max_abs_param_diff_vs_plaintext": float(np.max(np.abs(finals[mode] - finals["plaintext"]))),
            }
            c.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, default=10)
    parser.add_argument("--params", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=10, help="rounds of each accuracy session")
    parser.add_argument("--phe-sample", type=int, default=200)
    args = parser.parse_args()
    started = time.perf_counter()
    key = generate_keypair(2048)
    keygen = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        figures = {
            "machine_note": "2-core shared machine; ratios are side by side in one run",
            "paillier_keygen_seconds": round(keygen, 3),
            "per_value": per_value(key, {"phe": args.phe_sample, "fresh": 20, "fixed": 100, "pool": 1000}),
            "round": {"orgs": args.orgs, "params": args.params, **rounds(key, args.orgs, args.params, Path(tmp))},
            "sessions": {"orgs": 3, "rounds": args.rounds, **sessions(key, Path(tmp), args.rounds)},
        }
    figures["bench_seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "secagg.json").write_text(json.dumps(figures, indent=2))
    print_tables(figures)


def print_tables(f: dict) -> None:
    v = f["per_value"]
    print(f"\nPer-value encryption, {v['key_bits']}-bit key "
          f"({v['slots_per_ciphertext']} slots of {v['slot_bits']} bits)")
    print(f"{'variant':<40}{'values/s':>14}{'vs phe':>9}")
    rows = [("phe encrypt per float (naive)", v["phe_encrypt_values_per_s"], 1.0),
            ("packed, fresh r^n", v["packed_fresh_values_per_s"], v["speedup_fresh"]),
            ("packed, fixed-base table (DJN)", v["packed_fixed_base_values_per_s"], v["speedup_fixed_base"]),
            ("packed, precomputed pool (online)", v["packed_pool_online_values_per_s"], v["speedup_pool_online"])]
    for name, rate, speedup in rows:
        print(f"{name:<40}{rate:>14,.0f}{speedup:>8.1f}x")
    print(f"(pool amortized with its fresh precomputation: {v['speedup_pool_amortized']}x)")
    r = f["round"]
    print(f"\nA round of {r['orgs']} organizations x {r['params']:,} parameters")
    print(f"{'mode':<22}{'total s':>9}{'ratio':>7}{'critical s':>12}{'ratio':>7}{'bytes/member':>14}{'vs f32':>8}")
    for mode in ("plaintext", "masking", "paillier_pool", "paillier_fixed_base", "plaintext_in_memory",
                 "masking_in_memory"):
        m = r[mode]
        print(f"{mode:<22}{m['total_seconds']:>9.3f}{m['ratio_total']:>7.2f}{m['critical_path_seconds']:>12.3f}"
              f"{m['ratio_critical_path']:>7.2f}{m['bytes_per_member']:>14,}{m['bytes_vs_float32']:>8.2f}")
    k = r["paillier_pool"]["keyholder"]
    print(f"(key holder, {k['ciphertexts']} ciphertexts: its own product {k['multiply_seconds']} s, decryption "
          f"{k['decrypt_seconds']} s, recovering r {k['recover_r_seconds']} s, publishing the opening "
          f"({k['opening_bytes']:,} bytes) {k['publish_opening_seconds']} s: product + r + publishing = "
          f"{100 * k['verifiable_opening_share_of_round']:.1f}% of the round's critical path; an auditor "
          f"re-encrypts it in {k['audit_reencrypt_seconds']} s)")
    print(f"(paillier_pool: r^n precomputed offline, {r['paillier_pool']['offline_precompute_seconds_per_member']} s "
          "per member with fresh r^n, overlapping local training)")
    s = f["sessions"]
    print(f"\nSessions: {s['orgs']} organizations, {s['rounds']} rounds, final test accuracy")
    print(f"{'dataset':<16}{'plaintext':>11}{'paillier':>11}{'masking':>11}{'max |dw|':>11}")
    for dataset in ("breast_cancer", "digits"):
        d = s[dataset]
        diff = max(d["paillier"]["max_abs_param_diff_vs_plaintext"], d["masking"]["max_abs_param_diff_vs_plaintext"])
        accuracies = "".join(f"{d[m]['final_test_accuracy']:>11.4f}" for m in ("plaintext", "paillier", "masking"))
        print(f"{dataset:<16}{accuracies}{diff:>11.1e}")


if __name__ == "__main__":
    main()
