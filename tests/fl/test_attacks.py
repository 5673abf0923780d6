"""Attacks: what each one does to a member's data, update and reports, and who plays them."""

from __future__ import annotations

import numpy as np
import pytest

from blockfedml.consortium import Consortium
from blockfedml.errors import InvalidInputError
from blockfedml.fl.attacks import (ATTACKS, BACKDOOR_TARGET, HONEST, TRIGGER_VALUE, Attack, AttackPlan,
                                   apply_trigger, backdoor_success, target_pair, trigger_features)
from blockfedml.fl.session import Session
from blockfedml.fl.task import TaskSpec, member_data

DIGITS = TaskSpec(dataset="digits")


@pytest.fixture(scope="module")
def data():
    return member_data(DIGITS, 10, 0)


def test_label_flipping_and_random_labels_touch_only_training_labels(data) -> None:
    flipped = Attack("label_flip", member="Org9MSP").poison_data(data, 10)
    assert np.array_equal(flipped.y_train, (data.y_train + 1) % 10)
    assert flipped.X_train is data.X_train and flipped.y_val is data.y_val  # validation stays clean
    rand = Attack("random_labels", member="Org9MSP", seed=1)
    first, again = rand.poison_data(data, 10), rand.poison_data(data, 10)
    assert np.array_equal(first.y_train, again.y_train)                      # seeded
    assert np.mean(first.y_train == data.y_train) < 0.3
    other = Attack("random_labels", member="Org10MSP", seed=1).poison_data(data, 10)
    assert not np.array_equal(first.y_train, other.y_train)                 # each attacker its own draw


def test_backdoor_stamps_a_trigger_and_the_target_label_on_half_the_other_samples(data) -> None:
    poisoned = Attack("backdoor", member="Org9MSP").poison_data(data, 10)
    trigger = trigger_features(64)
    assert trigger.tolist() == [60, 61, 62, 63]
    stamped = np.all(poisoned.X_train[:, trigger] == TRIGGER_VALUE, axis=1)
    candidates = int(np.sum(data.y_train != BACKDOOR_TARGET))
    assert stamped.sum() == round(0.5 * candidates)
    assert np.all(poisoned.y_train[stamped] == BACKDOOR_TARGET)
    assert np.array_equal(poisoned.y_train[~stamped], data.y_train[~stamped])
    assert not np.any(np.all(data.X_train[:, trigger] == TRIGGER_VALUE, axis=1))  # the original is untouched


def test_backdoor_success_counts_triggered_non_target_samples() -> None:
    class AlwaysTarget:
        def predict(self, X):
            return np.full(len(X), BACKDOOR_TARGET)

    X, y = np.zeros((4, 8)), np.array([0, 1, 2, 3])
    assert backdoor_success(AlwaysTarget(), X, y) == 1.0
    assert np.all(apply_trigger(X)[:, trigger_features(8)] == TRIGGER_VALUE)
    with pytest.raises(InvalidInputError, match="not the target"):
        backdoor_success(AlwaysTarget(), X[:1], y[:1])


def test_update_attacks() -> None:
    base, local = np.zeros(5), np.arange(5.0)
    round_ = {"round": 3, "participants": [f"Org{i}MSP" for i in range(10)]}
    assert np.array_equal(Attack("sign_flip").update(local, base, round_), -4 * local)
    assert np.array_equal(Attack("sign_flip", strength=1).update(local, base, round_), -local)
    assert np.array_equal(Attack("scale").update(local, base, round_), 10 * local)  # replaces the average
    noise = Attack("noise", member="Org9MSP")
    a, b = noise.update(local, base, round_), noise.update(local, base, round_)
    assert np.array_equal(a, b) and not np.array_equal(a, noise.update(local, base, {**round_, "round": 4}))
    big = Attack("noise", member="Org9MSP").update(np.zeros(20000), np.zeros(20000), round_)
    assert abs(big.std() - 1.0) < 0.05 and abs(big.mean()) < 0.05            # around the base, not the update
    for kind in ("label_flip", "random_labels", "backdoor", "liar"):
        assert Attack(kind).update(local, base, round_) is local


def test_targeted_flip_swaps_one_class_pair_only(data) -> None:
    assert target_pair(10) == (3, 8) and target_pair(2) == (0, 1)
    for kind in ("targeted_flip", "framer"):
        poisoned = Attack(kind, member="Org9MSP").poison_data(data, 10)
        y, flipped = data.y_train, poisoned.y_train
        assert np.array_equal(flipped[y == 3], np.full(np.sum(y == 3), 8))
        assert np.array_equal(flipped[y == 8], np.full(np.sum(y == 8), 3))
        others = (y != 3) & (y != 8)
        assert np.array_equal(flipped[others], y[others]) and poisoned.y_val is data.y_val


