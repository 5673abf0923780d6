"""The federation's rules as plain, deterministic functions.

Every peer that endorses a transaction must compute exactly the same result, so
nothing here uses floats, randomness, the clock or I/O. The contract parses
arguments, checks who is calling and moves state; the decisions themselves
(settings, phases, selection, allocation, quorum, median, rollback, reputation)
live here so they can be tested without a ledger. See docs/protocol.md.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Iterable, Mapping, Optional, Sequence

from .errors import EXISTS, INVALID, PHASE, UNAUTHORIZED, ContractError

METRIC_SCALE = 1_000_000
"""Metrics are fixed-point integers: accuracy 0.9531 is 953100."""

DEFAULT_SETTINGS: dict[str, int] = {
    "quorum_percent": 66,
    "min_participants": 2,
    "min_group_size": 2,
    "initial_reputation": 100,
    "reward": 10,
    "penalty": 20,
    "ban_threshold": 40,
    "rollback_tolerance": 20000,
    "rollback_trim_percent": 40,
    "higher_is_better": 1,
    # Attribution (docs/integrity.md): score each group's aggregate before it enters the model.
    "attribution": 0,
    "attribution_tolerance": 5000,
    "attribution_trim_percent": 40,
    "attribution_metric": 1,
    "attribution_reference": 1,
    # Masking (docs/secure-aggregation.md): shares needed to unmask, as a percentage of the selected members.
    "mask_threshold_percent": 51,
    # Deadlines (docs/operations.md): seconds of transaction time a phase waits before anyone may close
    # it with the members that acted (ClosePhase); 0: no deadline. Members that accepted the round and
    # then vanished lose absence_penalty.
    "selection_deadline": 30,
    "configuration_deadline": 30,
    "update_deadline": 6,
    "attribution_deadline": 30,
    "feedback_deadline": 30,
    "absence_penalty": 5,
}

ROLES = ("admin", "member", "keyholder", "auditor")
MODES = ("plaintext", "paillier", "masking")
PHASES = ("selection", "configuration", "allocation", "update", "attribution", "feedback", "closed")

REGISTERED, ACTIVE, BANNED = "registered", "active", "banned"
ACCEPTED, ROLLED_BACK, PROPOSED = "accepted", "rolled_back", "proposed"
REJECTED, HARMFUL, MISSING = "rejected", "harmful", "missing"
ABORTED = "aborted"

_INT_TEXT = re.compile(r"-?[0-9]{1,30}")
_DIGEST_TEXT = re.compile(r"[0-9a-f]{64}")
# MSP IDs become part of world-state keys, so "~" (the key separator) and
# anything outside a conservative alphabet is refused.
_MSP_TEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


# --------------------------------------------------------------------------
# Argument parsers: each error names the argument and shows the bad value.
# --------------------------------------------------------------------------

def _show(text: Any) -> str:
    """Quote a bad value for an error message, cut short if it is long."""
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def parse_int(name: str, text: str, minimum: Optional[int] = None,
              maximum: Optional[int] = None) -> int:
    """Parse a decimal integer argument (no signs other than '-', no spaces)."""
    if not isinstance(text, str) or not _INT_TEXT.fullmatch(text):
        raise ContractError(INVALID, f"{name} must be a decimal integer, got {_show(text)}")
    value = int(text)
    if minimum is not None and value < minimum:
        raise ContractError(INVALID, f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ContractError(INVALID, f"{name} must be at most {maximum}, got {value}")
    return value


def parse_digest(name: str, text: str) -> str:
    """Parse a SHA-256 digest: exactly 64 lower-case hex characters."""
    if not isinstance(text, str) or not _DIGEST_TEXT.fullmatch(text):
        raise ContractError(
            INVALID, f"{name} must be a SHA-256 digest (64 lower-case hex characters), got {_show(text)}")
    return text


def _parse_json(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise ContractError(INVALID, f"{name} is not valid JSON: {_show(text)}") from None


def parse_json_list(name: str, text: str) -> list:
    """Parse an argument that must be a JSON list."""
    value = _parse_json(name, text)
    if not isinstance(value, list):
        raise ContractError(INVALID, f"{name} must be a JSON list, got {_show(text)}")
    return value


def parse_json_object(name: str, text: str) -> dict:
    """Parse an argument that must be a JSON object."""
    value = _parse_json(name, text)
    if not isinstance(value, dict):
        raise ContractError(INVALID, f"{name} must be a JSON object, got {_show(text)}")
    return value


def check_msp_id(name: str, text: Any) -> str:
    """Check an MSP ID's format (it is used inside world-state keys)."""
    if not isinstance(text, str) or not _MSP_TEXT.fullmatch(text):
        raise ContractError(
            INVALID, f"{name} must be an MSP ID (letters, digits, '.', '_', '-'; at most 64), "
                     f"got {_show(text)}")
    return text


def parse_msp_list(name: str, text: str) -> list[str]:
    """Parse a non-empty JSON list of distinct MSP IDs; returned sorted."""
    values = parse_json_list(name, text)
    if not values:
        raise ContractError(INVALID, f"{name} must not be empty")
    for value in values:
        check_msp_id(f"{name} entry", value)
    if len(set(values)) != len(values):
        raise ContractError(INVALID, f"{name} lists an MSP ID twice: {_show(text)}")
    return sorted(values)


