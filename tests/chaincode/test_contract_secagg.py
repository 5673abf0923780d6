"""Secure aggregation in the contract: keys, masks and authorized decryptions (in-memory stub)."""

from __future__ import annotations

import json

import pytest

from blockfedml_chaincode import rules
from blockfedml_chaincode.errors import EXISTS, INVALID, NOT_FOUND, PHASE, UNAUTHORIZED

from .memstub import MemWorld
from .test_contract import (ADMIN, AUDITOR, GENESIS, KEYHOLDER, MEMBERS, ORG2, ORG3, digest, init_consortium,
                            ok, refused)

FINGERPRINT = digest("paillier public key")
SUM = digest("the sum")
OPENING = digest("the opening")


def key_hex(name: str) -> str:
    return digest(f"x25519:{name}")


def open_to_update(world: MemWorld, mode: str, members=MEMBERS, advertise=MEMBERS, share=MEMBERS) -> dict:
    """Open round 1 in ``mode`` and run it to phase update with these members."""
    ok(world, ADMIN, "OpenRound", mode)
    for msp in members:
        ok(world, msp, "ReportScreening", "1", "1", "500000")
        if mode == "masking" and msp in advertise:
            ok(world, msp, "AdvertiseMaskKey", "1", key_hex(f"{msp}:mask"), key_hex(f"{msp}:share"))
    closed = ok(world, ADMIN, "CloseSelection", "1")
    for msp in closed["selected"]:
        ok(world, msp, "AcceptTerms", "1", GENESIS)
        if mode == "masking" and msp in share:
            ok(world, msp, "ShareMaskKeys", "1", digest(f"bundle:{msp}"), "700")
    return ok(world, ADMIN, "Allocate", "1")


def commit(world: MemWorld, members=MEMBERS) -> None:
    for i, msp in enumerate(members):
        ok(world, msp, "CommitUpdate", "1", digest(f"update:{msp}"), "4096", str(100 + i))


@pytest.fixture
def world() -> MemWorld:
    world = MemWorld()
    init_consortium(world)
    return world


# ---- Paillier -------------------------------------------------------------

def test_key_publication_is_checked(world: MemWorld) -> None:
    refused(world, ORG2, "PublishKey", "1", FINGERPRINT, "2048", code=UNAUTHORIZED)   # not a key holder
    refused(world, KEYHOLDER, "PublishKey", "1", FINGERPRINT, "1024", code=INVALID)  # too small
    refused(world, KEYHOLDER, "PublishKey", "0", FINGERPRINT, "2048", code=INVALID)
    refused(world, KEYHOLDER, "PublishKey", "1", "not-a-digest", "2048", code=INVALID)
    key = ok(world, KEYHOLDER, "PublishKey", "1", FINGERPRINT, "2048")
    assert key["fingerprint"] == FINGERPRINT and key["bits"] == 2048 and key["epoch"] == 1
    message = refused(world, KEYHOLDER, "PublishKey", "1", digest("other"), "3072", code=EXISTS)
    assert "epoch 2" in message
    assert ok(world, KEYHOLDER, "PublishKey", "2", digest("other"), "3072")["bits"] == 3072
    assert ok(world, AUDITOR, "GetPublicKey", KEYHOLDER)["epoch"] == 2
    refused(world, AUDITOR, "GetPublicKey", ORG2, code=NOT_FOUND)


def test_a_paillier_round_needs_a_published_key_outside_the_participants(world: MemWorld) -> None:
    ok(world, ADMIN, "RegisterOrg", "Org4MSP", json.dumps(["member", "keyholder"]))
    ok(world, "Org4MSP", "Join")
    ok(world, "Org4MSP", "PublishKey", "1", digest("org4 key"), "2048")  # a participant: never chosen
    ok(world, ADMIN, "OpenRound", "paillier")
    for msp in MEMBERS + ["Org4MSP"]:
        ok(world, msp, "ReportScreening", "1", "1", "500000")
    ok(world, ADMIN, "CloseSelection", "1")
    for msp in MEMBERS + ["Org4MSP"]:
        ok(world, msp, "AcceptTerms", "1", GENESIS)
    assert "no active key holder outside" in refused(world, ADMIN, "Allocate", "1", code=PHASE)
    ok(world, KEYHOLDER, "PublishKey", "1", FINGERPRINT, "2048")
    allocated = ok(world, ADMIN, "Allocate", "1")
    assert allocated["keyholder"] == KEYHOLDER
    assert allocated["key"] == {"fingerprint": FINGERPRINT, "bits": 2048, "epoch": 1}


