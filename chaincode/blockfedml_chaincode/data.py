"""The data contract: the agreed data schema and the federated feature scaler.

Called as ``data:<Function>`` on the same chaincode as the federation
contract (which stays the default). It records what the members agreed about
their data without ever seeing the data:

- the **schema** (its SHA-256; the bytes are off-chain) and the metric it
  names, which sets the federation's ``higher_is_better`` in the same
  transaction, so endorsements are always judged in the schema's direction;
- the **statistics epoch** of a secure sum of per-member feature statistics:
  each member publishes an X25519 public key, the admin fixes the parties,
  each party commits the digest of its masked vector (stored off-chain), and
  the scaler derived from the total is recorded with its digest.

A new schema starts a new epoch, so keys and statistics of an older schema
are never mixed with the new ones. The schema may change only before the
first round: after that, models are built on it. As everywhere in the
chaincode: integers only, every check before the first write, keys written by
one member carry its MSP ID (no MVCC conflicts between members).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from . import rules
from .state import (
    canonical, caller_of, get_json, get_required, get_writer, list_prefix, put_json, require_absent,
    require_admin, tx_of,
)
from .errors import INVALID, NOT_FOUND, PHASE, UNAUTHORIZED, ContractError
from .shim import Contract, TransactionContextInterface

METRIC_DIRECTION = {"accuracy": 1, "auc": 1, "f1": 1, "r2": 1, "rmse": 0}
"""The schema's metric -> the ``higher_is_better`` setting."""

SCALER_KEYS = ("counts", "features", "fixed_point", "mean", "rows", "scale")
_KEY_HEX = re.compile(r"[0-9a-f]{64}")

QUERIES = ["GetSchema", "GetStats", "GetScaler"]


def epoch_key(kind: str, epoch: int, msp_id: str | None = None) -> str:
    key = f"data~{kind}~{epoch:08d}"
    return key if msp_id is None else f"{key}~{msp_id}"


def parse_public_key(name: str, text: str) -> str:
    """An X25519 public key: 32 bytes as 64 lower-case hex characters."""
    if not isinstance(text, str) or not _KEY_HEX.fullmatch(text):
        raise ContractError(INVALID, f"{name} must be an X25519 public key (64 lower-case hex characters)")
    return text


