"""The ledger service: signed, endorsed, validated, durably committed tx/s through gRPC.

The service (``blockfedml.ledger.embedded.service``) runs in its own process; 4
client processes, each an organization with its own signing key and TLS client
certificate, submit ``Put`` transactions with the Gateway client the SDK uses for
Fabric: Endorse (the service verifies the proposal, simulates the contract and
endorses), Submit (it verifies the envelope and the endorsement, checks MVCC,
appends a block its orderer key signs, fsyncs) and CommitStatus. Timed: from
the clients' common start to the last acknowledged commit; included: every
signature, the mutual-TLS gRPC calls, the durable commit; left out: process
start-up, key loading, one warm-up transaction per client. The same run prints
the raw SQLite commit rate (one INSERT + COMMIT with ``synchronous=FULL`` in WAL
mode, same file system) and the in-process rate (one writer holding the node's
keys) as references.

Second part: 3-org plaintext rounds with every member and the coordinator in its
own process (``member round``, ``admin round drive``) through the service;
per-round wall time from the first round's ``OpenRound`` to the last ``Decide``
(transaction timestamps), which includes each member's local training (logistic
regression on ~120 rows, about 1 ms) and every ledger call.

    .venv/bin/python bench/bench_ledger_service.py [--tx 3000] [--clients 4] [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "ledger"))  # the tiny key-value test contract
RESULTS = Path(__file__).parent / "results"

from blockfedml.identity import create_organization, load_signing_identity  # noqa: E402
from blockfedml.ledger.embedded import EmbeddedLedger  # noqa: E402
from blockfedml.ledger.embedded.node import LedgerNode  # noqa: E402
from blockfedml.ledger.embedded.service import LedgerService, ServiceTLS  # noqa: E402
from blockfedml.ledger.fabric import FabricGateway, PeerEndpoint  # noqa: E402
from common import raw_sqlite_rate


def _chaincodes() -> dict:
    import ledger_test_contract
    return {"blockfedml": ledger_test_contract.new_chaincode()}


def _serve(path: str, node_dir: str, address: str, roots: bytes, ready: "mp.Event", stop: "mp.Event") -> None:
    node = LedgerNode.load(node_dir)
    tls_dir = Path(node_dir) / "peers" / f"peer0.{Path(node_dir).name}" / "tls"
    ledger = EmbeddedLedger.open(path, _chaincodes(), node=node)
    service = LedgerService(ledger, address, ServiceTLS((tls_dir / "server.crt").read_bytes(),
                                                        (tls_dir / "server.key").read_bytes(), roots)).start()
    ready.set()
    stop.wait()
    service.stop()
    ledger.close()


def _client(org_dir: str, msp_id: str, endpoint: tuple, prefix: str, count: int, start_at: float,
            out: "mp.Queue") -> None:
    domain = Path(org_dir).name
    identity = load_signing_identity(Path(org_dir) / "users" / f"Admin@{domain}" / "msp", msp_id)
    tls = Path(org_dir) / "users" / f"Admin@{domain}" / "tls"
    address, tls_ca, server_name = endpoint
    gateway = FabricGateway.connect(identity, PeerEndpoint(address, Path(tls_ca), server_name,
                                                           tls / "client.crt", tls / "client.key"))
    contract = gateway.network("fedchannel").contract("blockfedml")
    contract.submit("Put", f"{prefix}-warmup", "v")
    while time.time() < start_at:
        time.sleep(0.001)
    t0 = time.time()
    for i in range(count):
        contract.submit("Put", f"{prefix}-{i:08d}", "v" * 32)
    out.put((t0, time.time()))
    gateway.close()


def throughput(tx: int, clients: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        base = Path(tmp)
        orgs = [create_organization(base, f"Org{i}", f"Org{i}MSP", f"org{i}.example.com")
                for i in range(1, clients + 1)]
        node = create_organization(base, "Ledger", "LedgerMSP", "ledger.example.com", orderer=True)
        path = base / "ledger.db"
        ledger = EmbeddedLedger.create(path, "fedchannel", [(o.msp_id, o.ca_cert_pem) for o in orgs],
                                       chaincodes=_chaincodes(), node=LedgerNode.from_material(node))
        contract = ledger.connect(orgs[0].admin()).network("fedchannel").contract("blockfedml")
        t0 = time.perf_counter()
        n_inproc = max(200, tx // 5)
        for i in range(n_inproc):
            contract.submit("Put", f"inproc-{i}", "v" * 32)
        in_process = n_inproc / (time.perf_counter() - t0)
        ledger.close()

        import socket
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            address = f"127.0.0.1:{probe.getsockname()[1]}"
        roots = b"".join(o.tls_ca_cert_pem for o in orgs)
        ctx = mp.get_context("spawn")
        ready, stop, queue = ctx.Event(), ctx.Event(), ctx.Queue()
        server = ctx.Process(target=_serve, args=(str(path), str(node.org_dir), address, roots, ready, stop))
        server.start()
        ready.wait(60)
        endpoint = (address, str(next((node.org_dir / "msp" / "tlscacerts").glob("*.pem"))),
                    f"peer0.{node.domain}")
        per = max(1, tx // clients)
        start_at = time.time() + 3.0
        procs = [ctx.Process(target=_client, args=(str(o.org_dir), o.msp_id, endpoint, f"c{n}", per, start_at,
                                                   queue)) for n, o in enumerate(orgs)]
        for p in procs:
            p.start()
        spans = [queue.get(timeout=900) for _ in procs]
        for p in procs:
            p.join()
        stop.set()
        server.join(60)
        elapsed = max(s[1] for s in spans) - min(s[0] for s in spans)
        with EmbeddedLedger.open(path, _chaincodes()) as check:
            report = check.verify()
            assert report.ok, report
        return {"service_tx_per_s": round(per * clients / elapsed, 1), "tx": per * clients, "clients": clients,
                "in_process_tx_per_s": round(in_process, 1), "raw_sqlite_commits_per_s": round(raw_sqlite_rate(base, 2000, 1500), 1),
                "chain_verified": report.ok}


def rounds_through_service(rounds: int) -> dict:
    from blockfedml import ledger_host
    from blockfedml.consortium import Consortium
    from blockfedml.fl.task import TaskSpec

    with tempfile.TemporaryDirectory(prefix="bench-service-rounds-") as tmp:
        workdir = Path(tmp) / "c"
        Consortium.create(workdir, n_orgs=3, task=TaskSpec(), auditor=False).close()
        ledger_host.start_background(workdir)
        try:
            cli = [sys.executable, "-m", "blockfedml.cli.main"]
            members = [subprocess.Popen(cli + ["member", "round", "-w", str(workdir), "--org", f"Org{i}",
                                               "--rounds", str(rounds), "--exchange", "grpc", "--json"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                       for i in (1, 2, 3)]
            drive = subprocess.run(cli + ["admin", "round", "drive", "-w", str(workdir), "--rounds", str(rounds),
                                          "--json"], capture_output=True, text=True, timeout=900)
            for m in members:
                m.wait(timeout=120)
            assert drive.returncode == 0, drive.stderr
            consortium = Consortium.open(workdir, ledger_access="direct")
            stamps = [(b["transaction"]["function"], b["transaction"]["timestamp"]
                       + b["transaction"]["timestamp_nanos"] / 1e9) for b in consortium.ledger.iter_blocks(1)]
            statuses = [r["status"] for r in json.loads(drive.stdout)]
            consortium.close()
        finally:
            ledger_host.stop_background(workdir)
    first = next(t for f, t in stamps if f == "OpenRound")
    last = [t for f, t in stamps if f == "Decide"][-1]
    tx_per_round = sum(1 for f, t in stamps if first <= t <= last) / rounds
    return {"rounds": rounds, "ms_per_round": round(1000 * (last - first) / rounds, 1),
            "transactions_per_round": round(tx_per_round, 1), "statuses": statuses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tx", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "load_average_at_start": os.getloadavg()[0]}}
    results["throughput"] = throughput(args.tx, args.clients)
    results["rounds"] = rounds_through_service(args.rounds)
    t, r = results["throughput"], results["rounds"]
    print(f"{'ledger service (own process), ' + str(t['clients']) + ' client processes, tx/s':<60} "
          f"{t['service_tx_per_s']:>10,.0f}")
    print(f"{'  reference: in-process, 1 writer holding the node keys, tx/s':<60} {t['in_process_tx_per_s']:>10,.0f}")
    print(f"{'  reference: raw SQLite INSERT+COMMIT (WAL, FULL), commits/s':<60} "
          f"{t['raw_sqlite_commits_per_s']:>10,.0f}")
    print(f"{'3-org plaintext round, members + driver as processes, ms/round':<60} {r['ms_per_round']:>10,.1f}")
    print(f"{'  transactions per round':<60} {r['transactions_per_round']:>10,.1f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ledger_service.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
