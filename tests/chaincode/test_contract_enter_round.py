"""EnterRound (one member transaction for the selection phase) and CloseSelection allocating at once."""

from __future__ import annotations

import json

import pytest

from blockfedml_chaincode.errors import EXISTS, INVALID, PHASE, UNAUTHORIZED

from .memstub import MemWorld
from .test_contract import ADMIN, AUDITOR, MEMBERS, ORG2, ORG3, digest, init_consortium, ok, refused
from .test_contract_secagg import key_hex


@pytest.fixture
def world() -> MemWorld:
    world = MemWorld()
    init_consortium(world)
    return world


def open_round(world: MemWorld, mode: str = "plaintext") -> str:
    return ok(world, ADMIN, "OpenRound", mode)["base_checkpoint"]


def enter(world: MemWorld, msp: str, base: str, mode: str = "plaintext", verdict: str = "1") -> dict:
    keys = (key_hex(f"{msp}:mask"), key_hex(f"{msp}:share")) if mode == "masking" else ("", "")
    return ok(world, msp, "EnterRound", "1", verdict, "500000", base, *keys)


def test_enter_round_writes_what_the_three_separate_transactions_write(world: MemWorld) -> None:
    base = open_round(world, "masking")
    assert enter(world, ORG2, base, "masking") == {"round": 1, "score": 500000, "verdict": 1}
    assert world.get(f"screen~00000001~{ORG2}") == {"score": 500000, "verdict": 1}
    assert world.get(f"accept~00000001~{ORG2}") == {"checkpoint": base}
    assert world.get(f"maskkey~00000001~{ORG2}") == {"mask_key": key_hex(f"{ORG2}:mask"),
                                                      "share_key": key_hex(f"{ORG2}:share")}
    assert [s["msp_id"] for s in ok(world, ADMIN, "GetScreenings", "1")] == [ORG2]
    assert [a["msp_id"] for a in ok(world, ADMIN, "GetAcceptances", "1")] == [ORG2]
    assert [k["msp_id"] for k in ok(world, ADMIN, "GetMaskKeys", "1")] == [ORG2]


def test_enter_round_refusals_change_nothing(world: MemWorld) -> None:
    base = open_round(world)
    keys = (key_hex("a"), key_hex("b"))
    refused(world, ORG2, "EnterRound", "1", "1", "5", digest("other"), "", "", code=INVALID)  # not the base
    refused(world, ORG2, "EnterRound", "1", "2", "5", base, "", "", code=INVALID)             # verdict 0 or 1
    refused(world, ORG2, "EnterRound", "1", "1", "5", base, *keys, code=INVALID)              # keys, not masking
    refused(world, AUDITOR, "EnterRound", "1", "1", "5", base, "", "", code=UNAUTHORIZED)
    refused(world, ORG2, "EnterRound", "2", "1", "5", base, "", "", code="NOT_FOUND")
    enter(world, ORG2, base)
    message = refused(world, ORG2, "EnterRound", "1", "1", "5", base, "", "", code=EXISTS)
    assert "already entered round 1" in message
    ok(world, ORG3, "ReportScreening", "1", "1", "5")  # the separate transactions still work
    refused(world, ORG3, "EnterRound", "1", "1", "5", base, "", "", code=EXISTS)  # screened already
    ok(world, ADMIN, "CloseSelection", "1")
    refused(world, ADMIN, "EnterRound", "1", "1", "5", base, "", "", code=PHASE)


def test_masking_needs_two_distinct_keys(world: MemWorld) -> None:
    base = open_round(world, "masking")
    refused(world, ORG2, "EnterRound", "1", "1", "5", base, "", "", code=INVALID)
    refused(world, ORG2, "EnterRound", "1", "1", "5", base, key_hex("a"), key_hex("a"), code=INVALID)


def test_close_selection_allocates_at_once_when_every_selected_member_accepted(world: MemWorld) -> None:
    base = open_round(world)
    for msp in MEMBERS:
        enter(world, msp, base)
    record = ok(world, ADMIN, "CloseSelection", "1")
    assert record["phase"] == "update" and record["participants"] == sorted(MEMBERS)
    assert record["aggregator"] in MEMBERS
    phases = [(h["phase"], h["tx"]) for h in record["history"]]
    assert [p for p, _ in phases] == ["selection", "configuration", "allocation", "update"]
    assert len({tx for p, tx in phases if p != "selection"}) == 1  # one transaction closed and allocated
    refused(world, ADMIN, "Allocate", "1", code=PHASE)
    for msp in MEMBERS:  # the round goes on as after Allocate
        ok(world, msp, "CommitUpdate", "1", digest(f"{msp}:1"), "1024", "100")


def test_a_selected_member_that_did_not_accept_keeps_the_configuration_phase(world: MemWorld) -> None:
    base = open_round(world)
    enter(world, ADMIN, base)
    enter(world, ORG2, base)
    ok(world, ORG3, "ReportScreening", "1", "1", "5")  # screened, terms not accepted yet
    record = ok(world, ADMIN, "CloseSelection", "1")
    assert record["phase"] == "configuration" and record["selected"] == sorted(MEMBERS)
    assert ok(world, ADMIN, "GetPending", "1")["waiting_for"] == [ORG3]
    ok(world, ORG3, "AcceptTerms", "1", base)
    assert ok(world, ADMIN, "Allocate", "1")["participants"] == sorted(MEMBERS)


def test_an_unselected_members_early_acceptance_does_not_make_it_a_participant(world: MemWorld) -> None:
    base = open_round(world)
    enter(world, ADMIN, base)
    enter(world, ORG2, base)
    enter(world, ORG3, base, verdict="0")  # screened itself out: not selected
    record = ok(world, ADMIN, "CloseSelection", "1")
    assert record["selected"] == [ADMIN, ORG2] and record["phase"] == "update"
    assert record["participants"] == [ADMIN, ORG2]


def test_masking_rounds_still_configure_their_shares(world: MemWorld) -> None:
    base = open_round(world, "masking")
    for msp in MEMBERS:
        enter(world, msp, base, "masking")
    record = ok(world, ADMIN, "CloseSelection", "1")
    assert record["phase"] == "configuration"  # shares are sealed to the selected members now
    assert ok(world, ADMIN, "GetPending", "1")["waiting_for"] == sorted(MEMBERS)
    for msp in MEMBERS:
        ok(world, msp, "ShareMaskKeys", "1", digest(f"shares:{msp}"), "300")
    assert ok(world, ADMIN, "Allocate", "1")["phase"] == "update"


def test_a_round_too_small_for_its_mode_stays_in_configuration(world: MemWorld) -> None:
    ok(world, ADMIN, "SetSettings", json.dumps({"min_participants": 2}))
    ok(world, "KeyMSP", "PublishKey", "1", digest("paillier-key"), "2048")
    base = open_round(world, "paillier")
    enter(world, ADMIN, base)
    enter(world, ORG2, base)  # two participants: an opened sum needs more
    record = ok(world, ADMIN, "CloseSelection", "1")
    assert record["phase"] == "configuration"
    message = refused(world, ADMIN, "Allocate", "1", code=PHASE)
    assert "an opened sum needs" in message
