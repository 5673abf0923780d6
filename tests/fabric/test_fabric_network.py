"""Against a real Fabric v3 network: up, deploy, every transaction, a 3-org session, down.

The tests run in file order on one network (the ``fabric_network`` fixture):
the session creates the consortium, the next tests drive one more round by
hand through every transaction, and the last one brings the network down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fabric_protos.common import common_pb2

from blockfedml.audit.fabric_chain import block_hash
from blockfedml.consortium import Consortium
from blockfedml.errors import (
    ChaincodeError,
    ConflictError,
    InvalidInputError,
    NotAuthorizedError,
    NotFoundError,
    PhaseError,
)
from blockfedml.fl.session import Session
from blockfedml.ledger.fabric import FabricProfile

pytestmark = pytest.mark.fabric
ORGS = ("Org1MSP", "Org2MSP", "Org3MSP")
DIGEST = "ab" * 32
STATE: dict = {}


def _pids(run_dir: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in (run_dir / "pids").glob("*.pid")}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_network_up_is_ready_and_writes_a_profile(fabric_network, blockfedml):
    run_dir = fabric_network["run_dir"]
    pids = _pids(run_dir)
    assert {"orderer", "orderer2", "orderer3", "peer0.Org1", "peer0.Org2", "peer0.Org3", "chaincode"} <= set(pids)
    assert all(_alive(pid) for pid in pids.values())
    profile = FabricProfile.load(fabric_network["profile"])
    assert [o.msp_id for o in profile.orgs] == list(ORGS)
    assert "gossip" in fabric_network["up_log"] and "raft leader" in fabric_network["up_log"]
    listed = blockfedml("admin", "channel", "list", "--org", "Org2", "--json", run_dir=run_dir)
    assert json.loads(listed.stdout)["channels"] == ["fedchannel"]


def test_up_refuses_a_second_network_on_the_same_run_dir(fabric_network, blockfedml):
    again = blockfedml("admin", "network", "up", run_dir=fabric_network["run_dir"], check=False)
    assert again.returncode != 0
    assert "already running" in again.stderr


def test_chaincode_is_deployed_and_answers_on_every_peer(fabric_network):
    assert "chaincode deployed" in fabric_network["deploy_log"]
    package_id = (fabric_network["run_dir"] / "chaincode" / "package_id").read_text().strip()
    assert package_id.startswith("blockfedml_1.0:")


def test_a_three_org_session_runs_on_fabric(fabric_network, tmp_path):
    consortium = Consortium.attach_fabric(tmp_path / "c", fabric_network["profile"])
    STATE["workdir"] = consortium.workdir
    session = Session(consortium)
    results = session.run(2)
    assert [r.status for r in results] == ["accepted", "accepted"]
    assert all(sorted(r.participants) == list(ORGS) for r in results)
    # 100 on joining, then the reward (10) for each round whose aggregate improved (never without gain).
    rewarded = [e for e in consortium.contract("Org1").evaluate_json("GetReputationHistory", "Org1MSP")
                if e["reason"] == "reward"]
    assert 1 <= len(rewarded) <= 2 and results[-1].reputation == {msp: 100 + 10 * len(rewarded) for msp in ORGS}
    assert results[-1].test_accuracy > 0.85
    # Reopened from its work directory (as a member process would), it sees the same chain.
    consortium.close()
    again = Consortium.open(consortium.workdir)
    assert again.kind == "fabric"
    head = again.contract("Org3").evaluate_json("GetHead")
    assert head["checkpoint"] == results[-1].digest and head["round"] == 2
    again.close()


def _genesis_hash(run_dir: Path) -> str:
    """The channel genesis block's header hash, from the block configtxgen wrote (what a founder
    hands an auditor out of band)."""
    block = common_pb2.Block.FromString((run_dir / "channel" / "fedchannel.block").read_bytes())
    return block_hash(block).hex()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blockfedml.cli.main", *args], capture_output=True, text=True,
                          timeout=300)


def test_audit_verify_pulls_blocks_from_the_peers_and_runs_all_seven_checks(fabric_network):
    workdir = STATE["workdir"]
    genesis_block = fabric_network["run_dir"] / "channel" / "fedchannel.block"
    pinned = _cli("audit", "pin", "-w", str(workdir), "--genesis-block", str(genesis_block))
    assert pinned.returncode == 0 and _genesis_hash(fabric_network["run_dir"]) in pinned.stdout, pinned.stderr
    done = _cli("audit", "verify", "-w", str(workdir), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    checks = {c["name"]: c["status"] for c in report["checks"]}
    assert checks == dict.fromkeys(("ledger", "replay", "checkpoints", "rounds", "aggregates", "reputation",
                                    "decisions"), "pass")
    assert not any(c["skipped"] for c in report["checks"])
    ledger = next(c for c in report["checks"] if c["name"] == "ledger")
    replay = next(c for c in report["checks"] if c["name"] == "replay")
    assert int(ledger["detail"].split()[0]) >= 20 and ledger["detail"].split()[1] == "blocks,"
    assert int(replay["detail"].split()[0]) >= 20  # the session's transactions, re-executed
    pulled = next(n for n in report["notes"] if n.startswith("blocks pulled from"))
    assert all(f"peer0.org{i}.blockfedml.local" in pulled for i in (1, 2, 3))


def test_a_block_altered_in_one_peers_copy_is_caught_naming_the_block_and_the_peers(fabric_network):
    from blockfedml.audit.fabric_copy import peer_sources
    from blockfedml.audit.verify import audit_consortium

    c = Consortium.open(STATE["workdir"])
    sources = peer_sources(c, "Org1")
    honest, other = list(sources)[:2]
    altered_number = 7

    def altered(start: int, stop: int | None, wait: bool, source=sources[other]):
        for block in source(start, stop, wait):
            if block.header.number == altered_number:  # one write value changed inside the transaction
                data = bytearray(block.data.data[0])
                at = data.rfind(b'"round"')
                data[at + 1:at + 2] = b"R"
                block.data.data[0] = bytes(data)
            yield block

    report = audit_consortium(c, "Org1", sources={honest: sources[honest], other: altered})
    ledger = report.check("ledger")
    assert ledger.status == "fail"
    (finding,) = [f for f in ledger.findings if "disagree" in f.message]
    assert finding.object == f"block {altered_number}"
    assert honest in finding.message and other in finding.message
    # Handed alone, the altered copy fails its own data hash (the auditor's copy already holds it: rewritten).
    alone = audit_consortium(c, "Org1", sources={other: altered, honest: altered}).check("ledger")
    assert any(f.object == f"block {altered_number}" for f in alone.findings)
    # The untouched peers still pass.
    assert audit_consortium(c, "Org1").check("ledger").status == "pass"
    c.close()


def test_the_auditors_copy_is_checked_against_signatures_and_the_mvcc_replay(fabric_network):
    """Each rewrite of a block the peers agree on is caught by the check that owns it."""
    from blockfedml_chaincode.shim import new_chaincode

    from blockfedml.audit.fabric_chain import FabricChain
    from blockfedml.audit.fabric_copy import FabricAuditorCopy

    c = Consortium.open(STATE["workdir"])
    held = FabricAuditorCopy(c.audit_folder("Org1")).held()
    c.close()
    assert len(held) >= 20

    def problems(change) -> list[str]:
        blocks = [common_pb2.Block.FromString(b.SerializeToString()) for b in held]
        change(blocks[-5])
        return FabricChain("blockfedml").check(blocks, new_chaincode()).ledger.problems

    assert problems(lambda block: None) == []
    number = held[-5].header.number

    def flip_codes(block):  # VALID -> MVCC_READ_CONFLICT in the peer's validation codes
        codes = block.metadata.metadata[common_pb2.TRANSACTIONS_FILTER]
        block.metadata.metadata[common_pb2.TRANSACTIONS_FILTER] = bytes([11] * len(codes))

    def forge_signature(block):
        metadata = common_pb2.Metadata.FromString(block.metadata.metadata[common_pb2.SIGNATURES])
        signature = bytearray(metadata.signatures[0].signature)
        signature[12] ^= 1
        metadata.signatures[0].signature = bytes(signature)
        block.metadata.metadata[common_pb2.SIGNATURES] = metadata.SerializeToString()

    assert f"block {number} (tx" in problems(flip_codes)[0] and "replay finds no conflict" in problems(flip_codes)[0]
    assert problems(forge_signature) == [f"block {number}: no orderer signature verifies against the orderer "
                                         "organizations of the pinned genesis (OrdererMSP: the signature does "
                                         "not verify)"]


def test_a_members_signed_tip_catches_a_chain_cut_short_by_the_peers(fabric_network, tmp_path):
    from blockfedml.audit.fabric_copy import peer_sources
    from blockfedml.audit.verify import audit_consortium

    w = str(STATE["workdir"])
    tip = _cli("member", "tip", "--org", "Org3", "-w", w)
    assert tip.returncode == 0, tip.stderr
    witness = tmp_path / "org3-tip.json"
    witness.write_text(tip.stdout)
    record = json.loads(tip.stdout)
    assert record["number"] >= 20 and len(record["orderer_signatures"]) > 100
    verified = _cli("audit", "verify", "-w", w, "--witness", str(witness), "--json")
    assert verified.returncode == 0, verified.stdout

    c = Consortium.open(w)
    sources = peer_sources(c, "Org2")  # Org2 audits with a copy of its own, from peers that cut the tail

    def cut(source):
        return lambda start, stop, wait: (b for b in source(start, stop, wait) if b.header.number < record["number"])

    report = audit_consortium(c, "Org2", witnesses={"Org3": record},
                              sources={name: cut(source) for name, source in sources.items()})
    c.close()
    messages = [str(f) for f in report.check("ledger").findings]
    assert any(f"block {record['number']}: Org3 holds a tip the orderer signed at block {record['number']}" in m
               and "its tail was cut" in m for m in messages), messages


ORDERER_OPS_PORTS = {"orderer": 9443, "orderer2": 9447, "orderer3": 9448}
LIMIT = 180.0


def _metric(port: int, name: str) -> float | None:
    """A node's Prometheus metric on fedchannel, or None when the node does not answer."""
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    prefix = f'{name}{{channel="fedchannel"}} '
    return next((float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix)), None)