def parse_roles(name: str, text: str) -> list[str]:
    """Parse a non-empty JSON list of distinct known roles; returned sorted."""
    values = parse_json_list(name, text)
    if not values:
        raise ContractError(INVALID, f"{name} must name at least one role of {list(ROLES)}")
    for value in values:
        if value not in ROLES:
            raise ContractError(INVALID, f"{name}: unknown role {_show(value)}; roles are {list(ROLES)}")
    if len(set(values)) != len(values):
        raise ContractError(INVALID, f"{name} lists a role twice: {_show(text)}")
    return sorted(values)


def parse_mode(name: str, text: str) -> str:
    """Parse the aggregation mode of a round."""
    if text not in MODES:
        raise ContractError(INVALID, f"{name} must be one of {list(MODES)}, got {_show(text)}")
    return text


# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------

def validate_settings(raw: Mapping[str, Any]) -> dict[str, int]:
    """Merge ``raw`` over the defaults and check every value.

    Refused with [INVALID] naming the key: unknown keys, non-integers
    (booleans and floats included), negative values, ``quorum_percent`` outside
    1..100, ``min_participants`` below 1, ``min_group_size`` below 2 (an opened
    sum of one member other than its receiver is that member's update),
    ``higher_is_better``, ``attribution`` or ``attribution_reference`` other than 0/1,
    ``attribution_metric`` other than 0/1/2, ``attribution_trim_percent`` or
    ``rollback_trim_percent`` above 49, and two combinations that would make
    rounds impossible: ``min_group_size > min_participants`` (a round could
    then never form a group) and ``initial_reputation < ban_threshold`` (a new
    member could never be selected).
    """
    if not isinstance(raw, Mapping):
        raise ContractError(INVALID, f"settings must be a JSON object, got {_show(raw)}")
    for key in sorted(raw):
        if key not in DEFAULT_SETTINGS:
            raise ContractError(INVALID, f"unknown setting {_show(key)}; settings are {sorted(DEFAULT_SETTINGS)}")
        value = raw[key]
        if not isinstance(value, int) or isinstance(value, bool):
            raise ContractError(INVALID, f"setting {key} must be an integer, got {_show(value)}")
        if value < 0:
            raise ContractError(INVALID, f"setting {key} must not be negative, got {value}")
    settings = {**DEFAULT_SETTINGS, **raw}
    if not 1 <= settings["quorum_percent"] <= 100:
        raise ContractError(INVALID, f"setting quorum_percent must be 1..100, got {settings['quorum_percent']}")
    if settings["min_participants"] < 1:
        raise ContractError(INVALID, f"setting min_participants must be at least 1, got {settings['min_participants']}")
    if settings["min_group_size"] < 2:
        raise ContractError(INVALID, f"setting min_group_size must be at least 2, got {settings['min_group_size']}: "
                                     "an opened sum with one member besides whoever sees it gives that member's "
                                     "update away")
    if settings["higher_is_better"] not in (0, 1):
        raise ContractError(INVALID, f"setting higher_is_better must be 0 or 1, got {settings['higher_is_better']}")
    for key in ("attribution", "attribution_reference"):
        if settings[key] not in (0, 1):
            raise ContractError(INVALID, f"setting {key} must be 0 or 1, got {settings[key]}")
    if settings["attribution_metric"] not in (0, 1, 2):
        raise ContractError(INVALID, "setting attribution_metric must be 0 (the task's metric), 1 (likelihood) "
                                     f"or 2 (likelihood of the worst class), got {settings['attribution_metric']}")
    if not 1 <= settings["mask_threshold_percent"] <= 100:
        raise ContractError(INVALID, "setting mask_threshold_percent must be 1..100, "
                                     f"got {settings['mask_threshold_percent']}")
    for key in ("attribution_trim_percent", "rollback_trim_percent"):
        if settings[key] > 49:
            raise ContractError(INVALID, f"setting {key} must be 0..49 (the share trimmed from "
                                         f"each end), got {settings[key]}")
    if settings["min_group_size"] > settings["min_participants"]:
        raise ContractError(
            INVALID, f"setting min_group_size ({settings['min_group_size']}) must not exceed "
                     f"min_participants ({settings['min_participants']})")
    if settings["initial_reputation"] < settings["ban_threshold"]:
        raise ContractError(
            INVALID, f"setting initial_reputation ({settings['initial_reputation']}) must not be below "
                     f"ban_threshold ({settings['ban_threshold']})")
    return settings


# --------------------------------------------------------------------------
# Roles and phases
# --------------------------------------------------------------------------

def has_role(org: Optional[Mapping[str, Any]], role: str) -> bool:
    """True when the organization record holds ``role``."""
    return org is not None and role in org.get("roles", ())


def check_writer(org: Optional[Mapping[str, Any]], msp_id: str, as_admin: bool = False) -> None:
    """Refuse writes by unknown, banned or auditor-only organizations.

    A ban takes away member rights only: an organization that is also an
    admin keeps governing (``as_admin``), so one ban cannot stall the consortium.
    """
    if org is None:
        raise ContractError(UNAUTHORIZED, f"{msp_id} is not registered in the consortium")
    if org["status"] == BANNED and not (as_admin and has_role(org, "admin")):
        raise ContractError(UNAUTHORIZED, f"{msp_id} is banned from the consortium")
    if list(org["roles"]) == ["auditor"]:
        raise ContractError(UNAUTHORIZED, f"{msp_id} is an auditor and may only read")


