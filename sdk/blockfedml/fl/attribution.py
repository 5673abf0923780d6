"""Attribution without seeing updates: score groups' aggregates, let reputation follow.

Under secure aggregation nobody sees one member's update, so a harmful update
cannot be traced to its sender directly. What can be opened are sums of
``min_group_size`` members besides anyone who sees them. The contract's allocation already cuts the
participants into such groups, reshuffled every round (``rules.make_groups``);
with the federation setting ``attribution=1`` a round takes one more phase:

1. the aggregator computes each group's aggregate through the aggregation
   seam (in plaintext mode the FedAvg of the group; under encryption the
   opened, authorized group sum) and proposes their digests
   (``ProposeGroups``);
2. every participant values each group by its Shapley value over the round's
   groups, measured on the consortium's common reference set, and endorses
   it (``EndorseGroups``; ``endorse_groups``);
3. the contract scores each group by the trimmed mean of the endorsed
   values and marks it accepted or harmful (``ScoreGroups``);
4. the aggregator proposes the aggregate of the accepted groups only
   (``ProposeAggregate``), which is endorsed and decided as before; a round
   whose groups all harm closes as ``rejected``.

At ``Decide`` reputation flows from groups: members of accepted groups are
rewarded when the aggregate is accepted and improved the model; a member of a
harmful group is penalized only when its partners are trusted, it was singled
out so before, and its own record is bad (group testing with strikes,
``rules.blamed_members``). Over reshuffled rounds an attacker keeps
landing in harmful groups beside trusted partners and sinks to a ban, while an
honest member beside an attacker is not blamed. docs/integrity.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from blockfedml.crypto import secagg
from blockfedml.errors import IntegrityError, PhaseError
from blockfedml.fl.aggregation import MaskingAggregation, RoundContext, SecureAggregation
from blockfedml.fl.member import Member, fetch, publish_for_opening, to_fixed
from blockfedml.ledger.base import canonical_json
from blockfedml.ml.serialization import load_params, put_model

Combine = Callable[[Mapping[str, bytes]], np.ndarray]


def attribution_on(contract: Any) -> bool:
    """Whether the consortium scores groups before aggregating (federation setting ``attribution``)."""
    return bool(contract.evaluate_json("GetSettings").get("attribution"))


def group_aggregates(combine: Combine, sealed: Mapping[str, bytes],
                     groups: Sequence[Sequence[str]]) -> list[np.ndarray | None]:
    """Each group's aggregate, ``combine`` applied to the group's sealed updates only.

    A group with a member whose update is missing gets None (the contract
    wants null for it): a partial group could be smaller than the minimum
    size that keeps one update hidden.
    """
    return [combine({msp: sealed[msp] for msp in members}) if all(msp in sealed for msp in members) else None
            for members in groups]


def propose_groups(member: "Member", round_: Mapping[str, Any]) -> dict[str, Any] | None:
    """The aggregator's step: store every group's aggregate and propose their digests.

    Under secure aggregation a group's aggregate is an opened sum: the first
    call asks the ledger to open one sum per complete group and returns None;
    once the key holder has recorded them all, a second call proposes.
    """
    mode = member.aggregation(round_)
    if isinstance(mode, SecureAggregation):
        groups = _opened_groups(member, round_, mode)
        if groups is None:
            return None
    else:
        groups = group_aggregates(lambda subset: member.combine(round_, subset), member.collect(round_),
                                  round_["groups"])
    digests = []
    for params in groups:
        if params is None:
            digests.append(None)
            continue
        member.model.set_params(params)
        digests.append(put_model(member.store, member.model))
    return member.contract.submit_json("ProposeGroups", round_["round"], digests)


def _opened_groups(member: "Member", round_: Mapping[str, Any],
                   mode: SecureAggregation) -> list[np.ndarray | None] | None:
    """Each group's parameters from its opened sum; None while the openings are asked for or pending.

    The groups are disjoint and each has ``min_group_size + 1`` members,
    which is exactly what the contract lets a secure round open. Under
    masking each member masked against its own group only, so each group's
    sum unmasks alone (see ``masking_group``).
    """
    number = round_["round"]
    requests = member.contract.evaluate_json("GetDecryptions", number)
    if not requests:
        commitments = member.contract.evaluate_json("GetUpdates", number)
        sealed = member.transport.collect(number, commitments)
        context = member.round_context(dict(round_), weights={c["msp_id"]: c["num_samples"] for c in commitments})
        publish_for_opening(member.store, mode, sealed)
        for members in round_["groups"]:
            if all(msp in sealed for msp in members):
                scoped = group_context(context, members) if isinstance(mode, MaskingAggregation) else context
                digest = member.store.put(mode.sum({msp: sealed[msp] for msp in members}, scoped))
                member.contract.submit_json("RequestDecryption", number, digest, sorted(members))
        return None
    if isinstance(mode, MaskingAggregation) and any(r["result"] is None for r in requests):
        if not _unmask_groups(member, round_, mode, requests):
            return None  # fewer revealed shares than the threshold so far
        requests = member.contract.evaluate_json("GetDecryptions", number)
    if any(r["result"] is None for r in requests):
        return None
    opened = {tuple(r["contributors"]): _finish(member, mode, number, r) for r in requests}
    return [opened.get(tuple(sorted(members))) for members in round_["groups"]]


# -- masking: masks scoped to the allocation groups ------------------------------------------
# A masking round opens a single sum because every member masks against every
# other: the pairwise masks cancel only in the sum over all of them. With
# attribution each member masks against the members of its own allocation
# group only (``masking_group``; the groups are on the ledger before anyone
# seals), so each group's masks cancel in that group's sum and the groups'
# sums unmask one by one: the members reveal the self-mask seed shares of the
# members of the requested groups (``reveal_group_shares``), the aggregator
# removes the self-masks of each group's sum (``_unmask_groups``). The
# contract opens only whole allocation groups of such a round
# (``rules.check_decryption_request``), each of ``min_group_size + 1``
# members, so no sum of fewer is ever unmasked; a group whose member sent
# nothing is never requested, and no member's mask key is ever revealed (no
# one is "dropped" inside an opened group), so the pairwise masks inside a
# group stay secret and one member's update stays hidden under them.

GROUP_REVEALS = "group-share-reveals"


def masking_group(member: "Member", round_: Mapping[str, Any]) -> list[str] | None:
    """The members this member masks against: its own allocation group in a masking round with
    attribution (sorted), or None (every participant, as in any masking round)."""
    if round_.get("mode") != "masking" or not round_.get("groups") or not attribution_on(member.contract):
        return None
    return next((sorted(g) for g in round_["groups"] if member.msp_id in g), None)


def group_context(context: RoundContext, members: Sequence[str]) -> RoundContext:
    """A masking round context narrowed to one group: its members' mask keys only."""
    missing = sorted(set(members) - set(context.mask_keys))
    if missing:
        raise PhaseError(f"round {context.round}: {missing} advertised no mask keys")
    return replace(context, participants=tuple(sorted(members)),  # masks cancel within the group: its
                   mask_keys={m: context.mask_keys[m] for m in members}, graph=None)  # complete graph


