"""The federation contract: membership, rounds, the model chain and reputation.

Each transaction follows the same steps: parse the string arguments, check the
caller's organization (its MSP ID) and the round's phase, then read and write
canonical JSON. Every check runs before the first ``put_state`` so that a
refused transaction writes nothing. The decisions themselves are in
``rules.py``; this module only moves state. The protocol is docs/protocol.md.

Note that ``get_state`` does not see the transaction's own writes (Fabric
semantics), so no transaction reads a key after writing it.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from . import rules
from .errors import EXISTS, INVALID, NOT_FOUND, PHASE, UNAUTHORIZED, ContractError
from .shim import Contract, TransactionContextInterface

Record = dict[str, Any]

QUERIES = [
    "GetSettings", "GetConsortium", "GetOrg", "ListOrgs", "GetHead", "GetRound", "ListRounds",
    "GetCheckpoint", "ListCheckpoints", "GetUpdates", "GetEndorsements", "GetScreenings", "GetAcceptances",
    "GetReputation", "GetReputationHistory", "GetGroupEndorsements", "GetAttribution",
    "GetPublicKey", "GetMaskKeys", "GetMaskShares", "GetMaskReveals", "GetDecryptions",
]


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
    if msp_id not in round_record["participants"]:
        raise ContractError(UNAUTHORIZED, f"{msp_id} is not a participant of round {round_record['round']}")


async def require_absent(stub: Any, key: str, message: str) -> None:
    """[EXISTS] when ``key`` is already written (a replayed submission)."""
    if await get_json(stub, key) is not None:
        raise ContractError(EXISTS, message)


async def settle_attribution(stub: Any, record: Record, settings: Record, model_accepted: bool,
                             tx: str) -> tuple[list[str], list[tuple[str, Any]]]:
    """The writes that settle a round with attribution, and who they ban (rules.attribution_outcome).

    Reputation follows each member's group: reward for accepted groups when the
    aggregate is accepted, penalty only for members the groups' history singles out.
    """
    number = record["round"]
    groups = [g["members"] for g in record["attribution"]["groups"]]
    verdicts = [g["verdict"] for g in record["attribution"]["groups"]]
    records = {msp: await get_json(stub, f"attr~{msp}") or rules.new_attribution()
               for msp in sorted({m for members in groups for m in members})}
    changes, new_records = rules.attribution_outcome(groups, verdicts, records, model_accepted,
                                                     settings["reward"], settings["penalty"])
    writes: list[tuple[str, Any]] = [(f"attr~{msp}", value) for msp, value in sorted(new_records.items())]
    banned: list[str] = []
    for msp, (delta, reason) in sorted(changes.items()):
        rep, entry, index = rules.reputation_change(await get_json(stub, f"rep~{msp}"), delta, number, reason, tx)
        writes += [(f"rep~{msp}", rep), (f"rephist~{msp}~{index:08d}", entry)]
        if delta < 0 and rules.is_banned(rep["balance"], settings["ban_threshold"]):
            writes.append((f"org~{msp}", {**await get_json(stub, f"org~{msp}"), "status": rules.BANNED}))
            banned.append(msp)
    return banned, writes


# --------------------------------------------------------------------------
# The contract
# --------------------------------------------------------------------------

class FederationContract(Contract):
    """Transactions and queries of docs/protocol.md; every return value is canonical JSON."""

    Name = "blockfedml"

    def get_evaluate_transactions(self) -> list[str]:
        """Queries are marked "evaluate" in the contract metadata."""
        return list(QUERIES)

    # ---- consortium and membership ------------------------------------

    async def InitConsortium(self, ctx: TransactionContextInterface, settings_json: str,
                             genesis_digest: str, genesis_metric: str) -> str:
        """Create the consortium once; the caller becomes its admin; round 0 is the genesis checkpoint."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        settings = rules.validate_settings(rules.parse_json_object("settings_json", settings_json))
        digest = rules.parse_digest("genesis_digest", genesis_digest)
        metric = rules.parse_int("genesis_metric", genesis_metric, minimum=0)
        await require_absent(stub, "consortium", "the consortium is already initialized")
        tx, now = tx_of(ctx)
        consortium = {"admin": caller, "genesis": digest, "created": now}
        await put_json(stub, "consortium", consortium)
        await put_json(stub, "settings", settings)
        await put_json(stub, "head", {"checkpoint": digest, "metric": metric, "round": 0, "last_round": 0})
        await put_json(stub, round_key("ckpt", 0), {
            "round": 0, "digest": digest, "parent": "", "metric": metric,
            "status": rules.ACCEPTED, "contributors": [], "tx": tx})
        return canonical(consortium)

    async def SetSettings(self, ctx: TransactionContextInterface, settings_json: str) -> str:
        """Change settings between rounds; keys not given keep their current value."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        changes = rules.parse_json_object("settings_json", settings_json)
        await require_admin(stub, caller)
        settings = rules.validate_settings({**await get_json(stub, "settings"), **changes})
        head = await get_json(stub, "head")
        if head["last_round"]:
            last = await get_json(stub, round_key("round", head["last_round"]))
            if last["phase"] != "closed":
                raise ContractError(PHASE, f"round {last['round']} is still open (phase {last['phase']}); "
                                           "settings can change only between rounds")
        await put_json(stub, "settings", settings)
        return canonical(settings)

    async def RegisterOrg(self, ctx: TransactionContextInterface, msp_id: str, roles_json: str) -> str:
        """Admit an organization with its roles; it becomes active when it calls Join."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        msp_id = rules.check_msp_id("msp_id", msp_id)
        roles = rules.parse_roles("roles_json", roles_json)
        await require_admin(stub, caller)
        await require_absent(stub, f"org~{msp_id}", f"the organization {msp_id} is already registered")
        org = {"msp_id": msp_id, "roles": roles, "status": rules.REGISTERED}
        await put_json(stub, f"org~{msp_id}", org)
        return canonical(org)

    async def Join(self, ctx: TransactionContextInterface) -> str:
        """A registered organization becomes active and gets its reputation baseline."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        await get_consortium(stub)
        org = await get_writer(stub, caller)
        if org["status"] != rules.REGISTERED:
            raise ContractError(EXISTS, f"{caller} has already joined")
        settings, head = await get_json(stub, "settings"), await get_json(stub, "head")
        tx, _ = tx_of(ctx)
        rep, entry, index = rules.reputation_change(
            None, settings["initial_reputation"], head["last_round"], "join", tx)
        org = {**org, "status": rules.ACTIVE}
        await put_json(stub, f"org~{caller}", org)
        await put_json(stub, f"rep~{caller}", rep)
        await put_json(stub, f"rephist~{caller}~{index:08d}", entry)
        return canonical(org)

    # ---- the round ----------------------------------------------------

    async def OpenRound(self, ctx: TransactionContextInterface, mode: str) -> str:
        """Open the next round on top of the current head (the previous round must be closed)."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        mode = rules.parse_mode("mode", mode)
        await require_admin(stub, caller)
        head = await get_json(stub, "head")
        last = await get_json(stub, round_key("round", head["last_round"])) if head["last_round"] else None
        if last is not None and last["phase"] != "closed":
            raise ContractError(PHASE, f"round {last['round']} is still open (phase {last['phase']}); "
                                       "decide it before opening another")
        number = head["last_round"] + 1
        tx, now = tx_of(ctx)
        record = rules.new_round(number, mode, head, tx, now)
        await put_json(stub, round_key("round", number), record)
        await put_json(stub, "head", {**head, "last_round": number})
        return canonical(record)

    async def ReportScreening(self, ctx: TransactionContextInterface, round: str,
                              verdict: str, score: str) -> str:
        """A member reports whether it can take part (verdict 1) and its screening score."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        verdict_value = rules.parse_int("verdict", verdict, minimum=0, maximum=1)
        score_value = rules.parse_int("score", score)
        org = await get_writer(stub, caller)
        if org["status"] != rules.ACTIVE or not rules.has_role(org, "member"):
            raise ContractError(UNAUTHORIZED, f"{caller} is not an active member "
                                              f"(status {org['status']}, roles {org['roles']})")
        record = await get_round(stub, round)
        rules.require_phase(record, "selection")
        key = round_key("screen", record["round"], caller)
        await require_absent(stub, key, f"{caller} already reported screening for round {record['round']}")
        screening = {"verdict": verdict_value, "score": score_value}
        await put_json(stub, key, screening)
        return canonical(screening)

    async def CloseSelection(self, ctx: TransactionContextInterface, round: str) -> str:
        """Fix the selected members: eligible members that passed screening."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        await require_admin(stub, caller)
        record = await get_round(stub, round)
        rules.require_phase(record, "selection")
        settings = await get_json(stub, "settings")
        orgs = [org for _, org in await list_prefix(stub, "org~")]
        balances = {key[len("rep~"):]: rep["balance"] for key, rep in await list_prefix(stub, "rep~")}
        verdicts = {s["msp_id"]: s["verdict"] for s in await list_by_msp(stub, "screen", record["round"])}
        selected = rules.eligible_members(orgs, balances, verdicts, settings["ban_threshold"])
        masking: Record = {}
        if record["mode"] == "masking":  # only members with advertised mask keys can be masked against
            advertised = {k["msp_id"] for k in await list_by_msp(stub, "maskkey", record["round"])}
            selected = [msp for msp in selected if msp in advertised]
            masking = {"mask_threshold": rules.mask_threshold(
                len(selected), rules.setting(settings, "mask_threshold_percent"), settings["min_group_size"])}
        rules.require_enough("eligible members", selected, settings["min_participants"], record["round"])
        tx, now = tx_of(ctx)
        record = {**rules.advance(record, "configuration", tx, now), "selected": selected, **masking}
        await put_json(stub, round_key("round", record["round"]), record)
        return canonical(record)

    async def AcceptTerms(self, ctx: TransactionContextInterface, round: str, checkpoint_digest: str) -> str:
        """A selected member accepts to train on the round's base checkpoint."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        digest = rules.parse_digest("checkpoint_digest", checkpoint_digest)
        await get_writer(stub, caller)
        record = await get_round(stub, round)
        rules.require_phase(record, "configuration")
        if caller not in record["selected"]:
            raise ContractError(UNAUTHORIZED, f"{caller} is not selected for round {record['round']}")
        key = round_key("accept", record["round"], caller)
        await require_absent(stub, key, f"{caller} already accepted the terms of round {record['round']}")
        if digest != record["base_checkpoint"]:
            raise ContractError(INVALID, f"checkpoint_digest {digest} is not the base checkpoint "
                                               f"{record['base_checkpoint']} of round {record['round']}")
        accept = {"checkpoint": digest}
        await put_json(stub, key, accept)
        return canonical(accept)

    async def Allocate(self, ctx: TransactionContextInterface, round: str) -> str:
        """Fix participants, aggregator, key holder and groups; the round enters phase update."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        await require_admin(stub, caller)
        record = await get_round(stub, round)
        rules.require_phase(record, "configuration")
        settings = await get_json(stub, "settings")
        accepted = {a["msp_id"] for a in await list_by_msp(stub, "accept", record["round"])}
        participants = sorted(accepted & set(record["selected"]))
        if record["mode"] == "masking":  # everyone's shares are out before anyone masks
            shared = {s["msp_id"] for s in await list_by_msp(stub, "shares", record["round"])}
            participants = [msp for msp in participants if msp in shared]
        rules.require_enough("participants", participants, settings["min_participants"], record["round"])
        if record["mode"] == "masking" and len(participants) < record["mask_threshold"]:
            raise ContractError(PHASE, f"round {record['round']} has {len(participants)} participants that shared "
                                       f"their mask keys, fewer than the masking threshold {record['mask_threshold']}")
        orgs = [org for _, org in await list_prefix(stub, "org~")]
        keyholder, paillier = rules.choose_keyholder(orgs), {}
        if record["mode"] == "paillier":
            keys = {key[len("pkey~"):]: value for key, value in await list_prefix(stub, "pkey~")}
            keyholder, round_key_record = rules.choose_paillier_keyholder(orgs, keys, participants, record["round"])
            paillier = {"key": round_key_record}
        tx, now = tx_of(ctx)
        record = {
            **rules.advance(rules.advance(record, "allocation", tx, now), "update", tx, now),
            "participants": participants,
            "aggregator": rules.choose_aggregator(participants, record["round"]),
            "keyholder": keyholder,
            "groups": rules.make_groups(participants, record["round"], settings["min_group_size"]),
            **paillier,
        }
        await put_json(stub, round_key("round", record["round"]), record)
        return canonical(record)

    async def CommitUpdate(self, ctx: TransactionContextInterface, round: str, digest: str,
                           size: str, num_samples: str) -> str:
        """A participant commits the digest and size of its local update (never the update)."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        update = {"digest": rules.parse_digest("digest", digest),
                  "size": rules.parse_int("size", size, minimum=1),
                  "num_samples": rules.parse_int("num_samples", num_samples, minimum=1)}
        await get_writer(stub, caller)
        record = await get_round(stub, round)
        rules.require_phase(record, "update")
        require_participant(record, caller)
        key = round_key("update", record["round"], caller)
        await require_absent(stub, key, f"{caller} already committed an update for round {record['round']}")
        await put_json(stub, key, update)
        return canonical(update)

    async def ProposeGroups(self, ctx: TransactionContextInterface, round: str, digests_json: str) -> str:
        """With attribution on, the aggregator proposes one aggregate per allocation group (or null).

        The round enters phase attribution; every group aggregate is a sum over at least
        min_group_size members, so no single update is ever revealed.
        """
        stub, caller = ctx.get_stub(), caller_of(ctx)
        rules.parse_json_list("digests_json", digests_json)
        await get_writer(stub, caller)
        record = await get_round(stub, round)
        number = record["round"]
        if record.get("attribution") is not None:
            raise ContractError(EXISTS, f"round {number} already has group aggregates")
        rules.require_phase(record, "update")
        settings = await get_json(stub, "settings")
        if not rules.setting(settings, "attribution"):
            raise ContractError(PHASE, f"attribution is off (setting attribution=0): the aggregator of round "
                                       f"{number} proposes its aggregate with ProposeAggregate")
        if caller != record["aggregator"]:
            raise ContractError(UNAUTHORIZED, f"{caller} is not the aggregator of round {number}; "
                                              f"{record['aggregator']} is")
        digests = rules.parse_group_digests("digests_json", digests_json, len(record["groups"]))
        committed = {u["msp_id"] for u in await list_by_msp(stub, "update", number)}
        for index, (members, group_digest) in enumerate(zip(record["groups"], digests)):
            absent = [msp for msp in members if msp not in committed]
            if group_digest is not None and absent:
                raise ContractError(INVALID, f"digests_json entry {index}: {absent} of group {index} committed "
                                             f"no update in round {number}; that group's entry must be null")
        tx, now = tx_of(ctx)
        record = {**rules.advance(record, "attribution", tx, now),
                  "attribution": {
                      "groups": [{"members": members, "digest": group_digest, "score": None, "verdict": None}
                                 for members, group_digest in zip(record["groups"], digests)],
                      "accepted": None, "endorsements": None, "tx": None}}
        await put_json(stub, round_key("round", number), record)
        return canonical(record)

    async def EndorseGroups(self, ctx: TransactionContextInterface, round: str, metrics_json: str,
                            base_metric: str) -> str:
        """A participant's metric of each group aggregate and of the base checkpoint, on its own data."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        rules.parse_json_list("metrics_json", metrics_json)
        base = rules.parse_int("base_metric", base_metric, minimum=0)
        await get_writer(stub, caller)
        record = await get_round(stub, round)
        number = record["round"]
        rules.require_phase(record, "attribution")
        if record["attribution"]["accepted"] is not None:
            raise ContractError(PHASE, f"the groups of round {number} are already scored")
        require_participant(record, caller)
        key = round_key("gendorse", number, caller)
        await require_absent(stub, key, f"{caller} already endorsed the groups of round {number}")
        digests = [group["digest"] for group in record["attribution"]["groups"]]
        endorsement = {"metrics": rules.parse_group_metrics("metrics_json", metrics_json, digests),
                       "base_metric": base}
        await put_json(stub, key, endorsement)
        return canonical(endorsement)

    async def ScoreGroups(self, ctx: TransactionContextInterface, round: str) -> str:
        """Score each group by the trimmed mean of its endorsed improvements; fix the accepted groups."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        record = await get_round(stub, round)
        number = record["round"]
        await require_admin(stub, caller, or_participant_of=record)
        rules.require_phase(record, "attribution")
        if record["attribution"]["accepted"] is not None:
            raise ContractError(EXISTS, f"the groups of round {number} are already scored")
        settings = await get_json(stub, "settings")
        endorsements = await list_by_msp(stub, "gendorse", number)
        needed = rules.quorum_size(settings["quorum_percent"], len(record["participants"]))
        if len(endorsements) < needed:
            raise ContractError(PHASE, f"round {number} has {len(endorsements)} group endorsements, needs "
                                       f"{needed} (quorum_percent={settings['quorum_percent']})")
        groups = record["attribution"]["groups"]
        scores = rules.group_scores(endorsements, [g["digest"] for g in groups],
                                    rules.setting(settings, "attribution_trim_percent"))
        verdicts = [rules.group_verdict(score, rules.setting(settings, "attribution_tolerance"),
                                        rules.group_metric_higher_is_better(settings)) for score in scores]
        tx, _ = tx_of(ctx)
        record = {**record, "attribution": {
            "groups": [{**g, "score": score, "verdict": verdict} for g, score, verdict in zip(groups, scores, verdicts)],
            "accepted": rules.accepted_members([g["members"] for g in groups], verdicts),
            "endorsements": len(endorsements), "tx": tx}}
        await put_json(stub, round_key("round", number), record)
        return canonical(record)

    # ---- secure aggregation (docs/secure-aggregation.md) -------------------

    async def PublishKey(self, ctx: TransactionContextInterface, epoch: str, fingerprint: str, bits: str) -> str:
        """A key holder publishes its Paillier key's fingerprint (the key itself lives off-chain).

        Each round pins the key in force at Allocate; a higher epoch rotates it for later rounds.
        """
        stub, caller = ctx.get_stub(), caller_of(ctx)
        key = {"epoch": rules.parse_int("epoch", epoch, minimum=1),
               "fingerprint": rules.parse_digest("fingerprint", fingerprint),
               "bits": rules.parse_key_bits("bits", bits)}
        org = await get_writer(stub, caller)
        if org["status"] != rules.ACTIVE or not rules.has_role(org, "keyholder"):
            raise ContractError(UNAUTHORIZED, f"{caller} is not an active key holder "
                                              f"(status {org['status']}, roles {org['roles']})")
        current = await get_json(stub, f"pkey~{caller}")
        if current is not None and key["epoch"] <= current["epoch"]:
            raise ContractError(EXISTS, f"{caller} already published key epoch {current['epoch']}; a new key "
                                        f"needs epoch {current['epoch'] + 1} or later")
        tx, now = tx_of(ctx)
        key = {**key, "tx": tx, "time": now}
        await put_json(stub, f"pkey~{caller}", key)
        return canonical(key)

    async def AdvertiseMaskKey(self, ctx: TransactionContextInterface, round: str, mask_key: str,
                               share_key: str) -> str:
        """Masking, selection phase: a member's X25519 public keys for this round (masks, shares)."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        keys = {"mask_key": rules.parse_public_key_hex("mask_key", mask_key),
                "share_key": rules.parse_public_key_hex("share_key", share_key)}
        if keys["mask_key"] == keys["share_key"]:
            raise ContractError(INVALID, "mask_key and share_key must be two different keys")
        org = await get_writer(stub, caller)
        if org["status"] != rules.ACTIVE or not rules.has_role(org, "member"):
            raise ContractError(UNAUTHORIZED, f"{caller} is not an active member "
                                              f"(status {org['status']}, roles {org['roles']})")
        record = await get_round(stub, round)
        rules.require_phase(record, "selection")
        rules.require_mode(record, ("masking",), "AdvertiseMaskKey")
        key = round_key("maskkey", record["round"], caller)
        await require_absent(stub, key, f"{caller} already advertised its mask keys for round {record['round']}")
        await put_json(stub, key, keys)
        return canonical(keys)

    async def ShareMaskKeys(self, ctx: TransactionContextInterface, round: str, digest: str, size: str) -> str:
        """Masking, configuration phase: the digest of a selected member's encrypted Shamir shares."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        shares = {"digest": rules.parse_digest("digest", digest), "size": rules.parse_int("size", size, minimum=1)}
        await get_writer(stub, caller)
        record = await get_round(stub, round)
        rules.require_phase(record, "configuration")
        rules.require_mode(record, ("masking",), "ShareMaskKeys")
        if caller not in record["selected"]:
            raise ContractError(UNAUTHORIZED, f"{caller} is not selected for round {record['round']}")
        key = round_key("shares", record["round"], caller)
        await require_absent(stub, key, f"{caller} already shared its mask keys for round {record['round']}")
        await put_json(stub, key, shares)
        return canonical(shares)

    async def RequestDecryption(self, ctx: TransactionContextInterface, round: str, sum_digest: str,
                                contributors_json: str) -> str:
        """The aggregator asks for one sum to be opened; the ledger fixes who is in it.

        At least min_group_size contributors that committed updates, never
        overlapping an earlier sum of the round (see rules.check_decryption_request).
        """
        stub, caller = ctx.get_stub(), caller_of(ctx)
        digest = rules.parse_digest("sum_digest", sum_digest)
        contributors = rules.parse_msp_list("contributors_json", contributors_json)
        await get_writer(stub, caller)
        record = await get_round(stub, round)
        number = record["round"]
        rules.require_phase(record, "update")
        rules.require_mode(record, rules.SECURE_MODES, "RequestDecryption")
        if caller != record["aggregator"]:
            raise ContractError(UNAUTHORIZED, f"{caller} is not the aggregator of round {number}; "
                                              f"{record['aggregator']} is")
        updates = await list_by_msp(stub, "update", number)
        earlier = await list_decryptions(stub, number)
        settings = await get_json(stub, "settings")
        rules.check_decryption_request(record, contributors, {u["msp_id"]: u["digest"] for u in updates},
                                       earlier, digest, settings["min_group_size"])
        weights = {u["msp_id"]: u["num_samples"] for u in updates}
        tx, _ = tx_of(ctx)
        request = {"index": len(earlier), "digest": digest, "contributors": contributors,
                   "weight": sum(weights[msp] for msp in contributors), "requested_by": caller,
                   "tx": tx, "result": None}
        await put_json(stub, f"{round_key('decrypt', number)}~{len(earlier):04d}", request)
        return canonical(request)

    async def RevealMaskShares(self, ctx: TransactionContextInterface, round: str, digest: str, size: str) -> str:
        """Masking: a participant releases its shares for the recorded contributor set (sealed to the aggregator)."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        reveal = {"digest": rules.parse_digest("digest", digest), "size": rules.parse_int("size", size, minimum=1)}
        await get_writer(stub, caller)
        record = await get_round(stub, round)
        number = record["round"]
        rules.require_phase(record, "update")
        rules.require_mode(record, ("masking",), "RevealMaskShares")
        require_participant(record, caller)
        requests = await list_decryptions(stub, number)
        if not requests or requests[0]["result"] is not None:
            raise ContractError(PHASE, f"round {number} has no pending unmasking request "
                                       f"({'already unmasked' if requests else 'none yet'})")
        key = round_key("reveal", number, caller)
        await require_absent(stub, key, f"{caller} already revealed its shares for round {number}")
        await put_json(stub, key, reveal)
        return canonical(reveal)

    async def RecordDecryption(self, ctx: TransactionContextInterface, round: str, index: str,
                               result_digest: str) -> str:
        """Whoever opens the round's sums (the key holder; the aggregator for masking) records the result."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        position = rules.parse_int("index", index, minimum=0, maximum=9999)
        result = rules.parse_digest("result_digest", result_digest)
        await get_writer(stub, caller)
        record = await get_round(stub, round)
        number = record["round"]
        rules.require_phase(record, "update")
        rules.require_mode(record, rules.SECURE_MODES, "RecordDecryption")
        opener = record["keyholder"] if record["mode"] == "paillier" else record["aggregator"]
        if caller != opener:
            raise ContractError(UNAUTHORIZED, f"{caller} does not open the sums of round {number}; {opener} does")
        key = f"{round_key('decrypt', number)}~{position:04d}"
        request = await get_required(stub, key, f"decryption request {position} of round {number}")
        if request["result"] is not None:
            raise ContractError(EXISTS, f"decryption request {position} of round {number} is already recorded")
        if record["mode"] == "masking":
            reveals = await list_by_msp(stub, "reveal", number)
            if len(reveals) < record["mask_threshold"]:
                raise ContractError(PHASE, f"round {number} has {len(reveals)} revealed shares, the masking "
                                           f"threshold is {record['mask_threshold']}")
        tx, _ = tx_of(ctx)
        request = {**request, "result": {"digest": result, "by": caller, "tx": tx}}
        await put_json(stub, key, request)
        return canonical(request)

    async def ProposeAggregate(self, ctx: TransactionContextInterface, round: str, digest: str,
                               contributors_json: str) -> str:
        """The round's aggregator proposes the aggregated checkpoint and who contributed to it."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        digest = rules.parse_digest("digest", digest)
        contributors = rules.parse_msp_list("contributors_json", contributors_json)
        await get_writer(stub, caller)
        record = await get_round(stub, round)
        number = record["round"]
        if record["proposal"] is not None:
            raise ContractError(EXISTS, f"round {number} already has a proposal")
        settings = await get_json(stub, "settings")
        attribution = rules.setting(settings, "attribution")
        if attribution and record["phase"] == "update":
            raise ContractError(PHASE, f"round {number} uses attribution (setting attribution=1): its aggregator "
                                       "proposes the groups' aggregates first (ProposeGroups)")
        rules.require_phase(record, "attribution" if attribution else "update")
        if caller != record["aggregator"]:
            raise ContractError(UNAUTHORIZED, f"{caller} is not the aggregator of round {number}; "
                                              f"{record['aggregator']} is")
        if attribution:
            accepted = record["attribution"]["accepted"]
            if accepted is None:
                raise ContractError(PHASE, f"the groups of round {number} are not scored yet (ScoreGroups)")
            if contributors != accepted:
                raise ContractError(INVALID, f"contributors_json must be exactly the members of the accepted "
                                             f"groups of round {number}: {accepted}, got {contributors}")
        committed = {u["msp_id"] for u in await list_by_msp(stub, "update", number)}
        for msp_id in contributors:
            if msp_id not in committed:
                raise ContractError(INVALID, f"contributors_json: {msp_id} has not committed "
                                                   f"an update in round {number}")
        if record["mode"] in rules.SECURE_MODES:  # the aggregate is made of whole, opened sums
            rules.union_of_sums(contributors, await list_decryptions(stub, number), number)
        # With attribution the accepted groups decide who contributes (each group has at
        # least min_group_size members); min_participants was checked when they were selected.
        if not attribution and len(contributors) < settings["min_participants"]:
            raise ContractError(INVALID, f"contributors_json names {len(contributors)} contributors, "
                                               f"needs at least min_participants={settings['min_participants']}")
        tx, now = tx_of(ctx)
        checkpoint = {"round": number, "digest": digest, "parent": record["base_checkpoint"],
                      "metric": None, "status": rules.PROPOSED, "contributors": contributors, "tx": tx}
        record = {**rules.advance(record, "feedback", tx, now),
                  "proposal": {"digest": digest, "contributors": contributors}}
        await put_json(stub, round_key("ckpt", number), checkpoint)
        await put_json(stub, round_key("round", number), record)
        return canonical(record)

    async def Endorse(self, ctx: TransactionContextInterface, round: str, digest: str, metric: str,
                      base_metric: str) -> str:
        """A participant endorses the proposal with its metric and the base checkpoint's, on its own data."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        endorsement = {"digest": rules.parse_digest("digest", digest),
                       "metric": rules.parse_int("metric", metric, minimum=0),
                       "base_metric": rules.parse_int("base_metric", base_metric, minimum=0)}
        await get_writer(stub, caller)
        record = await get_round(stub, round)
        rules.require_phase(record, "feedback")
        require_participant(record, caller)
        key = round_key("endorse", record["round"], caller)
        await require_absent(stub, key, f"{caller} already endorsed round {record['round']}")
        if endorsement["digest"] != record["proposal"]["digest"]:
            raise ContractError(INVALID, f"digest {endorsement['digest']} is not the proposed digest "
                                               f"{record['proposal']['digest']} of round {record['round']}")
        await put_json(stub, key, endorsement)
        return canonical(endorsement)

    async def Decide(self, ctx: TransactionContextInterface, round: str) -> str:
        """Accept or roll back the proposal by the median endorsed metric; settle reputation."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        record = await get_round(stub, round)
        number = record["round"]
        await require_admin(stub, caller, or_participant_of=record)
        if record["decision"] is not None:
            raise ContractError(EXISTS, f"round {number} is already decided ({record['decision']['status']})")
        settings = await get_json(stub, "settings")
        if record["phase"] == "attribution" and record["attribution"]["accepted"] == []:
            return await self._reject(stub, ctx, record, settings)
        rules.require_phase(record, "feedback")
        proposed = record["proposal"]["digest"]
        endorsements = [e for e in await list_by_msp(stub, "endorse", number) if e["digest"] == proposed]
        metrics = [e["metric"] for e in endorsements]
        needed = rules.quorum_size(settings["quorum_percent"], len(record["participants"]))
        if len(metrics) < needed:
            raise ContractError(PHASE, f"round {number} has {len(metrics)} endorsements of {proposed}, "
                                       f"needs {needed} (quorum_percent={settings['quorum_percent']})")
        median = rules.lower_median(metrics)
        improvement = rules.lower_median([e["metric"] - e["base_metric"] for e in endorsements])
        rolled_back = rules.should_roll_back(improvement, settings["rollback_tolerance"],
                                             settings["higher_is_better"])
        status = rules.ROLLED_BACK if rolled_back else rules.ACCEPTED
        delta, reason = (-settings["penalty"], "penalty") if rolled_back else (settings["reward"], "reward")
        tx, now = tx_of(ctx)

        banned: list[str] = []
        writes: list[tuple[str, Any]] = []
        if record.get("attribution") is not None:  # reputation follows each member's group
            banned, writes = await settle_attribution(stub, record, settings, not rolled_back, tx)
        else:  # every contributor shares the aggregate's fate
            for msp_id in record["proposal"]["contributors"]:
                rep, entry, index = rules.reputation_change(
                    await get_json(stub, f"rep~{msp_id}"), delta, number, reason, tx)
                writes += [(f"rep~{msp_id}", rep), (f"rephist~{msp_id}~{index:08d}", entry)]
                if rolled_back and rules.is_banned(rep["balance"], settings["ban_threshold"]):
                    member = await get_json(stub, f"org~{msp_id}")
                    writes.append((f"org~{msp_id}", {**member, "status": rules.BANNED}))
                    banned.append(msp_id)
        checkpoint = await get_json(stub, round_key("ckpt", number))
        writes.append((round_key("ckpt", number), {**checkpoint, "status": status, "metric": median}))
        if not rolled_back:
            head = await get_json(stub, "head")
            writes.append(("head", {**head, "checkpoint": proposed, "metric": median, "round": number}))
        record = {**rules.advance(record, "closed", tx, now),
                  "decision": {"status": status, "metric": median, "improvement": improvement,
                               "endorsements": len(metrics),
                               "banned": banned}}
        writes.append((round_key("round", number), record))
        for key, value in writes:
            await put_json(stub, key, value)
        return canonical(record)

    async def _reject(self, stub: Any, ctx: TransactionContextInterface, record: Record, settings: Record) -> str:
        """Close an attribution round whose groups were all harmful: no aggregate, the head stays."""
        tx, now = tx_of(ctx)
        banned, writes = await settle_attribution(stub, record, settings, False, tx)
        record = {**rules.advance(record, "closed", tx, now),
                  "decision": {"status": rules.REJECTED, "metric": None, "improvement": None,
                               "endorsements": 0, "banned": banned}}
        writes.append((round_key("round", record["round"]), record))
        for key, value in writes:
            await put_json(stub, key, value)
        return canonical(record)

    # ---- queries --------------------------------------------------------

    async def GetSettings(self, ctx: TransactionContextInterface) -> str:
        return canonical(await get_required(ctx.get_stub(), "settings", "the consortium"))

    async def GetConsortium(self, ctx: TransactionContextInterface) -> str:
        return canonical(await get_required(ctx.get_stub(), "consortium", "the consortium"))

    async def GetOrg(self, ctx: TransactionContextInterface, msp_id: str) -> str:
        msp_id = rules.check_msp_id("msp_id", msp_id)
        return canonical(await get_required(ctx.get_stub(), f"org~{msp_id}", f"the organization {msp_id}"))

    async def ListOrgs(self, ctx: TransactionContextInterface) -> str:
        return canonical([org for _, org in await list_prefix(ctx.get_stub(), "org~")])

    async def GetHead(self, ctx: TransactionContextInterface) -> str:
        return canonical(await get_required(ctx.get_stub(), "head", "the consortium"))

    async def GetRound(self, ctx: TransactionContextInterface, round: str) -> str:
        return canonical(await get_round(ctx.get_stub(), round))

    async def ListRounds(self, ctx: TransactionContextInterface) -> str:
        return canonical([r for _, r in await list_prefix(ctx.get_stub(), "round~")])

    async def GetCheckpoint(self, ctx: TransactionContextInterface, round: str) -> str:
        number = rules.parse_int("round", round, minimum=0)
        return canonical(await get_required(ctx.get_stub(), round_key("ckpt", number),
                                            f"the checkpoint of round {number}"))

    async def ListCheckpoints(self, ctx: TransactionContextInterface) -> str:
        return canonical([c for _, c in await list_prefix(ctx.get_stub(), "ckpt~")])

    async def GetUpdates(self, ctx: TransactionContextInterface, round: str) -> str:
        return await round_records(ctx, "update", round)

    async def GetEndorsements(self, ctx: TransactionContextInterface, round: str) -> str:
        return await round_records(ctx, "endorse", round)

    async def GetScreenings(self, ctx: TransactionContextInterface, round: str) -> str:
        return await round_records(ctx, "screen", round)

    async def GetAcceptances(self, ctx: TransactionContextInterface, round: str) -> str:
        """Who accepted the round's terms (``msp_id``, ``checkpoint``): what a coordinator waits for."""
        return await round_records(ctx, "accept", round)

    async def GetReputation(self, ctx: TransactionContextInterface, msp_id: str) -> str:
        msp_id = rules.check_msp_id("msp_id", msp_id)
        return canonical(await get_required(ctx.get_stub(), f"rep~{msp_id}",
                                            f"the reputation of {msp_id} (has it joined?)"))

    async def GetGroupEndorsements(self, ctx: TransactionContextInterface, round: str) -> str:
        return await round_records(ctx, "gendorse", round)

    async def GetAttribution(self, ctx: TransactionContextInterface, msp_id: str) -> str:
        """Rounds in accepted and harmful groups, and blames, of one organization (zeros before any)."""
        stub = ctx.get_stub()
        msp_id = rules.check_msp_id("msp_id", msp_id)
        await get_required(stub, f"org~{msp_id}", f"the organization {msp_id}")
        return canonical(await get_json(stub, f"attr~{msp_id}") or rules.new_attribution())

    async def GetReputationHistory(self, ctx: TransactionContextInterface, msp_id: str) -> str:
        stub = ctx.get_stub()
        msp_id = rules.check_msp_id("msp_id", msp_id)
        await get_required(stub, f"org~{msp_id}", f"the organization {msp_id}")
        return canonical([entry for _, entry in await list_prefix(stub, f"rephist~{msp_id}~")])

    async def GetPublicKey(self, ctx: TransactionContextInterface, msp_id: str) -> str:
        msp_id = rules.check_msp_id("msp_id", msp_id)
        return canonical(await get_required(ctx.get_stub(), f"pkey~{msp_id}",
                                            f"the public key of {msp_id} (has it published one?)"))

    async def GetMaskKeys(self, ctx: TransactionContextInterface, round: str) -> str:
        return await round_records(ctx, "maskkey", round)

    async def GetMaskShares(self, ctx: TransactionContextInterface, round: str) -> str:
        return await round_records(ctx, "shares", round)

    async def GetMaskReveals(self, ctx: TransactionContextInterface, round: str) -> str:
        return await round_records(ctx, "reveal", round)

    async def GetDecryptions(self, ctx: TransactionContextInterface, round: str) -> str:
        stub = ctx.get_stub()
        return canonical(await list_decryptions(stub, (await get_round(stub, round))["round"]))