def test_a_paillier_round_decrypts_only_authorized_sums(world: MemWorld) -> None:
    ok(world, KEYHOLDER, "PublishKey", "1", FINGERPRINT, "2048")
    aggregator = open_to_update(world, "paillier")["aggregator"]
    commit(world, MEMBERS[:2])
    everyone = json.dumps(MEMBERS)
    refused(world, aggregator, "RequestDecryption", "1", SUM, everyone, code=INVALID)  # ORG3 absent
    commit(world, MEMBERS[2:])
    refused(world, ORG2, "RequestDecryption", "1", SUM, everyone, code=UNAUTHORIZED)        # not the aggregator
    refused(world, aggregator, "RequestDecryption", "1", SUM, json.dumps([ORG2]), code=INVALID)  # one member
    refused(world, aggregator, "RequestDecryption", "1", digest(f"update:{ORG2}"), everyone, code=INVALID)  # no sum
    refused(world, aggregator, "ProposeAggregate", "1", digest("agg"), everyone, code=PHASE)  # nothing decrypted
    request = ok(world, aggregator, "RequestDecryption", "1", SUM, everyone)
    assert request == {"index": 0, "digest": SUM, "contributors": MEMBERS, "weight": 301,
                       "requested_by": aggregator, "tx": request["tx"], "result": None}
    refused(world, aggregator, "ProposeAggregate", "1", digest("agg"), everyone, code=PHASE)  # not decrypted yet
    refused(world, aggregator, "RecordDecryption", "1", "0", digest("result"), OPENING, code=UNAUTHORIZED)
    refused(world, KEYHOLDER, "RecordDecryption", "1", "1", digest("result"), OPENING, code=NOT_FOUND)
    refused(world, KEYHOLDER, "RecordDecryption", "1", "0", digest("result"), "", code=INVALID)  # no opening
    refused(world, KEYHOLDER, "RecordDecryption", "1", "0", digest("result"), digest("result"), code=INVALID)
    recorded = ok(world, KEYHOLDER, "RecordDecryption", "1", "0", digest("result"), OPENING)
    assert recorded["result"] == {"digest": digest("result"), "opening": OPENING, "by": KEYHOLDER,
                                  "tx": recorded["result"]["tx"]}
    refused(world, KEYHOLDER, "RecordDecryption", "1", "0", digest("again"), OPENING, code=EXISTS)
    assert ok(world, AUDITOR, "GetDecryptions", "1") == [recorded]
    refused(world, aggregator, "ProposeAggregate", "1", digest("agg"), json.dumps([MEMBERS[0]]), code=INVALID)
    assert ok(world, aggregator, "ProposeAggregate", "1", digest("agg"), everyone)["phase"] == "feedback"


def test_the_aggregator_cannot_open_a_sum_of_itself_and_one_victim(world: MemWorld) -> None:
    # The attack of issue 16: with min_group_size=2, {aggregator, victim} minus the aggregator's own
    # update is the victim's update. Refused on the ledger, state unchanged (``refused`` checks it).
    ok(world, KEYHOLDER, "PublishKey", "1", FINGERPRINT, "2048")
    aggregator = open_to_update(world, "paillier")["aggregator"]
    commit(world)
    victim = next(msp for msp in MEMBERS if msp != aggregator)
    message = refused(world, aggregator, "RequestDecryption", "1", SUM, json.dumps(sorted([aggregator, victim])),
                      code=INVALID)
    assert f"{aggregator}, who sees the opened sum, would find 1 other" in message
    assert "needs at least 3 contributors" in message
    # Two members without the aggregator: each of them sees the opened sum too, and finds one other.
    others = sorted(msp for msp in MEMBERS if msp != aggregator)
    assert "would find 1 other" in refused(world, aggregator, "RequestDecryption", "1", SUM, json.dumps(others),
                                           code=INVALID)
    assert ok(world, aggregator, "RequestDecryption", "1", SUM, json.dumps(MEMBERS))["contributors"] == MEMBERS


def test_min_group_size_below_two_is_refused_when_set_and_at_creation(world: MemWorld) -> None:
    for size in (0, 1):
        assert "min_group_size must be at least 2" in refused(
            world, ADMIN, "SetSettings", json.dumps({"min_group_size": size}), code=INVALID)
    fresh = MemWorld()
    result = fresh.invoke(ADMIN, "InitConsortium", json.dumps({"min_group_size": 1}), GENESIS, "0")
    assert result.status == 500 and "min_group_size must be at least 2" in result.message
    assert fresh.state == {}