def group_unmasking_requested(member: "Member", round_: Mapping[str, Any]) -> bool:
    """Whether the aggregator has asked for every complete group's sum, so the member may reveal
    once for all of them (a member that revealed after the first request only could not reveal
    again for the others)."""
    number = round_["round"]
    requests = member.contract.evaluate_json("GetDecryptions", number)
    committed = {u["msp_id"] for u in member.contract.evaluate_json("GetUpdates", number)}
    complete = [g for g in round_["groups"] if set(g) <= committed]
    return bool(requests) and len(requests) >= len(complete)


def reveal_group_shares(member: "Member", round_: Mapping[str, Any]) -> dict[str, Any] | None:
    """A participant's step: for each requested group, the self-mask seed shares it holds of that
    group's members (never a mask key), sealed to the aggregator; one blob for all the groups."""
    number = round_["round"]
    requests = member.contract.evaluate_json("GetDecryptions", number)
    if all(r["result"] is not None for r in requests):
        return None
    context = member.round_context(dict(round_))
    bundles = member._bundles(dict(round_))
    mode = MaskingAggregation()
    reveals = {str(r["index"]): mode.reveal(member.msp_id, {m: bundles[m] for m in r["contributors"]},
                                            r["contributors"], round_["aggregator"],
                                            group_context(context, r["contributors"])).hex()
               for r in requests}
    blob = secagg.pack(GROUP_REVEALS, {"round": number, "org": member.msp_id}, canonical_json(reveals).encode())
    return member.contract.submit_json("RevealMaskShares", number, member.store.put(blob), len(blob))