def require_phase(round_record: Mapping[str, Any], expected: str) -> None:
    """Refuse with [PHASE] unless the round is in phase ``expected``."""
    if round_record["phase"] != expected:
        raise ContractError(
            PHASE, f"round {round_record['round']} is in phase {round_record['phase']}, not {expected}")


def advance(round_record: Mapping[str, Any], phase: str, tx: str, time: int) -> dict:
    """Return a copy of the round moved to ``phase``, with a history entry.

    Only forward moves along ``PHASES`` are allowed; the contract checks the
    phase first, so a violation here is a bug, reported as [PHASE].
    """
    current, target = PHASES.index(round_record["phase"]), PHASES.index(phase)
    if target <= current:
        raise ContractError(PHASE, f"round {round_record['round']} cannot go back from "
                                   f"{round_record['phase']} to {phase}")
    history = list(round_record["history"]) + [{"phase": phase, "tx": tx, "time": time}]
    return {**round_record, "phase": phase, "history": history}


def new_round(number: int, mode: str, head: Mapping[str, Any], tx: str, time: int) -> dict:
    """The record of a round just opened on top of the current head."""
    return {
        "round": number, "phase": "selection", "mode": mode,
        "base_checkpoint": head["checkpoint"], "base_metric": head["metric"],
        "selected": [], "participants": [], "aggregator": None, "keyholder": None,
        "groups": [], "proposal": None, "decision": None,
        "history": [{"phase": "selection", "tx": tx, "time": time}],
    }


# --------------------------------------------------------------------------
# Selection and allocation
# --------------------------------------------------------------------------

def eligible_members(orgs: Iterable[Mapping[str, Any]], balances: Mapping[str, int],
                     verdicts: Mapping[str, int], ban_threshold: int) -> list[str]:
    """Active, non-banned members with balance >= ban_threshold and verdict 1, sorted."""
    return sorted(
        org["msp_id"] for org in orgs
        if org["status"] == ACTIVE and has_role(org, "member")
        and balances.get(org["msp_id"], 0) >= ban_threshold
        and verdicts.get(org["msp_id"]) == 1
    )


def require_enough(what: str, names: Sequence[str], minimum: int, round_number: int) -> None:
    """[PHASE] when a round has fewer ``what`` than ``minimum``."""
    if len(names) < minimum:
        raise ContractError(
            PHASE, f"round {round_number} has {len(names)} {what} {sorted(names)}, "
                   f"needs at least min_participants={minimum}")


def choose_aggregator(participants: Sequence[str], round_number: int) -> str:
    """Round-robin over the sorted participants: ``sorted(p)[(round - 1) % n]``."""
    ordered = sorted(participants)
    return ordered[(round_number - 1) % len(ordered)]


def choose_keyholder(orgs: Iterable[Mapping[str, Any]]) -> Optional[str]:
    """The first (sorted) active organization with role keyholder, or None."""
    holders = sorted(o["msp_id"] for o in orgs if o["status"] == ACTIVE and has_role(o, "keyholder"))
    return holders[0] if holders else None


def _group_order(round_number: int, msp_id: str) -> str:
    return hashlib.sha256(f"{round_number}:{msp_id}".encode()).hexdigest()


def opening_size(min_group_size: int) -> int:
    """The fewest contributors an opened sum may have: ``min_group_size`` others besides any one
    party that sees it — and every contributor sees it (the opened sums and the model made of them
    are published to the participants), so ``min_group_size + 1``."""
    return min_group_size + 1


def check_opening(contributors: Sequence[str], viewers: Iterable[str], min_group_size: int, what: str) -> None:
    """[INVALID] unless every party in ``viewers`` (the requester) and every contributor finds at
    least ``min_group_size`` contributors other than itself in the opened sum."""
    members = set(contributors)
    for viewer in sorted(set(viewers) | members):
        others = len(members - {viewer})
        if others < min_group_size:
            raise ContractError(INVALID, f"{what} covers {len(members)} contributors {sorted(members)}: {viewer}, "
                                         f"who sees the opened sum, would find {others} other than itself, fewer "
                                         f"than min_group_size={min_group_size}; an opened sum needs at least "
                                         f"{opening_size(min_group_size)} contributors")


def allocation_groups(participants: Sequence[str], round_number: int, settings: Mapping[str, int]) -> list[list[str]]:
    """The groups Allocate fixes: ``make_groups``; without attribution (no group is ever opened)
    a round too small for one group gets none instead of being refused."""
    if not setting(settings, "attribution") and len(participants) < opening_size(settings["min_group_size"]):
        return []
    return make_groups(participants, round_number, settings["min_group_size"])


