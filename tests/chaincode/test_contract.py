"""The federation contract driven through ContractChaincode.invoke on an in-memory stub."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest

from blockfedml_chaincode.errors import EXISTS, INVALID, NOT_FOUND, PHASE, UNAUTHORIZED

from .memstub import MemWorld

ADMIN, ORG2, ORG3 = "Org1MSP", "Org2MSP", "Org3MSP"
AUDITOR, KEYHOLDER, OUTSIDER = "AuditMSP", "KeyMSP", "EvilMSP"
MEMBERS = [ADMIN, ORG2, ORG3]


def digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


GENESIS, UPDATE, AGGREGATE = digest("genesis"), digest("update"), digest("aggregate")


def ok(world: MemWorld, msp: str, fn: str, *args: str) -> Any:
    """Run a transaction that must succeed; return its decoded JSON."""
    result = world.invoke(msp, fn, *args)
    assert result.status == 200, f"{fn}{args} as {msp} failed: {result.message}"
    return json.loads(result.payload)


def refused(world: MemWorld, msp: str, fn: str, *args: str, code: str) -> str:
    """Run a transaction that must be refused with ``code`` and leave state unchanged."""
    before = copy.deepcopy(world.state)
    result = world.invoke(msp, fn, *args)
    assert result.status == 500, f"{fn}{args} as {msp} unexpectedly succeeded"
    assert result.message.startswith(f"[{code}] "), result.message
    assert world.state == before
    return result.message


# ---- building a consortium and driving a round ----------------------------

STEPS = ["init", "selection", "screened", "configuration", "accepted", "update",
         "committed", "feedback", "endorsed", "closed"]


def init_consortium(world: MemWorld, settings: str = "{}") -> None:
    ok(world, ADMIN, "InitConsortium", settings, GENESIS, "900000")
    for msp, roles in [(ADMIN, ["admin", "member"]), (ORG2, ["member"]), (ORG3, ["member"]),
                       (AUDITOR, ["auditor"]), (KEYHOLDER, ["keyholder"])]:
        ok(world, ADMIN, "RegisterOrg", msp, json.dumps(roles))
    for msp in [ADMIN, ORG2, ORG3, KEYHOLDER]:
        ok(world, msp, "Join")


def drive(world: MemWorld, until: str, r: int = 1, start: str = "selection",
          metrics: tuple[int, ...] = (910000, 915000, 920000), contributors: list[str] = MEMBERS) -> None:
    """Run round ``r`` through the steps ``start``..``until`` (all three members take part)."""
    base = world.get("head")["checkpoint"]
    for step in STEPS[STEPS.index(start): STEPS.index(until) + 1]:
        if step == "selection":
            base = ok(world, ADMIN, "OpenRound", "plaintext")["base_checkpoint"]
        elif step == "screened":
            for msp in MEMBERS:
                ok(world, msp, "ReportScreening", str(r), "1", "500000")
        elif step == "configuration":
            ok(world, ADMIN, "CloseSelection", str(r))
        elif step == "accepted":
            for msp in MEMBERS:
                ok(world, msp, "AcceptTerms", str(r), base)
        elif step == "update":
            ok(world, ADMIN, "Allocate", str(r))
        elif step == "committed":
            for msp in MEMBERS:
                ok(world, msp, "CommitUpdate", str(r), digest(f"{msp}:{r}"), "1024", "100")
        elif step == "feedback":
            aggregator = world.get(f"round~{r:08d}")["aggregator"]
            ok(world, aggregator, "ProposeAggregate", str(r), digest(f"agg:{r}"), json.dumps(contributors))
        elif step == "endorsed":
            base_metric = world.get(f"round~{r:08d}")["base_metric"]
            for msp, metric in zip(MEMBERS, metrics):
                ok(world, msp, "Endorse", str(r), digest(f"agg:{r}"), str(metric), str(base_metric))
        elif step == "closed":
            ok(world, ADMIN, "Decide", str(r))


@pytest.fixture
def world() -> MemWorld:
    world = MemWorld()
    init_consortium(world)
    return world


# ---- the accept path ------------------------------------------------------

def test_full_round_is_accepted(world: MemWorld) -> None:
    opened = ok(world, ADMIN, "OpenRound", "plaintext")
    assert opened["round"] == 1 and opened["phase"] == "selection"
    assert opened["base_checkpoint"] == GENESIS and opened["base_metric"] == 900000
    for msp in MEMBERS:
        assert ok(world, msp, "ReportScreening", "1", "1", "700000") == {"verdict": 1, "score": 700000}
    closed = ok(world, ADMIN, "CloseSelection", "1")
    assert closed["phase"] == "configuration" and closed["selected"] == MEMBERS
    for msp in MEMBERS:
        assert ok(world, msp, "AcceptTerms", "1", GENESIS) == {"checkpoint": GENESIS}
    allocated = ok(world, ADMIN, "Allocate", "1")
    assert allocated["phase"] == "update"
    assert allocated["participants"] == MEMBERS
    assert allocated["aggregator"] == ADMIN            # sorted(participants)[(1 - 1) % 3]
    assert allocated["keyholder"] == KEYHOLDER
    assert sorted(sum(allocated["groups"], [])) == MEMBERS and len(allocated["groups"]) == 1
    assert [h["phase"] for h in allocated["history"]] == ["selection", "configuration", "allocation", "update"]

    for i, msp in enumerate(MEMBERS):
        ok(world, msp, "CommitUpdate", "1", digest(msp), str(1000 + i), "50")
    updates = ok(world, ORG2, "GetUpdates", "1")
    assert [u["msp_id"] for u in updates] == MEMBERS and updates[0]["size"] == 1000

    proposed = ok(world, ADMIN, "ProposeAggregate", "1", AGGREGATE, json.dumps([ORG3, ADMIN, ORG2]))
    assert proposed["phase"] == "feedback"
    assert proposed["proposal"] == {"digest": AGGREGATE, "contributors": MEMBERS}
    ckpt = ok(world, AUDITOR, "GetCheckpoint", "1")
    assert ckpt["status"] == "proposed" and ckpt["parent"] == GENESIS

    for msp, metric in zip(MEMBERS, ["930000", "931000", "100"]):   # one liar
        ok(world, msp, "Endorse", "1", AGGREGATE, metric, "900000")
    decided = ok(world, ORG2, "Decide", "1")
    assert decided["phase"] == "closed"
    assert decided["decision"] == {"status": "accepted", "metric": 930000, "improvement": 30000,
                                   "endorsements": 3, "banned": []}

    assert ok(world, AUDITOR, "GetHead") == {"checkpoint": AGGREGATE, "metric": 930000, "round": 1,
                                            "last_round": 1}
    assert ok(world, AUDITOR, "GetCheckpoint", "1")["status"] == "accepted"
    assert [c["round"] for c in ok(world, AUDITOR, "ListCheckpoints")] == [0, 1]
    for msp in MEMBERS:
        assert ok(world, AUDITOR, "GetReputation", msp) == {"balance": 110, "entries": 2}
        history = ok(world, AUDITOR, "GetReputationHistory", msp)
        assert [(h["round"], h["delta"], h["balance"], h["reason"]) for h in history] == [
            (0, 100, 100, "join"), (1, 10, 110, "reward")]
        assert history[1]["tx"] == decided["history"][-1]["tx"]
    assert ok(world, AUDITOR, "GetReputation", KEYHOLDER)["balance"] == 100

    # the next round builds on the new head, and round 2's aggregator rotates
    drive(world, "update", r=2)
    round2 = ok(world, AUDITOR, "GetRound", "2")
    assert round2["base_checkpoint"] == AGGREGATE and round2["aggregator"] == ORG2
    assert [r["round"] for r in ok(world, AUDITOR, "ListRounds")] == [1, 2]


def test_every_write_is_canonical_json(world: MemWorld) -> None:
    drive(world, "closed")
    for key, raw in world.state.items():
        value = json.loads(raw)
        assert raw.decode() == json.dumps(value, sort_keys=True, separators=(",", ":")), key
        assert not any(isinstance(v, float) for v in _leaves(value)), key


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def test_timestamps_come_from_the_transaction(world: MemWorld) -> None:
    record = world.invoke(ADMIN, "OpenRound", "plaintext", seconds=1234, txid="open-1").json()
    assert record["history"] == [{"phase": "selection", "tx": "open-1", "time": 1234}]
    drive(world, "screened", start="screened")
    record = world.invoke(ADMIN, "CloseSelection", "1", seconds=None).json()
    assert record["history"][-1]["time"] == 0


def test_queries(world: MemWorld) -> None:
    assert ok(world, OUTSIDER, "GetConsortium")["admin"] == ADMIN
    assert ok(world, OUTSIDER, "GetSettings")["quorum_percent"] == 66
    orgs = ok(world, AUDITOR, "ListOrgs")
    assert [o["msp_id"] for o in orgs] == sorted([ADMIN, ORG2, ORG3, AUDITOR, KEYHOLDER])
    assert ok(world, AUDITOR, "GetOrg", AUDITOR) == {"msp_id": AUDITOR, "roles": ["auditor"],
                                                     "status": "registered"}
    drive(world, "screened")
    assert [s["msp_id"] for s in ok(world, AUDITOR, "GetScreenings", "1")] == MEMBERS
    drive(world, "endorsed", start="configuration")
    assert [e["metric"] for e in ok(world, AUDITOR, "GetEndorsements", "1")] == [910000, 915000, 920000]
    assert ok(world, AUDITOR, "GetReputationHistory", AUDITOR) == []


def test_query_refusals(world: MemWorld) -> None:
    assert refused(world, ADMIN, "GetRound", "7", code=NOT_FOUND) == "[NOT_FOUND] round 7 does not exist"
    refused(world, ADMIN, "GetRound", "seven", code=INVALID)
    refused(world, ADMIN, "GetCheckpoint", "3", code=NOT_FOUND)
    refused(world, ADMIN, "GetUpdates", "3", code=NOT_FOUND)
    refused(world, ADMIN, "GetOrg", OUTSIDER, code=NOT_FOUND)
    refused(world, ADMIN, "GetReputation", AUDITOR, code=NOT_FOUND)
    refused(world, ADMIN, "GetReputationHistory", OUTSIDER, code=NOT_FOUND)
    refused(MemWorld(), ADMIN, "GetHead", code=NOT_FOUND)


# ---- the rollback path ----------------------------------------------------

def test_rollback_penalizes_bans_and_keeps_the_head(world: MemWorld) -> None:
    # round 1 accepted without Org3 among the contributors: Org1/Org2 110, Org3 100
    drive(world, "closed", r=1, contributors=[ADMIN, ORG2])
    head = ok(world, AUDITOR, "GetHead")
    ok(world, ADMIN, "SetSettings", json.dumps({"penalty": 65}))
    # round 2: metric drops by more than the tolerance (930000 - 20000 > 850000)
    drive(world, "endorsed", r=2, metrics=(850000, 860000, 840000))
    decided = ok(world, ORG3, "Decide", "2")
    # each endorser measured the base at the head metric (915000): the median change is -65000
    assert decided["decision"] == {"status": "rolled_back", "metric": 850000, "improvement": -65000,
                                   "endorsements": 3, "banned": [ORG3]}
    assert ok(world, AUDITOR, "GetHead") == {**head, "last_round": 2}
    ckpt = ok(world, AUDITOR, "GetCheckpoint", "2")
    assert ckpt["status"] == "rolled_back" and ckpt["metric"] == 850000 and ckpt["parent"] == head["checkpoint"]
    assert ok(world, AUDITOR, "GetReputation", ADMIN)["balance"] == 45
    assert ok(world, AUDITOR, "GetReputation", ORG3)["balance"] == 35
    assert ok(world, AUDITOR, "GetOrg", ORG3)["status"] == "banned"
    assert ok(world, AUDITOR, "GetOrg", ORG2)["status"] == "active"
    last = ok(world, AUDITOR, "GetReputationHistory", ORG3)[-1]
    assert last == {"round": 2, "delta": -65, "balance": 35, "reason": "penalty",
                    "tx": decided["history"][-1]["tx"]}

    # round 3 starts from the last accepted checkpoint; the banned member is refused
    assert ok(world, ADMIN, "OpenRound", "plaintext")["base_checkpoint"] == head["checkpoint"]
    message = refused(world, ORG3, "ReportScreening", "3", "1", "1", code=UNAUTHORIZED)
    assert ORG3 in message and "banned" in message
    refused(world, ORG3, "Join", code=UNAUTHORIZED)
    ok(world, ADMIN, "ReportScreening", "3", "1", "1")
    ok(world, ORG2, "ReportScreening", "3", "1", "1")
    assert ok(world, ADMIN, "CloseSelection", "3")["selected"] == [ADMIN, ORG2]


def test_balance_never_goes_below_zero(world: MemWorld) -> None:
    ok(world, ADMIN, "SetSettings", json.dumps({"penalty": 150}))
    drive(world, "closed", metrics=(1, 2, 3))
    for msp in MEMBERS:
        assert ok(world, AUDITOR, "GetReputation", msp)["balance"] == 0
        assert ok(world, AUDITOR, "GetReputationHistory", msp)[-1]["delta"] == -100
    # everyone is banned, the admin organization too (it is also a member): it loses its member
    # rights but keeps governing, so one ban cannot stall the consortium
    opened = ok(world, ADMIN, "OpenRound", "plaintext")
    assert "banned" in refused(world, ADMIN, "ReportScreening", str(opened["round"]), "1", "1", code=UNAUTHORIZED)
    refused(world, ORG2, "Join", code=UNAUTHORIZED)


def test_an_accepted_round_that_does_not_improve_pays_no_reward(world: MemWorld) -> None:
    """The paper: a contributor is "rewarded if the accuracy is improved"."""
    drive(world, "closed", metrics=(900000, 900000, 900000))             # base metric 0.90, unchanged
    decided = ok(world, AUDITOR, "GetRound", "1")["decision"]
    assert (decided["status"], decided["improvement"]) == ("accepted", 0)
    for msp in MEMBERS:
        assert ok(world, AUDITOR, "GetReputation", msp) == {"balance": 100, "entries": 1}
    drive(world, "closed", r=2, metrics=(905000, 905000, 905000))
    assert all(ok(world, AUDITOR, "GetReputation", msp)["balance"] == 110 for msp in MEMBERS)


def test_loss_like_metrics_roll_back_when_higher(world: MemWorld) -> None:
    ok(world, ADMIN, "SetSettings", json.dumps({"higher_is_better": 0}))
    drive(world, "closed", metrics=(950000, 950000, 950000))          # loss 0.90 -> 0.95
    assert ok(world, AUDITOR, "GetRound", "1")["decision"]["status"] == "rolled_back"


# ---- refusals ---------------------------------------------------------------
# (step reached before the call, caller, transaction, arguments, code)

BAD = "z" * 64
REFUSALS = [
    ("init", ADMIN, "InitConsortium", ["{}", GENESIS, "1"], EXISTS),
    ("init", ORG2, "SetSettings", ['{"reward": 1}'], UNAUTHORIZED),
    ("init", AUDITOR, "SetSettings", ['{"reward": 1}'], UNAUTHORIZED),
    ("init", OUTSIDER, "SetSettings", ['{"reward": 1}'], UNAUTHORIZED),
    ("init", ADMIN, "SetSettings", ['{"reward": "1"}'], INVALID),
    ("init", ADMIN, "SetSettings", ['{"reward": 1.5}'], INVALID),
    ("init", ADMIN, "SetSettings", ['{"bonus": 1}'], INVALID),
    ("init", ADMIN, "SetSettings", ["{reward: 1}"], INVALID),
    ("init", ADMIN, "SetSettings", ["[1]"], INVALID),
    ("selection", ADMIN, "SetSettings", ['{"reward": 1}'], PHASE),
    ("init", ADMIN, "RegisterOrg", ["Bad~MSP", '["member"]'], INVALID),
    ("init", ADMIN, "RegisterOrg", ["NewMSP", '["boss"]'], INVALID),
    ("init", ADMIN, "RegisterOrg", ["NewMSP", "[]"], INVALID),
    ("init", ADMIN, "RegisterOrg", ["NewMSP", "member"], INVALID),
    ("init", ORG2, "RegisterOrg", ["NewMSP", '["member"]'], UNAUTHORIZED),
    ("init", AUDITOR, "RegisterOrg", ["NewMSP", '["member"]'], UNAUTHORIZED),
    ("init", ADMIN, "RegisterOrg", [ORG2, '["member"]'], EXISTS),
    ("init", ORG2, "Join", [], EXISTS),
    ("init", OUTSIDER, "Join", [], UNAUTHORIZED),
    ("init", AUDITOR, "Join", [], UNAUTHORIZED),
    ("init", ADMIN, "OpenRound", ["fancy"], INVALID),
    ("init", ORG2, "OpenRound", ["plaintext"], UNAUTHORIZED),
    ("init", AUDITOR, "OpenRound", ["plaintext"], UNAUTHORIZED),
    ("selection", ADMIN, "OpenRound", ["plaintext"], PHASE),
    ("selection", ORG2, "ReportScreening", ["one", "1", "5"], INVALID),
    ("selection", ORG2, "ReportScreening", ["1", "2", "5"], INVALID),
    ("selection", ORG2, "ReportScreening", ["1", "1", "0.5"], INVALID),
    ("selection", ORG2, "ReportScreening", ["7", "1", "5"], NOT_FOUND),
    ("selection", OUTSIDER, "ReportScreening", ["1", "1", "5"], UNAUTHORIZED),
    ("selection", AUDITOR, "ReportScreening", ["1", "1", "5"], UNAUTHORIZED),
    ("selection", KEYHOLDER, "ReportScreening", ["1", "1", "5"], UNAUTHORIZED),
    ("screened", ORG2, "ReportScreening", ["1", "1", "5"], EXISTS),
    ("configuration", ORG2, "ReportScreening", ["1", "1", "5"], PHASE),
    ("selection", ADMIN, "CloseSelection", ["1"], PHASE),             # nobody screened
    ("screened", ORG2, "CloseSelection", ["1"], UNAUTHORIZED),
    ("screened", ADMIN, "CloseSelection", ["x"], INVALID),
    ("screened", ADMIN, "CloseSelection", ["9"], NOT_FOUND),
    ("configuration", ADMIN, "CloseSelection", ["1"], PHASE),
    ("configuration", ORG2, "AcceptTerms", ["1", "abc"], INVALID),
    ("configuration", ORG2, "AcceptTerms", ["1", GENESIS.upper()], INVALID),
    ("configuration", ORG2, "AcceptTerms", ["1", AGGREGATE], INVALID),  # not the base checkpoint
    ("configuration", ORG2, "AcceptTerms", ["2", GENESIS], NOT_FOUND),
    ("configuration", OUTSIDER, "AcceptTerms", ["1", GENESIS], UNAUTHORIZED),
    ("configuration", KEYHOLDER, "AcceptTerms", ["1", GENESIS], UNAUTHORIZED),
    ("screened", ORG2, "AcceptTerms", ["1", GENESIS], PHASE),
    ("accepted", ORG2, "AcceptTerms", ["1", GENESIS], EXISTS),
    ("configuration", ADMIN, "Allocate", ["1"], PHASE),               # nobody accepted
    ("accepted", ORG2, "Allocate", ["1"], UNAUTHORIZED),
    ("accepted", AUDITOR, "Allocate", ["1"], UNAUTHORIZED),
    ("update", ADMIN, "Allocate", ["1"], PHASE),
    ("update", ORG2, "CommitUpdate", ["1", "abc", "10", "10"], INVALID),
    ("update", ORG2, "CommitUpdate", ["1.0", UPDATE, "10", "10"], INVALID),
    ("update", ORG2, "CommitUpdate", ["1", UPDATE, "0", "10"], INVALID),
    ("update", ORG2, "CommitUpdate", ["1", UPDATE, "10", "-1"], INVALID),
    ("update", ORG2, "CommitUpdate", ["1", UPDATE, " 10", "10"], INVALID),
    ("update", ORG2, "CommitUpdate", ["5", UPDATE, "10", "10"], NOT_FOUND),
    ("update", KEYHOLDER, "CommitUpdate", ["1", UPDATE, "10", "10"], UNAUTHORIZED),
    ("update", AUDITOR, "CommitUpdate", ["1", UPDATE, "10", "10"], UNAUTHORIZED),
    ("update", OUTSIDER, "CommitUpdate", ["1", UPDATE, "10", "10"], UNAUTHORIZED),
    ("accepted", ORG2, "CommitUpdate", ["1", UPDATE, "10", "10"], PHASE),
    ("committed", ORG2, "CommitUpdate", ["1", UPDATE, "10", "10"], EXISTS),
    ("committed", ORG2, "ProposeAggregate", ["1", AGGREGATE, json.dumps(MEMBERS)], UNAUTHORIZED),
    ("committed", ADMIN, "ProposeAggregate", ["1", BAD, json.dumps(MEMBERS)], INVALID),
    ("committed", ADMIN, "ProposeAggregate", ["1", AGGREGATE, "[Org1MSP]"], INVALID),
    ("committed", ADMIN, "ProposeAggregate", ["1", AGGREGATE, '{"a": 1}'], INVALID),
    ("committed", ADMIN, "ProposeAggregate", ["1", AGGREGATE, json.dumps([ADMIN, ADMIN])], INVALID),
    ("committed", ADMIN, "ProposeAggregate", ["1", AGGREGATE, json.dumps([ADMIN])], INVALID),
    ("committed", ADMIN, "ProposeAggregate", ["1", AGGREGATE, json.dumps([ADMIN, KEYHOLDER])], INVALID),
    ("committed", ADMIN, "ProposeAggregate", ["3", AGGREGATE, json.dumps(MEMBERS)], NOT_FOUND),
    ("accepted", ADMIN, "ProposeAggregate", ["1", AGGREGATE, json.dumps(MEMBERS)], PHASE),
    ("feedback", ADMIN, "ProposeAggregate", ["1", AGGREGATE, json.dumps(MEMBERS)], EXISTS),
    ("feedback", ORG2, "Endorse", ["1", AGGREGATE, "1", "900000"], INVALID),      # endorses a different digest
    ("feedback", ORG2, "Endorse", ["1", digest("agg:1"), "high", "900000"], INVALID),
    ("feedback", ORG2, "Endorse", ["1", digest("agg:1"), "-5", "900000"], INVALID),
    ("feedback", ORG2, "Endorse", ["4", digest("agg:1"), "5", "900000"], NOT_FOUND),
    ("feedback", KEYHOLDER, "Endorse", ["1", digest("agg:1"), "5", "900000"], UNAUTHORIZED),
    ("feedback", AUDITOR, "Endorse", ["1", digest("agg:1"), "5", "900000"], UNAUTHORIZED),
    ("committed", ORG2, "Endorse", ["1", digest("agg:1"), "5", "900000"], PHASE),
    ("endorsed", ORG2, "Endorse", ["1", digest("agg:1"), "5", "900000"], EXISTS),
    ("feedback", ADMIN, "Decide", ["1"], PHASE),                        # no endorsements, no quorum
    ("endorsed", KEYHOLDER, "Decide", ["1"], UNAUTHORIZED),
    ("endorsed", AUDITOR, "Decide", ["1"], UNAUTHORIZED),
    ("endorsed", OUTSIDER, "Decide", ["1"], UNAUTHORIZED),
    ("endorsed", ADMIN, "Decide", ["x"], INVALID),
    ("endorsed", ADMIN, "Decide", ["2"], NOT_FOUND),
    ("committed", ADMIN, "Decide", ["1"], PHASE),
    ("closed", ADMIN, "Decide", ["1"], EXISTS),
]


@pytest.mark.parametrize("step, caller, fn, args, code", REFUSALS,
                         ids=[f"{fn}-{code}-{i}" for i, (_, _, fn, _, code) in enumerate(REFUSALS)])
def test_refusal(world: MemWorld, step: str, caller: str, fn: str, args: list[str], code: str) -> None:
    drive(world, step)
    refused(world, caller, fn, *args, code=code)


def test_refusal_messages_name_the_problem(world: MemWorld) -> None:
    drive(world, "committed")
    assert "EvilMSP" in refused(world, OUTSIDER, "CommitUpdate", "1", UPDATE, "1", "1", code=UNAUTHORIZED)
    assert "auditor" in refused(world, AUDITOR, "CommitUpdate", "1", UPDATE, "1", "1", code=UNAUTHORIZED)
    message = refused(world, ORG2, "CommitUpdate", "one", UPDATE, "1", "1", code=INVALID)
    assert "round" in message and "'one'" in message
    assert "digest" in refused(world, ORG2, "CommitUpdate", "1", "abc", "1", "1", code=INVALID)
    message = refused(world, ORG2, "ProposeAggregate", "1", AGGREGATE, json.dumps(MEMBERS), code=UNAUTHORIZED)
    assert "not the aggregator" in message and ADMIN in message
    assert "phase update" in refused(world, ORG2, "Endorse", "1", AGGREGATE, "1", "1", code=PHASE)


def test_decide_needs_quorum(world: MemWorld) -> None:
    drive(world, "feedback")
    ok(world, ADMIN, "Endorse", "1", digest("agg:1"), "910000", "900000")
    message = refused(world, ADMIN, "Decide", "1", code=PHASE)      # ceil(66% of 3) = 2
    assert "1 endorsements" in message and "needs 2" in message
    ok(world, ORG2, "Endorse", "1", digest("agg:1"), "910000", "900000")
    assert ok(world, ADMIN, "Decide", "1")["decision"]["endorsements"] == 2


def test_settings_between_rounds_merge_with_current(world: MemWorld) -> None:
    assert ok(world, ADMIN, "SetSettings", '{"reward": 5}')["reward"] == 5
    settings = ok(world, ADMIN, "SetSettings", '{"penalty": 7}')
    assert settings["reward"] == 5 and settings["penalty"] == 7
    drive(world, "closed")
    assert ok(world, ADMIN, "SetSettings", '{"quorum_percent": 50}')["quorum_percent"] == 50


def test_invalid_genesis_arguments() -> None:
    world = MemWorld()
    refused(world, ADMIN, "InitConsortium", "{}", "abc", "1", code=INVALID)
    refused(world, ADMIN, "InitConsortium", "{}", GENESIS, "0.9", code=INVALID)
    refused(world, ADMIN, "InitConsortium", "not json", GENESIS, "1", code=INVALID)
    refused(world, ADMIN, "InitConsortium", '{"quorum_percent": 0}', GENESIS, "1", code=INVALID)
    refused(world, "", "InitConsortium", "{}", GENESIS, "1", code=UNAUTHORIZED)
    refused(world, ADMIN, "RegisterOrg", ORG2, '["member"]', code=PHASE)   # not initialized
    assert world.state == {}


def test_package_level_refusals(world: MemWorld) -> None:
    """Unknown functions and missing arguments are refused by the Fabric package itself."""
    result = world.invoke(ADMIN, "Mint", "1")
    assert result.status == 500 and "Function Mint not found" in result.message
    result = world.invoke(ADMIN, "OpenRound")
    assert result.status == 500 and "incorrect number of params" in result.message


def test_acceptances_query(world: MemWorld) -> None:
    """GetAcceptances lists who accepted the terms: what a coordinator of member processes waits for."""
    drive(world, "configuration")
    assert ok(world, AUDITOR, "GetAcceptances", "1") == []
    base = world.get("round~00000001")["base_checkpoint"]
    ok(world, ORG3, "AcceptTerms", "1", base)
    ok(world, ADMIN, "AcceptTerms", "1", base)
    assert ok(world, OUTSIDER, "GetAcceptances", "1") == [{"checkpoint": base, "msp_id": ADMIN},
                                                         {"checkpoint": base, "msp_id": ORG3}]
    refused(world, ADMIN, "GetAcceptances", "9", code=NOT_FOUND)