def _unmask_groups(member: "Member", round_: Mapping[str, Any], mode: MaskingAggregation,
                   requests: Sequence[Mapping[str, Any]]) -> bool:
    """The aggregator's step: remove the self-masks of every pending group sum and record it;
    False while fewer members than the threshold have revealed."""
    number = round_["round"]
    revealed = member.contract.evaluate_json("GetMaskReveals", number)
    if len(revealed) < round_["mask_threshold"]:
        return False
    blobs = {}
    for record in revealed:
        header, payload = secagg.unpack(fetch(member.store, record), GROUP_REVEALS)
        secagg.expect(header, round=number, org=record["msp_id"])
        blobs[record["msp_id"]] = json.loads(payload)
    context = member.round_context(dict(round_))
    bundles = member._bundles(dict(round_))
    for request in requests:
        if request["result"] is not None:
            continue
        group, index = request["contributors"], str(request["index"])
        reveals = {msp: bytes.fromhex(body[index]) for msp, body in blobs.items() if index in body}
        result, opening = mode.unmask(fetch(member.store, request), reveals, {m: bundles[m] for m in group},
                                      member.msp_id, group, request["weight"], group_context(context, group))
        member.contract.submit_json("RecordDecryption", number, request["index"], member.store.put(result),
                                    member.store.put(opening))
    return True


def accepted_secure_aggregate(member: "Member", round_: Mapping[str, Any], mode: SecureAggregation) -> np.ndarray:
    """The accepted groups' aggregate from their opened sums, weighted by each sum's recorded weight.

    Nothing new is decrypted: the result is the FedAvg of the union of the
    accepted groups, which the contract accepts as a union of whole opened sums.
    """
    accepted = set(round_["attribution"]["accepted"])
    chosen = [r for r in member.contract.evaluate_json("GetDecryptions", round_["round"])
              if set(r["contributors"]) <= accepted]
    if {msp for r in chosen for msp in r["contributors"]} != accepted:
        raise IntegrityError(f"round {round_['round']}: the opened sums do not cover the accepted groups "
                             f"{sorted(accepted)}")
    return mode.finish_sums([(fetch(member.store, r["result"]), r["contributors"], r["weight"]) for r in chosen],
                            round_["round"])


def _finish(member: "Member", mode: SecureAggregation, number: int, request: Mapping[str, Any]) -> np.ndarray:
    return mode.finish(fetch(member.store, request["result"]), number, request["contributors"], request["weight"])


def endorse_groups(member: "Member", round_: Mapping[str, Any]) -> dict[str, Any]:
    """A participant's step: how much each group contributes, measured on the member's endorsement data.

    With ``attribution_reference=1`` (the default) the member values each
    group by its **Shapley value** over the round's groups (``shapley``): the
    metric of a coalition of groups is that of their aggregate (the weighted
    average of the group aggregates, by committed sample counts; the empty
    coalition is the base checkpoint), and a group's value is its average
    marginal gain over the orders in which groups could join. It endorses the
    metric of all groups as ``base_metric`` and, per group, that metric minus
    the group's value — for two groups, exactly the metric without it — so the
    contract's score (``base - metric``) is the Shapley value. Why Shapley and
    not simply each group against the base checkpoint: a group of honest
    members holding classes nobody else has helps the whole model even though
    its own aggregate, alone, is worse than the base on everyone else's
    classes, so skew is not read as harm. Why not only leave-one-group-out:
    with several harmful groups the model of all groups is already ruined, and
    removing any single one changes little (three noise attackers in ten
    members went unseen that way). With 0, each group's aggregate is endorsed
    against the base checkpoint.

    The metric is the likelihood of the true labels (``attribution_metric=1``,
    the default), of the worst class (2), or the task's metric (0) (see
    ``measure``), measured on the consortium's common reference set when the
    member holds one (every honest member then reports the same values, so
    liars and shaders are the outliers the trimmed mean drops), else on its
    own validation data.
    """
    settings = member.contract.evaluate_json("GetSettings")
    kind = int(settings.get("attribution_metric", 1))
    contribution = bool(settings.get("attribution_reference", 1))
    groups = round_["attribution"]["groups"]
    present = [i for i, g in enumerate(groups) if g["digest"] is not None]
    base_params = load_params(member.store, round_["base_checkpoint"])[0]
    if contribution:
        counts = {c["msp_id"]: int(c["num_samples"]) for c in member.contract.evaluate_json("GetUpdates", round_["round"])}
        params = [load_params(member.store, groups[i]["digest"])[0] for i in present]
        weights = [sum(counts.get(msp, 0) for msp in groups[i]["members"]) or 1 for i in present]

        def value(coalition: tuple[int, ...]) -> float:
            if not coalition:
                return measure(member, base_params, kind)
            total = sum(weights[j] for j in coalition)
            return measure(member, sum(params[j] * (weights[j] / total) for j in coalition), kind)

        values = shapley(len(present), value, seed=int(round_["round"]))
        base = value(tuple(range(len(present))))
        by_group = dict(zip(present, values))
        metrics = [None if g["digest"] is None else max(0.0, base - by_group[i]) for i, g in enumerate(groups)]
    else:
        metrics = [None if g["digest"] is None else measure(member, load_params(member.store, g["digest"])[0], kind)
                   for g in groups]
        base = measure(member, base_params, kind)
    metrics = member.behaviour.group_endorsement(metrics, [g["members"] for g in groups], round_["round"],
                                                 contribution)
    return member.contract.submit_json(
        "EndorseGroups", round_["round"], [None if m is None else to_fixed(m) for m in metrics], to_fixed(base))