def _raft_leader() -> str:
    leaders = [n for n, port in ORDERER_OPS_PORTS.items() if _metric(port, "consensus_etcdraft_is_leader") == 1]
    assert len(leaders) == 1, leaders
    return leaders[0]


def _until(check, what: str, consortium: Consortium) -> object:
    """``check()``'s first true value, looked at again as the consortium waits for a block
    (on Fabric: its short poll interval)."""
    give_up = time.monotonic() + LIMIT
    while not (value := check()):
        assert time.monotonic() < give_up, f"gave up waiting for {what}"
        consortium.wait_for_block(consortium.ledger_height(), timeout=1.0)
    return value


def test_a_session_completes_when_the_raft_leader_is_killed_mid_round(fabric_network, blockfedml):
    """Three raft orderers: SIGKILL the leader once a round is open; the other two elect a new
    leader and the session's rounds are accepted; the node started again catches up."""
    run_dir = fabric_network["run_dir"]
    c = Consortium.open(STATE["workdir"])
    watcher = Consortium.open(STATE["workdir"])
    before = watcher.contract("Org2").evaluate_json("GetHead")["last_round"]
    leader = _raft_leader()
    results: list = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.extend(Session(c).run(2))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    session = threading.Thread(target=run)
    session.start()
    try:
        _until(lambda: watcher.contract("Org2").evaluate_json("GetHead")["last_round"] > before,
               "a round to open", watcher)
        os.kill(_pids(run_dir)[leader], signal.SIGKILL)
        session.join(timeout=LIMIT)
        assert not session.is_alive() and not errors, errors
        assert [r.status for r in results] == ["accepted", "accepted"]
        assert _raft_leader() != leader
    finally:
        session.join(timeout=LIMIT)
        restarted = blockfedml("admin", "network", "start", leader, run_dir=run_dir, check=False)
        c.close()
        watcher.close()
    assert restarted.returncode == 0, restarted.stderr
    assert _metric(ORDERER_OPS_PORTS[leader], "consensus_etcdraft_leader_changes") >= 1


