"""Selection-phase screening: the seed set, the transferred reference SVM, verdicts, and liars."""

from __future__ import annotations

import numpy as np
import pytest

from blockfedml.consortium import Consortium
from blockfedml.errors import InvalidInputError
from blockfedml.fl.attacks import Attack, AttackPlan
from blockfedml.fl.screening import ReferenceSVM, Screener, SeedSet
from blockfedml.fl.session import Session
from blockfedml.fl.task import TaskSpec, task_split


@pytest.fixture(scope="module", params=["digits", "breast_cancer"])
def split(request):
    return task_split(TaskSpec(dataset=request.param), 10)


@pytest.fixture(scope="module")
def screener(split):
    return Screener(SeedSet.from_split(split))


def test_the_seed_set_is_a_small_stratified_sample_of_the_held_out_split(split) -> None:
    seed = SeedSet.from_split(split, per_class=10)
    assert np.bincount(seed.y).tolist() == [10] * split.n_classes
    rows = {row.tobytes() for row in split.X_test}
    assert all(row.tobytes() in rows for row in seed.X)       # never a member's training sample
    again = SeedSet.from_split(split, per_class=10)
    assert np.array_equal(seed.X, again.X)                     # every member derives the same one
    with pytest.raises(InvalidInputError, match="per_class"):
        SeedSet.from_split(split, per_class=10_000)


def test_honest_members_pass_and_poisoned_labels_fail(split, screener) -> None:
    for org in split.orgs:
        report = screener.screen(org.X_train, org.y_train)
        assert report.verdict == 1 and report.agreement >= 0.8, report
        assert report.score == round(report.agreement * 1_000_000) and report.samples == len(org.y_train)
    victim = split.orgs[9]
    for kind in ("label_flip", "random_labels", "backdoor"):
        poisoned = Attack(kind, member="Org10MSP").poison_data(victim, split.n_classes)
        report = screener.screen(poisoned.X_train, poisoned.y_train)
        assert report.verdict == 0 and report.agreement < 0.7, (kind, report)


def test_the_reference_never_learns_from_the_members_labels(split) -> None:
    reference = ReferenceSVM(SeedSet.from_split(split))
    org = split.orgs[0]
    flipped = (org.y_train + 1) % split.n_classes
    # The transferred SVM depends on the member's features only, so the same
    # features with other labels meet exactly the same predictions.
    predictions = reference.transfer(org.X_train).predict(org.X_train)
    assert reference.agreement(org.X_train, flipped) == pytest.approx(np.mean(predictions == flipped))
    assert reference.agreement(org.X_train, org.y_train) == pytest.approx(np.mean(predictions == org.y_train))


def test_reports_are_cached_per_dataset_and_bad_input_is_refused(split, screener) -> None:
    org = split.orgs[1]
    assert screener.screen(org.X_train, org.y_train) is screener.screen(org.X_train.copy(), org.y_train.copy())
    with pytest.raises(InvalidInputError, match="feature matrix"):
        screener.screen(org.X_train[:, :5], org.y_train)
    with pytest.raises(InvalidInputError, match="feature matrix"):
        screener.screen(org.X_train, org.y_train[:-1])
    with pytest.raises(InvalidInputError, match="min_agreement"):
        Screener(SeedSet.from_split(split), min_agreement=1.5)


def test_screening_keeps_an_honest_reporter_with_bad_data_out_but_not_a_liar(tmp_path) -> None:
    """The self-report works only when the member tells the truth: why peers check groups too."""
    selected = {}
    for lie in (False, True):
        c = Consortium.create(tmp_path / f"lie{lie}", n_orgs=4, task=TaskSpec(), auditor=False)
        try:
            session = Session(c, attack=AttackPlan("label_flip", 0.25, lie=lie), screening=True)
            selected[lie] = session.run(1)[0].participants
            screened = {s["msp_id"]: s["verdict"] for s in c.contract("Org1").evaluate_json("GetScreenings", 1)}
        finally:
            c.close()
        assert screened["Org4MSP"] == (1 if lie else 0)
    assert selected[False] == ["Org1MSP", "Org2MSP", "Org3MSP"]
    assert "Org4MSP" in selected[True]
