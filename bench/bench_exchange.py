"""The mutual-TLS exchange on loopback: latency, throughput, and a round of member processes.

Measures, side by side in one run (bench/results/exchange.json):
- latency of a small message (an authenticated Ping round trip);
- throughput of a 100,000-parameter sealed update (plaintext mode, 800 kB) sent
  to an aggregator over mutual-TLS gRPC, for several chunk sizes, and of the same
  blob through the shared model store (put + checked get) for comparison;
- throughput of a 16 MB blob;
- rounds of 3 members running as separate ``blockfedml member round`` processes
  over the exchange, the admin advancing the phases (wall time per round once
  the processes are up).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from blockfedml.consortium import Consortium
from blockfedml.exchange import ExchangeClient, ExchangeOptions, ExchangePeer, ExchangeServer, StoreTransport, TLSMaterial, TrustStore
from blockfedml.fl.aggregation import PlaintextAggregation
from blockfedml.fl.strategy import ClientUpdate
from blockfedml.fl.task import TaskSpec
from blockfedml.identity import create_organization
from blockfedml.store import ModelStore, sha256_hex

RESULTS = Path(__file__).parent / "results"
MB = 1_000_000


def _orgs(base: Path) -> tuple[dict[str, TLSMaterial], TrustStore, dict[str, bytes]]:
    tls, cas = {}, {}
    for name in ("Org1", "Org2"):
        material = create_organization(base, name, f"{name}MSP", f"{name.lower()}.bench.local")
        tls[name] = TLSMaterial.from_org_dir(material.org_dir, material.msp_id)
        cas[f"{name}MSP"] = material.tls_ca_cert_pem
    return tls, TrustStore(cas), cas


def _rate(seconds: list[float], size: int) -> float:
    return size / statistics.median(seconds) / MB


def network(base: Path, repeats: int) -> dict:
    tls, trust, cas = _orgs(base)
    update = PlaintextAggregation().seal(ClientUpdate("Org2MSP", np.random.default_rng(0).normal(size=100_000), 100))
    big = np.random.default_rng(1).bytes(16 * MB)
    out: dict = {"update_bytes": len(update)}
    with ExchangeServer(tls["Org1"], trust, "127.0.0.1:0", options=ExchangeOptions(max_message_bytes=8 << 20)) as server:
        peer = ExchangePeer("Org1MSP", server.address, cas["Org1MSP"], tls["Org1"].server_name)
        with ExchangeClient(tls["Org2"], peer) as client:
            client.ping()  # handshake
            latencies = []
            for _ in range(repeats * 20):
                started = time.perf_counter()
                client.ping(b"x" * 64)
                latencies.append(time.perf_counter() - started)
            out["ping_ms_median"] = round(1000 * statistics.median(latencies), 3)
            out["ping_ms_p95"] = round(1000 * sorted(latencies)[int(0.95 * len(latencies))], 3)
        for chunk in (64 << 10, 256 << 10, 1 << 20, 4 << 20):
            options = ExchangeOptions(chunk_bytes=chunk, max_message_bytes=8 << 20)
            with ExchangeClient(tls["Org2"], peer, options) as client:
                client.ping()
                times = []
                for round_number in range(1, repeats + 1):
                    started = time.perf_counter()
                    client.send(round_number, update)
                    times.append(time.perf_counter() - started)
                out[f"update_MBps_chunk_{chunk >> 10}k"] = round(_rate(times, len(update)), 1)
                out[f"update_ms_chunk_{chunk >> 10}k"] = round(1000 * statistics.median(times), 2)
        with ExchangeClient(tls["Org2"], peer) as client:
            client.ping()
            times = []
            for round_number in range(1, max(3, repeats // 4) + 1):
                started = time.perf_counter()
                client.send(round_number, big)
                times.append(time.perf_counter() - started)
            out["blob_16MB_MBps"] = round(_rate(times, len(big)), 1)
    store = StoreTransport(ModelStore(base / "store"))
    commitment = [{"msp_id": "Org2MSP", "digest": sha256_hex(update), "size": len(update)}]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        store.send({"round": 1}, update)
        store.collect(1, commitment)
        times.append(time.perf_counter() - started)
        store.store.path(sha256_hex(update)).unlink()  # so the next put writes again
    out["store_update_MBps"] = round(_rate(times, len(update)), 1)
    return out


def _calls(consortium: Consortium, function: str, number: int) -> int:
    return sum(1 for b in consortium.ledger.iter_blocks(1) if b["validation_code"] == "VALID"
               and b["transaction"]["function"] == function and b["transaction"]["args"][:1] == [str(number)])


def _wait(consortium: Consortium, done) -> None:
    deadline = time.monotonic() + 120
    while True:
        height = consortium.ledger.height()
        if done():
            return
        if time.monotonic() > deadline:
            raise SystemExit("member processes stalled")
        try:
            consortium.ledger.wait_for_height(height + 1, timeout=1.0)
        except Exception:
            pass


def member_processes(base: Path, rounds: int) -> dict:
    consortium = Consortium.create(base / "c", n_orgs=3, task=TaskSpec(), auditor=False)
    admin = consortium.contract("Org1")
    for org in ("Org1", "Org2", "Org3"):
        consortium.contract(org).submit_json("Join")
    admin.submit_json("OpenRound", "plaintext")
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "blockfedml.cli.main", "member", "round", "-w",
                               str(consortium.workdir), "--org", org, "--round", "1", "--rounds", str(rounds),
                               "--exchange", "grpc", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for org in ("Org1", "Org2", "Org3")]
    walls = []
    try:
        for number in range(1, rounds + 1):
            if number > 1:
                admin.submit_json("OpenRound", "plaintext")
            round_started = time.perf_counter()
            _wait(consortium, lambda: len(admin.evaluate_json("GetScreenings", number)) == 3)
            if number == 1:
                startup = time.perf_counter() - started
                round_started = time.perf_counter()  # the first round's clock starts once every member is up
            admin.submit_json("CloseSelection", number)
            _wait(consortium, lambda: _calls(consortium, "AcceptTerms", number) == 3)
            admin.submit_json("Allocate", number)
            _wait(consortium, lambda: len(admin.evaluate_json("GetEndorsements", number)) == 3)
            status = admin.submit_json("Decide", number)["decision"]["status"]
            walls.append(time.perf_counter() - round_started)
            if status != "accepted":
                raise SystemExit(f"round {number} was {status}")
        for proc in procs:
            proc.communicate(timeout=60)
            if proc.returncode != 0:
                raise SystemExit("a member process failed")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        consortium.close()
    return {"process_rounds": rounds, "process_startup_s": round(startup, 2),
            "process_round_ms_median": round(1000 * statistics.median(walls[1:] or walls), 1),
            "process_round_ms_first": round(1000 * walls[0], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = network(Path(tmp), args.repeats)
        figures.update(member_processes(Path(tmp), args.rounds))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "exchange.json").write_text(json.dumps(figures, indent=2))
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
