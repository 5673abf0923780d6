"""Embedded ledger throughput: signed, MVCC-validated, durably committed tx/s.

Every transaction here is the full flow, in-process (the ledger node's keys in
the writing process; ``bench_ledger_service.py`` measures it through the
service): sign and verify the proposal, simulate the chaincode, the node's
endorsement, sign the envelope, then commit (verify the signatures, the
endorsement and the creator's certificate, check the tx ID, MVCC-check the
reads, append a hash-chained block the node's orderer signs and apply the
writes in one SQLite transaction).

Runs: one writer with the default ``synchronous=FULL`` and, for comparison,
``NORMAL``; four writer processes on one file (each writing its own keys);
bytes per transaction; and ``verify()`` speed. Prints a table and writes
``bench/results/ledger.json``.

    .venv/bin/python bench/bench_ledger.py [--tx 2000] [--writers 4]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "ledger"))  # the tiny key-value test contract

from blockfedml.identity import create_organization, load_signing_identity  # noqa: E402
from blockfedml.ledger.embedded import EmbeddedLedger  # noqa: E402
from blockfedml.ledger.embedded.node import LedgerNode  # noqa: E402


def _chaincodes() -> dict:
    import ledger_test_contract
    return {"blockfedml": ledger_test_contract.new_chaincode()}


def _writer(path: str, msp_dir: str, msp_id: str, prefix: str, count: int, synchronous: str,
            start_at: float, out: "mp.Queue", node_dir: str) -> None:
    identity = load_signing_identity(msp_dir, msp_id)
    ledger = EmbeddedLedger.open(path, _chaincodes(), synchronous=synchronous, node=LedgerNode.load(node_dir))
    contract = ledger.connect(identity).network(ledger.channel).contract("blockfedml")
    contract.submit("Put", f"{prefix}-warmup", "v")
    while time.time() < start_at:
        time.sleep(0.001)
    t0 = time.perf_counter()
    for i in range(count):
        contract.submit("Put", f"{prefix}-{i:08d}", "v" * 32)
    out.put((prefix, time.time() - (time.perf_counter() - t0), time.time()))
    ledger.close()


def run(tx: int, writers: int) -> dict:
    results: dict = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                 "platform": platform.platform()}, "tx_per_run": tx}
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        base = Path(tmp)
        orgs = [create_organization(base, f"Org{i}", f"Org{i}MSP", f"org{i}.example.com")
                for i in range(1, writers + 1)]
        config = [(o.msp_id, o.ca_cert_pem) for o in orgs]
        node_material = create_organization(base, "Ledger", "LedgerMSP", "ledger.example.com", orderer=True)
        node = LedgerNode.from_material(node_material)

        for sync in ("FULL", "NORMAL"):
            path = base / f"single-{sync}.db"
            ledger = EmbeddedLedger.create(path, "fedchannel", config, chaincodes=_chaincodes(),
                                           synchronous=sync, node=node)
            contract = ledger.connect(orgs[0].admin()).network("fedchannel").contract("blockfedml")
            contract.submit("Put", "warmup", "v")
            size0 = ledger.size_bytes()
            t0 = time.perf_counter()
            for i in range(tx):
                contract.submit("Put", f"key-{i:08d}", "v" * 32)
            elapsed = time.perf_counter() - t0
            last = ledger.block(ledger.height() - 1)
            results[f"single_writer_{sync.lower()}"] = {
                "tx_per_s": round(tx / elapsed, 1), "ms_per_tx": round(1000 * elapsed / tx, 3)}
            if sync == "FULL":
                t0 = time.perf_counter()
                report = ledger.verify()
                verify_s = time.perf_counter() - t0
                assert report.ok, report
                ledger._store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                results["bytes_per_tx"] = {
                    "stored_transaction": last["size_bytes"],
                    "signed_envelope": last["envelope_bytes"],
                    "on_disk": round((ledger.size_bytes() - size0) / tx, 1),
                    "note": "stored_transaction = one Put as stored (compact envelope + proposal "
                            "signature, docs/ledger-storage.md); signed_envelope = its envelope as "
                            "signed; on_disk = file growth incl. state row, block row and indexes",
                }
                results["verify_blocks_per_s"] = round(ledger.height() / verify_s, 1)
            ledger.close()

        for sync in ("FULL",):
            path = base / f"multi-{sync}.db"
            EmbeddedLedger.create(path, "fedchannel", config, synchronous=sync, node=node).close()
            ctx = mp.get_context("spawn")
            queue: mp.Queue = ctx.Queue()
            per = max(1, tx // writers)
            start_at = time.time() + 3.0
            procs = [ctx.Process(target=_writer, args=(str(path), str(o.admin_msp_dir), o.msp_id,
                                                       f"w{n}", per, sync, start_at, queue,
                                                       str(node_material.org_dir)))
                     for n, o in enumerate(orgs)]
            for p in procs:
                p.start()
            spans = [queue.get(timeout=600) for _ in procs]
            for p in procs:
                p.join()
            begin = min(s[1] for s in spans)
            end = max(s[2] for s in spans)
            ledger = EmbeddedLedger.open(path, {})
            height = ledger.height()
            report = ledger.verify()
            ledger.close()
            assert report.ok, report
            assert height == 1 + writers * (per + 1), height
            results[f"{writers}_writer_processes_{sync.lower()}"] = {
                "tx_per_s": round(per * writers / (end - begin), 1), "tx": per * writers,
                "chain_verified": report.ok}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tx", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=4)
    args = parser.parse_args()
    results = run(args.tx, args.writers)
    rows = [("single writer, synchronous=FULL (default)", results["single_writer_full"]["tx_per_s"]),
            ("single writer, synchronous=NORMAL", results["single_writer_normal"]["tx_per_s"]),
            (f"{args.writers} writer processes, synchronous=FULL",
             results[f"{args.writers}_writer_processes_full"]["tx_per_s"])]
    print(f"{'embedded ledger, signed + validated + committed':<52} {'tx/s':>10}")
    for name, value in rows:
        print(f"{name:<52} {value:>10,.0f}")
    sizes = results["bytes_per_tx"]
    print(f"{'bytes per Put (signed envelope / stored / on disk)':<52} "
          f"{sizes['signed_envelope']:>5} / {sizes['stored_transaction']} / {sizes['on_disk']:,.0f}")
    print(f"{'verify(), blocks/s':<52} {results['verify_blocks_per_s']:>10,.0f}")
    out = ROOT / "bench" / "results" / "ledger.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
