"""Whole sessions on the embedded ledger: the five phases, accuracy, rollback."""

from __future__ import annotations

import pytest

from session_builder import poison
from blockfedml.consortium import Consortium
from blockfedml.errors import InvalidInputError
from blockfedml.fl.session import Session
from blockfedml.fl.task import TaskSpec, task_split
from blockfedml.ml.baseline import train_centralized


def test_a_round_goes_through_all_five_phases(consortium):
    session = Session(consortium)
    session.join_all()
    result = session.run_round()
    round_ = consortium.contract("Auditor").evaluate_json("GetRound", result.round)
    phases = [h["phase"] for h in round_["history"]]
    assert phases == ["selection", "configuration", "allocation", "update", "feedback", "closed"]
    assert sorted(result.participants) == ["Org1MSP", "Org2MSP", "Org3MSP"]
    assert result.status == "accepted"
    head = consortium.contract("Auditor").evaluate_json("GetHead")
    assert head["checkpoint"] == result.digest
    assert all(balance == 110 for balance in result.reputation.values())  # 100 + reward 10


def test_every_committed_update_is_in_the_store_under_its_digest(consortium):
    session = Session(consortium)
    session.join_all()
    result = session.run_round()
    for commitment in consortium.contract("Auditor").evaluate_json("GetUpdates", result.round):
        blob = consortium.store.get(commitment["digest"])
        assert len(blob) == commitment["size"]


def test_unknown_aggregation_mode_fails_before_anything_is_written(consortium):
    height = consortium.ledger.height()
    with pytest.raises(InvalidInputError, match="unknown aggregation mode"):
        Session(consortium, mode="homomorphic-magic")
    assert consortium.ledger.height() == height


def test_a_drop_beyond_tolerance_rolls_back_penalizes_and_restarts_from_the_head(consortium):
    session = Session(consortium)
    session.join_all()
    good = session.run_round()
    assert good.status == "accepted"
    poison(session.members[1])
    bad = session.run_round()
    assert bad.status == "rolled_back"
    auditor = consortium.contract("Auditor")
    head = auditor.evaluate_json("GetHead")
    assert head["checkpoint"] == good.digest
    assert auditor.evaluate_json("GetCheckpoint", bad.round)["status"] == "rolled_back"
    # Every contributor of the rolled-back aggregate paid the penalty, with a reason.
    assert bad.reputation == {m: 110 - 20 for m in bad.reputation}
    history = auditor.evaluate_json("GetReputationHistory", "Org2MSP")
    assert [e["round"] for e in history if e["delta"] < 0] == [bad.round]
    # The next round starts from the last good checkpoint.
    opened = consortium.contract("Org1").submit_json("OpenRound", "plaintext")
    assert opened["base_checkpoint"] == good.digest


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["breast_cancer", "digits"])
def test_three_org_session_is_within_two_points_of_centralized(tmp_path, dataset):
    task = TaskSpec(dataset=dataset)
    c = Consortium.create(tmp_path / dataset, n_orgs=3, task=task)
    try:
        results = Session(c).run(10)
    finally:
        c.close()
    split = task_split(task, 3)
    centralized = train_centralized(split, kind=None, epochs=task.epochs * 10, lr=task.lr,
                                    batch_size=task.batch_size, seed=task.seed)
    final = results[-1].test_accuracy
    assert final >= centralized - 0.02, (final, centralized)
