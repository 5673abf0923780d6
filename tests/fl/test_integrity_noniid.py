"""Integrity on non-IID data: whole sessions on a Dirichlet split of digits with 10 organizations.

Group attribution must not read label skew as harm (no honest member is ever
penalized, with or without attackers), and colluding targeted attackers that
lie must still be singled out. bench/bench_integrity.py --grid measures the
same over more seeds, attacks and datasets (docs/integrity.md).
"""

from __future__ import annotations

import pytest

from blockfedml.consortium import Consortium
from blockfedml.fl.attacks import AttackPlan
from blockfedml.fl.member import significant
from blockfedml.fl.session import Session
from blockfedml.fl.task import TaskSpec

SETTINGS = {"attribution": 1, "reward": 10, "penalty": 30, "ban_threshold": 40}


def run(tmp_path, alpha: float, seed: int, rounds: int, plan: AttackPlan | None = None):
    task = TaskSpec(dataset="digits", partition="non-iid", alpha=alpha, seed=seed)
    c = Consortium.create(tmp_path / "c", n_orgs=10, task=task, auditor=False, settings=SETTINGS)
    try:
        session = Session(c, attack=plan)
        session.join_all()
        results = [session.run_round() for _ in range(rounds)]
        contract = c.contract("Org1")
        msp_ids = [m.msp_id for m in session.members]
        penalties = {m: [e for e in contract.evaluate_json("GetReputationHistory", m) if e["delta"] < 0]
                     for m in msp_ids}
        endorsements = contract.evaluate_json("GetGroupEndorsements", results[0].round)
    finally:
        c.close()
    return results, penalties, endorsements


@pytest.mark.slow
def test_no_honest_member_is_penalized_on_a_skewed_split_without_attackers(tmp_path) -> None:
    """Dirichlet alpha 0.3 (each organization holds a few classes): before, an organization holding
    most of one class was penalized for it; skew is not harm."""
    results, penalties, endorsements = run(tmp_path, alpha=0.3, seed=2, rounds=15)
    assert all(not entries for entries in penalties.values()), penalties
    assert all(r.status == "accepted" for r in results)
    assert results[-1].head_accuracy > 0.9
    # Every honest member endorses the groups on the consortium's common reference set: all agree,
    # so a liar or a shader is an outlier the trimmed mean drops.
    assert len({(tuple(e["metrics"]), e["base_metric"]) for e in endorsements}) == 1


@pytest.mark.slow
def test_colluding_lying_targeted_flippers_are_kept_out_and_the_harmful_one_banned(tmp_path) -> None:
    """Org9 and Org10 swap the labels of 3 and 8 and lie in every report; neither honest member nor
    model pays: the one whose flip harms is banned, and no honest member is ever penalized."""
    plan = AttackPlan("targeted_flip", 0.2, lie=True)
    results, penalties, _ = run(tmp_path, alpha=0.5, seed=0, rounds=12, plan=plan)
    attackers = {"Org9MSP", "Org10MSP"}
    honest = [m for m in penalties if m not in attackers]
    assert all(not penalties[m] for m in honest), {m: penalties[m] for m in honest}
    banned = {m for r in results for m in r.banned}
    assert banned and banned <= attackers
    for msp in banned:
        assert len(penalties[msp]) >= 2 and all(e["reason"] == "group_penalty" for e in penalties[msp])
    harmful = [g for r in results for g in r.groups if g["verdict"] == "harmful"]
    assert harmful and all(set(g["members"]) & attackers for g in harmful)  # only attackers' groups harm
    assert results[-1].head_accuracy > 0.93


def test_an_accuracy_change_within_one_sample_or_one_standard_error_is_no_change() -> None:
    """What an honest member endorses as a change: on 48 samples one sample (0.021) is noise, and so
    is anything within one binomial standard error of the base accuracy."""
    assert not significant(0.90 - 1 / 48, 0.90, 48)
    assert not significant(0.95 + 1 / 20, 0.95, 20)              # breast cancer's 20 reference samples
    assert significant(0.90 - 3 / 48, 0.90, 48)                  # a real loss still counts
    assert significant(0.50, 0.95, 129) and significant(0.97, 0.90, 129)
    assert not significant(1.0, 1.0, 10) and significant(0.8, 1.0, 10)
