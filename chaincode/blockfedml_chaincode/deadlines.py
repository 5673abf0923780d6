"""Deadlines, absences, exclusions and aborts: the rules that keep rounds from stalling.

Pure, deterministic functions like ``rules.py`` (integers, transaction time,
no clock): each phase has a deadline counted from the transaction that
started it; after it anyone may close the phase with the members that acted
(``recovery.py``). The audit recomputes them (docs/operations.md).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from .errors import INVALID, PHASE, ContractError
from .rules import ABORTED, _show, setting

MAX_REASON = 200


def parse_reason(name: str, text: str) -> str:
    """Why a round is aborted: 1..200 printable characters."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_REASON or not text.isprintable():
        raise ContractError(INVALID, f"{name} must be 1..{MAX_REASON} printable characters, got {_show(text)}")
    return text.strip()


def phase_started(round_record: Mapping[str, Any]) -> int:
    """When the current phase started, in transaction time: its history entry, or the last
    closure that cut the phase short (an update phase closed once waits again for its new aggregator)."""
    started = round_record["history"][-1]["time"]
    for closure in round_record.get("closures") or []:
        if closure["phase"] == round_record["phase"]:
            started = max(started, closure["time"])
    return started


def phase_deadline(round_record: Mapping[str, Any], settings: Mapping[str, int]) -> Optional[int]:
    """The transaction time after which the current phase may be closed; None without a deadline."""
    phase = round_record["phase"]
    if phase not in ("selection", "configuration", "update", "attribution", "feedback"):
        return None
    seconds = setting(settings, f"{phase}_deadline")
    return phase_started(round_record) + seconds if seconds else None


def require_deadline_passed(round_record: Mapping[str, Any], settings: Mapping[str, int], now: int) -> None:
    """[PHASE] unless the current phase's deadline has passed at transaction time ``now``."""
    deadline = phase_deadline(round_record, settings)
    number, phase = round_record["round"], round_record["phase"]
    if deadline is None:
        raise ContractError(PHASE, f"round {number}: phase {phase} has no deadline "
                                   f"(setting {phase}_deadline=0); the admin may abort the round")
    if now < deadline:
        raise ContractError(PHASE, f"round {number}: phase {phase} may be closed from time {deadline}, "
                                   f"{deadline - now} s from now ({phase}_deadline="
                                   f"{setting(settings, phase + '_deadline')})")


def remaining_participants(round_record: Mapping[str, Any]) -> list[str]:
    """The participants not recorded absent: whom the round still counts on (and counts quorums over)."""
    absent = set(round_record.get("absent") or [])
    return sorted(p for p in round_record.get("participants") or [] if p not in absent)


def absence_penalized(round_record: Mapping[str, Any], absentees: Sequence[str]) -> list[str]:
    """Absentees that had accepted the round (participants): they lose absence_penalty.
    Members that never accepted owe the round nothing."""
    return sorted(set(absentees) & set(round_record.get("participants") or []))


def aborted_decision(phase: str, reason: str, absentees: Sequence[str], penalized: Sequence[str],
                     banned: Sequence[str]) -> dict:
    """The decision of an aborted round: no model, the head unchanged, who was missing and why."""
    return {"status": ABORTED, "reason": reason, "phase": phase, "absentees": sorted(absentees),
            "penalized": sorted(penalized), "banned": sorted(banned),
            "metric": None, "improvement": None, "endorsements": 0}


def excluded_members(round_record: Mapping[str, Any]) -> list[str]:
    """Participants whose contribution the aggregator excluded (ExcludeContribution), sorted."""
    return sorted(m for c in round_record.get("closures") or [] if c.get("reason") for m in c["absent"])


def absence_amount(settings: Mapping[str, int], excluded: bool) -> tuple[int, str]:
    """What a member that left a round owes: ``penalty`` for an excluded contribution, else ``absence_penalty``."""
    return (settings["penalty"], "excluded") if excluded else (setting(settings, "absence_penalty"), "absence")
