"""Attribution rounds recomputed with the contract's own rules (docs/integrity.md).

``check_group_scores`` rescores every group from the recorded group endorsements
(``rules.group_scores``, ``group_verdict``, ``accepted_members``, with the
settings in force at ScoreGroups); ``settlements`` replays what each Decide
did to reputation (``rules.attribution_outcome``: group rewards, blame of the
member its partners' record singles out) and every member's group record, so
``checks.check_reputation`` can rebuild the balances from the history.
"""

from __future__ import annotations

from typing import Any

from blockfedml_chaincode import rules
from blockfedml_chaincode.errors import ContractError

from blockfedml.audit.evidence import Record, phase_tx
from blockfedml.audit.findings import Check


def check_group_scores(check: Check, ctx: Any, record: Record) -> None:
    """Each group's score and verdict, the accepted members and the endorsement count, recomputed
    from the group endorsements with ``rules.group_scores`` / ``group_verdict`` / ``accepted_members``
    and the settings in force at ScoreGroups; the proposal holds exactly the accepted members."""
    number, attribution = record["round"], record["attribution"]
    tx, key = attribution.get("tx"), f"round~{number:08d}"
    settings = ctx.settings_at(tx)
    endorsements = ctx.state.group_endorsements.get(number, [])
    participants = record.get("participants") or []
    for e in endorsements:
        if e["msp_id"] not in participants:
            check.fail(f"{e['msp_id']} endorsed the groups without being a participant", round=number,
                       tx=ctx.writer("EndorseGroups", number, e["msp_id"]), object=f"gendorse~{number:08d}~{e['msp_id']}")
    needed = rules.quorum_size(settings["quorum_percent"], len(participants))
    if len(endorsements) < needed:
        check.fail(f"groups scored with {len(endorsements)} group endorsements, the quorum is {needed}",
                   round=number, tx=tx, object=key)
        return
    groups = attribution["groups"]
    try:
        scores = rules.scores_of(endorsements, [g["digest"] for g in groups], settings)
    except (ContractError, IndexError, TypeError) as exc:
        check.fail(f"the group endorsements cannot be scored: {exc}", round=number, tx=tx, object=key)
        return
    higher = rules.group_metric_higher_is_better(settings)
    verdicts = [rules.group_verdict(score, rules.setting(settings, "attribution_tolerance"), higher)
                for score in scores]
    for index, (group, score, verdict) in enumerate(zip(groups, scores, verdicts)):
        if (group.get("score"), group.get("verdict")) != (score, verdict):
            check.fail(f"group {index} ({', '.join(group['members'])}) is recorded with score {group.get('score')} "
                       f"({group.get('verdict')}), the rules give {score} ({verdict}) from {len(endorsements)} "
                       f"endorsements", round=number, tx=tx, object=f"{key} group {index}")
    expected = {"accepted": rules.accepted_members([g["members"] for g in groups], verdicts),
                "endorsements": len(endorsements)}
    for name, value in expected.items():
        if attribution.get(name) != value:
            check.fail(f"attribution {name} is {attribution.get(name)!r}, the rules give {value!r}",
                       round=number, tx=tx, object=key)
    proposal = record.get("proposal")
    if proposal is not None and proposal.get("contributors") != expected["accepted"]:
        check.fail(f"the proposal's contributors {proposal.get('contributors')} are not the accepted groups' "
                   f"members {expected['accepted']}", round=number, tx=phase_tx(record, "feedback"), object=key)


def settlements(ctx: Any, decided: list[Record]
                ) -> tuple[dict[int, dict[str, tuple[int, str]]], dict[str, dict[str, int]]]:
    """Per attribution round, the balance changes its Decide made (``rules.attribution_outcome``
    over the recorded verdicts and every member's group record before it, with the settings in
    force at Decide), and every member's group record after the last round."""
    records: dict[str, dict[str, int]] = {}
    settlements: dict[int, dict[str, tuple[int, str]]] = {}
    for record in decided:
        if record.get("attribution") is None:
            continue
        settings = ctx.settings_at(phase_tx(record, "closed"))
        groups = record["attribution"]["groups"]
        changes, updated = rules.attribution_outcome(
            [g["members"] for g in groups], [g["verdict"] for g in groups], records,
            record["decision"].get("status") == rules.ACCEPTED
            and rules.improved(record["decision"].get("improvement") or 0, settings["higher_is_better"]),
            settings["reward"], settings["penalty"], rules.groups_helped(groups, settings),
            rules.groups_severe(groups, settings))
        records.update(updated)
        settlements[record["round"]] = changes
    return settlements, records
