"""Attribution on the contract: group aggregates scored by endorsers, reputation from groups.

The pure rules (trimmed mean, verdicts, group-testing blame, settlement) are
tested directly; the transactions through ContractChaincode.invoke on the
in-memory stub, with refusals that must leave the world state unchanged.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockfedml_chaincode import rules
from blockfedml_chaincode.errors import EXISTS, INVALID, PHASE, UNAUTHORIZED, ContractError

from .memstub import MemWorld
from .test_contract import digest, ok, refused

ORGS = [f"Org{i}MSP" for i in range(1, 10)]  # three groups of three (min_group_size=2 others each)
ADMIN = ORGS[0]
AUDITOR = "AuditMSP"
GOOD, BAD, BASE = 920000, 850000, 900000


def init(world: MemWorld, **settings: int) -> None:
    merged = {"attribution": 1, "min_group_size": 2, "penalty": 30, **settings}
    ok(world, ADMIN, "InitConsortium", json.dumps(merged), digest("genesis"), "0")
    for msp in ORGS:
        ok(world, ADMIN, "RegisterOrg", msp, json.dumps(["admin", "member"] if msp == ADMIN else ["member"]))
        ok(world, msp, "Join")
    ok(world, ADMIN, "RegisterOrg", AUDITOR, '["auditor"]')


def to_update(world: MemWorld) -> dict:
    """Open a round and take it to phase update with every active member committing."""
    active = [o["msp_id"] for o in ok(world, AUDITOR, "ListOrgs") if o["status"] == "active"]
    record = ok(world, ADMIN, "OpenRound", "plaintext")
    r = str(record["round"])
    for msp in active:
        ok(world, msp, "ReportScreening", r, "1", "900000")
    ok(world, ADMIN, "CloseSelection", r)
    for msp in active:
        ok(world, msp, "AcceptTerms", r, record["base_checkpoint"])
    record = ok(world, ADMIN, "Allocate", r)
    for msp in record["participants"]:
        ok(world, msp, "CommitUpdate", r, digest(f"{msp}:{r}"), "1000", "50")
    return record


def group_digests(record: dict) -> list[str]:
    return [digest(f"group:{record['round']}:{i}") for i in range(len(record["groups"]))]


def endorse_groups(world: MemWorld, record: dict, bad: set[str], liars: frozenset[str] = frozenset()) -> None:
    """Leave-one-group-out (attribution_reference=1): honest endorsers see the model of all groups
    at BASE, without a group holding a ``bad`` member 5 points better (it harms), without any other
    group 2 points worse (it helps); liars say the opposite."""
    for msp in record["participants"]:
        harmed = [bool(set(g) & bad) for g in record["groups"]]
        if msp in liars:
            harmed = [not h for h in harmed]
        metrics = [BASE + 50000 if h else BASE - 20000 for h in harmed]
        ok(world, msp, "EndorseGroups", str(record["round"]), json.dumps(metrics), str(BASE))


def attribution_round(world: MemWorld, bad: set[str], liars: frozenset[str] = frozenset()) -> dict:
    """A whole round with attribution; returns the decided round record."""
    record = to_update(world)
    r = str(record["round"])
    ok(world, record["aggregator"], "ProposeGroups", r, json.dumps(group_digests(record)))
    endorse_groups(world, record, bad, liars)
    accepted = ok(world, ADMIN, "ScoreGroups", r)["attribution"]["accepted"]
    if accepted:
        ok(world, record["aggregator"], "ProposeAggregate", r, digest(f"agg:{r}"), json.dumps(accepted))
        for msp in record["participants"]:
            ok(world, msp, "Endorse", r, digest(f"agg:{r}"), str(GOOD), str(BASE))
    return ok(world, ADMIN, "Decide", r)


@pytest.fixture
def world() -> MemWorld:
    world = MemWorld()
    init(world)
    return world


# ---- pure rules ---------------------------------------------------------------

def test_trimmed_mean_drops_each_end_and_floors() -> None:
    assert rules.trimmed_mean([0, 10, 20, 1000], 25) == 15
    assert rules.trimmed_mean([0, 10, 20, 1000], 0) == 257
    assert rules.trimmed_mean([-7, 2, 2], 40) == 2           # n=3: the median
    assert rules.trimmed_mean([-3, -2], 40) == -3             # floor, not truncation
    with pytest.raises(ContractError):
        rules.trimmed_mean([], 40)


@given(honest=st.lists(st.integers(-10**6, 10**6), min_size=3, max_size=12),
       lies=st.lists(st.sampled_from([-10**9, 10**9]), max_size=6))
def test_trimmed_mean_stays_within_honest_values_while_liars_are_trimmed(honest, lies) -> None:
    values = honest + lies
    if len(lies) > len(values) * 40 // 100:
        return  # more liars than the trimmed share: no promise
    assert min(honest) <= rules.trimmed_mean(values, 40) <= max(honest)


def test_group_verdicts() -> None:
    assert rules.group_verdict(None, 20000, 1) == rules.MISSING
    assert rules.group_verdict(-20000, 20000, 1) == rules.ACCEPTED
    assert rules.group_verdict(-20001, 20000, 1) == rules.HARMFUL
    assert rules.group_verdict(20001, 20000, 0) == rules.HARMFUL     # loss-like metric went up


def test_blame_needs_trusted_partners_and_unforgiven_strikes() -> None:
    trusted, fresh = {"clean": 2, "harmful": 0, "blamed": 0, "strikes": 0}, rules.new_attribution()
    struck = {"clean": 2, "harmful": 2, "blamed": 0, "strikes": rules.BLAME_STRIKES}
    groups, harmful = [["A", "H"], ["B", "C"]], [rules.HARMFUL, rules.HARMFUL]
    # A holds strikes and its partner H is trusted: A is singled out; H's partner A is not trusted.
    assert rules.blamed_members(groups, harmful, {"H": trusted, "A": struck}) == ["A"]
    # A first (or second) unexplained harm is only a strike: a fresh attacker, or an honest member
    # beside an attacker that is still trusted, is not blamed for it.
    assert rules.blamed_members(groups, harmful, {"H": trusted}) == []
    assert rules.blamed_members([["A", "H"]], [rules.HARMFUL], {"H": trusted, "A": trusted}) == []
    # Nobody trusted yet (first rounds): nobody is blamed, whatever its strikes.
    assert rules.blamed_members(groups, harmful, {"A": struck}) == []
    # Trust needs TRUST_MIN_CLEAN accepted rounds, more than twice the harmful ones, and no strike.
    assert not rules.is_trusted({"clean": 1, "harmful": 0, "blamed": 0})
    assert not rules.is_trusted({"clean": 4, "harmful": 2, "blamed": 0})
    assert not rules.is_trusted({"clean": 9, "harmful": 0, "blamed": 0, "strikes": 1})
    assert rules.is_trusted({"clean": 5, "harmful": 2, "blamed": 0})       # records stored before strikes
    # Groups of one (no privacy asked): a harmful member is blamed at once.
    assert rules.blamed_members([["A"], ["B"]], [rules.HARMFUL, rules.ACCEPTED], {"A": fresh}) == ["A"]


def _settle(groups: list[list[str]], verdicts: list[str], records: dict) -> dict[str, tuple[int, str]]:
    changes, updated = rules.attribution_outcome(groups, verdicts, records, True, 10, 30)
    records.update(updated)
    return changes


def test_a_sleeper_is_blamed_once_its_harm_outweighs_its_clean_rounds_and_its_partners_never() -> None:
    """S is honest for 5 rounds (trusted), then harms every round beside a different honest member."""
    honest = ["H1", "H2", "H3", "H4", "H5"]
    records: dict = {}
    for r in range(5):
        _settle([["S", honest[r]], [h for h in honest if h != honest[r]]], [rules.ACCEPTED] * 2, records)
    blamed_rounds = []
    for r in range(8):
        partner = honest[r % 5]
        others = [h for h in honest if h != partner]
        changes = _settle([["S", partner], others], [rules.HARMFUL, rules.ACCEPTED], records)
        assert all(changes.get(h, (0, ""))[0] >= 0 for h in honest), (r, changes)
        if changes.get("S", (0, ""))[0] < 0:
            blamed_rounds.append((r, changes["S"][0]))
    # Its sixth harmful round outweighs its five clean ones: blamed, and more each time (30 x 1, 4, 9).
    assert blamed_rounds == [(5, -30), (6, -120), (7, -270)]
    assert all(records[h]["blamed"] == 0 for h in honest)


def test_a_sleeper_whose_groups_harm_severely_is_blamed_from_its_fourth_harmful_round() -> None:
    """The same sleeper, its groups losing more than 4 x the tolerance: each such round weighs twice in
    its own record, so its harm outweighs its five clean rounds at the fourth harmful round, not the sixth."""
    honest = ["H1", "H2", "H3", "H4", "H5"]
    records: dict = {}
    for r in range(5):
        _settle([["S", honest[r]], [h for h in honest if h != honest[r]]], [rules.ACCEPTED] * 2, records)
    blamed_rounds = []
    for r in range(5):
        partner = honest[r % 5]
        groups = [["S", partner], [h for h in honest if h != partner]]
        changes, updated = rules.attribution_outcome(groups, [rules.HARMFUL, rules.ACCEPTED], records, True,
                                                     10, 30, severe=[True, False])
        records.update(updated)
        assert all(changes.get(h, (0, ""))[0] >= 0 for h in honest), (r, changes)
        if changes.get("S", (0, ""))[0] < 0:
            blamed_rounds.append((r, changes["S"][0]))
    assert blamed_rounds == [(3, -30), (4, -120)]
    assert records["S"]["severe"] == 5 and all(records[h]["blamed"] == 0 for h in honest)


def test_groups_are_severe_beyond_four_times_the_tolerance() -> None:
    settings = {**rules.validate_settings({}), "attribution_tolerance": 5000}
    groups = [{"score": -20001}, {"score": -20000}, {"score": -6000}, {"score": 3000}, {"score": None}]
    assert rules.groups_severe(groups, settings) == [True, False, False, False, False]


def test_attribution_outcome_rewards_accepted_groups_only_when_the_model_improved() -> None:
    groups = [["A", "B"], ["C", "D"], ["E", "F"]]
    verdicts = [rules.ACCEPTED, rules.HARMFUL, rules.MISSING]
    records = {"D": {"clean": 3, "harmful": 0, "blamed": 0}, "C": {"clean": 1, "harmful": 1, "blamed": 0,
                                                                  "strikes": 2}}
    changes, new = rules.attribution_outcome(groups, verdicts, records, True, 10, 30)
    assert changes == {"A": (10, "group_reward"), "B": (10, "group_reward"), "C": (-30, "group_penalty")}
    assert new["C"] == {"clean": 1, "harmful": 2, "severe": 0, "blamed": 1, "strikes": 3}
    assert new["D"] == {"clean": 3, "harmful": 1, "severe": 0, "blamed": 0, "strikes": 0}   # its partner C is not trusted
    assert new["A"]["strikes"] == 0 and "E" not in new                      # a missing group changes nothing
    changes, _ = rules.attribution_outcome(groups, verdicts, records, False, 10, 30)
    assert changes == {"C": (-30, "group_penalty")}                         # no reward without improvement
    _, forgiven = rules.attribution_outcome([["C", "D"]], [rules.ACCEPTED], new, False, 10, 30)
    assert forgiven["C"]["strikes"] == 2                                    # an accepted group forgives one


def test_attribution_settings_are_checked() -> None:
    assert rules.validate_settings({})["attribution"] == 0
    for bad in ({"attribution": 2}, {"attribution_trim_percent": 50}, {"attribution_tolerance": -1}):
        with pytest.raises(ContractError, match=next(iter(bad))):
            rules.validate_settings(bad)


# ---- the transactions ---------------------------------------------------------

def test_a_round_with_attribution_keeps_harmful_groups_out(world: MemWorld) -> None:
    record = to_update(world)
    r, groups = str(record["round"]), record["groups"]
    assert [len(g) for g in groups] == [3, 3, 3]
    bad = groups[1][0]
    proposed = ok(world, record["aggregator"], "ProposeGroups", r, json.dumps(group_digests(record)))
    assert proposed["phase"] == "attribution"
    assert [g["members"] for g in proposed["attribution"]["groups"]] == groups
    endorse_groups(world, record, {bad})
    scored = ok(world, ORGS[2], "ScoreGroups", r)                   # a participant may score
    assert [g["verdict"] for g in scored["attribution"]["groups"]] == ["accepted", "harmful", "accepted"]
    assert [g["score"] for g in scored["attribution"]["groups"]] == [20000, -50000, 20000]
    accepted = sorted(groups[0] + groups[2])
    assert scored["attribution"]["accepted"] == accepted
    # The aggregate must hold exactly the accepted groups.
    message = refused(world, record["aggregator"], "ProposeAggregate", r, digest("agg"),
                      json.dumps(ORGS), code=INVALID)
    assert "accepted groups" in message
    ok(world, record["aggregator"], "ProposeAggregate", r, digest("agg"), json.dumps(accepted))
    for msp in record["participants"]:
        ok(world, msp, "Endorse", r, digest("agg"), str(GOOD), str(BASE))
    decided = ok(world, ADMIN, "Decide", r)
    assert decided["decision"]["status"] == "accepted"
    for msp in ORGS:
        rep = ok(world, AUDITOR, "GetReputation", msp)["balance"]
        assert rep == (110 if msp in accepted else 100)             # the harmful pair: no reward, no blame yet
        history = ok(world, AUDITOR, "GetReputationHistory", msp)
        assert [h["reason"] for h in history] == (["join", "group_reward"] if msp in accepted else ["join"])
    # The bad group lost far more than 4 x the tolerance: a severe harmful round in its members' records.
    assert ok(world, AUDITOR, "GetAttribution", bad) == {"clean": 0, "harmful": 1, "severe": 1, "blamed": 0,
                                                         "strikes": 0}
    assert ok(world, AUDITOR, "GetAttribution", accepted[0]) == {"clean": 1, "harmful": 0, "severe": 0, "blamed": 0,
                                                                 "strikes": 0}
    assert len(ok(world, AUDITOR, "GetGroupEndorsements", r)) == len(ORGS)


def test_a_persistent_attacker_sinks_and_is_banned_while_no_honest_member_is_penalized(world: MemWorld) -> None:
    attacker = ORGS[4]
    banned_in = None
    for _ in range(40):
        decision = attribution_round(world, {attacker})["decision"]
        if attacker in decision["banned"]:
            banned_in = ok(world, AUDITOR, "GetHead")["last_round"]
            break
    assert banned_in is not None, "the attacker was never banned"
    assert ok(world, AUDITOR, "GetOrg", attacker)["status"] == "banned"
    assert ok(world, AUDITOR, "GetAttribution", attacker)["blamed"] >= 1
    for msp in ORGS:
        if msp != attacker:
            history = ok(world, AUDITOR, "GetReputationHistory", msp)
            assert all(h["delta"] >= 0 for h in history), (msp, history)
            assert ok(world, AUDITOR, "GetOrg", msp)["status"] == "active"
    # A banned member's transactions are refused on-chain.
    ok(world, ADMIN, "OpenRound", "plaintext")
    refused(world, attacker, "ReportScreening", str(banned_in + 1), "1", "1", code=UNAUTHORIZED)


def test_lying_endorsers_below_the_trimmed_share_do_not_change_verdicts(world: MemWorld) -> None:
    record = to_update(world)
    r = str(record["round"])
    bad = record["groups"][0][0]
    ok(world, record["aggregator"], "ProposeGroups", r, json.dumps(group_digests(record)))
    liars = frozenset(record["groups"][1])
    endorse_groups(world, record, {bad}, liars=liars)             # 3 of 9 invert every verdict
    verdicts = [g["verdict"] for g in ok(world, ADMIN, "ScoreGroups", r)["attribution"]["groups"]]
    assert verdicts == ["harmful", "accepted", "accepted"]


def test_when_every_group_harms_the_round_is_rejected_and_the_head_stays(world: MemWorld) -> None:
    head = ok(world, AUDITOR, "GetHead")
    decided = attribution_round(world, set(ORGS))
    assert decided["decision"]["status"] == "rejected" and decided["proposal"] is None
    assert decided["phase"] == "closed"
    assert [h["phase"] for h in decided["history"]][-2:] == ["attribution", "closed"]
    assert ok(world, AUDITOR, "GetHead") == {**head, "last_round": 1}
    assert "ckpt~00000001" not in world.state
    assert all(ok(world, AUDITOR, "GetReputation", msp)["balance"] == 100 for msp in ORGS)


def test_group_aggregates_may_leave_out_a_group_that_did_not_commit(world: MemWorld) -> None:
    record = ok(world, ADMIN, "OpenRound", "plaintext")
    for msp in ORGS:
        ok(world, msp, "ReportScreening", "1", "1", "1")
    ok(world, ADMIN, "CloseSelection", "1")
    for msp in ORGS:
        ok(world, msp, "AcceptTerms", "1", record["base_checkpoint"])
    record = ok(world, ADMIN, "Allocate", "1")
    silent = record["groups"][2][0]
    for msp in ORGS:
        if msp != silent:
            ok(world, msp, "CommitUpdate", "1", digest(msp), "1000", "50")
    digests = group_digests(record)
    message = refused(world, record["aggregator"], "ProposeGroups", "1", json.dumps(digests), code=INVALID)
    assert silent in message and "entry 2" in message
    ok(world, record["aggregator"], "ProposeGroups", "1", json.dumps(digests[:2] + [None]))
    refused(world, ADMIN, "EndorseGroups", "1", json.dumps([GOOD, GOOD, GOOD]), str(BASE), code=INVALID)
    ok(world, ADMIN, "EndorseGroups", "1", json.dumps([GOOD, GOOD, None]), str(BASE))


def test_attribution_refusals(world: MemWorld) -> None:
    record = to_update(world)
    r, aggregator = str(record["round"]), record["aggregator"]
    other = next(o for o in ORGS if o != aggregator)
    digests = json.dumps(group_digests(record))
    refused(world, aggregator, "ProposeAggregate", r, digest("agg"), json.dumps(ORGS), code=PHASE)
    refused(world, other, "ProposeGroups", r, digests, code=UNAUTHORIZED)
    refused(world, aggregator, "ProposeGroups", r, json.dumps(group_digests(record)[:2]), code=INVALID)
    refused(world, aggregator, "ProposeGroups", r, json.dumps([None, None, None]), code=INVALID)
    refused(world, aggregator, "ProposeGroups", r, json.dumps(["nothex", None, None]), code=INVALID)
    refused(world, ADMIN, "EndorseGroups", r, json.dumps([BAD] * 3), str(BASE), code=PHASE)
    ok(world, aggregator, "ProposeGroups", r, digests)
    refused(world, aggregator, "ProposeGroups", r, digests, code=EXISTS)
    refused(world, AUDITOR, "EndorseGroups", r, json.dumps([BAD] * 3), str(BASE), code=UNAUTHORIZED)
    refused(world, ADMIN, "EndorseGroups", r, json.dumps([GOOD, -1, GOOD]), str(BASE), code=INVALID)
    refused(world, ADMIN, "EndorseGroups", r, json.dumps([GOOD, True, GOOD]), str(BASE), code=INVALID)
    refused(world, ADMIN, "ScoreGroups", r, code=PHASE)              # no quorum yet
    ok(world, ADMIN, "EndorseGroups", r, json.dumps([BAD] * 3), str(BASE))
    refused(world, ADMIN, "EndorseGroups", r, json.dumps([BAD] * 3), str(BASE), code=EXISTS)
    for msp in ORGS[1:6]:  # six of nine, the quorum; without any group the model would be worse: all help
        ok(world, msp, "EndorseGroups", r, json.dumps([BAD] * 3), str(BASE))
    refused(world, aggregator, "ProposeAggregate", r, digest("agg"), json.dumps(ORGS), code=PHASE)  # not scored
    refused(world, AUDITOR, "ScoreGroups", r, code=UNAUTHORIZED)
    refused(world, ADMIN, "Decide", r, code=PHASE)
    ok(world, ADMIN, "ScoreGroups", r)
    refused(world, ADMIN, "ScoreGroups", r, code=EXISTS)
    refused(world, ORGS[8], "EndorseGroups", r, json.dumps([BAD] * 3), str(BASE), code=PHASE)
    refused(world, ADMIN, "Decide", r, code=PHASE)                   # accepted groups: propose first


def test_without_attribution_group_transactions_are_refused() -> None:
    world = MemWorld()
    init(world, attribution=0)
    record = to_update(world)
    refused(world, record["aggregator"], "ProposeGroups", str(record["round"]),
            json.dumps(group_digests(record)), code=PHASE)



def test_a_member_with_a_long_clean_record_is_not_blamed_for_a_few_harmful_rounds() -> None:
    """On skewed data an honest member's contribution can turn harmful for a few rounds beside trusted
    partners; its own history (harmful in at most half of its rounds) keeps it from blame."""
    trusted = {"clean": 5, "harmful": 0, "blamed": 0, "strikes": 0}
    honest = {"clean": 12, "harmful": 5, "blamed": 0, "strikes": 2}
    attacker = {"clean": 4, "harmful": 4, "blamed": 0, "strikes": 2}
    assert rules.blamed_members([["A", "H"]], [rules.HARMFUL], {"A": honest, "H": trusted}) == []
    assert rules.blamed_members([["A", "H"]], [rules.HARMFUL], {"A": attacker, "H": trusted}) == ["A"]


def test_a_member_whose_harmful_share_exceeds_every_partners_is_a_suspect_though_none_is_trusted() -> None:
    attacker = {"clean": 1, "harmful": 5, "blamed": 0, "strikes": 0}     # harmful in 5 of 6 rounds
    honest = {"clean": 4, "harmful": 2, "blamed": 0, "strikes": 0}       # beside attackers in 2 of 6
    records = {"A": attacker, "H1": honest, "H2": honest}
    assert not rules.is_trusted(honest)
    assert rules.is_suspect("A", ["A", "H1", "H2"], records)
    assert not rules.is_suspect("H1", ["A", "H1", "H2"], records)
    # Two colluders in one group: neither explains the harm better than the other, nobody is suspected.
    assert not rules.is_suspect("A", ["A", "B", "H1"], {**records, "B": attacker})
    # Alike records (the first rounds, or a margin under 1/4) suspect nobody; a first harm neither.
    close = {"clean": 3, "harmful": 3, "blamed": 0, "strikes": 0}
    assert not rules.is_suspect("C", ["C", "H1", "H2"], {**records, "C": close})   # 4/7 vs 3/7
    assert not rules.is_suspect("N", ["N", "H1"], {"N": rules.new_attribution(), "H1": honest})
    # Its own record must agree before a suspect with strikes is blamed: harmful in more than half.
    struck = {**attacker, "strikes": rules.BLAME_STRIKES}
    assert rules.blamed_members([["A", "H1", "H2"]], [rules.HARMFUL], {**records, "A": struck}) == ["A"]
    drifting = {"clean": 12, "harmful": 4, "blamed": 0, "strikes": rules.BLAME_STRIKES}
    clean = {"clean": 15, "harmful": 0, "blamed": 0, "strikes": 0}
    assert rules.is_suspect("D", ["D", "H1", "H2"], {"D": drifting, "H1": clean, "H2": clean})
    assert rules.blamed_members([["D", "H1", "H2"]], [rules.HARMFUL], {"D": drifting, "H1": clean, "H2": clean}) == []


def _simulate(attackers: set[str], rounds: int, start: int = 1, drifting: str | None = None,
              n: int = 10) -> tuple[dict[str, int | None], list[tuple[int, str]]]:
    """Rounds of groups of three reshuffled by ``make_groups``; a group harms when it holds an attacker
    (from round ``start``), or ``drifting`` every fourth round (an honest member whose skewed update
    harms now and then). Returns the round each attacker was banned in and every honest penalty."""
    names = [f"Org{i}MSP" for i in range(1, n + 1)]
    records: dict = {}
    balance = {m: 100 for m in names}
    banned: dict[str, int] = {}
    honest_penalties = []
    for r in range(1, rounds + 1):
        groups = rules.make_groups([m for m in names if m not in banned], r, 2)
        verdicts = [rules.HARMFUL if (set(g) & attackers and r >= start) or (drifting in g and r % 4 == 0)
                    else rules.ACCEPTED for g in groups]
        changes, updated = rules.attribution_outcome(groups, verdicts, records, True, 10, 30)
        records.update(updated)
        for msp, (delta, _) in changes.items():
            balance[msp] = rules.apply_delta(balance[msp], delta)
            if delta < 0 and msp not in attackers:
                honest_penalties.append((r, msp))
            if rules.is_banned(balance[msp], 40):
                banned.setdefault(msp, r)
    return {a: banned.get(a) for a in sorted(attackers)}, honest_penalties


@pytest.mark.parametrize("attackers", [{"Org10MSP"}, {"Org9MSP", "Org10MSP"}, {"Org5MSP", "Org8MSP"}])
def test_persistent_attackers_among_untrusted_partners_are_banned_within_ten_rounds_and_nobody_else(
        attackers: set[str]) -> None:
    """20% attackers in groups of three: a third of the honest members share a harmful group in any
    round, so none stays trusted; the attackers are still singled out by their share of harmful rounds."""
    banned, honest = _simulate(attackers, 20, drifting="Org3MSP")
    assert honest == []
    assert all(r is not None and r <= 11 for r in banned.values()), banned


def test_sleepers_are_banned_after_they_turn_and_their_partners_never() -> None:
    banned, honest = _simulate({"Org9MSP", "Org10MSP"}, 25, start=6, drifting="Org3MSP")
    assert honest == []
    assert all(r is not None and r - 6 < 14 for r in banned.values()), banned


def test_no_attacker_no_penalty_even_for_a_member_whose_update_harms_every_fourth_round() -> None:
    banned, honest = _simulate(set(), 40, drifting="Org3MSP")
    assert honest == [] and banned == {}
