"""Transactions that keep rounds from stalling: close a phase at its deadline, abort a round.

A member's machine may die at any moment. Each phase has a deadline in
transaction time (settings ``<phase>_deadline``); after it anyone may call
``ClosePhase``: the round goes on with the members that acted if at least
``min_participants`` remain (quorums are then counted over them), otherwise it
is aborted. The admin may abort a round at any time (``AbortRound``). An
aborted round leaves the head unchanged, rewards nobody, and records who was
missing; members that had accepted the round and vanished lose
``absence_penalty``. See docs/operations.md.
"""

from __future__ import annotations

from typing import Any

from . import deadlines, rules
from .errors import INVALID, PHASE, UNAUTHORIZED, ContractError
from .shim import TransactionContextInterface
from .state import (
    Record,
    absence_writes,
    caller_of,
    canonical,
    get_json,
    get_round,
    get_writer,
    list_by_msp,
    list_decryptions,
    list_prefix,
    put_json,
    require_admin,
    round_key,
    tx_of,
)


class RoundRecoveryTransactions:
    """Mixed into ``FederationContract`` (contract.py), whose selection, allocation and decision it reuses."""

    async def AbortRound(self, ctx: TransactionContextInterface, round: str, reason: str) -> str:
        """The admin ends a round that cannot finish: head unchanged, no rewards, reason and absentees recorded."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        reason = deadlines.parse_reason("reason", reason)
        await require_admin(stub, caller)
        record = await get_round(stub, round)
        if record["phase"] == "closed":
            raise ContractError(PHASE, f"round {record['round']} is already closed "
                                       f"({(record.get('decision') or {}).get('status')})")
        settings = await get_json(stub, "settings")
        return await self._abort(stub, ctx, record, settings, reason, await waiting_for(stub, record))

    async def ClosePhase(self, ctx: TransactionContextInterface, round: str) -> str:
        """Anyone may close the current phase after its deadline, with the members that acted.

        Selection and configuration close as CloseSelection and Allocate do; update
        records who did not commit as absent (and names a new aggregator if the
        aggregator is among them, or has not proposed by a second deadline); feedback
        records who did not endorse and decides over those who did. Too few left:
        the round is aborted.
        """
        stub, caller = ctx.get_stub(), caller_of(ctx)
        await get_writer(stub, caller)
        record = await get_round(stub, round)
        number, phase = record["round"], record["phase"]
        if phase in ("closed", "allocation"):
            raise ContractError(PHASE, f"round {number} is in phase {phase}: nothing to close")
        settings = await get_json(stub, "settings")
        _, now = tx_of(ctx)
        deadlines.require_deadline_passed(record, settings, now)
        missing = await waiting_for(stub, record)
        minimum = settings["min_participants"]
        if phase == "selection":
            selected = await self._selectable(stub, record, settings)
            if len(selected) < minimum:
                return await self._abort(stub, ctx, record, settings, _too_few("eligible members", selected,
                                                                                minimum), missing)
            record = await self._allocated_at_once(stub, ctx, self._selected(ctx, record, settings, selected),
                                                   settings)
        elif phase == "configuration":
            participants = await self._ready(stub, record)
            try:
                record = await self._allocated(stub, ctx, record, settings, participants)
            except ContractError as exc:
                return await self._abort(stub, ctx, record, settings, f"at the deadline: {exc.detail}", missing)
        elif phase == "update":
            return await self._close_update(stub, ctx, record, settings, missing)
        elif phase == "attribution":
            return await self._abort(stub, ctx, record, settings, "the attribution phase passed its deadline "
                                     "(a round with attribution cannot go on without a group)", missing)
        elif record.get("attribution") is not None:  # feedback of a round with attribution
            return await self._abort(stub, ctx, record, settings, "the feedback phase passed its deadline (a round "
                                     "with attribution keeps its groups whole)", missing)
        else:  # feedback
            remaining = [m for m in deadlines.remaining_participants(record) if m not in missing]
            if len(remaining) < minimum:
                return await self._abort(stub, ctx, record, settings, _too_few("endorsers", remaining, minimum),
                                         missing)
            record = _with_absent(ctx, record, missing)
            return await self._decide(stub, ctx, record, settings)
        await put_json(stub, round_key("round", number), record)
        return canonical(record)

    async def ExcludeContribution(self, ctx: TransactionContextInterface, round: str, msp_id: str,
                                  reason: str) -> str:
        """The aggregator names a participant whose blob it cannot use (not what was committed, the
        wrong shape, under another key): it is excluded from the round and loses ``penalty``; the
        round goes on with the others, or is aborted when too few are left."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        msp_id = rules.check_msp_id("msp_id", msp_id)
        reason = deadlines.parse_reason("reason", reason)
        await get_writer(stub, caller)
        record = await get_round(stub, round)
        number = record["round"]
        rules.require_phase(record, "update")
        if caller != record["aggregator"]:
            raise ContractError(UNAUTHORIZED, f"{caller} is not the aggregator of round {number}; "
                                              f"{record['aggregator']} is")
        if msp_id == caller:
            raise ContractError(INVALID, f"msp_id: the aggregator {caller} cannot exclude itself")
        if msp_id not in deadlines.remaining_participants(record):
            raise ContractError(INVALID, f"msp_id: {msp_id} is not a participant of round {number} that remains")
        if await get_json(stub, round_key("update", number, msp_id)) is None:
            raise ContractError(INVALID, f"msp_id: {msp_id} has not committed an update in round {number}: "
                                         "nothing to exclude (the deadline takes care of it)")
        if await list_decryptions(stub, number):
            raise ContractError(PHASE, f"round {number}: its sum is already being opened; exclusions come first")
        settings = await get_json(stub, "settings")
        if record.get("attribution") is not None or rules.setting(settings, "attribution"):
            raise ContractError(PHASE, f"round {number} uses attribution: its groups are fixed (the groups' "
                                       "scores keep a bad update out)")
        tx, now = tx_of(ctx)
        closure = {"phase": "update", "tx": tx, "time": now, "absent": [msp_id], "aggregator": caller,
                   "reason": reason}
        record = {**record, "absent": sorted(set(record.get("absent") or []) | {msp_id}),
                  "closures": list(record.get("closures") or []) + [closure]}
        left = deadlines.remaining_participants(record)
        secure = record["mode"] in ("paillier", "masking")
        if len(left) < settings["min_participants"] or (record["mode"] == "masking"
                                                         and len(left) < record["mask_threshold"]) or \
                (secure and len(left) < rules.opening_size(settings["min_group_size"])):
            return await self._abort(stub, ctx, record, settings, f"{msp_id}'s contribution was excluded "
                                     f"({reason}) and {len(left)} members remain", [msp_id])
        await put_json(stub, round_key("round", number), record)
        return canonical(record)

    async def _close_update(self, stub: Any, ctx: TransactionContextInterface, record: Record, settings: Record,
                            missing: list[str]) -> str:
        """Members that did not commit are absent; a missing aggregator is replaced."""
        number = record["round"]
        if await list_decryptions(stub, number):  # the sum is being opened: it names its contributors
            return await self._abort(stub, ctx, record, settings, "the update phase passed its deadline while "
                                     f"the sum was being opened (waiting for {', '.join(missing) or 'nobody'})",
                                     missing)
        if record.get("attribution") is not None or rules.setting(settings, "attribution"):
            return await self._abort(stub, ctx, record, settings, "the update phase passed its deadline "
                                     "(a round with attribution keeps its groups whole)", missing)
        remaining = [m for m in deadlines.remaining_participants(record) if m not in missing]
        minimum = settings["min_participants"]
        if len(remaining) < minimum:
            return await self._abort(stub, ctx, record, settings, _too_few("members that committed", remaining,
                                                                            minimum), missing)
        if record["mode"] == "masking" and len(remaining) < record["mask_threshold"]:
            return await self._abort(stub, ctx, record, settings, f"{len(remaining)} members committed, fewer than "
                                     f"the masking threshold {record['mask_threshold']}", missing)
        needed = rules.opening_size(settings["min_group_size"])
        if record["mode"] in ("paillier", "masking") and len(remaining) < needed:
            return await self._abort(stub, ctx, record, settings, f"{len(remaining)} members committed; opening "
                                     f"their sum needs {needed} (min_group_size others besides each who sees "
                                     "it): it is never opened", missing)
        record = _with_absent(ctx, record, missing)
        await put_json(stub, round_key("round", number), record)
        return canonical(record)

    async def _abort(self, stub: Any, ctx: TransactionContextInterface, record: Record, settings: Record,
                     reason: str, absentees: list[str]) -> str:
        number = record["round"]
        tx, now = tx_of(ctx)
        absent = sorted(set(absentees) | set(record.get("absent") or []))
        penalized = deadlines.absence_penalized(record, absent)
        writes, banned = await absence_writes(stub, penalized, settings, number, tx, deadlines.excluded_members(record))
        checkpoint = await get_json(stub, round_key("ckpt", number))
        if checkpoint is not None:  # a proposal that will never be decided
            writes.append((round_key("ckpt", number), {**checkpoint, "status": rules.ABORTED, "metric": None}))
        decision = deadlines.aborted_decision(record["phase"], reason, absent, penalized, banned)
        record = {**rules.advance(record, "closed", tx, now), "decision": decision}
        writes.append((round_key("round", number), record))
        for key, value in writes:
            await put_json(stub, key, value)
        return canonical(record)

    async def GetPending(self, ctx: TransactionContextInterface, round: str) -> str:
        """What the round's current phase waits for: who, and from when it may be closed without them."""
        stub = ctx.get_stub()
        record = await get_round(stub, round)
        settings = await get_json(stub, "settings")
        return canonical({"round": record["round"], "phase": record["phase"],
                          "waiting_for": await waiting_for(stub, record),
                          "deadline": deadlines.phase_deadline(record, settings)})