def make_groups(participants: Sequence[str], round_number: int, min_group_size: int) -> list[list[str]]:
    """Attribution groups: order by sha256("{round}:{msp}"), cut into groups of
    ``opening_size(min_group_size)``; a remainder joins the last group.

    Every participant sees every group's aggregate (it endorses them), so each group
    holds ``min_group_size`` others besides any member of it. The order changes every
    round so the same members are not always grouped together, yet every peer
    computes the same groups.
    """
    group_size = opening_size(min_group_size)
    if len(participants) < group_size:
        raise ContractError(PHASE, f"round {round_number} has {len(participants)} participants, fewer than the "
                                   f"{group_size} an attribution group needs (min_group_size={min_group_size} "
                                   "others besides each member)")
    ordered = sorted(participants, key=lambda msp: (_group_order(round_number, msp), msp))
    count = len(ordered) // group_size
    groups = [ordered[i * group_size:(i + 1) * group_size] for i in range(count)]
    groups[-1].extend(ordered[count * group_size:])
    return groups


# --------------------------------------------------------------------------
# Decision
# --------------------------------------------------------------------------

def quorum_size(quorum_percent: int, participants: int) -> int:
    """``ceil(quorum_percent * participants / 100)`` in integers."""
    return (quorum_percent * participants + 99) // 100


def lower_median(values: Sequence[int]) -> int:
    """The median, the lower of the two middle values for an even count.

    With fewer than half of the values lying, it stays between honest values.
    """
    if not values:
        raise ContractError(PHASE, "no endorsements to take the median of")
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def should_roll_back(improvement: int, tolerance: int, higher_is_better: int) -> bool:
    """True when the endorsed change of the metric is a loss larger than ``tolerance``.

    ``improvement`` is the trimmed mean over endorsers of (metric of the
    proposal - metric of the base checkpoint), each pair measured by one member
    on its own validation data (``round_improvement``). Comparing like with like
    keeps a lucky high-water mark on small validation sets from rolling back a
    sound aggregate.
    """
    if higher_is_better:
        return improvement < -tolerance
    return improvement > tolerance


def round_improvement(endorsements: Sequence[Mapping[str, int]], settings: Mapping[str, int]) -> int:
    """The endorsed improvement of a proposal: the trimmed mean of (metric - base metric).

    Dropping ``rollback_trim_percent`` of the values at each end removes the
    liars, who push their values to an extreme, as long as they are no more than
    that share; averaging the honest values that stay makes one member's
    sampling noise (one validation sample is 1/48 of accuracy on 48 samples) a
    fraction of itself. The lower median used before picked, with liars at the
    bottom, the single most pessimistic honest endorser: one unlucky sample
    rolled back rounds whose test accuracy rose.
    """
    return trimmed_mean([e["metric"] - e["base_metric"] for e in endorsements],
                        setting(settings, "rollback_trim_percent"))


def improved(improvement: int, higher_is_better: int) -> bool:
    """Whether an accepted proposal improved the model: no reward without improvement
    (the paper: a member is "rewarded if the accuracy is improved")."""
    return improvement > 0 if higher_is_better else improvement < 0


# --------------------------------------------------------------------------
# Reputation
# --------------------------------------------------------------------------

def apply_delta(balance: int, delta: int) -> int:
    """New balance after ``delta``; a balance never goes below zero."""
    return max(0, balance + delta)


def is_banned(balance: int, ban_threshold: int) -> bool:
    """A member is banned exactly when its balance is below the threshold."""
    return balance < ban_threshold


def reputation_change(rep: Optional[Mapping[str, int]], delta: int, round_number: int,
                      reason: str, tx: str) -> tuple[dict, dict, int]:
    """Apply ``delta`` to a reputation record (``None``: a new one at 0).

    Returns the new record, the history entry and that entry's index. The
    entry's delta is the change actually applied (less than asked when the
    balance hits zero).
    """
    balance = rep["balance"] if rep else 0
    index = rep["entries"] if rep else 0
    new_balance = apply_delta(balance, delta)
    entry = {"round": round_number, "delta": new_balance - balance, "balance": new_balance,
             "reason": reason, "tx": tx}
    return {"balance": new_balance, "entries": index + 1}, entry, index


# --------------------------------------------------------------------------
# Attribution: scoring groups' aggregates, never one member's update
# --------------------------------------------------------------------------
# With attribution on, the aggregator proposes one aggregate per allocation
# group (each at least min_group_size members, reshuffled every round), every
# participant endorses each group's aggregate with the metric it measures on
# its own validation data, and only groups that do not harm enter the round's
# aggregate. Reputation then flows to members from their groups' verdicts over
# rounds. See docs/integrity.md.

def setting(settings: Mapping[str, int], key: str) -> int:
    """A setting's value; settings stored before ``key`` existed fall back to its default."""
    return settings.get(key, DEFAULT_SETTINGS[key])


def parse_group_digests(name: str, text: str, group_count: int) -> list[Optional[str]]:
    """One entry per allocation group: the digest of its aggregate, or null (group left out)."""
    values = parse_json_list(name, text)
    if len(values) != group_count:
        raise ContractError(INVALID, f"{name} must have one entry per group ({group_count}), got {len(values)}")
    for index, value in enumerate(values):
        if value is not None:
            parse_digest(f"{name} entry {index}", value)
    if all(value is None for value in values):
        raise ContractError(INVALID, f"{name} names no group aggregate; at least one group must have one")
    return values


