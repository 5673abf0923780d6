"""Attribution without seeing updates: score groups' aggregates, let reputation follow.

Under secure aggregation nobody sees one member's update, so a harmful update
cannot be traced to its sender directly. What can be opened are sums over at
least ``min_group_size`` members. The contract's allocation already cuts the
participants into such groups, reshuffled every round (``rules.make_groups``);
with the federation setting ``attribution=1`` a round takes one more phase:

1. the aggregator computes each group's aggregate through the aggregation
   seam (in plaintext mode the FedAvg of the group; under encryption the
   opened, authorized group sum) and proposes their digests
   (``ProposeGroups``);
2. every participant evaluates each group aggregate and the base checkpoint
   on its own validation data and endorses the metrics (``EndorseGroups``);
3. the contract scores each group by the trimmed mean of the endorsed
   improvements and marks it accepted or harmful (``ScoreGroups``);
4. the aggregator proposes the aggregate of the accepted groups only
   (``ProposeAggregate``), which is endorsed and decided as before; a round
   whose groups all harm closes as ``rejected``.

At ``Decide`` reputation flows from groups: members of accepted groups are
rewarded when the aggregate is accepted; a member of a harmful group is
penalized only when its partners are trusted and its own record is bad (group
testing, ``rules.blamed_members``). Over reshuffled rounds an attacker keeps
landing in harmful groups beside trusted partners and sinks to a ban, while an
honest member beside an attacker is not blamed. docs/integrity.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from blockfedml.errors import IntegrityError
from blockfedml.fl.member import Member, to_fixed
from blockfedml.ml.serialization import put_model

Combine = Callable[[Mapping[str, bytes]], np.ndarray]


def group_aggregates(combine: Combine, sealed: Mapping[str, bytes],
                     groups: Sequence[Sequence[str]]) -> list[np.ndarray | None]:
    """Each group's aggregate, ``combine`` applied to the group's sealed updates only.

    A group with a member whose update is missing gets None (the contract
    wants null for it): a partial group could be smaller than the minimum
    size that keeps one update hidden.
    """
    return [combine({msp: sealed[msp] for msp in members}) if all(msp in sealed for msp in members) else None
            for members in groups]


def propose_groups(member: "Member", round_: Mapping[str, Any]) -> dict[str, Any]:
    """The aggregator's step: store every group's aggregate and propose their digests."""
    sealed = member.collect(round_)
    digests = []
    for params in group_aggregates(lambda subset: member.combine(round_, subset), sealed, round_["groups"]):
        if params is None:
            digests.append(None)
            continue
        member.model.set_params(params)
        digests.append(put_model(member.store, member.model))
    return member.contract.submit_json("ProposeGroups", round_["round"], digests)


def endorse_groups(member: "Member", round_: Mapping[str, Any]) -> dict[str, Any]:
    """A participant's step: its metric of each group aggregate and of the base, on its own data."""
    groups = round_["attribution"]["groups"]
    metrics = [None if g["digest"] is None else member._evaluate(g["digest"]) for g in groups]
    base = member._evaluate(round_["base_checkpoint"])
    metrics = member.behaviour.group_endorsement(metrics, [g["members"] for g in groups])
    return member.contract.submit_json(
        "EndorseGroups", round_["round"], [None if m is None else to_fixed(m) for m in metrics], to_fixed(base))


def accepted_updates(round_: Mapping[str, Any], sealed: Mapping[str, bytes]) -> dict[str, bytes]:
    """The sealed updates the round's aggregate may hold: all of them, or the accepted groups' only."""
    attribution = round_.get("attribution")
    if attribution is None:
        return dict(sealed)
    accepted = attribution["accepted"]
    missing = [msp for msp in accepted if msp not in sealed]
    if missing:
        raise IntegrityError(f"round {round_['round']}: accepted groups hold {missing}, "
                             "whose updates the aggregator did not receive")
    return {msp: sealed[msp] for msp in accepted}


def summary(contract: Any, msp_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Per organization: status, balance, and its rounds in accepted and harmful groups and blames."""
    orgs = {o["msp_id"]: o for o in contract.evaluate_json("ListOrgs")}
    rows = []
    for msp in msp_ids:
        record = contract.evaluate_json("GetAttribution", msp)
        balance = contract.evaluate_json("GetReputation", msp)["balance"] if orgs[msp]["status"] != "registered" \
            else None
        rows.append({"msp_id": msp, "status": orgs[msp]["status"], "balance": balance, **record})
    return rows