def _too_few(what: str, names: list[str], minimum: int) -> str:
    return f"at the deadline {len(names)} {what} {sorted(names)} remained, fewer than min_participants={minimum}"


def _with_absent(ctx: TransactionContextInterface, record: Record, missing: list[str]) -> Record:
    """The round with ``missing`` recorded absent; a closure entry says when, and who aggregates now."""
    tx, now = tx_of(ctx)
    absent = sorted(set(record.get("absent") or []) | set(missing))
    aggregator = record["aggregator"]
    remaining = sorted(p for p in record["participants"] if p not in absent)
    if aggregator in absent and record["phase"] == "update":
        aggregator = rules.choose_aggregator(remaining, record["round"])
    closure = {"phase": record["phase"], "tx": tx, "time": now, "absent": sorted(missing), "aggregator": aggregator}
    return {**record, "absent": absent, "aggregator": aggregator,
            "closures": list(record.get("closures") or []) + [closure]}


async def waiting_for(stub: Any, record: Record) -> list[str]:
    """Who the round's current phase still waits for (sorted MSP IDs).

    Selection: active members that have not screened (with masking: advertised
    keys); configuration: selected members that have not accepted (shared);
    update: participants that have not committed, or, once all have, the
    aggregator (or the key holder while a Paillier sum waits, or the members
    that have not revealed shares); attribution: participants that have not
    endorsed the groups, then (scored) the aggregator; feedback: participants
    that have not endorsed.
    """
    number, phase = record["round"], record["phase"]

    async def acted(*kinds: str) -> set[str]:
        sets = [{r["msp_id"] for r in await list_by_msp(stub, kind, number)} for kind in kinds]
        return set.intersection(*sets)

    masking = record["mode"] == "masking"
    if phase == "selection":
        members = [org["msp_id"] for _, org in await list_prefix(stub, "org~")
                   if org["status"] == rules.ACTIVE and rules.has_role(org, "member")]
        done = await acted(*(["screen", "maskkey"] if masking else ["screen"]))
        return sorted(m for m in members if m not in done)
    if phase == "configuration":
        done = await acted(*(["accept", "shares"] if masking else ["accept"]))
        return sorted(m for m in record["selected"] if m not in done)
    remaining = deadlines.remaining_participants(record)
    if phase == "update":
        committed = await acted("update")
        missing = [m for m in remaining if m not in committed]
        if missing:
            return missing
        pending = [r for r in await list_decryptions(stub, number) if r["result"] is None]
        if pending and record["mode"] == "paillier":
            return [record["keyholder"]]
        if pending and masking:
            revealed = await acted("reveal")
            return sorted(m for m in remaining if m not in revealed) or [record["aggregator"]]
        return [record["aggregator"]]
    if phase == "attribution":
        accepted = (record.get("attribution") or {}).get("accepted")
        if accepted is not None:  # scored: the aggregator proposes, or (none accepted) the round is decided
            return [record["aggregator"]] if accepted else []
        done = await acted("gendorse")
        return sorted(m for m in remaining if m not in done)
    if phase == "feedback":
        done = {e["msp_id"] for e in await list_by_msp(stub, "endorse", number)
                if e["digest"] == record["proposal"]["digest"]}
        return sorted(m for m in remaining if m not in done)
    return []