def parse_group_metrics(name: str, text: str, digests: Sequence[Optional[str]]) -> list[Optional[int]]:
    """One fixed-point metric (>= 0) per group that has an aggregate, null for the others."""
    values = parse_json_list(name, text)
    if len(values) != len(digests):
        raise ContractError(INVALID, f"{name} must have one entry per group ({len(digests)}), got {len(values)}")
    for index, (value, digest) in enumerate(zip(values, digests)):
        if digest is None:
            if value is not None:
                raise ContractError(INVALID, f"{name} entry {index} must be null: group {index} has no aggregate")
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ContractError(INVALID, f"{name} entry {index} must be a non-negative integer metric, "
                                         f"got {_show(value)}")
    return values


def trimmed_mean(values: Sequence[int], trim_percent: int) -> int:
    """The mean after dropping ``floor(n * trim_percent / 100)`` values from each end (floored).

    Liars push their values to an extreme, where they are dropped as long as
    they are no more than the trimmed share; the honest values kept are
    averaged, which is finer than one validation sample of one member. Near
    50 it is the median.
    """
    if not values:
        raise ContractError(PHASE, "no group endorsements to average")
    ordered = sorted(values)
    cut = len(ordered) * trim_percent // 100
    kept = ordered[cut:len(ordered) - cut]
    return sum(kept) // len(kept)


def group_scores(endorsements: Sequence[Mapping[str, Any]], digests: Sequence[Optional[str]],
                 trim_percent: int, removal: int = 0) -> list[Optional[int]]:
    """Per group: the trimmed mean over endorsers of the group's contribution; None if absent.

    With ``removal`` (setting ``attribution_reference=1``) each endorser reports,
    as ``base_metric``, the metric of the aggregate of every group and, per group,
    that metric minus the group's Shapley value over the round's groups (for two
    groups: the metric of the aggregate without it): the contribution is their
    difference (base - metric). Otherwise it is the
    group's own aggregate against the round's base checkpoint (metric - base).
    Each endorser measures both on the same data, so each difference compares
    like with like.
    """
    return [
        None if digest is None
        else trimmed_mean([(e["base_metric"] - e["metrics"][index]) if removal
                           else (e["metrics"][index] - e["base_metric"]) for e in endorsements], trim_percent)
        for index, digest in enumerate(digests)
    ]


def scores_of(endorsements: Sequence[Mapping[str, Any]], digests: Sequence[Optional[str]],
              settings: Mapping[str, int]) -> list[Optional[int]]:
    """``group_scores`` with the consortium's settings (trim and reference)."""
    return group_scores(endorsements, digests, setting(settings, "attribution_trim_percent"),
                        setting(settings, "attribution_reference"))


def group_metric_higher_is_better(settings: Mapping[str, int]) -> int:
    """Groups are endorsed with the likelihood of the true labels (``attribution_metric=1``, or 2:
    of the worst class; higher is better) or with the task's own metric (0, as ``higher_is_better`` says)."""
    return 1 if setting(settings, "attribution_metric") else settings["higher_is_better"]


def group_verdict(score: Optional[int], tolerance: int, higher_is_better: int) -> str:
    """``accepted``, ``harmful`` (a loss beyond ``tolerance``, as for rollback) or ``missing``."""
    if score is None:
        return MISSING
    return HARMFUL if should_roll_back(score, tolerance, higher_is_better) else ACCEPTED


def accepted_members(groups: Sequence[Sequence[str]], verdicts: Sequence[str]) -> list[str]:
    """The members of the accepted groups, sorted: the only updates the round's aggregate may hold."""
    return sorted(msp for members, verdict in zip(groups, verdicts) if verdict == ACCEPTED for msp in members)


def new_attribution() -> dict[str, int]:
    """A member's attribution record before its first scored group.

    ``clean`` / ``harmful``: rounds in accepted / harmful groups; ``severe``:
    of those harmful, the severely harmful (``groups_severe``); ``strikes``:
    recent harmful groups that the member explains best (``is_suspect``), one
    forgiven per accepted group that helped; ``blamed``: penalties so far.
    Records written before ``severe`` existed read it as 0.
    """
    return {"clean": 0, "harmful": 0, "severe": 0, "blamed": 0, "strikes": 0}


TRUST_MIN_CLEAN = 2
"""Rounds in accepted groups before a member's word counts as a partner's alibi."""
BLAME_STRIKES = 2
"""Unforgiven unexplained harms before the next one is blamed."""


def is_trusted(record: Mapping[str, int]) -> bool:
    """At least ``TRUST_MIN_CLEAN`` rounds in accepted groups, more than twice its rounds in harmful
    ones, and no unexplained harm lately (no strike)."""
    return (record["clean"] >= TRUST_MIN_CLEAN and record["clean"] > 2 * record["harmful"]
            and not record.get("strikes", 0))


SUSPECT_MARGIN = 4
"""A member whose share of harmful rounds exceeds each partner's by at least 1/SUSPECT_MARGIN
explains its group's harm better than they do."""


def harm_weight(record: Mapping[str, int]) -> int:
    """A member's harmful rounds for ``record_agrees``, each severe one counted twice (``groups_severe``).

    Only its own history weighs them: between partners (``is_suspect``) severe rounds are shared
    by the honest members grouped with an attacker, and would bring their records closer to its."""
    return record["harmful"] + record.get("severe", 0)