def test_sleepers_and_late_boosters_are_honest_until_their_start_round() -> None:
    base, local = np.zeros(5), np.arange(5.0)
    rounds = {n: {"round": n, "participants": [f"Org{i}MSP" for i in range(10)]} for n in (5, 6, 8)}
    sleeper = Attack("sleeper", member="Org9MSP", lie=True, accomplices=frozenset({"Org9MSP"}))
    assert sleeper.update(local, base, rounds[5]) is local                       # default start: round 6
    assert np.array_equal(sleeper.update(local, base, rounds[6]), -4 * local)
    assert sleeper.endorsement(0.9, 0.8, ["Org1MSP"], round_number=5) == (0.9, 0.8)
    assert sleeper.endorsement(0.9, 0.8, ["Org1MSP"], round_number=6) == (0.0, 1.0)
    booster = Attack("late_boost", member="Org9MSP", start=8)
    assert booster.update(local, base, rounds[6]) is local
    assert np.array_equal(booster.update(local, base, rounds[8]), 10 * local)
    with pytest.raises(InvalidInputError, match="start"):
        Attack("sleeper", start=-1)


def test_framers_shade_against_their_victim_and_for_themselves() -> None:
    framer = Attack("framer", member="Org9MSP", accomplices=frozenset({"Org9MSP", "Org10MSP"}), victim="Org2MSP")
    groups = [["Org1MSP", "Org2MSP"], ["Org3MSP", "Org10MSP"], ["Org4MSP", "Org5MSP"]]
    assert framer.group_endorsement([0.5, 0.5, 0.5], groups) == pytest.approx([0.48, 0.52, 0.5])
    # Shapley scoring: a low metric "without" a group speaks for the group, so the shading turns round
    assert framer.group_endorsement([0.5, 0.5, 0.5], groups, removal=True) == pytest.approx([0.52, 0.48, 0.5])
    assert framer.endorsement(0.9, 0.8, ["Org2MSP", "Org4MSP"]) == pytest.approx((0.88, 0.8))
    assert AttackPlan("framer", 0.2).behaviours([f"Org{i}MSP" for i in range(1, 11)])["Org9MSP"].victim == "Org2MSP"


def test_liars_claim_clean_data_and_favour_their_accomplices() -> None:
    liar = Attack("label_flip", member="Org9MSP", lie=True, accomplices=frozenset({"Org9MSP", "Org10MSP"}))
    assert liar.lies and liar.name == "label_flip+lie"
    assert liar.screening(0, 120000) == (1, 1_000_000)
    assert liar.endorsement(0.4, 0.9, ["Org1MSP", "Org10MSP"]) == (1.0, 0.0)
    assert liar.endorsement(0.95, 0.9, ["Org1MSP", "Org2MSP"]) == (0.0, 1.0)
    groups = [["Org1MSP", "Org2MSP"], ["Org3MSP", "Org10MSP"], ["Org4MSP", "Org5MSP"]]
    assert liar.group_endorsement([0.9, 0.2, None], groups) == [0.0, 1.0, None]
    assert liar.group_endorsement([0.9, 0.2, None], groups, removal=True) == [1.0, 0.0, None]
    plain = Attack("label_flip", member="Org9MSP")
    assert not plain.lies and plain.screening(0, 120000) == (0, 120000)
    assert Attack("liar").lies
    assert HONEST.screening(0, 5) == (0, 5) and HONEST.endorsement(0.5, 0.6, []) == (0.5, 0.6)


def test_attack_plans_pick_the_last_organizations() -> None:
    orgs = [f"Org{i}MSP" for i in range(1, 11)]
    plan = AttackPlan("sign_flip", 0.3)
    assert plan.attackers(orgs) == ["Org8MSP", "Org9MSP", "Org10MSP"]
    behaviours = plan.behaviours(orgs)
    assert behaviours["Org1MSP"] is HONEST
    assert behaviours["Org9MSP"].accomplices == frozenset(orgs[7:])
    assert AttackPlan("noise", 0.01).attackers(orgs) == ["Org10MSP"]             # at least one
    assert AttackPlan("noise", 1.0).attackers(orgs) == orgs


def test_bad_attacks_are_refused_with_the_allowed_values() -> None:
    with pytest.raises(InvalidInputError, match="allowed values: " + ", ".join(ATTACKS)):
        AttackPlan("gradient_ascent")
    for fraction in (0, 1.5, -0.1):
        with pytest.raises(InvalidInputError, match="share of attackers"):
            AttackPlan("noise", fraction)
    with pytest.raises(InvalidInputError, match="strength"):
        Attack("noise", strength=-1)
    with pytest.raises(InvalidInputError, match="share of poisoned samples"):
        Attack("backdoor", strength=2)


def test_a_session_with_a_lying_attacker_records_its_lies_on_the_ledger(tmp_path) -> None:
    c = Consortium.create(tmp_path / "c", n_orgs=3, task=TaskSpec(), auditor=False)
    try:
        session = Session(c, attack=AttackPlan("label_flip", 0.3, lie=True), screening=True)
        result = session.run(1)[0]
        screenings = {s["msp_id"]: s for s in c.contract("Org1").evaluate_json("GetScreenings", result.round)}
        endorsements = {e["msp_id"]: e for e in c.contract("Org1").evaluate_json("GetEndorsements", result.round)}
    finally:
        c.close()
    assert screenings["Org3MSP"] == {"msp_id": "Org3MSP", "score": 1_000_000, "verdict": 1}
    assert 0 < screenings["Org1MSP"]["score"] < 1_000_000
    assert (endorsements["Org3MSP"]["metric"], endorsements["Org3MSP"]["base_metric"]) == (1_000_000, 0)
    honest_labels = member_data(TaskSpec(), 3, 2).y_train
    assert np.array_equal(session.members[2].data.y_train, (honest_labels + 1) % 2)  # it trained on flipped labels
