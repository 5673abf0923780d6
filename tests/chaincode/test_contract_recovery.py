"""Rounds that never stall: ClosePhase at a phase's deadline, AbortRound, absences (docs/operations.md)."""

from __future__ import annotations

import json

import pytest

from blockfedml_chaincode.errors import INVALID, PHASE, UNAUTHORIZED

from .memstub import MemWorld
from .test_contract import (ADMIN, AUDITOR, GENESIS, KEYHOLDER, MEMBERS, ORG2, ORG3, OUTSIDER, digest, drive,
                            init_consortium, ok, refused)

DEADLINES = {"selection_deadline": 30, "configuration_deadline": 30, "update_deadline": 6,
             "feedback_deadline": 30, "absence_penalty": 5}


@pytest.fixture
def world() -> MemWorld:
    world = MemWorld()
    init_consortium(world, json.dumps(DEADLINES))
    return world


def balance(world: MemWorld, msp: str) -> int:
    return world.get(f"rep~{msp}")["balance"]


def round_(world: MemWorld, r: int = 1) -> dict:
    return world.get(f"round~{r:08d}")


# ---- AbortRound ---------------------------------------------------------------

def test_admin_aborts_a_stuck_round_head_unchanged_reason_and_absentees_on_the_ledger(world: MemWorld) -> None:
    drive(world, "update")
    ok(world, ORG2, "CommitUpdate", "1", digest("u2"), "10", "5")
    ok(world, ADMIN, "CommitUpdate", "1", digest("u1"), "10", "5")
    head = world.get("head")
    before = {m: balance(world, m) for m in MEMBERS}
    closed = ok(world, ADMIN, "AbortRound", "1", "Org3's machine died")
    decision = closed["decision"]
    assert closed["phase"] == "closed" and decision["status"] == "aborted"
    assert decision["reason"] == "Org3's machine died" and decision["phase"] == "update"
    assert decision["absentees"] == [ORG3] and decision["penalized"] == [ORG3]
    assert world.get("head") == head                                  # head unchanged
    assert balance(world, ORG3) == before[ORG3] - 5                   # accepted then vanished
    assert {m: balance(world, m) for m in (ADMIN, ORG2)} == {m: before[m] for m in (ADMIN, ORG2)}  # no rewards
    assert world.get(f"rephist~{ORG3}~00000001")["reason"] == "absence"
    assert ok(world, ADMIN, "OpenRound", "plaintext")["round"] == 2   # the consortium goes on


def test_abort_is_for_admins_needs_a_reason_and_an_open_round(world: MemWorld) -> None:
    drive(world, "selection")
    refused(world, ORG2, "AbortRound", "1", "I am bored", code=UNAUTHORIZED)
    refused(world, AUDITOR, "AbortRound", "1", "read only", code=UNAUTHORIZED)
    refused(world, ADMIN, "AbortRound", "1", "   ", code=INVALID)
    refused(world, ADMIN, "AbortRound", "1", "x" * 201, code=INVALID)
    aborted = ok(world, ADMIN, "AbortRound", "1", "wrong settings")["decision"]
    assert aborted["absentees"] == MEMBERS and aborted["penalized"] == []   # nobody had accepted yet
    refused(world, ADMIN, "AbortRound", "1", "again", code=PHASE)


def test_aborting_after_a_proposal_marks_its_checkpoint_aborted(world: MemWorld) -> None:
    drive(world, "feedback")
    ok(world, ADMIN, "AbortRound", "1", "the aggregate was built on a bad base")
    assert world.get("ckpt~00000001")["status"] == "aborted"
    assert world.get("head")["checkpoint"] == GENESIS


# ---- ClosePhase at the deadline -------------------------------------------------

def test_close_phase_waits_for_the_deadline_in_transaction_time(world: MemWorld) -> None:
    drive(world, "update")
    message = refused(world, ORG2, "ClosePhase", "1", code=PHASE)
    assert "update_deadline=6" in message
    world.advance(10)
    ok(world, ORG2, "ClosePhase", "1")


