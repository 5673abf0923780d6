"""The ledger service (ledger/embedded/service.py): the same Gateway client as Fabric, over
real gRPC with mutual TLS, and every attack of the issue refused with the state unchanged.

The service runs in this process (``ledger_host.serving``: real server threads, real
sockets); the crash test runs it as its own process and kills it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fabric_protos.common import common_pb2
from session_builder import build_session
from test_ledger_node import forge_write
from test_ledger_node import state_digest as ledger_state_digest

from blockfedml import ledger_host
from blockfedml.consortium import Consortium
from blockfedml.errors import ConflictError, IntegrityError, LedgerError, NotAuthorizedError
from blockfedml.fl.task import TaskSpec
from blockfedml.identity import SigningIdentity, create_organization
from blockfedml.ledger.deliver import embedded_block
from blockfedml.ledger.embedded import blocks as blk
from blockfedml.ledger.embedded.node import NodeCertificates
from blockfedml.ledger.fabric import FabricGateway, PeerEndpoint
from blockfedml.ledger.fabric import gateway as fabric_gateway


def state_digest(workdir: Path) -> str:
    return ledger_state_digest(workdir / "ledger" / "ledger.sqlite")


@pytest.fixture(scope="module")
def banned_session(tmp_path_factory) -> Path:
    """Three rounds: Org3 is banned in round 2 (see session_builder.py)."""
    return build_session(tmp_path_factory.mktemp("service") / "session")


@pytest.fixture
def served(banned_session, tmp_path):
    """A copy of the session with its ledger service running; members reach it over gRPC."""
    workdir = Path(shutil.copytree(banned_session, tmp_path / "c"))
    with ledger_host.serving(workdir):
        consortium = Consortium.open(workdir, ledger_access="service")
        yield consortium
        consortium.close()


def test_members_reach_the_ledger_through_the_same_gateway_client_as_fabric(served) -> None:
    org2 = served.contract("Org2")
    assert served.via_service and isinstance(served.gateway("Org2"), FabricGateway)
    height = served.ledger_height()
    result = served.contract("Org1").submit_json("SetSettings", {"reward": 7})
    assert result["reward"] == 7 and org2.evaluate_json("GetSettings")["reward"] == 7
    assert served.ledger_height() == height + 1


def test_a_write_set_built_by_the_client_is_refused(served) -> None:
    """Org2 asks for an allowed transaction, then writes itself admin into the write set."""
    before = state_digest(served.workdir)
    gateway = served.gateway("Org2")
    tx = served.contract("Org2").new_proposal("GetSettings").endorse()
    forged = forge_write(tx.envelope.payload, "org~Org2MSP",
                         b'{"msp_id":"Org2MSP","roles":["admin","member"],"status":"active"}')
    envelope = common_pb2.Envelope(payload=forged, signature=gateway.identity.sign(forged))
    with pytest.raises(IntegrityError, match="endorsement signature does not verify"):
        gateway.submit(tx.tx_id, served.channel, envelope)
    assert state_digest(served.workdir) == before


def test_a_proposal_signed_with_another_organizations_key_is_refused(served) -> None:
    org1, org2 = (served.gateway(o).identity for o in ("Org1", "Org2"))
    impostor = SigningIdentity(org1.msp_id, org1.certificate, org2.private_key)
    before = state_digest(served.workdir)
    with FabricGateway.connect(impostor, served.service_endpoint("Org2")) as gateway:
        contract = gateway.network(served.channel).contract()
        with pytest.raises(IntegrityError, match="signature does not verify"):
            contract.submit("SetSettings", '{"reward": 1}')
    # An endorsed transaction of Org2, its envelope then signed with Org1's key: refused at submit.
    gateway = served.gateway("Org2")
    tx = served.contract("Org2").new_proposal("GetSettings").endorse()
    swapped = common_pb2.Envelope(payload=tx.envelope.payload, signature=org1.sign(tx.envelope.payload))
    with pytest.raises(IntegrityError, match="envelope signature does not verify"):
        gateway.submit(tx.tx_id, served.channel, swapped)
    assert state_digest(served.workdir) == before


def test_a_replayed_envelope_is_refused_or_acknowledged_without_a_second_block(served) -> None:
    gateway = served.gateway("Org1")
    tx = served.contract("Org1").new_proposal("SetSettings", '{"reward": 9}').endorse()
    tx.submit()
    height, before = served.ledger_height(), state_digest(served.workdir)
    gateway.submit(tx.tx_id, served.channel, tx.envelope)  # the same bytes again: a client retry
    resigned = common_pb2.Envelope(payload=tx.envelope.payload, signature=gateway.identity.sign(tx.envelope.payload))
    with pytest.raises(ConflictError, match="replay refused"):
        gateway.submit(tx.tx_id, served.channel, resigned)  # other bytes, same transaction ID
    assert (served.ledger_height(), state_digest(served.workdir)) == (height, before)


def test_submit_answers_with_the_commit_status_so_the_client_skips_commit_status(served, monkeypatch) -> None:
    """The service answers Submit once the block is on disk, with its status in the trailing
    metadata; the client takes it (one round trip less). Without it, as from a Fabric peer,
    the client asks CommitStatus and gets the same answer."""
    gateway = served.gateway("Org1")
    asked: list[str] = []
    ask = gateway.commit_status
    monkeypatch.setattr(gateway, "commit_status", lambda tx_id, channel: asked.append(tx_id) or ask(tx_id, channel))
    tx = served.contract("Org1").new_proposal("SetSettings", '{"reward": 4}').endorse()
    assert json.loads(tx.submit())["reward"] == 4
    assert asked == [] and tx.block_number == served.ledger_height() - 1
    monkeypatch.setattr(fabric_gateway, "committed_status", lambda metadata: None)  # a peer's answer
    tx = served.contract("Org1").new_proposal("SetSettings", '{"reward": 5}').endorse()
    assert json.loads(tx.submit())["reward"] == 5
    assert asked == [tx.tx_id] and tx.block_number == served.ledger_height() - 1


def test_the_commit_status_metadata_is_read_strictly() -> None:
    key = fabric_gateway.COMMIT_STATUS_METADATA
    status = fabric_gateway.committed_status([("other", "x"), (key, "11/42")])
    assert (status.result, status.block_number) == (11, 42)
    for value in ("", "0", "a/1", "0/-1", "0/1/2", b"0/x"):
        assert fabric_gateway.committed_status([(key, value)]) is None, value


def test_a_client_certificate_from_an_unknown_ca_is_refused_at_the_tls_layer(served, tmp_path) -> None:
    outsider = create_organization(tmp_path / "outsider", "Outsider", "OutsiderMSP", "outsider.example.com")
    own = served.service_endpoint("Org2")
    endpoint = PeerEndpoint(own.address, own.tls_ca, own.server_name,
                            outsider.admin_tls_dir / "client.crt", outsider.admin_tls_dir / "client.key")
    before = state_digest(served.workdir)
    with FabricGateway.connect(outsider.admin(), endpoint) as gateway:
        with pytest.raises(LedgerError, match="cannot reach"):
            gateway.network(served.channel).contract().evaluate("GetSettings")
    # Its TLS certificate from Org2's CA, its signing identity the outsider's: refused by the ledger.
    with FabricGateway.connect(outsider.admin(), own) as gateway:
        with pytest.raises(NotAuthorizedError, match="OutsiderMSP is not a member"):
            gateway.network(served.channel).contract().submit("Join")
    assert state_digest(served.workdir) == before


def test_a_banned_member_and_an_auditor_cannot_write(served) -> None:
    assert served.contract("Org1").evaluate_json("GetOrg", "Org3MSP")["status"] == "banned"
    before = state_digest(served.workdir)
    with pytest.raises(NotAuthorizedError, match="banned"):
        served.contract("Org3").submit_json("OpenRound", "plaintext")
    with pytest.raises(NotAuthorizedError, match="auditor"):
        served.contract("Auditor").submit_json("Join")
    assert state_digest(served.workdir) == before


def test_blocks_are_delivered_with_orderer_signatures_that_verify(served) -> None:
    gateway = served.gateway("Auditor")  # read access is enough
    delivered = [embedded_block(b) for b in gateway.blocks(served.channel, 0, None)]
    assert len(delivered) == served.ledger_height()
    node = blk.decode_node(delivered[0].envelope)
    assert isinstance(node, NodeCertificates) and node == served.ledger.node_certificates
    previous = blk.GENESIS_PREVIOUS_HASH
    for block in delivered:
        assert block.previous_hash == previous
        if block.number > 0:
            assert block.data_hash == blk.transaction_data_hash(block.envelope, block.proposal_signature,
                                                                block.validation_code)
            assert node.block_signature_ok(block.header, block.orderer_signature), block.number
        previous = block.hash
    # A block altered in transit no longer carries a valid signature.
    forged = delivered[5]
    assert not node.block_signature_ok(blk.block_header_bytes(forged.number, forged.previous_hash,
                                                              b"\x00" * 32), forged.orderer_signature)


def test_a_waiting_deliver_request_wakes_on_the_next_block(served) -> None:
    gateway = served.gateway("Org2")
    height = served.ledger_height()
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.extend(
        b.header.number for b in gateway.blocks(served.channel, height, height, wait=True, timeout=30)))
    reader.start()
    served.contract("Org1").submit_json("SetSettings", {"reward": 3})
    reader.join(timeout=30)
    assert got == [height]


def test_a_deliver_request_from_outside_the_channel_is_refused(served, tmp_path) -> None:
    outsider = create_organization(tmp_path / "outsider", "Outsider", "OutsiderMSP", "outsider.example.com")
    with FabricGateway.connect(outsider.admin(), served.service_endpoint("Org2")) as gateway:
        with pytest.raises(LedgerError, match="FORBIDDEN"):
            list(gateway.blocks(served.channel, 0, None))


def test_the_service_killed_mid_commit_loses_nothing_acknowledged(tmp_path) -> None:
    """kill -9 while a client commits in a loop, restart: every acknowledged transaction is there,
    the chain verifies, and the client reconnects to the new process."""
    workdir = tmp_path / "c"
    Consortium.create(workdir, n_orgs=2, task=TaskSpec(), auditor=False).close()
    ledger_host.start_background(workdir)
    writer = subprocess.Popen([sys.executable, str(Path(__file__).with_name("service_writer.py")), str(workdir)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        acknowledged = []
        for line in writer.stdout:  # wait for 20 acknowledged commits, then kill the service
            acknowledged.append(line.split()[1])
            if len(acknowledged) == 20:
                break
        pid = ledger_host.running_pid(workdir)
        os.kill(pid, signal.SIGKILL)
        rest, _ = writer.communicate(timeout=60)  # the writer stops at its first failed call
    finally:
        if writer.poll() is None:
            writer.kill()
    acknowledged += [line.split()[1] for line in rest.splitlines() if line.startswith("committed")]
    (workdir / ledger_host.PID_FILE).unlink()
    ledger_host.start_background(workdir)  # restart
    consortium = Consortium.open(workdir, ledger_access="service")
    try:
        for tx_id in acknowledged:
            assert consortium.ledger.transaction_status(tx_id).valid
        assert consortium.ledger.verify().ok
        consortium.contract("Org1").submit_json("SetSettings", {"reward": 4})  # clients reconnect
    finally:
        consortium.close()


def test_concurrent_submits_are_committed_together_and_each_in_its_own_block(make_ledger, orgs,
                                                                               ledger_node_material) -> None:
    """Group commit: four clients at once; every transaction valid in its own signed block, MVCC
    still applied in order within a batch (two increments of one key: the second conflicts)."""
    from blockfedml.ledger.embedded.service import LedgerService, ServiceTLS

    ledger = make_ledger(members=4)
    tls_dir = ledger_node_material.peer_tls_dir
    tls = ServiceTLS((tls_dir / "server.crt").read_bytes(), (tls_dir / "server.key").read_bytes(),
                     b"".join(o.tls_ca_cert_pem for o in orgs))
    service = LedgerService(ledger, "127.0.0.1:0", tls).start()
    ca = next((ledger_node_material.msp_dir / "tlscacerts").glob("*.pem"))
    gateways = [FabricGateway.connect(o.admin(), PeerEndpoint(f"127.0.0.1:{service.port}", ca,
                                                              f"peer0.{ledger_node_material.domain}",
                                                              o.admin_tls_dir / "client.crt",
                                                              o.admin_tls_dir / "client.key")) for o in orgs]
    try:
        contracts = [g.network(ledger.channel).contract() for g in gateways]
        errors: list[BaseException] = []

        def put(n: int) -> None:
            try:
                for i in range(15):
                    contracts[n].submit("Put", f"c{n}-{i}", str(i))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=put, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors and ledger.height() == 1 + 60
        first, second = (contracts[0].new_proposal("Incr", "n").endorse() for _ in range(2))
        results = []
        both = [threading.Thread(target=lambda tx=tx: results.append(_outcome(tx))) for tx in (first, second)]
        for t in both:
            t.start()
        for t in both:
            t.join(timeout=60)
        assert sorted(results) == ["ConflictError", "ok"]
        assert contracts[1].evaluate("Get", "n") == b"1"
        report = ledger.verify()
        assert report.ok, report
    finally:
        for g in gateways:
            g.close()
        service.stop()


def _outcome(tx) -> str:
    try:
        tx.submit()
        return "ok"
    except ConflictError:
        return "ConflictError"


def test_endpoints_follow_the_host_given_at_creation(tmp_path) -> None:
    """No address is built in: the exchange servers and the ledger service listen on the host given
    (certificates are checked by name); a host that is not this machine's is refused, nothing written."""
    from blockfedml.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="cannot place endpoints on host"):
        Consortium.create(tmp_path / "bad", n_orgs=2, task=TaskSpec(), auditor=False, host="192.0.2.1")
    assert not (tmp_path / "bad").exists()
    created = Consortium.create(tmp_path / "c", n_orgs=2, task=TaskSpec(), auditor=False, host="127.0.0.2")
    assert created.service.address.startswith("127.0.0.2:")
    assert all(o.exchange.startswith("127.0.0.2:") for o in created.members)
    created.close()
    with ledger_host.serving(tmp_path / "c"):
        member = Consortium.open(tmp_path / "c", ledger_access="service")
        assert member.contract("Org2").submit_json("Join")["status"] == "active"
        member.close()
