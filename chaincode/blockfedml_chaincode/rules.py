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

from .errors import INVALID, PHASE, UNAUTHORIZED, ContractError

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
    "higher_is_better": 1,
}

ROLES = ("admin", "member", "keyholder", "auditor")
MODES = ("plaintext", "paillier", "masking")
PHASES = ("selection", "configuration", "allocation", "update", "feedback", "closed")

REGISTERED, ACTIVE, BANNED = "registered", "active", "banned"
ACCEPTED, ROLLED_BACK, PROPOSED = "accepted", "rolled_back", "proposed"

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
    1..100, ``min_participants`` or ``min_group_size`` below 1,
    ``higher_is_better`` other than 0/1, and two combinations that would make
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
    for key in ("min_participants", "min_group_size"):
        if settings[key] < 1:
            raise ContractError(INVALID, f"setting {key} must be at least 1, got {settings[key]}")
    if settings["higher_is_better"] not in (0, 1):
        raise ContractError(INVALID, f"setting higher_is_better must be 0 or 1, got {settings['higher_is_better']}")
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


def make_groups(participants: Sequence[str], round_number: int, group_size: int) -> list[list[str]]:
    """Attribution groups: order by sha256("{round}:{msp}"), cut into groups of
    ``group_size``; a remainder joins the last group.

    The order changes every round so the same members are not always grouped
    together, yet every peer computes the same groups.
    """
    if len(participants) < group_size:
        raise ContractError(PHASE, f"round {round_number} has {len(participants)} participants, "
                                   f"fewer than min_group_size={group_size}")
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
    """True when the median change of the metric is a loss larger than ``tolerance``.

    ``improvement`` is the median over endorsers of (metric of the proposal -
    metric of the base checkpoint), each pair measured by one member on its own
    validation data. Comparing like with like keeps a lucky high-water mark on
    small validation sets from rolling back a sound aggregate.
    """
    if higher_is_better:
        return improvement < -tolerance
    return improvement > tolerance


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
