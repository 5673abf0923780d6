"""The transport seam: blobs reach the aggregator only, and are checked against
their on-chain commitments before they are used."""

from __future__ import annotations

import dataclasses

import pytest
from exchange_helpers import FAST

from blockfedml.errors import ExchangeError, IntegrityError, NotAuthorizedError
from blockfedml.exchange import GrpcTransport, StoreTransport, open_transport
from blockfedml.fl.member import Member
from blockfedml.fl.task import member_data, task_model
from blockfedml.store import ModelStore, sha256_hex

ROUND = {"round": 1, "phase": "update", "aggregator": "Org1MSP"}
QUICK = dataclasses.replace(FAST, collect_timeout=0.3)


def _commitment(msp_id: str, blob: bytes) -> dict:
    return {"msp_id": msp_id, "digest": sha256_hex(blob), "size": len(blob), "num_samples": 1}


@pytest.fixture
def pair(orgs):
    """Org1 (the aggregator) and Org2, each with its own exchange server."""
    org1 = GrpcTransport(orgs.tls["Org1"], {"Org1MSP": orgs.peer("Org1", "unused:1"),
                                            "Org2MSP": orgs.peer("Org2", "unused:1")},
                         listen="127.0.0.1:0", options=QUICK)
    peers = {"Org1MSP": orgs.peer("Org1", org1.server.address), "Org2MSP": orgs.peer("Org2", "unused:1")}
    org2 = GrpcTransport(orgs.tls["Org2"], peers, listen="127.0.0.1:0", options=QUICK)
    yield org1, org2
    org2.close()
    org1.close()


def test_a_blob_that_is_not_the_committed_one_is_reported_and_never_used(pair):
    org1, org2 = pair
    own, sent, committed = b"Org1's update", b"what Org2 sent", b"what Org2 committed"
    assert org1.send(ROUND, own) == sha256_hex(own)  # the aggregator's own blob stays local
    org2.send(ROUND, sent)
    commitments = [_commitment("Org1MSP", own), _commitment("Org2MSP", committed)]
    with pytest.raises(IntegrityError) as mismatch:
        org1.collect(1, commitments)
    message = str(mismatch.value)
    assert "round 1" in message and "Org2MSP" in message
    assert sha256_hex(sent) in message and sha256_hex(committed) in message
    assert "discarded" in message
    assert org1.server.inbox.senders(1) == ["Org1MSP"]  # the bad blob is gone
    org2.send(ROUND, committed)  # the sender resends the blob it committed
    assert org1.collect(1, commitments) == {"Org1MSP": own, "Org2MSP": committed}


def test_the_aggregator_waits_for_committed_blobs_and_names_the_missing_sender(pair):
    org1, _ = pair
    with pytest.raises(ExchangeError, match="no blob received from Org2MSP within 0.3 s"):
        org1.collect(1, [_commitment("Org2MSP", b"never sent")])


def test_the_store_transport_checks_digest_and_size(tmp_path):
    store = ModelStore(tmp_path / "store")
    transport = StoreTransport(store)
    digest = transport.send(ROUND, b"update")
    assert transport.collect(1, [_commitment("Org2MSP", b"update")]) == {"Org2MSP": b"update"}
    with pytest.raises(IntegrityError, match="its commitment on the ledger says 99"):
        transport.collect(1, [{**_commitment("Org2MSP", b"update"), "size": 99}])
    store.path(digest).write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="tampered with"):
        transport.collect(1, [_commitment("Org2MSP", b"update")])


def test_a_round_over_the_exchange_reaches_only_the_aggregator(consortium):
    """Three members with gRPC transports on a real ledger: the round is accepted, the
    updates never touch the shared store, and a non-aggregator's server refuses them."""
    c = consortium
    n = len(c.members)
    members = [
        Member(msp_id=p.msp_id, contract=c.contract(p.name), store=c.store,
               data=member_data(c.task, n, p.partition), model=task_model(c.task, n), task=c.task,
               transport=open_transport(c, p.name, "grpc", options=FAST))
        for p in c.members
    ]
    try:
        admin = c.contract(c.admin.name)
        for m in members:
            m.join()
        number = admin.submit_json("OpenRound", "plaintext")["round"]
        for step in (None, "CloseSelection"):  # every member accepted while screening: allocated at once
            if step:
                admin.submit_json(step, number)
            round_ = admin.evaluate_json("GetRound", number)
            for m in members:
                m.act(round_)
        assert round_["phase"] == "update" and round_["aggregator"] == "Org1MSP"
        updates = admin.evaluate_json("GetUpdates", number)
        assert not any(u["digest"] in c.store for u in updates)  # nothing in the shared store
        org1, org2, org3 = (m.transport for m in members)
        assert org1.server.inbox.senders(number) == ["Org1MSP", "Org2MSP", "Org3MSP"]
        assert org3.server.inbox.senders(number) == []
        with pytest.raises(NotAuthorizedError, match="Org3MSP is not the aggregator of round 1"):
            org2.client("Org3MSP").send(number, b"Org2's update, to the wrong organization")
        assert org3.server.inbox.senders(number) == []
        members[0].aggregate(round_)
        round_ = admin.evaluate_json("GetRound", number)
        for m in members:
            m.act(round_)
        assert admin.submit_json("Decide", number)["decision"]["status"] == "accepted"
    finally:
        for m in members:
            m.transport.close()