def validate_scaler(raw: Any) -> dict:
    """Check a scaler record: equal-length integer lists, scales >= 1, counts in 1..rows."""
    if not isinstance(raw, dict) or sorted(raw) != list(SCALER_KEYS):
        raise ContractError(INVALID, f"scaler_json must be an object with exactly the keys {list(SCALER_KEYS)}")

    def integer(name: str, value: Any, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
            bound = "" if minimum is None else f" >= {minimum}"
            raise ContractError(INVALID, f"scaler {name} must be an integer{bound}, got {rules._show(value)}")
        return value

    rows = integer("rows", raw["rows"], 1)
    integer("fixed_point", raw["fixed_point"], 1)
    features = raw["features"]
    if not isinstance(features, list) or not features or not all(isinstance(f, str) and f for f in features):
        raise ContractError(INVALID, "scaler features must be a non-empty list of names")
    for name in ("mean", "scale", "counts"):
        if not isinstance(raw[name], list) or len(raw[name]) != len(features):
            raise ContractError(INVALID, f"scaler {name} must list one integer per feature ({len(features)})")
    for i, feature in enumerate(features):
        integer(f"mean of {feature}", raw["mean"][i])
        integer(f"scale of {feature}", raw["scale"][i], 1)
        if integer(f"count of {feature}", raw["counts"][i], 1) > rows:
            raise ContractError(INVALID, f"scaler count of {feature} exceeds rows ({rows})")
    return raw


async def current_schema(stub: Any) -> dict:
    return await get_required(stub, "data~schema", "the data schema (the admin sets it with data:SetSchema)")


async def check_epoch(stub: Any, text: str) -> tuple[dict, int]:
    """The schema and the epoch argument, which must be the current one."""
    epoch = rules.parse_int("epoch", text, minimum=1)
    schema = await current_schema(stub)
    if epoch != schema["epoch"]:
        raise ContractError(PHASE, f"statistics epoch {epoch} is not the current epoch {schema['epoch']} "
                                   f"(the schema changed)")
    return schema, epoch


async def require_active_member(stub: Any, msp_id: str) -> dict:
    org = await get_writer(stub, msp_id)
    if org["status"] != rules.ACTIVE or not rules.has_role(org, "member"):
        raise ContractError(UNAUTHORIZED, f"{msp_id} is not an active member "
                                          f"(status {org['status']}, roles {org['roles']})")
    return org


async def by_msp(stub: Any, kind: str, epoch: int) -> dict[str, Any]:
    prefix = epoch_key(kind, epoch) + "~"
    return {key[len(prefix):]: value for key, value in await list_prefix(stub, prefix)}


class DataContract(Contract):
    """Schema, statistics epoch and scaler; see docs/own-data.md."""

    Name = "data"

    def get_evaluate_transactions(self) -> list[str]:
        return list(QUERIES)

    async def SetSchema(self, ctx: TransactionContextInterface, schema_digest: str, metric: str) -> str:
        """Pin the schema's digest and metric, start a new statistics epoch (before the first round)."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        digest = rules.parse_digest("schema_digest", schema_digest)
        if metric not in METRIC_DIRECTION:
            raise ContractError(INVALID, f"metric must be one of {sorted(METRIC_DIRECTION)}, got {rules._show(metric)}")
        await require_admin(stub, caller)
        head = await get_json(stub, "head")
        if head["last_round"]:
            raise ContractError(PHASE, f"round {head['last_round']} has been opened: the data schema can change "
                                       "only before the first round (models are built on it)")
        previous = await get_json(stub, "data~schema")
        settings = rules.validate_settings({**await get_json(stub, "settings"),
                                            "higher_is_better": METRIC_DIRECTION[metric]})
        tx, now = tx_of(ctx)
        record = {"digest": digest, "metric": metric, "higher_is_better": METRIC_DIRECTION[metric],
                  "epoch": (previous["epoch"] if previous else 0) + 1, "tx": tx, "time": now}
        await put_json(stub, "settings", settings)
        await put_json(stub, "data~schema", record)
        return canonical(record)

    async def PublishStatsKey(self, ctx: TransactionContextInterface, epoch: str, public_key: str) -> str:
        """An active member takes part in the epoch's secure sum with this public key."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        key_hex = parse_public_key("public_key", public_key)
        await require_active_member(stub, caller)
        _, number = await check_epoch(stub, epoch)
        if await get_json(stub, epoch_key("parties", number)) is not None:
            raise ContractError(PHASE, f"the parties of statistics epoch {number} are already fixed")
        key = epoch_key("key", number, caller)
        await require_absent(stub, key, f"{caller} already published a key for statistics epoch {number}")
        value = {"public_key": key_hex}
        await put_json(stub, key, value)
        return canonical(value)

    async def CloseStatsKeys(self, ctx: TransactionContextInterface, epoch: str) -> str:
        """Fix the parties: every member that published a key (at least min_participants)."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        await require_admin(stub, caller)
        _, number = await check_epoch(stub, epoch)
        await require_absent(stub, epoch_key("parties", number),
                             f"the parties of statistics epoch {number} are already fixed")
        parties = sorted(await by_msp(stub, "key", number))
        settings = await get_json(stub, "settings")
        needed = max(2, settings["min_participants"])
        if len(parties) < needed:
            raise ContractError(PHASE, f"statistics epoch {number} has {len(parties)} published keys "
                                       f"{parties}, needs at least {needed}")
        tx, now = tx_of(ctx)
        record = {"epoch": number, "parties": parties, "tx": tx, "time": now}
        await put_json(stub, epoch_key("parties", number), record)
        return canonical(record)

    async def CommitStats(self, ctx: TransactionContextInterface, epoch: str, digest: str, size: str) -> str:
        """A party commits the digest and size of its masked statistics (stored off-chain)."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        value = {"digest": rules.parse_digest("digest", digest), "size": rules.parse_int("size", size, minimum=1)}
        await get_writer(stub, caller)
        _, number = await check_epoch(stub, epoch)
        parties = await get_json(stub, epoch_key("parties", number))
        if parties is None:
            raise ContractError(PHASE, f"the parties of statistics epoch {number} are not fixed yet")
        if caller not in parties["parties"]:
            raise ContractError(UNAUTHORIZED, f"{caller} is not a party of statistics epoch {number}")
        key = epoch_key("stats", number, caller)
        await require_absent(stub, key, f"{caller} already committed statistics for epoch {number}")
        await put_json(stub, key, value)
        return canonical(value)

    async def SetScaler(self, ctx: TransactionContextInterface, epoch: str, scaler_json: str) -> str:
        """Record the scaler derived from the total of every party's statistics, with its digest."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        scaler = validate_scaler(rules.parse_json_object("scaler_json", scaler_json))
        _, number = await check_epoch(stub, epoch)
        parties = await get_json(stub, epoch_key("parties", number))
        if parties is None:
            raise ContractError(PHASE, f"the parties of statistics epoch {number} are not fixed yet")
        if caller not in parties["parties"]:
            await require_admin(stub, caller)
        else:
            await get_writer(stub, caller)
        await require_absent(stub, epoch_key("scaler", number), f"statistics epoch {number} already has its scaler")
        committed = await by_msp(stub, "stats", number)
        waiting = [p for p in parties["parties"] if p not in committed]
        if waiting:
            raise ContractError(PHASE, f"statistics epoch {number} still waits for {waiting} to commit")
        tx, now = tx_of(ctx)
        record = {"epoch": number, "scaler": scaler,
                  "digest": hashlib.sha256(canonical(scaler).encode()).hexdigest(),
                  "contributors": parties["parties"], "tx": tx, "time": now}
        await put_json(stub, epoch_key("scaler", number), record)
        return canonical(record)

    # ---- queries --------------------------------------------------------

    async def GetSchema(self, ctx: TransactionContextInterface) -> str:
        return canonical(await current_schema(ctx.get_stub()))

    async def GetStats(self, ctx: TransactionContextInterface) -> str:
        """The current epoch: published keys, parties (or null), commitments, scaler (or null)."""
        stub = ctx.get_stub()
        schema = await current_schema(stub)
        number = schema["epoch"]
        return canonical({
            "epoch": number,
            "keys": {msp: v["public_key"] for msp, v in (await by_msp(stub, "key", number)).items()},
            "parties": ((await get_json(stub, epoch_key("parties", number))) or {}).get("parties"),
            "commits": await by_msp(stub, "stats", number),
            "scaler": await get_json(stub, epoch_key("scaler", number)),
        })

    async def GetScaler(self, ctx: TransactionContextInterface) -> str:
        stub = ctx.get_stub()
        number = (await current_schema(stub))["epoch"]
        scaler = await get_json(stub, epoch_key("scaler", number))
        if scaler is None:
            raise ContractError(NOT_FOUND, f"statistics epoch {number} has no scaler yet")
        return canonical(scaler)