def test_member_killed_before_committing_the_round_goes_on_with_the_others(world: MemWorld) -> None:
    drive(world, "update")                                   # aggregator Org1MSP
    ok(world, ADMIN, "CommitUpdate", "1", digest("u1"), "10", "5")
    ok(world, ORG2, "CommitUpdate", "1", digest("u2"), "10", "5")
    assert ok(world, AUDITOR, "GetPending", "1")["waiting_for"] == [ORG3]
    world.advance(10)
    closed = ok(world, ORG2, "ClosePhase", "1")             # anyone may close, not only the admin
    assert closed["phase"] == "update" and closed["absent"] == [ORG3]
    assert closed["closures"][0]["absent"] == [ORG3] and closed["aggregator"] == ADMIN
    refused(world, ORG3, "CommitUpdate", "1", digest("late"), "10", "5", code=UNAUTHORIZED)
    refused(world, ADMIN, "ProposeAggregate", "1", digest("agg"), json.dumps(MEMBERS), code=INVALID)
    ok(world, ADMIN, "ProposeAggregate", "1", digest("agg"), json.dumps([ADMIN, ORG2]))
    for msp in (ADMIN, ORG2):                               # quorum counted over the two that remain
        ok(world, msp, "Endorse", "1", digest("agg"), "950000", "900000")
    refused(world, ORG3, "Endorse", "1", digest("agg"), "950000", "900000", code=UNAUTHORIZED)
    before = balance(world, ORG3)
    decided = ok(world, ORG2, "Decide", "1")
    assert decided["decision"]["status"] == "accepted" and decided["decision"]["endorsements"] == 2
    assert world.get("head")["checkpoint"] == digest("agg")
    assert balance(world, ORG3) == before - 5 and balance(world, ORG2) == 110


def test_a_vanished_aggregator_is_replaced(world: MemWorld) -> None:
    drive(world, "update")                                   # aggregator Org1MSP, never commits
    ok(world, ORG2, "CommitUpdate", "1", digest("u2"), "10", "5")
    ok(world, ORG3, "CommitUpdate", "1", digest("u3"), "10", "5")
    world.advance(10)
    closed = ok(world, ORG3, "ClosePhase", "1")
    assert closed["absent"] == [ADMIN] and closed["aggregator"] == ORG2   # sorted([Org2, Org3])[0]
    refused(world, ADMIN, "ProposeAggregate", "1", digest("agg"), json.dumps([ORG2, ORG3]), code=UNAUTHORIZED)
    ok(world, ORG2, "ProposeAggregate", "1", digest("agg"), json.dumps([ORG2, ORG3]))


def test_an_aggregator_that_committed_then_vanished_is_replaced_at_a_second_deadline(world: MemWorld) -> None:
    drive(world, "committed")                                # everyone committed; Org1MSP never proposes
    assert ok(world, AUDITOR, "GetPending", "1")["waiting_for"] == [ADMIN]
    world.advance(10)
    closed = ok(world, ORG2, "ClosePhase", "1")
    assert closed["absent"] == [ADMIN] and closed["aggregator"] == ORG2
    refused(world, ORG2, "ClosePhase", "1", code=PHASE)     # a new deadline for the new aggregator
    ok(world, ORG2, "ProposeAggregate", "1", digest("agg"), json.dumps([ORG2, ORG3]))


def test_too_few_left_at_the_deadline_aborts_the_round(world: MemWorld) -> None:
    drive(world, "update")
    ok(world, ORG2, "CommitUpdate", "1", digest("u2"), "10", "5")
    world.advance(10)
    before = {m: balance(world, m) for m in MEMBERS}
    closed = ok(world, ORG2, "ClosePhase", "1")
    decision = closed["decision"]
    assert closed["phase"] == "closed" and decision["status"] == "aborted"
    assert decision["absentees"] == [ADMIN, ORG3] and decision["penalized"] == [ADMIN, ORG3]
    assert "fewer than min_participants=2" in decision["reason"]
    assert balance(world, ORG2) == before[ORG2]
    assert world.get("head")["checkpoint"] == GENESIS


def test_selection_and_configuration_close_with_those_who_acted(world: MemWorld) -> None:
    ok(world, ADMIN, "OpenRound", "plaintext")
    for msp in (ADMIN, ORG2):
        ok(world, msp, "ReportScreening", "1", "1", "500000")
    refused(world, OUTSIDER, "ClosePhase", "1", code=UNAUTHORIZED)
    world.advance(31)
    assert ok(world, ORG2, "ClosePhase", "1")["selected"] == [ADMIN, ORG2]
    ok(world, ADMIN, "AcceptTerms", "1", GENESIS)
    world.advance(31)
    aborted = ok(world, ADMIN, "ClosePhase", "1")["decision"]     # one accepted: too few
    assert aborted["status"] == "aborted" and aborted["absentees"] == [ORG2] and aborted["penalized"] == []


def test_feedback_closes_over_the_endorsers_that_remain(world: MemWorld) -> None:
    drive(world, "feedback")
    for msp in (ADMIN, ORG2):
        ok(world, msp, "Endorse", "1", digest("agg:1"), "950000", "900000")
    world.advance(31)
    decided = ok(world, ORG2, "ClosePhase", "1")
    assert decided["phase"] == "closed" and decided["decision"]["status"] == "accepted"
    assert decided["absent"] == [ORG3] and balance(world, ORG3) == 95   # contributed, then vanished
    assert balance(world, ORG2) == 110


