"""Secure rounds on the embedded ledger: exact, private, and refusing what the ledger did not authorize."""

from __future__ import annotations

import json

import numpy as np
import pytest

from blockfedml.fl.recovery import close_when_due
from blockfedml.consortium import Consortium
from blockfedml.crypto import FixedPoint, encoded_sum, save_private_key, secagg
from blockfedml.crypto.masking import open_share
from blockfedml.crypto.paillier import PaillierPublicKey
from blockfedml.crypto.randomness import FreshRandomness
from blockfedml.errors import ConflictError, IntegrityError, NotAuthorizedError, PhaseError
from blockfedml.exchange.transport import StoreTransport
from blockfedml.fl.aggregation import MaskingAggregation, PaillierAggregation
from blockfedml.fl.member import KeyHolder
from blockfedml.fl.session import Session
from blockfedml.fl.task import TaskSpec
from blockfedml.ml.serialization import load_params
from blockfedml.store import BlobStore, ModelStore

CODEC = FixedPoint()


class RecordingStore(BlobStore):
    """An organization's store that remembers every blob its owner reads: that owner's whole view
    (what it holds and what it fetches from the others)."""

    def __init__(self, store: BlobStore) -> None:
        super().__init__(store.root, store.msp_id, store._sources)
        self.read: list[bytes] = []

    def get(self, digest: str, producer: str | None = None) -> bytes:
        data = super().get(digest, producer)
        self.read.append(data)
        return data


def all_digests(c: Consortium) -> set[str]:
    """Every blob any organization keeps (a blob fetched by another is the same digest)."""
    return {d for o in c.orgs for d in c.blobs(o.name).digests()}


def consortium(tmp_path, name, n_orgs=3, collaborator=False, key=None, **task):
    c = Consortium.create(tmp_path / name, n_orgs=n_orgs, task=TaskSpec(**task), collaborator=collaborator)
    if key is not None:  # the Collaborator's key, made once for the test session
        save_private_key(c.workdir / "orgs" / "Collaborator" / "keys" / "paillier.key", key)
    return c


@pytest.fixture
def captured(monkeypatch):
    """Every update a member seals, by (round, organization): what must never leak."""
    seen: dict[tuple[int, str], tuple[np.ndarray, int]] = {}
    for cls in (PaillierAggregation, MaskingAggregation):
        original = cls.seal

        def seal(self, update, context=None, _original=original):
            seen[(context.round, update.org)] = (np.array(update.params), int(update.num_samples))
            return _original(self, update, context)

        monkeypatch.setattr(cls, "seal", seal)
    return seen


def record_views(session, *orgs):
    stores = {}
    for holder in list(session.members) + list(session.keyholders):
        if holder.msp_id in orgs:
            holder.store = stores[holder.msp_id] = RecordingStore(holder.store)
            if hasattr(holder, "transport"):
                holder.transport = StoreTransport(holder.store)
    return stores


def kind(blob: bytes) -> str:
    if blob.startswith(secagg.MAGIC):
        return json.loads(blob[len(secagg.MAGIC):blob.index(b"\n", len(secagg.MAGIC))])["kind"]
    return blob[:blob.index(b"\n")].decode(errors="replace")


@pytest.mark.parametrize("mode", ["paillier", "masking"])
def test_a_secure_session_reproduces_the_plaintext_session(tmp_path, private_key, mode):
    plain = consortium(tmp_path, "plain")
    secure = consortium(tmp_path, mode, collaborator=mode == "paillier", key=private_key)
    try:
        expected = Session(plain).run(3)
        results = Session(secure, mode=mode).run(3)
        assert [r.status for r in results] == ["accepted"] * 3
        assert [r.test_accuracy for r in results] == [r.test_accuracy for r in expected]
        final, _ = load_params(secure.store, results[-1].digest)
        reference, _ = load_params(plain.store, expected[-1].digest)
        assert np.max(np.abs(final - reference)) < 1e-5  # fixed-point precision, 2^-20 per round
    finally:
        plain.close()
        secure.close()