def _worse_record(own: Mapping[str, int], other: Mapping[str, int]) -> bool:
    """Whether ``own`` has been in harmful groups in a larger share of its rounds than ``other``, by
    at least 1/SUSPECT_MARGIN, counting this round (harmful for both) in each: integers only."""
    h1, n1 = own["harmful"] + 1, own["clean"] + own["harmful"] + 1
    h2, n2 = other["harmful"] + 1, other["clean"] + other["harmful"] + 1
    return SUSPECT_MARGIN * (h1 * n2 - h2 * n1) >= n1 * n2


def is_suspect(msp: str, members: Sequence[str], records: Mapping[str, Mapping[str, int]]) -> bool:
    """Whether ``msp`` best explains its harmful group's harm: every partner is trusted, or it was
    in a harmful group before and its harmful share exceeds every partner's by the margin.

    The second way is group testing across reshuffled rounds: an attacker keeps landing in harmful
    groups, its honest partners only when grouped with it, so its share climbs to 1 while theirs
    stays at the attackers' share of the consortium. Without it, with 20% attackers and groups of
    three, a third of the honest members shared a harmful group in any round, none stayed
    trusted, and persistent attackers were never suspected (lying sign flippers on digits,
    Dirichlet 0.1: none banned in 20 rounds, accuracy -6 points).
    """
    own = records.get(msp) or new_attribution()
    partners = [records.get(o) or new_attribution() for o in members if o != msp]
    if all(is_trusted(p) for p in partners):
        return True
    return own["harmful"] >= 1 and all(_worse_record(own, p) for p in partners)


def _suspects(groups: Sequence[Sequence[str]], verdicts: Sequence[str],
              records: Mapping[str, Mapping[str, int]]) -> set[str]:
    """Members of harmful groups that best explain the harm (``is_suspect``)."""
    return {msp for members, verdict in zip(groups, verdicts) if verdict == HARMFUL
            for msp in members if is_suspect(msp, members, records)}


RECORD_SHARE = 2
"""A member is blamed only when it has been in harmful groups in more than 1/RECORD_SHARE of its rounds."""


def record_agrees(record: Mapping[str, int]) -> bool:
    """Whether a member's own history, this (harmful) round included, is harmful in more than
    1/RECORD_SHARE of its rounds: what keeps an honest member whose contribution dips on skewed
    data for a few rounds from being blamed for them."""
    harmful = harm_weight(record) + 1
    return RECORD_SHARE * harmful > harmful + record["clean"]


def blamed_members(groups: Sequence[Sequence[str]], verdicts: Sequence[str],
                   records: Mapping[str, Mapping[str, int]]) -> list[str]:
    """Members of harmful groups that the evidence singles out, sorted (group testing).

    A harmful group's aggregate says only that someone in it harmed. A member
    is a suspect when it best explains the harm (``is_suspect``: every partner
    is trusted, or its share of harmful rounds exceeds every partner's by a
    margin); each time it is, it gets a strike, and each accepted group that
    helped forgives one. A suspect is blamed when it already holds
    ``BLAME_STRIKES`` strikes and its own history agrees (``record_agrees``:
    harmful in more than half of its rounds, this one included). So a
    persistent attacker is blamed once its record outgrows its partners',
    and a sleeper once its harmful rounds outnumber its clean ones, while an
    honest member that shares groups with attackers is not: their share of
    harmful rounds stays above its own. Early rounds, when records are alike,
    blame nobody. With groups of one (no privacy asked) a harmful member is
    blamed at once.

    Why the member's own history must agree: on skewed data an honest
    member's contribution can turn harmful for a few rounds (on digits at
    Dirichlet 0.1, one holding four classes and many samples scored down to
    -0.010 in a quarter of its rounds while the model converged), and then it
    is the worst of its group; its clean record keeps it from being blamed.
    """
    blamed = []
    for members, verdict in zip(groups, verdicts):
        if verdict != HARMFUL:
            continue
        for msp in members:
            own = records.get(msp) or new_attribution()
            if is_suspect(msp, members, records) and (
                    len(members) == 1 or own.get("strikes", 0) >= BLAME_STRIKES and record_agrees(own)):
                blamed.append(msp)
    return sorted(blamed)


def helped(scores: Sequence[Optional[int]], higher_is_better: int) -> list[bool]:
    """Per group, whether its score says it helped the model (a gain, not merely no harm beyond tolerance)."""
    return [score is not None and (score > 0 if higher_is_better else score < 0) for score in scores]


def groups_helped(groups: Sequence[Mapping[str, Any]], settings: Mapping[str, int]) -> list[bool]:
    """For ``attribution_outcome``: which scored groups of a round helped the model."""
    return helped([g.get("score") for g in groups], group_metric_higher_is_better(settings))


SEVERE_FACTOR = 4
"""A group whose loss is beyond SEVERE_FACTOR times ``attribution_tolerance`` harmed severely."""


def groups_severe(groups: Sequence[Mapping[str, Any]], settings: Mapping[str, int]) -> list[bool]:
    """For ``attribution_outcome``: which scored groups of a round harmed severely, a loss beyond
    ``SEVERE_FACTOR`` times the tolerance. On skewed data an honest group's contribution dips to
    -0.014 at worst (digits, Dirichlet 0.1, 0.005 tolerance); a sign flipper's group falls to -0.01
    to -0.28, a sleeper's, once it turns, likewise: counting those rounds twice bans it sooner."""
    tolerance = SEVERE_FACTOR * setting(settings, "attribution_tolerance")
    higher = group_metric_higher_is_better(settings)
    return [g.get("score") is not None and should_roll_back(g["score"], tolerance, higher) for g in groups]


