"""State helpers shared by the chaincode's transactions.

Reading and writing canonical JSON, listing keys by prefix, and the checks
every transaction starts with (the caller's organization, the round, the
admin). No rules here: those are the pure functions of ``rules.py``.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from . import deadlines, rules
from .errors import EXISTS, NOT_FOUND, PHASE, UNAUTHORIZED, ContractError
from .shim import TransactionContextInterface

Record = dict[str, Any]


# --------------------------------------------------------------------------
# State helpers
# --------------------------------------------------------------------------

def canonical(value: Any) -> str:
    """The one JSON form the contract writes and returns (sorted, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def round_key(kind: str, number: int, msp_id: Optional[str] = None) -> str:
    """``kind~{r:08d}`` or ``kind~{r:08d}~{msp}``; zero padding keeps range scans in round order."""
    key = f"{kind}~{number:08d}"
    return key if msp_id is None else f"{key}~{msp_id}"


async def get_json(stub: Any, key: str) -> Optional[Any]:
    """The decoded value at ``key``, or None when absent (None or b"" from the shim)."""
    raw = await stub.get_state(key)
    return json.loads(raw) if raw else None


async def put_json(stub: Any, key: str, value: Any) -> None:
    await stub.put_state(key, canonical(value).encode())


async def list_prefix(stub: Any, prefix: str) -> list[tuple[str, Any]]:
    """All (key, value) pairs whose key starts with ``prefix``, in key order.

    Keys are ASCII (MSP IDs are checked), so the range [prefix, prefix + DEL)
    holds exactly the keys with that prefix.
    """
    iterator = await stub.get_state_by_range(prefix, prefix + "\x7f")
    return [(kv.key, json.loads(kv.value)) async for kv in iterator]


async def list_by_msp(stub: Any, kind: str, number: int) -> list[Record]:
    """Per-member records of a round (``kind~{r}~{msp}``) with ``msp_id`` added, sorted by MSP ID."""
    prefix = round_key(kind, number) + "~"
    return [{**value, "msp_id": key[len(prefix):]} for key, value in await list_prefix(stub, prefix)]


async def round_records(ctx: TransactionContextInterface, kind: str, round: str) -> str:
    """The records of one kind that members wrote for a round (``kind~round~msp``), as JSON."""
    stub = ctx.get_stub()
    return canonical(await list_by_msp(stub, kind, (await get_round(stub, round))["round"]))


def caller_of(ctx: TransactionContextInterface) -> str:
    """The MSP ID that signed the proposal; refused if it is not a well-formed ID."""
    msp_id = ctx.get_client_identity().get_mspid()
    try:
        return rules.check_msp_id("caller MSP ID", msp_id)
    except ContractError:
        raise ContractError(UNAUTHORIZED, f"the caller's MSP ID {msp_id!r} is not valid") from None


def tx_of(ctx: TransactionContextInterface) -> tuple[str, int]:
    """(transaction ID, timestamp seconds): the only source of time the contract uses."""
    stub = ctx.get_stub()
    stamp = stub.get_tx_timestamp()
    return stub.get_txid() or "", int(getattr(stamp, "seconds", 0) or 0)


async def get_consortium(stub: Any) -> Record:
    consortium = await get_json(stub, "consortium")
    if consortium is None:
        raise ContractError(PHASE, "the consortium is not initialized; call InitConsortium first")
    return consortium


async def get_required(stub: Any, key: str, what: str) -> Any:
    """The value at ``key`` or [NOT_FOUND] "<what> does not exist"."""
    value = await get_json(stub, key)
    if value is None:
        raise ContractError(NOT_FOUND, f"{what} does not exist")
    return value


async def get_round(stub: Any, text: str) -> Record:
    number = rules.parse_int("round", text, minimum=0)
    return await get_required(stub, round_key("round", number), f"round {number}")


async def list_decryptions(stub: Any, number: int) -> list[Record]:
    """The round's decryption requests (``decrypt~{r}~{i:04d}``), oldest first."""
    return [value for _, value in await list_prefix(stub, round_key("decrypt", number) + "~")]


async def get_writer(stub: Any, msp_id: str) -> Record:
    """The caller's organization, refused if unknown, banned or auditor-only."""
    org = await get_json(stub, f"org~{msp_id}")
    rules.check_writer(org, msp_id)
    return org


async def require_admin(stub: Any, msp_id: str, or_participant_of: Optional[Record] = None) -> None:
    """The consortium's founder or an organization with role admin, not banned.

    With ``or_participant_of`` (Decide), a participant of that round is accepted too,
    so a round can be closed even when the admin is away.
    """
    consortium = await get_consortium(stub)
    org = await get_json(stub, f"org~{msp_id}")
    founder = msp_id == consortium["admin"]
    if founder and org is None:
        return
    rules.check_writer(org, msp_id, as_admin=True)
    if founder or rules.has_role(org, "admin"):
        return
    round_record = or_participant_of
    if round_record is not None and msp_id in round_record["participants"]:
        return
    also = f" nor a participant of round {round_record['round']}" if round_record is not None else ""
    raise ContractError(UNAUTHORIZED, f"{msp_id} is not an admin of the consortium{also}")


def require_participant(round_record: Record, msp_id: str) -> None:
    """A participant the round still counts on: one recorded absent (ClosePhase) has no part left."""
    if msp_id not in round_record["participants"]:
        raise ContractError(UNAUTHORIZED, f"{msp_id} is not a participant of round {round_record['round']}")
    if msp_id in (round_record.get("absent") or []):
        raise ContractError(UNAUTHORIZED, f"{msp_id} was recorded absent from round {round_record['round']} "
                                          "when a phase closed at its deadline; it takes part again next round")


async def require_absent(stub: Any, key: str, message: str) -> None:
    """[EXISTS] when ``key`` is already written (a replayed submission)."""
    if await get_json(stub, key) is not None:
        raise ContractError(EXISTS, message)


async def settle_attribution(stub: Any, record: Record, settings: Record, model_improved: bool,
                             tx: str) -> tuple[list[str], list[tuple[str, Any]]]:
    """The writes that settle a round with attribution, and who they ban (rules.attribution_outcome).

    Reputation follows each member's group: reward for accepted groups when the
    aggregate is accepted and improved the model, penalty only for members the
    groups' history singles out.
    """
    number = record["round"]
    groups = [g["members"] for g in record["attribution"]["groups"]]
    verdicts = [g["verdict"] for g in record["attribution"]["groups"]]
    records = {msp: await get_json(stub, f"attr~{msp}") or rules.new_attribution()
               for msp in sorted({m for members in groups for m in members})}
    changes, new_records = rules.attribution_outcome(groups, verdicts, records, model_improved,
                                                     settings["reward"], settings["penalty"],
                                                     rules.groups_helped(record["attribution"]["groups"], settings),
                                                     rules.groups_severe(record["attribution"]["groups"], settings))
    writes: list[tuple[str, Any]] = [(f"attr~{msp}", value) for msp, value in sorted(new_records.items())]
    banned: list[str] = []
    for msp, (delta, reason) in sorted(changes.items()):
        rep, entry, index = rules.reputation_change(await get_json(stub, f"rep~{msp}"), delta, number, reason, tx)
        writes += [(f"rep~{msp}", rep), (f"rephist~{msp}~{index:08d}", entry)]
        if delta < 0 and rules.is_banned(rep["balance"], settings["ban_threshold"]):
            writes.append((f"org~{msp}", {**await get_json(stub, f"org~{msp}"), "status": rules.BANNED}))
            banned.append(msp)
    return banned, writes


async def absence_writes(stub: Any, penalized: list[str], settings: Record, number: int, tx: str,
                         excluded: Optional[list[str]] = None) -> tuple[list[tuple[str, Any]], list[str]]:
    """Members that accepted a round and vanished lose ``absence_penalty`` (reason ``absence``),
    members whose contribution was excluded lose ``penalty`` (reason ``excluded``); the writes,
    and whom they ban. Nothing for an amount of 0."""
    writes: list[tuple[str, Any]] = []
    banned: list[str] = []
    for msp in sorted(penalized):
        amount, reason = deadlines.absence_amount(settings, msp in (excluded or []))
        if not amount:
            continue
        rep, entry, index = rules.reputation_change(await get_json(stub, f"rep~{msp}"), -amount, number,
                                                    reason, tx)
        writes += [(f"rep~{msp}", rep), (f"rephist~{msp}~{index:08d}", entry)]
        if rules.is_banned(rep["balance"], settings["ban_threshold"]):
            writes.append((f"org~{msp}", {**await get_json(stub, f"org~{msp}"), "status": rules.BANNED}))
            banned.append(msp)
    return writes, banned


# --------------------------------------------------------------------------
# The contract