def test_paillier_views_hold_ciphertexts_and_authorized_sums_only(tmp_path, private_key, captured):
    c = consortium(tmp_path, "views", collaborator=True, key=private_key)
    try:
        session = Session(c, mode="paillier")
        session.join_all()
        views = record_views(session, "Org1MSP", "CollaboratorMSP")  # round 1's aggregator, the key holder
        result = session.run_round()
        assert result.aggregator == "Org1MSP" and result.status == "accepted"
        updates = {org: x for (r, org), x in captured.items() if r == result.round}
        assert sorted(updates) == ["Org1MSP", "Org2MSP", "Org3MSP"]
        aggregator_kinds = [kind(b) for b in views["Org1MSP"].read]
        assert "paillier-update" in aggregator_kinds and "sum-result" in aggregator_kinds
        for blob in views["Org1MSP"].read + views["CollaboratorMSP"].read:
            for org, (params, weight) in updates.items():
                assert params.astype("<f8").tobytes() not in blob  # no update in the clear, anywhere
        # The key holder read the committed ciphertexts of exactly the authorized contributors, and
        # multiplied them itself: never the aggregator's sum blob.
        request = c.contract("Auditor").evaluate_json("GetDecryptions", result.round)[0]
        read = views["CollaboratorMSP"].read
        assert [kind(b) for b in read] == ["paillier-update"] * 3
        assert sorted(secagg.unpack(b, "paillier-update")[0]["org"] for b in read) == request["contributors"]
        assert request["contributors"] == sorted(updates)
        opened = secagg.result_from_bytes(c.store.get(request["result"]["digest"]), result.round,
                                          request["contributors"], request["weight"])
        assert opened == encoded_sum([CODEC.encode(x, weight=w) for x, w in updates.values()])  # exactly
        holder = session.keyholders[0]
        with pytest.raises(ConflictError):
            holder.decrypt(result.round, 0)
        with pytest.raises(NotAuthorizedError, match="no decryption 1"):
            holder.decrypt(result.round, 1)
    finally:
        c.close()


def open_round(session, mode, committers):
    """Drive a round to phase update; only ``committers`` train and commit (the others drop)."""
    admin = session.admin
    number = admin.submit_json("OpenRound", mode)["round"]
    for close in ("CloseSelection", "Allocate"):
        round_ = admin.evaluate_json("GetRound", number)
        if round_["phase"] == "update":
            break  # every selected member accepted while screening: allocated when selection closed
        for member in session.members:
            member.act(round_)
        admin.submit_json(close, number)
    round_ = admin.evaluate_json("GetRound", number)
    for member in session.members:
        if member.msp_id in committers:
            member.act(round_)
    return round_


def forged_one_member_sum(c, round_, victim: str) -> bytes:
    """What a cheating aggregator sends for opening: the victim's ciphertexts, re-randomized (so no
    digest gives it away), dressed as the sum of every contributor."""
    admin = c.contract("Org1")
    commit = next(u for u in admin.evaluate_json("GetUpdates", round_["round"]) if u["msp_id"] == victim)
    header, payload = secagg.unpack(c.store.get(commit["digest"]), "paillier-update")
    key = PaillierPublicKey.from_bytes(c.store.get(round_["key"]["fingerprint"]))
    ciphertexts = key.ciphertexts_from_bytes(payload, header["count"])
    fresh = FreshRandomness(key).take(len(ciphertexts))
    disguised = [cipher * rn % key.nsquare for cipher, rn in zip(ciphertexts, fresh)]
    updates = admin.evaluate_json("GetUpdates", round_["round"])
    forged = {"round": round_["round"], "contributors": sorted(u["msp_id"] for u in updates),
              "weight": sum(u["num_samples"] for u in updates), "length": header["length"], "key": header["key"],
              "layout": header["layout"], "count": header["count"]}
    return secagg.pack("paillier-sum", forged, key.ciphertexts_to_bytes(disguised))