BLAME_GROWTH = 2
"""How fast a repeat offender's penalty grows: ``penalty * times ** BLAME_GROWTH`` (30, 120, 270
with the benchmark's penalty 30): a sleeper that earned rewards for its clean rounds is banned
after two blames, one round sooner than with a linear growth."""


def blame_penalty(penalty: int, times: int) -> int:
    """The penalty of a member blamed for the ``times``-th time: ``penalty * times ** BLAME_GROWTH``."""
    return penalty * times ** BLAME_GROWTH


def attribution_outcome(groups: Sequence[Sequence[str]], verdicts: Sequence[str],
                        records: Mapping[str, Mapping[str, int]], model_improved: bool,
                        reward: int, penalty: int, helping: Optional[Sequence[bool]] = None,
                        severe: Optional[Sequence[bool]] = None
                        ) -> tuple[dict[str, tuple[int, str]], dict[str, dict]]:
    """What a decided attribution round does to each member.

    Returns ``(changes, new_records)``: ``changes[msp] = (delta, reason)``
    for members whose balance changes — ``group_reward`` for members of
    accepted groups when the round's aggregate is accepted and improved the
    model, ``group_penalty`` for blamed members, ``penalty`` times the square
    of the number of times the member has been blamed (``blame_penalty``: a
    repeat offender is banned in two rounds, however rich) — and the updated attribution
    record of every member of a scored group. Nobody is penalized for a group
    it cannot be singled out of, and nobody is rewarded for a model the
    endorsers rolled back or that did not improve. A strike is forgiven by an
    accepted group that ``helping`` says helped (``helped``; None: every
    accepted group): an attacker whose damage fades below the tolerance as the
    model converges is not cleared by passing. A harmful group that ``severe``
    says harmed severely (``groups_severe``) adds to its members' ``severe``
    count, so the round weighs twice in their records (``harm_weight``).
    """
    suspects = _suspects(groups, verdicts, records)
    blamed = set(blamed_members(groups, verdicts, records))
    changes: dict[str, tuple[int, str]] = {}
    new_records: dict[str, dict] = {}
    helping = [True] * len(groups) if helping is None else helping
    severe = [False] * len(groups) if severe is None else severe
    for members, verdict, helps, heavy in zip(groups, verdicts, helping, severe):
        if verdict == MISSING:
            continue
        for msp in sorted(members):
            record = {**new_attribution(), **(records.get(msp) or {})}
            if verdict == ACCEPTED:
                record["clean"] += 1
                if helps:
                    record["strikes"] = max(0, record["strikes"] - 1)
                if model_improved:
                    changes[msp] = (reward, "group_reward")
            else:
                record["harmful"] += 1
                if heavy:
                    record["severe"] += 1
                if msp in suspects:
                    record["strikes"] += 1
                if msp in blamed:  # repeat offenders pay more: penalty x (number of blames)^2
                    record["blamed"] += 1
                    changes[msp] = (-blame_penalty(penalty, record["blamed"]), "group_penalty")
            new_records[msp] = record
    return changes, new_records


# --------------------------------------------------------------------------
# Secure aggregation: keys, masks and authorized decryptions
# --------------------------------------------------------------------------
# The key holder decrypts, and the members unmask, only sums the ledger
# authorizes: each over at least min_group_size contributors that committed
# an update, and never two overlapping sums of one round (their difference
# would reveal the members in one but not the other). docs/secure-aggregation.md.

SECURE_MODES = ("paillier", "masking")
PAILLIER_KEY_BITS = (2048, 3072)
_KEY_HEX = re.compile(r"[0-9a-f]{64}")


def parse_public_key_hex(name: str, text: str) -> str:
    """An X25519 public key: 64 lower-case hex characters."""
    if not isinstance(text, str) or not _KEY_HEX.fullmatch(text):
        raise ContractError(INVALID, f"{name} must be a 32-byte public key in 64 lower-case hex "
                                     f"characters, got {_show(text)}")
    return text


def parse_key_bits(name: str, text: str) -> int:
    """A Paillier modulus size: 2048 or 3072 bits (smaller keys are refused)."""
    bits = parse_int(name, text)
    if bits not in PAILLIER_KEY_BITS:
        raise ContractError(INVALID, f"{name} must be one of {list(PAILLIER_KEY_BITS)} (smaller keys are "
                                     f"refused), got {bits}")
    return bits


def require_mode(round_record: Mapping[str, Any], modes: Sequence[str], action: str) -> None:
    """[PHASE] unless the round runs in one of ``modes``."""
    if round_record["mode"] not in modes:
        raise ContractError(PHASE, f"round {round_record['round']} runs in mode {round_record['mode']}: "
                                   f"{action} belongs to mode {' or '.join(modes)}")


