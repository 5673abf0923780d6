"""Transactions of the attribution phase: group aggregates, their endorsements and scores.

See docs/integrity.md; the scoring and settlement rules are pure functions in ``rules.py``."""

from __future__ import annotations

from . import rules
from .errors import EXISTS, INVALID, PHASE, UNAUTHORIZED, ContractError
from .shim import TransactionContextInterface
from .state import (
    caller_of,
    canonical,
    get_json,
    get_required,
    get_round,
    get_writer,
    list_by_msp,
    put_json,
    require_absent,
    require_admin,
    require_participant,
    round_key,
    round_records,
    tx_of,
)


class AttributionTransactions:
    """Mixed into ``FederationContract`` (contract.py): the same contract, its own module."""

    async def ProposeGroups(self, ctx: TransactionContextInterface, round: str, digests_json: str) -> str:
        """With attribution on, the aggregator proposes one aggregate per allocation group (or null).

        The round enters phase attribution; every group has min_group_size + 1 members
        (rules.make_groups), so each member who endorses a group's aggregate still finds
        min_group_size others in it and no single update is ever revealed.
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
        """Score each group by the trimmed mean of its endorsed contributions; fix the accepted groups."""
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
        scores = rules.scores_of(endorsements, [g["digest"] for g in groups], settings)
        verdicts = [rules.group_verdict(score, rules.setting(settings, "attribution_tolerance"),
                                        rules.group_metric_higher_is_better(settings)) for score in scores]
        tx, _ = tx_of(ctx)
        record = {**record, "attribution": {
            "groups": [{**g, "score": score, "verdict": verdict} for g, score, verdict in zip(groups, scores, verdicts)],
            "accepted": rules.accepted_members([g["members"] for g in groups], verdicts),
            "endorsements": len(endorsements), "tx": tx}}
        await put_json(stub, round_key("round", number), record)
        return canonical(record)

    async def GetGroupEndorsements(self, ctx: TransactionContextInterface, round: str) -> str:
        return await round_records(ctx, "gendorse", round)

    async def GetAttribution(self, ctx: TransactionContextInterface, msp_id: str) -> str:
        """Rounds in accepted and harmful groups, and blames, of one organization (zeros before any)."""
        stub = ctx.get_stub()
        msp_id = rules.check_msp_id("msp_id", msp_id)
        await get_required(stub, f"org~{msp_id}", f"the organization {msp_id}")
        return canonical(await get_json(stub, f"attr~{msp_id}") or rules.new_attribution())