def test_a_secure_round_needs_min_group_size_others_for_everyone_at_allocation(world: MemWorld) -> None:
    ok(world, KEYHOLDER, "PublishKey", "1", FINGERPRINT, "2048")
    ok(world, ADMIN, "OpenRound", "paillier")
    for msp in MEMBERS[:2]:
        ok(world, msp, "ReportScreening", "1", "1", "500000")
    ok(world, ADMIN, "CloseSelection", "1")
    for msp in MEMBERS[:2]:
        ok(world, msp, "AcceptTerms", "1", GENESIS)
    assert "an opened sum needs 3" in refused(world, ADMIN, "Allocate", "1", code=PHASE)


def test_paillier_sums_of_one_round_never_overlap(world: MemWorld) -> None:
    for msp in ("Org4MSP", "Org5MSP", "Org6MSP"):
        ok(world, ADMIN, "RegisterOrg", msp, json.dumps(["member"]))
        ok(world, msp, "Join")
    members = MEMBERS + ["Org4MSP", "Org5MSP", "Org6MSP"]
    ok(world, KEYHOLDER, "PublishKey", "1", FINGERPRINT, "2048")
    aggregator = open_to_update(world, "paillier", members=members)["aggregator"]
    commit(world, members)
    first = sorted([aggregator] + [m for m in members if m != aggregator][:2])
    ok(world, aggregator, "RequestDecryption", "1", SUM, json.dumps(first))
    rest = sorted(set(members) - set(first))
    message = refused(world, aggregator, "RequestDecryption", "1", digest("b"), json.dumps(rest + [first[0]]),
                      code=INVALID)
    assert "overlapping sums" in message
    assert ok(world, aggregator, "RequestDecryption", "1", digest("c"), json.dumps(rest))["index"] == 1


def test_secure_transactions_refuse_plaintext_rounds(world: MemWorld) -> None:
    ok(world, ADMIN, "OpenRound", "plaintext")
    refused(world, ORG2, "AdvertiseMaskKey", "1", key_hex("a"), key_hex("b"), code=PHASE)


# ---- masking --------------------------------------------------------------

def test_mask_keys_are_checked(world: MemWorld) -> None:
    ok(world, ADMIN, "OpenRound", "masking")
    refused(world, ORG2, "AdvertiseMaskKey", "1", "ABC", key_hex("b"), code=INVALID)
    refused(world, ORG2, "AdvertiseMaskKey", "1", key_hex("a"), key_hex("a"), code=INVALID)
    refused(world, KEYHOLDER, "AdvertiseMaskKey", "1", key_hex("a"), key_hex("b"), code=UNAUTHORIZED)
    ok(world, ORG2, "AdvertiseMaskKey", "1", key_hex("a"), key_hex("b"))
    refused(world, ORG2, "AdvertiseMaskKey", "1", key_hex("c"), key_hex("d"), code=EXISTS)
    assert ok(world, AUDITOR, "GetMaskKeys", "1") == [
        {"mask_key": key_hex("a"), "share_key": key_hex("b"), "msp_id": ORG2}]