def test_no_deadline_means_only_the_admin_can_end_the_round() -> None:
    world = MemWorld()
    init_consortium(world, json.dumps({**DEADLINES, "update_deadline": 0}))
    drive(world, "update")
    world.advance(10_000)
    assert "update_deadline=0" in refused(world, ORG2, "ClosePhase", "1", code=PHASE)
    ok(world, ADMIN, "AbortRound", "1", "no deadline and Org3 is gone")


def test_deadline_settings_are_validated_and_default_when_missing(world: MemWorld) -> None:
    refused(world, ADMIN, "SetSettings", json.dumps({"update_deadline": -1}), code=INVALID)
    assert ok(world, KEYHOLDER, "GetSettings")["update_deadline"] == 6


# ---- a bad contribution excludes its sender, not the round ------------------------

def test_the_aggregator_excludes_a_bad_contribution_and_the_round_goes_on(world: MemWorld) -> None:
    drive(world, "committed")                                # aggregator Org1MSP
    refused(world, ORG2, "ExcludeContribution", "1", ORG3, "bad blob", code=UNAUTHORIZED)
    refused(world, ADMIN, "ExcludeContribution", "1", ADMIN, "me", code=INVALID)
    refused(world, ADMIN, "ExcludeContribution", "1", OUTSIDER, "who", code=INVALID)
    refused(world, ADMIN, "ExcludeContribution", "1", ORG3, "", code=INVALID)
    record = ok(world, ADMIN, "ExcludeContribution", "1", ORG3, "blob has 31 parameters, the model 30")
    assert record["absent"] == [ORG3] and record["closures"][-1]["reason"].startswith("blob has 31")
    refused(world, ADMIN, "ExcludeContribution", "1", ORG3, "again", code=INVALID)
    refused(world, ADMIN, "ProposeAggregate", "1", digest("agg"), json.dumps(MEMBERS), code=INVALID)
    ok(world, ADMIN, "ProposeAggregate", "1", digest("agg"), json.dumps([ADMIN, ORG2]))
    for msp in (ADMIN, ORG2):
        ok(world, msp, "Endorse", "1", digest("agg"), "950000", "900000")
    ok(world, ADMIN, "Decide", "1")
    assert balance(world, ORG3) == 80                         # penalty (20), not the absence penalty
    assert world.get(f"rephist~{ORG3}~00000001")["reason"] == "excluded"


def test_excluding_below_min_participants_aborts_the_round() -> None:
    world = MemWorld()
    init_consortium(world, json.dumps({**DEADLINES, "min_participants": 3}))
    drive(world, "committed")
    aborted = ok(world, ADMIN, "ExcludeContribution", "1", ORG2, "wrong key")
    assert aborted["decision"]["status"] == "aborted" and aborted["decision"]["penalized"] == [ORG2]
    assert balance(world, ORG2) == 80 and balance(world, ADMIN) == 100


def test_attribution_phase_waits_for_group_endorsements_then_the_aggregator() -> None:
    from .test_contract_attribution import AUDITOR as AUDIT, group_digests, init as init_attribution, to_update

    world = MemWorld()
    init_attribution(world)
    record = to_update(world)
    ok(world, record["aggregator"], "ProposeGroups", "1", json.dumps(group_digests(record)))
    first, *others = record["participants"]
    ok(world, first, "EndorseGroups", "1", json.dumps([880000] * len(record["groups"])), "900000")
    assert ok(world, AUDIT, "GetPending", "1")["waiting_for"] == others
    for msp in others:
        ok(world, msp, "EndorseGroups", "1", json.dumps([880000] * len(record["groups"])), "900000")
    assert ok(world, AUDIT, "GetPending", "1")["waiting_for"] == []    # the admin scores the groups
    ok(world, first, "ScoreGroups", "1")
    assert ok(world, AUDIT, "GetPending", "1")["waiting_for"] == [record["aggregator"]]
    world.advance(31)
    aborted = ok(world, others[0], "ClosePhase", "1")["decision"]
    assert aborted["status"] == "aborted" and aborted["absentees"] == [record["aggregator"]]


def test_a_round_with_attribution_keeps_its_groups_whole() -> None:
    from .test_contract_attribution import init as init_attribution, to_update

    world = MemWorld()
    init_attribution(world)
    record = to_update(world)
    victim = next(m for m in record["participants"] if m != record["aggregator"])
    refused(world, record["aggregator"], "ExcludeContribution", "1", victim, "bad", code=PHASE)
    world.advance(31)
    aborted = ok(world, victim, "ClosePhase", "1")["decision"]
    assert aborted["status"] == "aborted" and "attribution" in aborted["reason"]
