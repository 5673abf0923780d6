"""The pure rules of the federation, without a ledger."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockfedml_chaincode import rules
from blockfedml_chaincode.errors import INVALID, PHASE, UNAUTHORIZED, ContractError

MSP = st.from_regex(r"[A-Z][a-z0-9]{0,6}MSP", fullmatch=True)


def raises(code: str, fragment: str = ""):
    """Context manager: a ContractError with ``code`` whose message contains ``fragment``."""
    return pytest.raises(ContractError, match=rf"^\[{code}\] .*{fragment}")


# ---- argument parsers -------------------------------------------------------

@pytest.mark.parametrize("text, minimum, maximum, value", [
    ("0", None, None, 0), ("42", 0, None, 42), ("-7", None, None, -7), ("1", 0, 1, 1), ("007", 0, None, 7)])
def test_parse_int_accepts(text: str, minimum: int, maximum: int, value: int) -> None:
    assert rules.parse_int("n", text, minimum=minimum, maximum=maximum) == value


@pytest.mark.parametrize("text", ["", "1.0", " 1", "1 ", "+1", "1_000", "0x10", "one", "١", "9" * 31])
def test_parse_int_refuses_non_decimal(text: str) -> None:
    with raises(INVALID, "round must be a decimal integer"):
        rules.parse_int("round", text)


def test_parse_int_bounds_name_the_argument() -> None:
    with raises(INVALID, "size must be at least 1, got 0"):
        rules.parse_int("size", "0", minimum=1)
    with raises(INVALID, "verdict must be at most 1, got 2"):
        rules.parse_int("verdict", "2", maximum=1)


@given(st.integers(min_value=-10**20, max_value=10**20))
def test_parse_int_round_trips(value: int) -> None:
    assert rules.parse_int("n", str(value)) == value


def test_parse_digest() -> None:
    good = hashlib.sha256(b"x").hexdigest()
    assert rules.parse_digest("digest", good) == good
    for bad in ["", good[:-1], good + "0", good.upper(), "g" * 64, None]:
        with raises(INVALID, "digest must be a SHA-256 digest"):
            rules.parse_digest("digest", bad)


def test_parse_json_list_and_object() -> None:
    assert rules.parse_json_list("xs", '["a", 1]') == ["a", 1]
    assert rules.parse_json_object("s", '{"a": 1}') == {"a": 1}
    with raises(INVALID, "xs is not valid JSON: '\\[a'"):
        rules.parse_json_list("xs", "[a")
    with raises(INVALID, "xs must be a JSON list"):
        rules.parse_json_list("xs", '{"a": 1}')
    with raises(INVALID, "s must be a JSON object"):
        rules.parse_json_object("s", "[]")


def test_msp_ids() -> None:
    for good in ["Org1MSP", "org-2.example_MSP", "A"]:
        assert rules.check_msp_id("msp_id", good) == good
    for bad in ["", "Org~1", "-Org", "Org 1", "Ö", "x" * 65, 7, None]:
        with raises(INVALID, "msp_id must be an MSP ID"):
            rules.check_msp_id("msp_id", bad)
    assert rules.parse_msp_list("c", '["B", "A"]') == ["A", "B"]
    for bad, fragment in [("[]", "must not be empty"), ('["A", "A"]', "twice"), ('["A~"]', "c entry"),
                          ("[1]", "c entry")]:
        with raises(INVALID, fragment):
            rules.parse_msp_list("c", bad)


def test_roles_and_modes() -> None:
    assert rules.parse_roles("roles", '["member", "admin"]') == ["admin", "member"]
    for bad, fragment in [("[]", "at least one role"), ('["root"]', "unknown role 'root'"),
                          ('["member", "member"]', "twice"), ('"member"', "JSON list")]:
        with raises(INVALID, fragment):
            rules.parse_roles("roles", bad)
    assert rules.parse_mode("mode", "paillier") == "paillier"
    with raises(INVALID, "mode must be one of"):
        rules.parse_mode("mode", "PLAINTEXT")


# ---- settings -----------------------------------------------------------------

def test_settings_defaults_and_merge() -> None:
    assert rules.validate_settings({}) == rules.DEFAULT_SETTINGS
    merged = rules.validate_settings({"reward": 3, "quorum_percent": 100})
    assert merged == {**rules.DEFAULT_SETTINGS, "reward": 3, "quorum_percent": 100}


@pytest.mark.parametrize("raw, fragment", [
    ({"bonus": 1}, "unknown setting 'bonus'"),
    ({"reward": "10"}, "reward must be an integer"),
    ({"reward": 1.0}, "reward must be an integer"),
    ({"higher_is_better": True}, "higher_is_better must be an integer"),
    ({"reward": None}, "reward must be an integer"),
    ({"penalty": -1}, "penalty must not be negative"),
    ({"quorum_percent": 0}, "quorum_percent must be 1..100"),
    ({"quorum_percent": 101}, "quorum_percent must be 1..100"),
    ({"min_participants": 0, "min_group_size": 0}, "min_participants must be at least 1"),
    ({"min_group_size": 0}, "min_group_size must be at least 2"),
    ({"min_group_size": 1}, "min_group_size must be at least 2"),
    ({"higher_is_better": 2}, "higher_is_better must be 0 or 1"),
    ({"min_group_size": 3}, "min_group_size \\(3\\) must not exceed min_participants \\(2\\)"),
    ({"ban_threshold": 101}, "initial_reputation \\(100\\) must not be below ban_threshold \\(101\\)"),
])
def test_settings_refused(raw: dict, fragment: str) -> None:
    with raises(INVALID, fragment):
        rules.validate_settings(raw)


def test_settings_must_be_an_object() -> None:
    with raises(INVALID, "settings must be a JSON object"):
        rules.validate_settings([1])  # type: ignore[arg-type]


# ---- roles and phases -----------------------------------------------------------

def org(msp: str, roles: list[str], status: str = rules.ACTIVE) -> dict:
    return {"msp_id": msp, "roles": roles, "status": status}


def test_check_writer() -> None:
    rules.check_writer(org("A", ["member"]), "A")
    rules.check_writer(org("A", ["auditor", "keyholder"]), "A")
    rules.check_writer(org("A", ["member"], rules.REGISTERED), "A")
    with raises(UNAUTHORIZED, "Evil is not registered"):
        rules.check_writer(None, "Evil")
    with raises(UNAUTHORIZED, "A is banned"):
        rules.check_writer(org("A", ["member"], rules.BANNED), "A")
    with raises(UNAUTHORIZED, "A is an auditor and may only read"):
        rules.check_writer(org("A", ["auditor"]), "A")


def test_phases() -> None:
    record = rules.new_round(3, "plaintext", {"checkpoint": "c", "metric": 5}, "t1", 10)
    assert record["phase"] == "selection" and record["base_checkpoint"] == "c" and record["base_metric"] == 5
    rules.require_phase(record, "selection")
    with raises(PHASE, "round 3 is in phase selection, not update"):
        rules.require_phase(record, "update")
    moved = rules.advance(record, "configuration", "t2", 11)
    assert moved["phase"] == "configuration" and record["phase"] == "selection"
    assert moved["history"][-1] == {"phase": "configuration", "tx": "t2", "time": 11}
    with raises(PHASE, "cannot go back"):
        rules.advance(moved, "selection", "t3", 12)
    with raises(PHASE):
        rules.advance(moved, "configuration", "t3", 12)


# ---- selection and allocation ---------------------------------------------------

def test_eligible_members() -> None:
    orgs = [org("A", ["member"]), org("B", ["member", "admin"]), org("C", ["member"], rules.BANNED),
            org("D", ["member"], rules.REGISTERED), org("E", ["keyholder"]), org("F", ["member"]),
            org("G", ["member"])]
    balances = {"A": 40, "B": 100, "C": 100, "D": 100, "E": 100, "F": 39, "G": 100}
    verdicts = {"A": 1, "B": 1, "C": 1, "D": 1, "E": 1, "F": 1, "G": 0}
    assert rules.eligible_members(orgs, balances, verdicts, 40) == ["A", "B"]


def test_require_enough() -> None:
    rules.require_enough("participants", ["A", "B"], 2, 1)
    with raises(PHASE, "round 4 has 1 participants \\['A'\\], needs at least min_participants=2"):
        rules.require_enough("participants", ["A"], 2, 4)


def test_aggregator_rotates_over_sorted_participants() -> None:
    participants = ["C", "A", "B"]
    assert [rules.choose_aggregator(participants, r) for r in range(1, 7)] == ["A", "B", "C", "A", "B", "C"]


def test_keyholder() -> None:
    orgs = [org("Z", ["keyholder"]), org("K", ["keyholder"], rules.REGISTERED), org("M", ["keyholder", "member"])]
    assert rules.choose_keyholder(orgs) == "M"
    assert rules.choose_keyholder([org("A", ["member"])]) is None


def test_groups_follow_the_sha256_order() -> None:
    participants = ["A", "B", "C", "D", "E"]
    ordered = sorted(participants, key=lambda m: hashlib.sha256(f"7:{m}".encode()).hexdigest())
    assert rules.make_groups(participants, 7, 1) == [ordered[:2], ordered[2:]]
    assert rules.make_groups(participants, 7, 2) == [ordered]  # groups of 3: two others besides each member
    with raises(PHASE, "fewer than the 3 an attribution group needs"):
        rules.make_groups(["A", "B"], 1, 2)


@given(st.sets(MSP, min_size=1, max_size=30), st.integers(1, 10**6), st.integers(1, 8))
def test_groups_cover_everyone_once_and_are_big_enough(members: set[str], number: int, size: int) -> None:
    participants = sorted(members)
    if len(participants) < size + 1:
        with pytest.raises(ContractError):
            rules.make_groups(participants, number, size)
        return
    groups = rules.make_groups(participants, number, size)
    assert sorted(m for g in groups for m in g) == participants
    assert all(len(g) - 1 >= size for g in groups)  # each member finds min_group_size others
    assert len(groups) == len(participants) // (size + 1)
    # deterministic and independent of the input order
    assert rules.make_groups(list(reversed(participants)), number, size) == groups
    aggregator = rules.choose_aggregator(participants, number)
    assert aggregator in participants
    assert rules.choose_aggregator(list(reversed(participants)), number) == aggregator


# ---- quorum, median and rollback -------------------------------------------------

@pytest.mark.parametrize("percent, n, size", [(67, 3, 3), (66, 3, 2), (50, 4, 2), (51, 4, 3), (100, 5, 5),
                                              (1, 5, 1), (67, 1, 1)])
def test_quorum_size(percent: int, n: int, size: int) -> None:
    assert rules.quorum_size(percent, n) == size


@given(st.integers(1, 100), st.integers(0, 1000))
def test_quorum_is_the_integer_ceiling(percent: int, n: int) -> None:
    size = rules.quorum_size(percent, n)
    assert size * 100 >= percent * n > (size - 1) * 100 or (n == 0 and size == 0)


def test_lower_median() -> None:
    assert rules.lower_median([5]) == 5
    assert rules.lower_median([3, 1, 2]) == 2
    assert rules.lower_median([4, 1, 3, 2]) == 2
    with raises(PHASE, "no endorsements"):
        rules.lower_median([])


@given(st.lists(st.integers(0, 10**7), min_size=1, max_size=20), st.data())
def test_a_minority_of_liars_cannot_move_the_median_past_the_honest_values(honest: list[int], data) -> None:
    # fewer than half of all values are lies: len(liars) < len(honest)
    liars = data.draw(st.lists(st.integers(-10**9, 10**9), max_size=len(honest) - 1))
    order = data.draw(st.permutations(honest + liars))
    median = rules.lower_median(order)
    assert min(honest) <= median <= max(honest)


@pytest.mark.parametrize("median, base, tolerance, higher, rolled", [
    (880000, 900000, 20000, 1, False), (879999, 900000, 20000, 1, True), (990000, 900000, 20000, 1, False),
    (920000, 900000, 20000, 0, False), (920001, 900000, 20000, 0, True), (100, 900000, 20000, 0, False),
    (900000, 900000, 0, 1, False), (899999, 900000, 0, 1, True)])
def test_should_roll_back(median: int, base: int, tolerance: int, higher: int, rolled: bool) -> None:
    assert rules.should_roll_back(median - base, tolerance, higher) is rolled


# ---- reputation ---------------------------------------------------------------

def test_reputation_change() -> None:
    rep, entry, index = rules.reputation_change(None, 100, 0, "join", "t0")
    assert (rep, entry, index) == ({"balance": 100, "entries": 1},
                                   {"round": 0, "delta": 100, "balance": 100, "reason": "join", "tx": "t0"}, 0)
    rep, entry, index = rules.reputation_change(rep, -130, 4, "penalty", "t4")
    assert rep == {"balance": 0, "entries": 2} and entry["delta"] == -100 and index == 1


@given(st.integers(0, 10**6), st.lists(st.integers(-500, 500), max_size=30), st.integers(0, 10**6))
def test_balance_never_negative_and_ban_exactly_below_threshold(start: int, deltas: list[int],
                                                                threshold: int) -> None:
    rep, _, _ = rules.reputation_change(None, start, 0, "join", "t")
    total = start
    for i, delta in enumerate(deltas):
        rep, entry, index = rules.reputation_change(rep, delta, i + 1, "x", "t")
        total = max(0, total + delta)
        assert rep["balance"] == total == entry["balance"] >= 0
        assert index == i + 1 and rep["entries"] == i + 2
        assert rules.is_banned(rep["balance"], threshold) is (rep["balance"] < threshold)
    assert rules.is_banned(threshold, threshold) is False
    assert rules.is_banned(threshold - 1, threshold) is True


def test_a_round_without_attribution_too_small_for_a_group_gets_none() -> None:
    settings = rules.validate_settings({})
    assert rules.allocation_groups(["A", "B"], 1, settings) == []
    assert rules.allocation_groups(["A", "B", "C"], 1, settings) == [sorted(["A", "B", "C"], key=lambda m: (
        hashlib.sha256(f"1:{m}".encode()).hexdigest(), m))]
    with raises(PHASE, "fewer than the 3 an attribution group needs"):
        rules.allocation_groups(["A", "B"], 1, {**settings, "attribution": 1})


def test_rollback_is_not_triggered_by_one_pessimistic_validation_sample() -> None:
    """10 endorsers, 4 liars at the bottom: the lower median is the one honest endorser that lost one
    validation sample of 48 (more than the tolerance 0.02); the trimmed mean averages it with the next."""
    settings = rules.validate_settings({})
    one_sample = -(rules.METRIC_SCALE // 48) - 1
    honest = [one_sample, 0, 0, 5000, 10000, 20833]
    endorsements = [{"metric": 900000 + d, "base_metric": 900000} for d in honest] + \
        [{"metric": 0, "base_metric": 1_000_000}] * 4
    changes = [e["metric"] - e["base_metric"] for e in endorsements]
    assert rules.should_roll_back(rules.lower_median(changes), settings["rollback_tolerance"], 1)  # the old rule
    improvement = rules.round_improvement(endorsements, settings)
    assert improvement == (one_sample + 0) // 2
    assert not rules.should_roll_back(improvement, settings["rollback_tolerance"], 1)
    # A real loss seen by every honest endorser still rolls back, with the liars at the top instead.
    harmful = [{"metric": 870000, "base_metric": 900000}] * 6 + [{"metric": 1_000_000, "base_metric": 0}] * 4
    assert rules.should_roll_back(rules.round_improvement(harmful, settings), settings["rollback_tolerance"], 1)


def test_no_reward_without_improvement() -> None:
    assert rules.improved(1, 1) and not rules.improved(0, 1) and not rules.improved(-5, 1)
    assert rules.improved(-1, 0) and not rules.improved(0, 0)                # loss-like metrics
    with pytest.raises(ContractError, match="rollback_trim_percent"):
        rules.validate_settings({"rollback_trim_percent": 50})
    with pytest.raises(ContractError, match="attribution_metric"):
        rules.validate_settings({"attribution_metric": 3})