def test_a_masking_round_with_one_dropout(world: MemWorld) -> None:
    # Org3 never advertises: it is not selected. Of the rest, all share; Org2 drops before committing.
    for msp in ("Org4MSP", "Org5MSP"):
        ok(world, "Org1MSP", "RegisterOrg", msp, json.dumps(["member"]))
        ok(world, msp, "Join")
    members = MEMBERS + ["Org4MSP", "Org5MSP"]
    advertised = [ADMIN, ORG2, "Org4MSP", "Org5MSP"]
    allocated = open_to_update(world, "masking", members=members, advertise=advertised, share=members)
    assert allocated["selected"] == advertised and allocated["mask_threshold"] == 3
    assert allocated["participants"] == advertised
    aggregator = allocated["aggregator"]
    survivors = [ADMIN, "Org4MSP", "Org5MSP"]
    commit(world, survivors)
    refused(world, ADMIN, "RevealMaskShares", "1", digest("r"), "300", code=PHASE)  # nothing requested yet
    ok(world, aggregator, "RequestDecryption", "1", SUM, json.dumps(survivors))
    refused(world, aggregator, "RequestDecryption", "1", digest("again"), json.dumps(survivors), code=EXISTS)
    ok(world, ADMIN, "RevealMaskShares", "1", digest("r1"), "300")
    ok(world, "Org4MSP", "RevealMaskShares", "1", digest("r4"), "300")
    refused(world, aggregator, "RecordDecryption", "1", "0", digest("result"), OPENING, code=PHASE)  # 2 < threshold 3
    refused(world, ORG3, "RevealMaskShares", "1", digest("r3"), "300", code=UNAUTHORIZED)  # not a participant
    ok(world, "Org5MSP", "RevealMaskShares", "1", digest("r5"), "300")
    assert [r["msp_id"] for r in ok(world, AUDITOR, "GetMaskReveals", "1")] == survivors
    refused(world, KEYHOLDER, "RecordDecryption", "1", "0", digest("result"), OPENING, code=UNAUTHORIZED)
    ok(world, aggregator, "RecordDecryption", "1", "0", digest("result"), OPENING)
    refused(world, ORG2, "RevealMaskShares", "1", digest("late"), "300", code=PHASE)  # already unmasked
    assert ok(world, aggregator, "ProposeAggregate", "1", digest("agg"), json.dumps(survivors))["phase"] == "feedback"


def test_a_3_org_masking_round_with_one_drop_is_not_unmasked(world: MemWorld) -> None:
    # The survivors' sum would be {aggregator, one member}: the ledger refuses to have it unmasked.
    allocated = open_to_update(world, "masking")
    assert allocated["participants"] == MEMBERS and allocated["mask_threshold"] == 2
    aggregator = allocated["aggregator"]
    survivors = sorted([aggregator, next(m for m in MEMBERS if m != aggregator)])
    commit(world, survivors)
    message = refused(world, aggregator, "RequestDecryption", "1", SUM, json.dumps(survivors), code=PHASE)
    assert "too few survivors to unmask" in message and "unmasking needs 3" in message
    assert ok(world, AUDITOR, "GetDecryptions", "1") == []
    refused(world, survivors[0], "RevealMaskShares", "1", digest("r"), "300", code=PHASE)  # nothing to reveal for


def test_too_few_survivors_is_refused_and_writes_nothing(world: MemWorld) -> None:
    ok(world, ADMIN, "SetSettings", json.dumps({"mask_threshold_percent": 100}))
    allocated = open_to_update(world, "masking")
    assert allocated["mask_threshold"] == 3
    commit(world, MEMBERS[:2])
    message = refused(world, allocated["aggregator"], "RequestDecryption", "1", SUM, json.dumps(MEMBERS[:2]),
                      code=PHASE)
    assert "too few survivors" in message


def test_allocate_needs_enough_shared_members(world: MemWorld) -> None:
    ok(world, ADMIN, "SetSettings", json.dumps({"mask_threshold_percent": 100}))
    ok(world, ADMIN, "OpenRound", "masking")
    for msp in MEMBERS:
        ok(world, msp, "ReportScreening", "1", "1", "500000")
        ok(world, msp, "AdvertiseMaskKey", "1", key_hex(f"{msp}:m"), key_hex(f"{msp}:s"))
    ok(world, ADMIN, "CloseSelection", "1")
    for msp in MEMBERS:
        ok(world, msp, "AcceptTerms", "1", GENESIS)
    refused(world, ADMIN, "ShareMaskKeys", "1", digest("x"), "0", code=INVALID)
    for msp in MEMBERS[:2]:
        ok(world, msp, "ShareMaskKeys", "1", digest(f"bundle:{msp}"), "700")
    assert "an opened sum needs 3" in refused(world, ADMIN, "Allocate", "1", code=PHASE)


# ---- rules ------------------------------------------------------------------

@pytest.mark.parametrize("selected,percent,group,expected", [
    (3, 51, 2, 2), (4, 51, 2, 3), (10, 51, 2, 6), (10, 100, 2, 10), (2, 1, 1, 2), (5, 1, 4, 4), (1, 51, 1, 1),
])
def test_mask_threshold(selected: int, percent: int, group: int, expected: int) -> None:
    assert rules.mask_threshold(selected, percent, group) == expected


def test_mask_threshold_percent_setting_is_checked() -> None:
    with pytest.raises(rules.ContractError, match="mask_threshold_percent must be 1..100"):
        rules.validate_settings({"mask_threshold_percent": 0})
