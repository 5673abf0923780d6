"""The vertical contract (``vertical:<Function>``) driven through ContractChaincode.invoke on an in-memory stub."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
from typing import Any

import pytest

from blockfedml_chaincode.errors import EXISTS, INVALID, NOT_FOUND, PHASE, UNAUTHORIZED
from blockfedml_chaincode.vertical import transcript_problem

from .memstub import MemStub, MemWorld, Result

ADMIN, A, B, C, AUDITOR, OUTSIDER = "Org1MSP", "PartyAMSP", "PartyBMSP", "KeyMSP", "AuditMSP", "EvilMSP"
PARTIES = {"A": A, "B": B, "C": C}
SETTINGS = {"model": "linear", "encryption": "paillier", "lr_ppm": 100000, "l2_ppm": 0, "tol_ppm": 100,
            "max_iterations": 50, "frac_bits": 16, "feature_frac_bits": 12, "int_bits": 8, "key_bits": 2048}


def digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


class VerticalWorld(MemWorld):
    """MemWorld whose transactions go to the ``vertical`` contract (or ``blockfedml`` with ``ns``)."""

    def call(self, msp_id: str, function: str, *args: str, ns: str = "vertical") -> Result:
        self._count += 1
        self._time += 1
        stub = MemStub(self.state, f"{ns}:{function}", list(args), msp_id, f"tx{self._count:04d}", self._time)
        response = asyncio.run(self.chaincode.invoke(stub))
        if response.status == 200:
            for key, value in stub.writes.items():
                self.state[key] = value
        return Result(response.status, bytes(response.payload), response.message, dict(stub.writes))


def ok(world: VerticalWorld, msp: str, fn: str, *args: Any, ns: str = "vertical") -> Any:
    args = tuple(a if isinstance(a, str) else json.dumps(a) for a in args)
    result = world.call(msp, fn, *args, ns=ns)
    assert result.status == 200, f"{fn}{args} as {msp} failed: {result.message}"
    return json.loads(result.payload)


def refused(world: VerticalWorld, msp: str, fn: str, *args: Any, code: str) -> str:
    args = tuple(a if isinstance(a, str) else json.dumps(a) for a in args)
    before = copy.deepcopy(world.state)
    result = world.call(msp, fn, *args)
    assert result.status == 500, f"{fn}{args} as {msp} unexpectedly succeeded"
    assert result.message.startswith(f"[{code}] "), result.message
    assert world.state == before, "a refused transaction must write nothing"
    return result.message


@pytest.fixture
def world() -> VerticalWorld:
    w = VerticalWorld()
    ok(w, ADMIN, "InitConsortium", "{}", digest("genesis"), "0", ns="blockfedml")
    for msp, roles in [(ADMIN, ["admin", "member"]), (A, ["member"]), (B, ["member"]),
                       (C, ["keyholder"]), (AUDITOR, ["auditor"])]:
        ok(w, ADMIN, "RegisterOrg", msp, json.dumps(roles), ns="blockfedml")
    for msp in (ADMIN, A, B, C):
        ok(w, msp, "Join", ns="blockfedml")
    return w


def messages_of(party: str, iteration: int, tamper: str = "") -> dict[str, str]:
    """The digests every party records in one iteration of the protocol (docs/vertical.md)."""
    flow = ["A>B:u", "B>A:d", "B>C:loss", "A>C:grad", "B>C:grad", "C>A:result", "C>B:result"]
    return {key: digest(f"{key}:{iteration}{tamper if key == 'A>B:u' and party == 'B' else ''}")
            for key in flow if party in (key[0], key[2])}


def train(world: VerticalWorld, session: str = "s1", iterations: int = 3) -> None:
    ok(world, B, "OpenSession", session, PARTIES, SETTINGS)
    ok(world, A, "ApproveAlignment", session, "80", digest("psi"))
    ok(world, B, "ApproveAlignment", session, "80", digest("psi"))
    ok(world, C, "PublishKey", session, digest("key"))
    for it in range(1, iterations + 1):
        for party in "CAB":
            ok(world, PARTIES[party], "CommitIteration", session, str(it), str(1000 - it), messages_of(party, it))


def test_a_whole_session_from_opening_to_finish(world):
    opened = ok(world, B, "OpenSession", "s1", PARTIES, SETTINGS)
    assert opened["phase"] == "alignment" and opened["parties"] == PARTIES and opened["opened_by"] == B
    assert ok(world, A, "ApproveAlignment", "s1", "80", digest("psi")) == {"size": 80, "transcript": digest("psi")}
    ok(world, B, "ApproveAlignment", "s1", "80", digest("psi"))
    training = ok(world, C, "PublishKey", "s1", digest("key"))
    assert training["phase"] == "training" and training["key_fingerprint"] == digest("key")
    assert training["alignment"] == {"size": 80, "transcript": digest("psi")}
    for it in (1, 2):
        for party in "CAB":
            ok(world, PARTIES[party], "CommitIteration", "s1", str(it), str(500 - it), messages_of(party, it))
    ok(world, A, "CommitModel", "s1", digest("model A"))
    ok(world, B, "CommitModel", "s1", digest("model B"))
    finished = ok(world, B, "FinishSession", "s1")
    assert finished["phase"] == "finished" and finished["iterations"] == 2 and finished["final_loss"] == 498
    assert finished["models"] == {"A": digest("model A"), "B": digest("model B")}
    assert [h["phase"] for h in finished["history"]] == ["alignment", "training", "finished"]
    # queries are open to anyone, the auditor included
    assert ok(world, AUDITOR, "ListSessions")[0]["session"] == "s1"
    iterations = ok(world, AUDITOR, "GetIterations", "s1")
    assert [(r["iteration"], r["party"]) for r in iterations] == [(i, p) for i in (1, 2) for p in "ABC"]
    assert ok(world, AUDITOR, "GetApprovals", "s1")["A"]["size"] == 80
    assert ok(world, AUDITOR, "GetModels", "s1") == {"A": digest("model A"), "B": digest("model B")}


def test_only_party_b_opens_and_roles_are_checked(world):
    refused(world, A, "OpenSession", "s1", PARTIES, SETTINGS, code=UNAUTHORIZED)
    refused(world, B, "OpenSession", "s1", {**PARTIES, "C": ADMIN}, SETTINGS, code=UNAUTHORIZED)  # no keyholder
    refused(world, B, "OpenSession", "s1", {**PARTIES, "A": AUDITOR}, SETTINGS, code=UNAUTHORIZED)
    refused(world, B, "OpenSession", "s1", {**PARTIES, "A": OUTSIDER}, SETTINGS, code=UNAUTHORIZED)
    ok(world, B, "OpenSession", "s1", PARTIES, SETTINGS)
    refused(world, B, "OpenSession", "s1", PARTIES, SETTINGS, code=EXISTS)


@pytest.mark.parametrize("session, parties, settings, needle", [
    ("bad~id", PARTIES, SETTINGS, "session"),
    ("", PARTIES, SETTINGS, "session"),
    ("s1", {"A": A, "B": B}, SETTINGS, "parties_json"),
    ("s1", {"A": A, "B": B, "C": A}, SETTINGS, "three different"),
    ("s1", PARTIES, {**SETTINGS, "lr_ppm": 0.1}, "lr_ppm"),
    ("s1", PARTIES, {**SETTINGS, "max_iterations": 0}, "max_iterations"),
    ("s1", PARTIES, {**SETTINGS, "model": "svm"}, "model"),
    ("s1", PARTIES, {**SETTINGS, "extra": 1}, "unknown ['extra']"),
    ("s1", PARTIES, {k: v for k, v in SETTINGS.items() if k != "key_bits"}, "missing ['key_bits']"),
])
def test_malformed_openings_are_invalid_and_name_the_argument(world, session, parties, settings, needle):
    assert needle in refused(world, B, "OpenSession", session, parties, settings, code=INVALID)


def test_training_starts_only_when_a_and_b_approved_the_same_alignment(world):
    ok(world, B, "OpenSession", "s1", PARTIES, SETTINGS)
    refused(world, C, "ApproveAlignment", "s1", "80", digest("psi"), code=UNAUTHORIZED)
    refused(world, A, "ApproveAlignment", "s1", "0", digest("psi"), code=INVALID)  # empty intersection
    refused(world, A, "ApproveAlignment", "s1", "80", "not-a-digest", code=INVALID)
    ok(world, A, "ApproveAlignment", "s1", "80", digest("psi"))
    refused(world, A, "ApproveAlignment", "s1", "80", digest("psi"), code=EXISTS)
    assert "lacks the alignment approval of B" in refused(world, C, "PublishKey", "s1", digest("key"), code=PHASE)
    ok(world, B, "ApproveAlignment", "s1", "79", digest("other"))
    refused(world, A, "PublishKey", "s1", digest("key"), code=UNAUTHORIZED)
    assert "different alignments" in refused(world, C, "PublishKey", "s1", digest("key"), code=INVALID)
    refused(world, A, "CommitIteration", "s1", "1", "5", messages_of("A", 1), code=PHASE)


def test_iterations_are_recorded_in_order_by_their_own_party(world):
    train(world, iterations=1)
    refused(world, A, "CommitIteration", "s1", "3", "5", messages_of("A", 3), code=PHASE)       # skips 2
    refused(world, A, "CommitIteration", "s1", "1", "5", messages_of("A", 1), code=EXISTS)      # replay
    refused(world, A, "CommitIteration", "s1", "51", "5", messages_of("A", 51), code=INVALID)   # > max
    refused(world, A, "CommitIteration", "s1", "2", "-1", messages_of("A", 2), code=INVALID)
    refused(world, A, "CommitIteration", "s1", "2", "5", messages_of("C", 2), code=INVALID)     # not A's messages
    refused(world, A, "CommitIteration", "s1", "2", "5", {"A>A:u": digest("x")}, code=INVALID)
    refused(world, OUTSIDER, "CommitIteration", "s1", "2", "5", messages_of("A", 2), code=UNAUTHORIZED)
    refused(world, ADMIN, "CommitIteration", "s1", "2", "5", messages_of("A", 2), code=UNAUTHORIZED)
    ok(world, A, "CommitIteration", "s1", "2", "5", messages_of("A", 2))


def test_finish_needs_both_models_and_agreeing_transcripts(world):
    train(world)
    ok(world, A, "CommitModel", "s1", digest("model A"))
    refused(world, C, "CommitModel", "s1", digest("model C"), code=UNAUTHORIZED)
    assert "model digest of B" in refused(world, B, "FinishSession", "s1", code=PHASE)
    ok(world, B, "CommitModel", "s1", digest("model B"))
    ok(world, C, "CommitIteration", "s1", "4", "990", messages_of("C", 4))   # C is one iteration ahead
    assert "different numbers of iterations" in refused(world, B, "FinishSession", "s1", code=INVALID)


def test_a_message_whose_digests_differ_blocks_the_finish(world):
    ok(world, B, "OpenSession", "s1", PARTIES, SETTINGS)
    ok(world, A, "ApproveAlignment", "s1", "80", digest("psi"))
    ok(world, B, "ApproveAlignment", "s1", "80", digest("psi"))
    ok(world, C, "PublishKey", "s1", digest("key"))
    for party in "CAB":  # B received something else than what A says it sent
        ok(world, PARTIES[party], "CommitIteration", "s1", "1", "7", messages_of(party, 1, tamper="x"))
    ok(world, A, "CommitModel", "s1", digest("model A"))
    ok(world, B, "CommitModel", "s1", digest("model B"))
    message = refused(world, B, "FinishSession", "s1", code=INVALID)
    assert "A>B:u" in message and "record of A" in message and "record of B" in message


def test_abort_ends_a_session_with_a_reason_once(world):
    ok(world, B, "OpenSession", "s1", PARTIES, SETTINGS)
    refused(world, OUTSIDER, "AbortSession", "s1", "no", code=UNAUTHORIZED)
    refused(world, A, "AbortSession", "s1", "", code=INVALID)
    aborted = ok(world, A, "AbortSession", "s1", "collaborator unreachable")
    assert aborted["phase"] == "aborted" and aborted["abort"] == {"party": "A", "reason": "collaborator unreachable"}
    refused(world, B, "AbortSession", "s1", "again", code=EXISTS)
    refused(world, A, "ApproveAlignment", "s1", "80", digest("psi"), code=PHASE)


def test_unknown_sessions_are_not_found(world):
    assert "vertical session nope" in refused(world, AUDITOR, "GetSession", "nope", code=NOT_FOUND)
    assert ok(world, AUDITOR, "ListSessions") == []


def test_transcript_problem_is_a_pure_check():
    records = [{"iteration": 1, "party": p, "loss": 3, "messages": messages_of(p, 1)} for p in "ABC"]
    assert transcript_problem(records) is None
    assert "missing from the record of B" in transcript_problem(
        records[:1] + [{**records[1], "messages": {"B>C:loss": messages_of("B", 1)["B>C:loss"]}}] + records[2:])
    assert "different losses" in transcript_problem(records[:2] + [{**records[2], "loss": 4}])