def test_the_key_holder_refuses_a_forged_one_member_sum(tmp_path, private_key, captured):
    """The attack of issue 16: the aggregator asks for the opening of all three members, but its sum
    blob is one member's update. The key holder multiplies the committed ciphertexts itself, finds
    another sum, and decrypts nothing; the ledger is unchanged."""
    c = consortium(tmp_path, "forged", collaborator=True, key=private_key)
    try:
        session = Session(c, mode="paillier")
        session.join_all()
        everyone = ["Org1MSP", "Org2MSP", "Org3MSP"]
        round_ = open_round(session, "paillier", everyone)
        aggregator = next(m for m in session.members if m.msp_id == round_["aggregator"])
        victim = next(o for o in everyone if o != aggregator.msp_id)
        forged = forged_one_member_sum(c, round_, victim)
        aggregator.contract.submit_json("RequestDecryption", round_["round"], c.store.put(forged), everyone)
        height = c.ledger.height()
        with pytest.raises(IntegrityError, match="the aggregator asked to open"):
            session.keyholders[0].decrypt(round_["round"])
        assert c.ledger.height() == height
        assert c.contract("Auditor").evaluate_json("GetDecryptions", round_["round"])[0]["result"] is None
        params, weight = captured[(round_["round"], victim)]
        encoded = CODEC.encode(params, weight=weight).ints.astype("<i8").tobytes()
        for digest in c.store.digests():  # the victim's encoded update is nowhere in the store
            assert encoded[:64] not in c.store.get(digest)
        impostor = KeyHolder("Org2MSP", c.contract("Org2"), c.store, private_key)  # holds the key, not the role
        with pytest.raises(NotAuthorizedError, match="not the key holder"):
            impostor.decrypt(round_["round"])
    finally:
        c.close()


def test_the_key_holder_refuses_a_committed_ciphertext_swapped_in_the_store(tmp_path, private_key):
    c = consortium(tmp_path, "tamper", collaborator=True, key=private_key)
    try:
        session = Session(c, mode="paillier")
        session.join_all()
        round_ = open_round(session, "paillier", ["Org1MSP", "Org2MSP", "Org3MSP"])
        aggregator = next(m for m in session.members if m.msp_id == round_["aggregator"])
        aggregator.aggregate(round_)
        commit = c.contract("Org1").evaluate_json("GetUpdates", round_["round"])[1]
        for o in c.orgs:  # a committed update is swapped behind the ledger's back, in every store
            blob = c.blobs(o.name).path(commit["digest"])
            if blob.is_file():
                data = blob.read_bytes()
                blob.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        height = c.ledger.height()
        with pytest.raises(IntegrityError):
            session.keyholders[0].decrypt(round_["round"])
        assert c.ledger.height() == height
    finally:
        c.close()


def test_masking_recovers_a_member_that_dropped_after_sharing(tmp_path, captured):
    c = consortium(tmp_path, "dropout", n_orgs=4)
    try:
        session = Session(c, mode="masking")
        session.join_all()
        survivors = ["Org1MSP", "Org2MSP", "Org3MSP"]  # Org4 shared its keys, then never sent its update
        round_ = open_round(session, "masking", survivors)
        assert round_["mask_threshold"] == 3 and len(round_["participants"]) == 4
        views = record_views(session, round_["aggregator"])
        aggregator = next(m for m in session.members if m.msp_id == round_["aggregator"])
        request = aggregator.aggregate(round_)
        assert request["contributors"] == survivors
        assert aggregator.aggregate(round_) is None  # nobody revealed yet: waiting
        round_ = session.admin.evaluate_json("GetRound", round_["round"])
        for member in session.members[:3]:
            assert member.act(round_) == "reveal_mask_shares"
        proposed = aggregator.aggregate(round_)
        assert proposed["phase"] == "feedback" and proposed["proposal"]["contributors"] == survivors
        request = c.contract("Auditor").evaluate_json("GetDecryptions", round_["round"])[0]
        opened = secagg.result_from_bytes(c.store.get(request["result"]["digest"]), round_["round"],
                                          survivors, request["weight"])
        assert opened == encoded_sum([CODEC.encode(*captured[(round_["round"], o)]) for o in survivors])
        # What the aggregator read: masked updates that do not decode, and for each member either
        # its self-mask seed shares or its mask-key shares, never both.
        for blob in views[aggregator.msp_id].read:
            if kind(blob) == "masked-update":
                header, payload = secagg.unpack(blob, "masked-update")
                params, weight = captured[(round_["round"], header["org"])]
                assert np.median(np.abs(np.frombuffer(payload, "<i8") / (weight * CODEC.scale) - params)) > 1e6
            if kind(blob) == "share-reveal":
                header, sealed = secagg.unpack(blob, "share-reveal")
                body = json.loads(open_share(aggregator.secrets[round_["round"]].share_key,
                                             bytes.fromhex(next(k["share_key"] for k in c.contract("Auditor")
                                                                .evaluate_json("GetMaskKeys", round_["round"])
                                                                if k["msp_id"] == header["org"])),
                                             round_["round"], header["org"], aggregator.msp_id, sealed))
                assert not set(body["self_seeds"]) & set(body["mask_keys"])
                assert sorted(body["mask_keys"]) == ["Org4MSP"]
    finally:
        c.close()