def mask_threshold(selected: int, percent: int, min_group_size: int) -> int:
    """Shares needed to rebuild a member's mask secrets: ``ceil(percent * selected / 100)``,
    at least 2 (the aggregator holds one share of everything) and ``min_group_size``,
    at most ``selected``."""
    return min(selected, max(2, min_group_size, (percent * selected + 99) // 100))


def choose_paillier_keyholder(orgs: Iterable[Mapping[str, Any]], keys: Mapping[str, Mapping[str, Any]],
                              participants: Sequence[str], round_number: int) -> tuple[str, dict]:
    """The first (sorted) active key holder that published a key and is not a participant.

    A participating key holder would know its own update, so the sum over
    it and one other member would give that member's update away.
    """
    for org in sorted(orgs, key=lambda o: o["msp_id"]):
        msp = org["msp_id"]
        if org["status"] == ACTIVE and has_role(org, "keyholder") and msp not in participants and msp in keys:
            key = keys[msp]
            return msp, {"fingerprint": key["fingerprint"], "bits": key["bits"], "epoch": key["epoch"]}
    raise ContractError(PHASE, f"round {round_number} runs in mode paillier but no active key holder outside "
                               "its participants has published a key (PublishKey)")


def group_masks(round_record: Mapping[str, Any], settings: Mapping[str, int]) -> bool:
    """Whether a round's members mask against their own allocation group only: a masking round
    with attribution, whose groups' sums must each unmask alone (docs/integrity.md)."""
    return round_record["mode"] == "masking" and bool(setting(settings, "attribution")) \
        and bool(round_record.get("groups"))


def check_decryption_request(round_record: Mapping[str, Any], contributors: Sequence[str],
                             committed: Mapping[str, str], earlier: Sequence[Mapping[str, Any]],
                             sum_digest: str, min_group_size: int, requester: str,
                             group_masks: bool = False) -> None:
    """Refuse a sum that could reveal one member's update: ``requester`` (who receives the
    opening) and every contributor must find ``min_group_size`` others in it (check_opening).

    ``committed`` maps each member that committed an update to its digest;
    ``earlier`` are the round's previous requests. A masking round opens one
    sum (the survivors' masks cancel only together); a Paillier round may
    open several, pairwise disjoint. With ``group_masks`` (a masking round
    with attribution: each member masked against its own allocation group
    only, ``masking_group``) a masking round opens one sum per complete
    allocation group instead — exactly a group, since only there do the
    masks cancel — while the round as a whole still needs ``mask_threshold``
    survivors to reveal the shares.
    """
    number = round_record["round"]
    masking = round_record["mode"] == "masking"
    for msp in contributors:
        if msp not in committed:
            raise ContractError(INVALID, f"contributors_json: {msp} has not committed an update in round {number}")
    if masking and len(set(contributors)) < opening_size(min_group_size):
        raise ContractError(PHASE, f"round {number} has {len(contributors)} surviving contributors {contributors}; "
                                   f"unmasking needs {opening_size(min_group_size)} (min_group_size="
                                   f"{min_group_size} besides the aggregator and each contributor): too few "
                                   "survivors to unmask, the round cannot be opened")
    check_opening(contributors, [requester], min_group_size, f"round {number}: the sum of contributors_json")
    if sum_digest in committed.values():
        raise ContractError(INVALID, f"sum_digest {sum_digest} is a committed update, not a sum")
    if masking and group_masks:
        groups = [sorted(g) for g in round_record.get("groups", [])]
        if sorted(contributors) not in groups:
            raise ContractError(INVALID, f"contributors_json {sorted(contributors)} is not one of round {number}'s "
                                         f"allocation groups {groups}: with attribution each member is masked "
                                         "against its own group only, so only a whole group's sum can be unmasked")
    elif masking and earlier:
        raise ContractError(EXISTS, f"round {number} already has its unmasking request")
    survivors = len(committed) if group_masks else len(contributors)
    if masking and survivors < round_record["mask_threshold"]:
        raise ContractError(PHASE, f"round {number} has {survivors} surviving contributors, fewer than "
                                   f"the masking threshold {round_record['mask_threshold']}: too few survivors "
                                   "to unmask")
    for request in earlier:
        overlap = sorted(set(contributors) & set(request["contributors"]))
        if overlap:
            raise ContractError(INVALID, f"contributors_json: {overlap} already belong to request "
                                         f"{request['index']} of round {number}; overlapping sums would reveal "
                                         "their difference")


def union_of_sums(contributors: Sequence[str], requests: Sequence[Mapping[str, Any]], round_number: int) -> None:
    """A secure round's aggregate must be made of whole decrypted sums, all of them opened."""
    if not requests:
        raise ContractError(PHASE, f"round {round_number} has no decrypted sum to propose an aggregate from")
    pending = [r["index"] for r in requests if r["result"] is None]
    if pending:
        raise ContractError(PHASE, f"round {round_number}: requests {pending} are not decrypted yet")
    covered: set[str] = set()
    for request in requests:
        members = set(request["contributors"])
        if members & set(contributors) and not members <= set(contributors):
            raise ContractError(INVALID, f"contributors_json must include all or none of the contributors of "
                                         f"decrypted sum {request['index']}: {sorted(members)}")
        covered |= members
    missing = sorted(set(contributors) - covered)
    if missing:
        raise ContractError(INVALID, f"contributors_json: {missing} are in no decrypted sum of round {round_number}")

