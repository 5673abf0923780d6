"""A bad contribution excludes its sender, named on the ledger, and the round goes on (real crypto)."""

from __future__ import annotations

import numpy as np
import pytest

from blockfedml.audit.verify import audit_consortium
from blockfedml.consortium import Consortium
from blockfedml.crypto.paillier import generate_keypair
from blockfedml.exchange.transport import StoreTransport
from blockfedml.fl.attacks import Behaviour
from blockfedml.fl.session import Session
from blockfedml.fl.task import TaskSpec
from blockfedml.store import sha256_hex


class OneTooMany(Behaviour):
    """Sends an update with one parameter more than the model has."""

    def update(self, params, base, round_):
        return np.concatenate([params, [0.5]])


def _bad_member(session: Session):
    """The last member: never the aggregator of round 1 (the first sorted participant is)."""
    return session.members[-1]


def _assert_excluded(consortium: Consortium, result, bad: str, why: str) -> None:
    admin = consortium.contract("Auditor")
    round_ = admin.evaluate_json("GetRound", result.round)
    assert result.status == "accepted"
    assert round_["absent"] == [bad] and round_["proposal"]["contributors"] == sorted(
        set(round_["participants"]) - {bad})
    [closure] = round_["closures"]
    assert closure["absent"] == [bad] and why in closure["reason"]
    history = admin.evaluate_json("GetReputationHistory", bad)
    assert history[-1]["reason"] == "excluded" and history[-1]["delta"] == -20
    report = audit_consortium(consortium)
    assert report.ok, [str(f) for f in report.findings]


@pytest.mark.parametrize("mode", ["plaintext", "masking"])
def test_an_update_of_the_wrong_shape_excludes_its_sender(consortium, mode, tmp_path):
    if mode == "masking":  # an opened sum needs min_group_size + 1 = 3 contributors left (issue 16)
        consortium = Consortium.create(tmp_path / "c4", n_orgs=4, task=TaskSpec())
    session = Session(consortium, mode=mode)
    bad = _bad_member(session)
    bad.behaviour = OneTooMany()
    session.join_all()
    result = session.run_round()
    _assert_excluded(consortium, result, bad.msp_id, "parameters, the model")
    bad.behaviour = Behaviour()
    assert session.run_round().status == "accepted"          # back in the next round


def test_a_paillier_update_under_another_key_excludes_its_sender(tmp_path):
    consortium = Consortium.create(tmp_path / "c", n_orgs=4, task=TaskSpec(), collaborator=True)
    session = Session(consortium, mode="paillier")
    bad = _bad_member(session)
    other_key = generate_keypair(2048).public_key
    bad._public_key = lambda pinned: other_key               # encrypts under a key nobody pinned
    session.join_all()
    result = session.run_round()
    _assert_excluded(consortium, result, bad.msp_id, "key=")
    consortium.close()


def test_a_secure_round_left_with_too_few_for_an_opening_is_aborted_not_opened(tmp_path):
    """Three members, one excluded: two contributors cannot be opened (each would see the other's
    update), so the round is aborted with the head unchanged."""
    consortium = Consortium.create(tmp_path / "c", n_orgs=3, task=TaskSpec(), collaborator=True)
    session = Session(consortium, mode="paillier")
    bad = _bad_member(session)
    other_key = generate_keypair(2048).public_key
    bad._public_key = lambda pinned: other_key
    session.join_all()
    head = consortium.contract("Org1").evaluate_json("GetHead")
    result = session.run_round()
    assert result.status == "aborted"
    after = consortium.contract("Org1").evaluate_json("GetHead")
    assert (after["checkpoint"], after["round"]) == (head["checkpoint"], head["round"])
    assert consortium.contract("Org1").evaluate_json("GetDecryptions", result.round) == []
    consortium.close()


class Withholding(StoreTransport):
    """Commits the digest of its update but never keeps (so never serves) the blob itself."""

    def send(self, round_, blob: bytes) -> str:
        return sha256_hex(blob)


def test_an_update_its_producer_withholds_excludes_it_naming_the_producer(tmp_path):
    consortium = Consortium.create(tmp_path / "c", n_orgs=3, task=TaskSpec())
    session = Session(consortium)
    bad = _bad_member(session)
    bad.transport = Withholding(bad.store)
    session.join_all()
    result = session.run_round()
    _assert_excluded(consortium, result, bad.msp_id, "could not be fetched")
    round_ = consortium.contract("Auditor").evaluate_json("GetRound", result.round)
    assert f"{bad.msp_id} does not hold it" in round_["closures"][0]["reason"]
    consortium.close()