def test_too_few_survivors_fail_cleanly(tmp_path):
    c = consortium(tmp_path, "few", n_orgs=4)
    try:
        session = Session(c, mode="masking")
        session.join_all()
        round_ = open_round(session, "masking", ["Org1MSP", "Org2MSP"])  # threshold 3
        aggregator = next(m for m in session.members if m.msp_id == round_["aggregator"])
        height, blobs = c.ledger.height(), all_digests(c)
        with pytest.raises(PhaseError, match="too few survivors"):
            aggregator.aggregate(round_)
        assert c.ledger.height() == height and all_digests(c) == blobs
        assert c.contract("Auditor").evaluate_json("GetDecryptions", round_["round"]) == []
    finally:
        c.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["paillier", "masking"])
def test_a_digits_session_reproduces_the_plaintext_accuracy(tmp_path, private_key, mode):
    plain = consortium(tmp_path, "plain", dataset="digits")
    secure = consortium(tmp_path, mode, collaborator=mode == "paillier", key=private_key, dataset="digits")
    try:
        expected = [r.test_accuracy for r in Session(plain).run(5)]
        assert [r.test_accuracy for r in Session(secure, mode=mode).run(5)] == expected
    finally:
        plain.close()
        secure.close()


def test_a_3_org_masking_round_where_one_drops_is_never_unmasked(tmp_path):
    """The survivors' sum would be {aggregator, one member}: the aggregator refuses before writing,
    and a direct request is refused by the ledger; nothing is opened, the ledger is unchanged."""
    c = consortium(tmp_path, "drop", n_orgs=3)
    try:
        session = Session(c, mode="masking")
        session.join_all()
        round_ = open_round(session, "masking", ["Org1MSP", "Org2MSP"])  # Org3 drops; threshold 2
        assert round_["mask_threshold"] == 2 and round_["aggregator"] == "Org1MSP"
        aggregator = session.members[0]
        height, blobs = c.ledger.height(), all_digests(c)
        with pytest.raises(PhaseError, match="too few survivors"):
            aggregator.aggregate(round_)
        with pytest.raises(PhaseError, match="too few survivors to unmask"):
            aggregator.contract.submit_json("RequestDecryption", round_["round"], "ab" * 32,
                                            ["Org1MSP", "Org2MSP"])
        assert c.ledger.height() == height and all_digests(c) == blobs
        assert c.contract("Auditor").evaluate_json("GetDecryptions", round_["round"]) == []
        # At the update deadline the round is aborted, not opened (docs/operations.md).
        closed = close_when_due(c.contract("Org2"), round_["round"], limit=60)
        assert closed["phase"] == "closed" and closed["decision"]["status"] == "aborted"
        assert "never opened" in closed["decision"]["reason"]
        assert c.contract("Auditor").evaluate_json("GetDecryptions", round_["round"]) == []
    finally:
        c.close()


def test_the_aggregator_cannot_have_itself_and_one_victim_decrypted(tmp_path, private_key):
    """The first attack of issue 16 on a real ledger: {aggregator, victim} is refused, nothing changes,
    and the key holder has nothing to decrypt."""
    from blockfedml.errors import InvalidInputError

    c = consortium(tmp_path, "pair", collaborator=True, key=private_key)
    try:
        session = Session(c, mode="paillier")
        session.join_all()
        round_ = open_round(session, "paillier", ["Org1MSP", "Org2MSP", "Org3MSP"])
        aggregator = session.members[0]
        assert round_["aggregator"] == aggregator.msp_id == "Org1MSP"
        commitments = aggregator.contract.evaluate_json("GetUpdates", round_["round"])
        pair = {u["msp_id"]: c.store.get(u["digest"]) for u in commitments if u["msp_id"] in ("Org1MSP", "Org2MSP")}
        context = aggregator.round_context(round_, weights={u["msp_id"]: u["num_samples"] for u in commitments})
        digest = c.store.put(PaillierAggregation().sum(pair, context))
        height = c.ledger.height()
        with pytest.raises(InvalidInputError, match="Org1MSP, who sees the opened sum, would find 1 other"):
            aggregator.contract.submit_json("RequestDecryption", round_["round"], digest, sorted(pair))
        assert c.ledger.height() == height
        assert session.keyholders[0].act(c.contract("Auditor").evaluate_json("GetRound", round_["round"])) is None
    finally:
        c.close()
