"""Masking with attribution in the contract: one unmasking per whole allocation group, never a sum
that singles out one member (in-memory stub, and the rule over every possible request)."""

from __future__ import annotations

import json
from itertools import combinations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockfedml_chaincode import rules
from blockfedml_chaincode.errors import ContractError, EXISTS, INVALID, PHASE

from .memstub import MemWorld
from .test_contract import ADMIN, AUDITOR, MEMBERS, digest, init_consortium, ok, refused
from .test_contract_secagg import OPENING, commit, open_to_update

SIX = MEMBERS + ["Org4MSP", "Org5MSP", "Org6MSP"]


@pytest.fixture
def world() -> MemWorld:
    world = MemWorld()
    init_consortium(world, json.dumps({"attribution": 1}))
    for msp in SIX[3:]:
        ok(world, ADMIN, "RegisterOrg", msp, json.dumps(["member"]))
        ok(world, msp, "Join")
    return world


def test_a_masking_round_with_attribution_unmasks_each_whole_group_and_nothing_else(world: MemWorld) -> None:
    allocated = open_to_update(world, "masking", members=SIX, advertise=SIX, share=SIX)
    groups = [sorted(g) for g in allocated["groups"]]
    assert sorted(len(g) for g in groups) == [3, 3]                 # min_group_size 2: groups of 3
    aggregator = allocated["aggregator"]
    commit(world, SIX)
    first, second = groups
    mixed = sorted(first[:2] + second[:1])                           # 3 contributors, but not a group
    message = refused(world, aggregator, "RequestDecryption", "1", digest("s"), json.dumps(mixed), code=INVALID)
    assert "not one of round 1's allocation groups" in message
    for pair in combinations(first, 2):                              # a pair singles out the other for each
        refused(world, aggregator, "RequestDecryption", "1", digest("p"), json.dumps(list(pair)), code=PHASE)
    refused(world, aggregator, "RequestDecryption", "1", digest("all"), json.dumps(SIX), code=INVALID)
    assert ok(world, aggregator, "RequestDecryption", "1", digest("g0"), json.dumps(first))["index"] == 0
    refused(world, aggregator, "RequestDecryption", "1", digest("g0b"), json.dumps(first), code=INVALID)  # overlap
    assert ok(world, aggregator, "RequestDecryption", "1", digest("g1"), json.dumps(second))["index"] == 1
    threshold = allocated["mask_threshold"]
    for msp in SIX[:threshold]:                                      # one reveal per member, for every group
        ok(world, msp, "RevealMaskShares", "1", digest(f"r:{msp}"), "300")
    refused(world, SIX[0], "RevealMaskShares", "1", digest("again"), "300", code=EXISTS)
    ok(world, aggregator, "RecordDecryption", "1", "0", digest("result0"), OPENING)
    ok(world, SIX[threshold], "RevealMaskShares", "1", digest("late"), "300")  # group 1 is still pending
    ok(world, aggregator, "RecordDecryption", "1", "1", digest("result1"), OPENING)
    opened = ok(world, AUDITOR, "GetDecryptions", "1")
    assert [r["contributors"] for r in opened] == [first, second] and all(r["result"] for r in opened)
    refused(world, SIX[-1], "RevealMaskShares", "1", digest("last"), "300", code=PHASE)  # all unmasked


def test_without_attribution_a_masking_round_still_opens_one_sum(world: MemWorld) -> None:
    ok(world, ADMIN, "SetSettings", json.dumps({"attribution": 0}))
    allocated = open_to_update(world, "masking", members=SIX, advertise=SIX, share=SIX)
    commit(world, SIX)
    first = sorted(allocated["groups"][0])
    refused(world, allocated["aggregator"], "RequestDecryption", "1", digest("g0"), json.dumps(first),
            code=PHASE)                                              # one group: fewer than the threshold
    ok(world, allocated["aggregator"], "RequestDecryption", "1", digest("all"), json.dumps(SIX))
    refused(world, allocated["aggregator"], "RequestDecryption", "1", digest("g1"), json.dumps(first), code=EXISTS)


def test_a_group_with_a_member_missing_cannot_be_unmasked(world: MemWorld) -> None:
    allocated = open_to_update(world, "masking", members=SIX, advertise=SIX, share=SIX)
    first, second = (sorted(g) for g in allocated["groups"])
    commit(world, first + second[:2])                                # one member of the second group sent nothing
    refused(world, allocated["aggregator"], "RequestDecryption", "1", digest("g1"), json.dumps(second[:2]),
            code=PHASE)                                             # 2 contributors: too few to unmask
    ok(world, allocated["aggregator"], "RequestDecryption", "1", digest("g0"), json.dumps(first))


@given(n=st.integers(3, 9), min_group=st.integers(2, 3), round_number=st.integers(1, 50),
       picks=st.lists(st.integers(0, 8), min_size=1, max_size=9, unique=True), attribution=st.booleans())
def test_no_accepted_masking_or_paillier_request_ever_leaves_anyone_fewer_than_min_group_size_others(
        n: int, min_group: int, round_number: int, picks: list[int], attribution: bool) -> None:
    participants = [f"Org{i}MSP" for i in range(1, n + 1)]
    if n < rules.opening_size(min_group):
        return
    groups = rules.make_groups(participants, round_number, min_group)
    committed = {msp: digest(msp) for msp in participants}
    contributors = sorted({participants[i % n] for i in picks})
    for mode in ("masking", "paillier"):
        record = {"round": round_number, "mode": mode, "groups": groups, "mask_threshold": 2}
        for requester in (participants[0], "KeyMSP"):
            try:
                rules.check_decryption_request(record, contributors, committed, [], digest("sum"), min_group,
                                               requester, group_masks=attribution and mode == "masking")
            except ContractError:
                continue
            assert len(contributors) >= min_group + 1
            for viewer in set(contributors) | {requester}:
                assert len(set(contributors) - {viewer}) >= min_group
            if attribution and mode == "masking":
                assert contributors in [sorted(g) for g in groups]