EXACT_SHAPLEY_GROUPS = 10
"""Up to this many groups the Shapley values are exact (2^n coalitions); beyond, sampled."""
SHAPLEY_PERMUTATIONS = 64


def shapley(n: int, value: Callable[[tuple[int, ...]], float], seed: int = 0) -> list[float]:
    """Shapley values of ``n`` players for the coalition ``value`` (coalitions as sorted index tuples).

    Exact for up to ``EXACT_SHAPLEY_GROUPS`` players; beyond, the mean marginal
    over ``SHAPLEY_PERMUTATIONS`` orders drawn from ``seed`` (every endorser of a
    round draws the same ones). Each coalition is evaluated once.
    """
    cache: dict[tuple[int, ...], float] = {}

    def v(members: frozenset[int]) -> float:
        key = tuple(sorted(members))
        if key not in cache:
            cache[key] = value(key)
        return cache[key]

    if n <= EXACT_SHAPLEY_GROUPS:
        from itertools import combinations

        weight = [math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) for k in range(n)]
        result = []
        for i in range(n):
            others = [j for j in range(n) if j != i]
            result.append(sum(weight[k] * (v(frozenset(c) | {i}) - v(frozenset(c)))
                              for k in range(n) for c in combinations(others, k)))
        return result
    rng = np.random.default_rng([seed, n])
    totals = [0.0] * n
    for _ in range(SHAPLEY_PERMUTATIONS):
        joined: frozenset[int] = frozenset()
        for i in rng.permutation(n):
            totals[int(i)] += v(joined | {int(i)}) - v(joined)
            joined = joined | {int(i)}
    return [t / SHAPLEY_PERMUTATIONS for t in totals]


def measure(member: "Member", params: np.ndarray, kind: int = 1) -> float:
    """The metric of these parameters on the member's endorsement data (>= 0, as the ledger needs).

    The data is the consortium's common reference set when the member holds
    one, else its own validation data. ``kind`` is the setting
    ``attribution_metric``: 1 (the default), the likelihood of the true labels
    over all samples; 2, the likelihood of the worst class (a targeted attack
    harms two classes, averaged over ten its damage is diluted five times, but
    on 10 samples per class the worst class is also five times noisier: on
    digits honest groups then score as low as weak attackers); 0, the task's
    metric. Models without a loss (own regression tasks) use the task's metric.
    """
    from blockfedml.data.metrics import score_model

    X, y = member.reference if member.reference is not None else (member.data.X_val, member.data.y_val)
    member.model.set_params(params)
    result = member.model.evaluate(X, y)
    if kind == 2 and "loss" in result:
        y = np.asarray(y)
        return min(math.exp(-float(member.model.evaluate(X[y == c], y[y == c])["loss"])) for c in np.unique(y))
    if kind == 1 and "loss" in result:
        return math.exp(-float(result["loss"]))
    if member.metric not in result:  # e.g. AUC of a numpy model: score its predictions
        result[member.metric] = score_model(member.model, X, y, member.metric)
    return max(0.0, float(result[member.metric]))


def reference_set(task: Any, n_orgs: int) -> tuple[np.ndarray, np.ndarray]:
    """The consortium's common labelled reference set of a demo task: the screening seed set
    (10 samples of every class from the held-out split, seeded), which every member derives alike."""
    from blockfedml.fl.screening import SeedSet
    from blockfedml.fl.task import task_split

    seeds = SeedSet.from_split(task_split(task, n_orgs), seed=task.seed)
    return seeds.X, seeds.y


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