def _member_process(w: str, org: str, rounds: int = 1) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "blockfedml.cli.main", "member", "round", "-w", w, "--org", org,
                             "--rounds", str(rounds), "--exchange", "store", "--timeout", str(LIMIT), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _driver_process(w: str, rounds: int = 1) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "blockfedml.cli.main", "admin", "round", "drive", "-w", w,
                             "--rounds", str(rounds), "--timeout", str(LIMIT), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_peer_killed_mid_round_the_round_goes_on_and_its_member_rejoins_when_it_is_back(
        fabric_network, blockfedml):
    """Org3's peer is SIGKILLed once Org3 accepted the round: Org3's member process ends with an
    error (no hang); at the phase deadline the round goes on with Org1 and Org2 (whose peers still
    make the majority endorsement). With the peer started again, Org3 takes part in the next round."""
    run_dir, w = fabric_network["run_dir"], str(STATE["workdir"])
    c = Consortium.open(w)
    admin = c.contract("Org1")
    admin.submit_json("SetSettings", {"selection_deadline": 8, "configuration_deadline": 8,
                                      "update_deadline": 8, "feedback_deadline": 8})
    number = admin.evaluate_json("GetHead")["last_round"] + 1
    procs = {org: _member_process(w, org) for org in ("Org1", "Org2", "Org3")}
    procs["driver"] = _driver_process(w)
    try:
        def accepted() -> bool:
            try:
                return "Org3MSP" in {a["msp_id"] for a in admin.evaluate_json("GetAcceptances", number)}
            except NotFoundError:
                return False
        _until(accepted, "Org3 to accept the round", c)
        os.kill(_pids(run_dir)["peer0.Org3"], signal.SIGKILL)
        outcomes = {name: (proc.wait(timeout=LIMIT), *proc.communicate()) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert outcomes["Org3"][0] != 0 and "9051" in outcomes["Org3"][2], outcomes["Org3"]
    for name in ("Org1", "Org2", "driver"):
        assert outcomes[name][0] == 0, (name, outcomes[name][2])
    record = admin.evaluate_json("GetRound", number)
    assert record["decision"]["status"] == "accepted" and "Org3MSP" in record["absent"]
    # While the peer is down the auditor compares the two peers that answer.
    from blockfedml.audit.verify import audit_consortium
    report = audit_consortium(c, "Org1")
    assert report.check("ledger").status == "pass" and report.check("replay").status == "pass"
    assert any(n.startswith("peer0.org3.blockfedml.local did not deliver blocks") for n in report.notes)

    restarted = blockfedml("admin", "network", "start", "peer0.Org3", run_dir=run_dir, check=False)
    assert restarted.returncode == 0, restarted.stderr
    procs = {org: _member_process(w, org) for org in ("Org1", "Org2", "Org3")}
    procs["driver"] = _driver_process(w)
    try:
        outcomes = {name: (proc.wait(timeout=LIMIT), *proc.communicate()) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert all(code == 0 for code, _, _ in outcomes.values()), {n: o[2][-400:] for n, o in outcomes.items()}
    record = admin.evaluate_json("GetRound", number + 1)
    assert record["decision"]["status"] == "accepted" and record["participants"] == list(ORGS)
    verified = _cli("audit", "verify", "-w", w, "--json")
    assert verified.returncode == 0, verified.stdout  # blocks signed by every orderer, all three peers agree
    admin.submit_json("SetSettings", {"selection_deadline": 30, "configuration_deadline": 30,
                                      "update_deadline": 6, "feedback_deadline": 30})
    c.close()


def test_every_transaction_and_its_refusals_through_the_gateway(fabric_network):
    c = Consortium.open(STATE["workdir"])
    org1, org2, org3 = (c.contract(n) for n in ("Org1", "Org2", "Org3"))
    org2_before = org2.evaluate_json("GetReputation", "Org2MSP")["balance"]
    rounds_before = len(org1.evaluate_json("ListRounds"))
    members = {"Org1MSP": org1, "Org2MSP": org2, "Org3MSP": org3}

    with pytest.raises(ConflictError, match=r"^\[EXISTS\] the consortium is already initialized$"):
        org1.submit_json("InitConsortium", {}, DIGEST, 0)
    with pytest.raises(InvalidInputError, match="genesis_digest"):
        org2.submit_json("InitConsortium", {}, "not-a-digest", 0)
    with pytest.raises(NotAuthorizedError, match="Org2MSP is not an admin"):
        org2.submit_json("SetSettings", {"reward": 5})
    assert org1.submit_json("SetSettings", {"reward": 5})["reward"] == 5
    with pytest.raises(ConflictError, match="already registered"):
        org1.submit_json("RegisterOrg", "Org2MSP", ["member"])
    with pytest.raises(ConflictError, match="already joined"):
        org2.submit_json("Join")
    with pytest.raises(NotFoundError, match="round 99 does not exist"):
        org3.evaluate_json("GetRound", 99)

    with pytest.raises(NotAuthorizedError):
        org2.submit_json("OpenRound", "plaintext")
    number = org1.submit_json("OpenRound", "plaintext")["round"]
    with pytest.raises(PhaseError, match="still open"):
        org1.submit_json("SetSettings", {"reward": 6})
    for msp, contract in members.items():
        assert contract.submit_json("ReportScreening", number, 1, 7) == {"score": 7, "verdict": 1}
    with pytest.raises(ConflictError, match="already reported"):
        org3.submit_json("ReportScreening", number, 1, 7)
    with pytest.raises(PhaseError, match="not configuration"):
        org2.submit_json("AcceptTerms", number, DIGEST)
    assert org1.submit_json("CloseSelection", number)["selected"] == list(ORGS)
    base = org1.evaluate_json("GetRound", number)["base_checkpoint"]
    with pytest.raises(InvalidInputError, match="is not the base checkpoint"):
        org2.submit_json("AcceptTerms", number, DIGEST)
    for contract in members.values():
        contract.submit_json("AcceptTerms", number, base)
    round_ = org1.submit_json("Allocate", number)
    assert round_["phase"] == "update" and round_["participants"] == list(ORGS)
    for i, contract in enumerate(members.values()):
        contract.submit_json("CommitUpdate", number, f"{i:02x}" * 32, 100, 10)
    assert len(org3.evaluate_json("GetUpdates", number)) == 3
    aggregator = round_["aggregator"]
    other = next(m for m in ORGS if m != aggregator)
    with pytest.raises(NotAuthorizedError):
        members[other].submit_json("ProposeAggregate", number, DIGEST, list(ORGS))
    proposed = members[aggregator].submit_json("ProposeAggregate", number, DIGEST, list(ORGS))
    assert proposed["phase"] == "feedback"
    with pytest.raises(InvalidInputError):
        org2.submit_json("Endorse", number, "cd" * 32, 900000, 900000)
    for contract in members.values():
        contract.submit_json("Endorse", number, DIGEST, 990000, 900000)
    decided = org2.submit_json("Decide", number)  # a participant may decide
    assert decided["decision"]["status"] == "accepted"
    with pytest.raises(ConflictError):
        org1.submit_json("Decide", number)

    # Every query answers through each organization's own peer.
    for contract in members.values():
        assert contract.evaluate_json("GetHead")["checkpoint"] == DIGEST
    assert org1.evaluate_json("GetConsortium")["admin"] == "Org1MSP"
    assert org1.evaluate_json("GetSettings")["reward"] == 5
    assert [o["msp_id"] for o in org1.evaluate_json("ListOrgs")] == list(ORGS)
    assert org1.evaluate_json("GetOrg", "Org3MSP")["status"] == "active"
    assert [r["round"] for r in org1.evaluate_json("ListRounds")] == list(range(1, rounds_before + 2))
    assert org1.evaluate_json("GetCheckpoint", number)["status"] == "accepted"
    assert len(org1.evaluate_json("ListCheckpoints")) == rounds_before + 2  # genesis and one per round
    assert len(org1.evaluate_json("GetEndorsements", number)) == 3
    assert len(org1.evaluate_json("GetScreenings", number)) == 3
    assert org1.evaluate_json("GetReputation", "Org2MSP")["balance"] == org2_before + 5  # reward set to 5 above
    assert org1.evaluate_json("GetReputationHistory", "Org2MSP")[-1]["delta"] == 5
    with pytest.raises(ChaincodeError, match="NoSuchFunction not found"):
        org1.submit("NoSuchFunction")
    c.close()


def test_concurrent_reads_of_a_written_key_end_in_mvcc_conflict(fabric_network):
    c = Consortium.open(STATE["workdir"])
    admin = c.contract("Org1")
    first = admin.new_proposal("SetSettings", '{"reward": 7}').endorse()
    second = admin.new_proposal("SetSettings", '{"reward": 8}').endorse()
    first.submit()
    with pytest.raises(ConflictError, match="MVCC_READ_CONFLICT"):
        second.submit()
    assert admin.evaluate_json("GetSettings")["reward"] == 7
    # The one-call submit re-endorses after a conflict, so it simply succeeds.
    assert admin.submit_json("SetSettings", {"reward": 9})["reward"] == 9
    c.close()


def test_concurrent_submitters_do_not_hang_the_chaincode(fabric_network):
    """Regression for FABRIC_NOTES item 10: concurrent transactions on one chaincode stream."""
    c = Consortium.open(STATE["workdir"])
    number = c.contract("Org1").submit_json("OpenRound", "plaintext")["round"]
    errors: list[BaseException] = []

    def screen(name: str) -> None:
        try:
            c.contract(name).submit_json("ReportScreening", number, 1, 1)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=screen, args=(n,)) for n in ("Org1", "Org2", "Org3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and not any(t.is_alive() for t in threads)
    assert len(c.contract("Org2").evaluate_json("GetScreenings", number)) == 3
    c.close()


def test_network_down_stops_only_its_processes_and_removes_state(fabric_network, blockfedml):
    run_dir = fabric_network["run_dir"]
    pids = _pids(run_dir)
    blockfedml("admin", "network", "down", run_dir=run_dir)
    assert not any(_alive(pid) for pid in pids.values())
    assert not run_dir.exists()
