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

from typing import Any

from . import deadlines, rules
from .attribution import AttributionTransactions
from .errors import EXISTS, INVALID, PHASE, UNAUTHORIZED, ContractError
from .recovery import RoundRecoveryTransactions
from .secagg import SecureAggregationTransactions
from .shim import Contract, TransactionContextInterface
from .state import (
    Record,
    absence_writes,
    caller_of,
    canonical,
    get_consortium,
    get_json,
    get_required,
    get_round,
    get_writer,
    list_by_msp,
    list_decryptions,
    list_prefix,
    put_json,
    require_absent,
    require_admin,
    require_participant,
    round_key,
    round_records,
    settle_attribution,
    tx_of,
)


QUERIES = [
    "GetSettings", "GetConsortium", "GetOrg", "ListOrgs", "GetHead", "GetRound", "ListRounds",
    "GetCheckpoint", "ListCheckpoints", "GetUpdates", "GetEndorsements", "GetScreenings", "GetAcceptances",
    "GetReputation", "GetReputationHistory", "GetGroupEndorsements", "GetAttribution",
    "GetPublicKey", "GetMaskKeys", "GetMaskShares", "GetMaskReveals", "GetDecryptions", "GetPending",
]


class FederationContract(AttributionTransactions, SecureAggregationTransactions, RoundRecoveryTransactions,
                         Contract):
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

    async def EnterRound(self, ctx: TransactionContextInterface, round: str, verdict: str, score: str,
                         checkpoint_digest: str, mask_key: str, share_key: str) -> str:
        """Selection, in one transaction: ReportScreening, AcceptTerms ahead of selection (the terms —
        base checkpoint, mode — are fixed when the round opens) and, in a masking round,
        AdvertiseMaskKey (``mask_key``/``share_key`` empty in the other modes). It writes the records
        those three write, so everything that reads them is unchanged; an acceptance counts only
        if the member is then selected."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        verdict_value = rules.parse_int("verdict", verdict, minimum=0, maximum=1)
        score_value = rules.parse_int("score", score)
        digest = rules.parse_digest("checkpoint_digest", checkpoint_digest)
        org = await get_writer(stub, caller)
        if org["status"] != rules.ACTIVE or not rules.has_role(org, "member"):
            raise ContractError(UNAUTHORIZED, f"{caller} is not an active member "
                                              f"(status {org['status']}, roles {org['roles']})")
        record = await get_round(stub, round)
        number = record["round"]
        rules.require_phase(record, "selection")
        if digest != record["base_checkpoint"]:
            raise ContractError(INVALID, f"checkpoint_digest {digest} is not the base checkpoint "
                                         f"{record['base_checkpoint']} of round {number}")
        writes: list[tuple[str, Record]] = [(round_key("screen", number, caller),
                                             {"verdict": verdict_value, "score": score_value}),
                                            (round_key("accept", number, caller), {"checkpoint": digest})]
        if record["mode"] == "masking":
            keys = {"mask_key": rules.parse_public_key_hex("mask_key", mask_key),
                    "share_key": rules.parse_public_key_hex("share_key", share_key)}
            if keys["mask_key"] == keys["share_key"]:
                raise ContractError(INVALID, "mask_key and share_key must be two different keys")
            writes.append((round_key("maskkey", number, caller), keys))
        elif mask_key or share_key:
            raise ContractError(INVALID, f"round {number} runs in mode {record['mode']}: mask_key and share_key "
                                         "must be empty (they are for masking rounds)")
        for key, _ in writes:
            await require_absent(stub, key, f"{caller} already entered round {number} ({key.split('~')[0]} "
                                            "is recorded)")
        for key, value in writes:
            await put_json(stub, key, value)
        return canonical({"round": number, "verdict": verdict_value, "score": score_value})

    async def CloseSelection(self, ctx: TransactionContextInterface, round: str) -> str:
        """Fix the selected members: eligible members that passed screening."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        await require_admin(stub, caller)
        record = await get_round(stub, round)
        rules.require_phase(record, "selection")
        settings = await get_json(stub, "settings")
        selected = await self._selectable(stub, record, settings)
        rules.require_enough("eligible members", selected, settings["min_participants"], record["round"])
        record = await self._allocated_at_once(stub, ctx, self._selected(ctx, record, settings, selected),
                                               settings)
        await put_json(stub, round_key("round", record["round"]), record)
        return canonical(record)

    async def _allocated_at_once(self, stub: Any, ctx: TransactionContextInterface, record: Record,
                                 settings: Record) -> Record:
        """A round just moved to configuration, allocated in the same transaction when nothing is
        left to configure: every selected member accepted ahead (EnterRound) and the mode needs
        no shares (not masking). Otherwise (or when allocation refuses) it stays in configuration
        and Allocate follows, as before."""
        if record["mode"] == "masking":
            return record
        participants = await self._ready(stub, record)
        if participants != sorted(record["selected"]):
            return record
        try:
            return await self._allocated(stub, ctx, record, settings, participants)
        except ContractError:
            return record  # Allocate (or ClosePhase) will say why

    async def _selectable(self, stub: Any, record: Record, settings: Record) -> list[str]:
        """Eligible members that screened favourably (with masking: and advertised mask keys)."""
        orgs = [org for _, org in await list_prefix(stub, "org~")]
        balances = {key[len("rep~"):]: rep["balance"] for key, rep in await list_prefix(stub, "rep~")}
        verdicts = {s["msp_id"]: s["verdict"] for s in await list_by_msp(stub, "screen", record["round"])}
        selected = rules.eligible_members(orgs, balances, verdicts, settings["ban_threshold"])
        if record["mode"] == "masking":  # only members with advertised mask keys can be masked against
            advertised = {k["msp_id"] for k in await list_by_msp(stub, "maskkey", record["round"])}
            selected = [msp for msp in selected if msp in advertised]
        return selected

    def _selected(self, ctx: TransactionContextInterface, record: Record, settings: Record,
                  selected: list[str]) -> Record:
        """The round moved to configuration with ``selected`` fixed."""
        masking: Record = {}
        if record["mode"] == "masking":
            masking = {"mask_threshold": rules.mask_threshold(
                len(selected), rules.setting(settings, "mask_threshold_percent"), settings["min_group_size"])}
        tx, now = tx_of(ctx)
        return {**rules.advance(record, "configuration", tx, now), "selected": selected, **masking}

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
        participants = await self._ready(stub, record)
        record = await self._allocated(stub, ctx, record, settings, participants)
        await put_json(stub, round_key("round", record["round"]), record)
        return canonical(record)

    async def _ready(self, stub: Any, record: Record) -> list[str]:
        """Selected members that accepted the terms (with masking: and shared their mask keys)."""
        accepted = {a["msp_id"] for a in await list_by_msp(stub, "accept", record["round"])}
        participants = sorted(accepted & set(record["selected"]))
        if record["mode"] == "masking":  # everyone's shares are out before anyone masks
            shared = {s["msp_id"] for s in await list_by_msp(stub, "shares", record["round"])}
            participants = [msp for msp in participants if msp in shared]
        return participants

    async def _allocated(self, stub: Any, ctx: TransactionContextInterface, record: Record, settings: Record,
                         participants: list[str]) -> Record:
        """The round moved to update with ``participants``; [PHASE] when they are too few."""
        rules.require_enough("participants", participants, settings["min_participants"], record["round"])
        if record["mode"] in rules.SECURE_MODES:  # its one opened sum must have min_group_size others for each
            needed = rules.opening_size(settings["min_group_size"])
            if len(participants) < needed:
                raise ContractError(PHASE, f"round {record['round']} runs in mode {record['mode']} with "
                                           f"{len(participants)} participants; an opened sum needs {needed} "
                                           f"(min_group_size={settings['min_group_size']} besides each one who "
                                           "sees it)")
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
        return {
            **rules.advance(rules.advance(record, "allocation", tx, now), "update", tx, now),
            "participants": participants,
            "aggregator": rules.choose_aggregator(participants, record["round"]),
            "keyholder": keyholder,
            "groups": rules.allocation_groups(participants, record["round"], settings),
            **paillier,
        }

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
        absent = sorted(set(contributors) & set(record.get("absent") or []))
        if absent:
            raise ContractError(INVALID, f"contributors_json: {absent} were recorded absent from round {number}")
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
        """Accept or roll back the proposal by the trimmed mean endorsed improvement; settle reputation."""
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
        return await self._decide(stub, ctx, record, settings)

    async def _decide(self, stub: Any, ctx: TransactionContextInterface, record: Record, settings: Record) -> str:
        """Decide a round in feedback: quorum over the participants that remain, median, reputation."""
        number = record["round"]
        proposed = record["proposal"]["digest"]
        remaining = deadlines.remaining_participants(record)
        endorsements = [e for e in await list_by_msp(stub, "endorse", number)
                        if e["digest"] == proposed and e["msp_id"] in remaining]
        metrics = [e["metric"] for e in endorsements]
        needed = rules.quorum_size(settings["quorum_percent"], len(remaining))
        if len(metrics) < needed:
            raise ContractError(PHASE, f"round {number} has {len(metrics)} endorsements of {proposed}, "
                                       f"needs {needed} (quorum_percent={settings['quorum_percent']})")
        median = rules.lower_median(metrics)
        improvement = rules.round_improvement(endorsements, settings)
        rolled_back = rules.should_roll_back(improvement, settings["rollback_tolerance"],
                                             settings["higher_is_better"])
        improved = not rolled_back and rules.improved(improvement, settings["higher_is_better"])
        status = rules.ROLLED_BACK if rolled_back else rules.ACCEPTED
        delta, reason = (-settings["penalty"], "penalty") if rolled_back else (settings["reward"], "reward")
        tx, now = tx_of(ctx)

        banned: list[str] = []
        writes: list[tuple[str, Any]] = []
        if record.get("attribution") is not None:  # reputation follows each member's group
            banned, writes = await settle_attribution(stub, record, settings, improved, tx)
        elif rolled_back or improved:  # every contributor that stayed shares the aggregate's fate; no reward without gain
            for msp_id in record["proposal"]["contributors"]:
                if msp_id not in remaining:
                    continue
                rep, entry, index = rules.reputation_change(
                    await get_json(stub, f"rep~{msp_id}"), delta, number, reason, tx)
                writes += [(f"rep~{msp_id}", rep), (f"rephist~{msp_id}~{index:08d}", entry)]
                if rolled_back and rules.is_banned(rep["balance"], settings["ban_threshold"]):
                    member = await get_json(stub, f"org~{msp_id}")
                    writes.append((f"org~{msp_id}", {**member, "status": rules.BANNED}))
                    banned.append(msp_id)
        absence, absence_banned = await absence_writes(stub, record.get("absent") or [], settings, number, tx,
                                                       deadlines.excluded_members(record))
        writes += absence
        checkpoint = await get_json(stub, round_key("ckpt", number))
        writes.append((round_key("ckpt", number), {**checkpoint, "status": status, "metric": median}))
        if not rolled_back:
            head = await get_json(stub, "head")
            writes.append(("head", {**head, "checkpoint": proposed, "metric": median, "round": number}))
        record = {**rules.advance(record, "closed", tx, now),
                  "decision": {"status": status, "metric": median, "improvement": improvement,
                               "endorsements": len(metrics),
                               "banned": sorted(banned + absence_banned)}}
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

    async def GetReputationHistory(self, ctx: TransactionContextInterface, msp_id: str) -> str:
        stub = ctx.get_stub()
        msp_id = rules.check_msp_id("msp_id", msp_id)
        await get_required(stub, f"org~{msp_id}", f"the organization {msp_id}")
        return canonical([entry for _, entry in await list_prefix(stub, f"rephist~{msp_id}~")])
