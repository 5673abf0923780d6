"""The recomputations on their own: each check catches a record that breaks its rule,
even one that is consistent with the blocks (what a Fabric auditor reads), and the
aggregate check extends through the AggregationMode seam."""

from __future__ import annotations

import copy

import pytest

from blockfedml.audit.evidence import WorldState, gather
from blockfedml.audit.verify import audit
from blockfedml.consortium import Consortium


@pytest.fixture(scope="module")
def evidence(finished_session):
    consortium = Consortium.open(finished_session)
    try:
        yield gather(consortium)
    finally:
        consortium.close()


@pytest.fixture
def state(evidence) -> WorldState:
    """A private deep copy of the world state, to edit."""
    return copy.deepcopy(evidence.state)


def findings(evidence, state, check: str, blocks=True):
    report = audit(state, evidence.store, evidence.blocks if blocks else None)
    return report.check(check).findings


def test_without_blocks_the_block_checks_say_skipped_and_the_rest_pass(evidence):
    report = audit(evidence.state, evidence.store, None, backend="fabric")
    assert report.ok and report.height is None
    assert {c.name: c.status for c in report.checks} == {
        "ledger": "skip", "replay": "skip", "checkpoints": "pass", "rounds": "pass", "aggregates": "pass",
        "reputation": "pass", "decisions": "pass"}
    assert "no blocks were read" in report.check("ledger").detail
    assert report.notes and "settings in force at each round are unknown" in report.notes[0]


def test_a_phase_out_of_order_is_caught(evidence, state):
    history = state.rounds[1]["history"]
    history[1], history[2] = history[2], history[1]
    (finding,) = findings(evidence, state, "rounds", blocks=False)
    assert (finding.round, finding.object) == (2, "round~00000002")
    assert "allowed order" in finding.message


def test_a_phase_naming_another_transaction_is_caught_from_the_blocks(evidence, state):
    history = state.rounds[2]["history"]
    history[-1]["tx"] = state.rounds[0]["history"][-1]["tx"]  # round 1's Decide
    problems = findings(evidence, state, "rounds")
    assert any(f.round == 3 and "round 1" in f.message for f in problems)


def test_an_aggregator_other_than_the_rules_choose_is_caught(evidence, state):
    record = state.rounds[0]
    record["aggregator"] = next(p for p in record["participants"] if p != record["aggregator"])
    (finding,) = findings(evidence, state, "rounds", blocks=False)
    assert finding.round == 1 and "aggregator" in finding.message


def test_a_broken_parent_link_is_caught(evidence, state):
    state.checkpoints[3]["parent"] = state.checkpoints[2]["digest"]  # the rolled-back one
    problems = findings(evidence, state, "checkpoints", blocks=False)
    assert any(f.round == 3 and f.object == "ckpt~00000003" and "parent" in f.message for f in problems)


def test_an_aggregate_that_is_not_the_sum_of_the_commitments_is_caught(evidence, state):
    """A consistent swap of round 3's model for another stored one (the genesis model)."""
    other = state.checkpoints[0]["digest"]
    state.rounds[2]["proposal"]["digest"] = other
    state.checkpoints[3]["digest"] = other
    state.head["checkpoint"] = other
    (finding,) = findings(evidence, state, "aggregates", blocks=False)
    assert (finding.round, finding.object) == (3, "ckpt~00000003")
    assert f"proposed {other}" in finding.message


def test_a_consistently_forged_balance_is_caught(evidence, state):
    history = state.reputation_history["Org2MSP"]
    history[-1] = {**history[-1], "delta": 50, "balance": history[-2]["balance"] + 50}
    state.reputation["Org2MSP"] = {"balance": history[-1]["balance"], "entries": len(history)}
    problems = findings(evidence, state, "reputation", blocks=False)
    assert [(f.round, f.object) for f in problems] == [(3, "rephist~Org2MSP~00000003"), (None, "rep~Org2MSP")]


def test_a_reward_outside_the_settings_of_its_time_is_caught(evidence, state):
    """Round 1 was decided with reward 50, round 3 with reward 5: the blocks tell which."""
    assert [e["delta"] for e in state.reputation_history["Org1MSP"]] == [100, 50, -65, 5]
    assert findings(evidence, state, "reputation") == []
    history = state.reputation_history["Org1MSP"]
    history[3] = {**history[3], "delta": 50, "balance": history[2]["balance"] + 50}
    state.reputation["Org1MSP"]["balance"] = history[3]["balance"]
    assert findings(evidence, state, "reputation")[0].object == "rephist~Org1MSP~00000003"


def test_an_unexplained_ban_is_caught(evidence, state):
    org = next(o for o in state.orgs if o["msp_id"] == "Org1MSP")
    org["status"] = "banned"
    assert [f.object for f in findings(evidence, state, "reputation", blocks=False)] == ["org~Org1MSP"]


def test_a_rollback_the_rules_did_not_call_for_is_caught(evidence, state):
    decision = state.rounds[0]["decision"]
    decision["status"] = "rolled_back"
    (finding,) = findings(evidence, state, "decisions", blocks=False)
    assert (finding.round, finding.object) == (1, "round~00000001")
    assert finding.tx == state.rounds[0]["history"][-1]["tx"]


def test_a_forged_endorsement_changes_the_recomputed_decision(evidence, state):
    for endorsement in state.endorsements[2]:
        endorsement["metric"] = endorsement["base_metric"]  # "no harm done"
    problems = findings(evidence, state, "decisions", blocks=False)
    assert {f.round for f in problems} == {2}
    assert any("status is 'rolled_back', the rules give 'accepted'" in f.message for f in problems)


def test_the_audit_recomputes_without_the_members_aggregation_code():
    """A bug in blockfedml.fl.aggregation must not hide from the audit that checks its output."""
    import subprocess
    import sys

    code = ("import sys, blockfedml.audit.verify, blockfedml.audit.checks, blockfedml.audit.secure; "
            "print(sorted(m for m in sys.modules if m.startswith(('blockfedml.fl.aggregation', "
            "'blockfedml.fl.strategy'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_mode_this_sdk_does_not_know_is_skipped_with_a_reason(evidence, state):
    state.rounds[0]["mode"] = "homomorphic-magic"
    result = audit(state, evidence.store, None).check("aggregates")
    assert result.status == "pass" and result.detail.startswith("2 of 3")
    assert "cannot recompute mode 'homomorphic-magic'" in result.skipped[0]
