"""The auditor's recomputations over the federation's records.

Each check reads the world state (``WorldState``, through the contract's
queries, so it runs on Fabric too), the model store where it is at hand, and
the blocks where they are local (``BlockHistory``: transaction index and the
settings in force at each block). Decisions are recomputed with the
contract's own pure functions (``blockfedml_chaincode.rules``): the audit
never re-implements a rule, so it cannot drift from what the contract does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from blockfedml_chaincode import deadlines, rules
from blockfedml_chaincode.errors import ContractError

from blockfedml.audit import recompute, secure
from blockfedml.audit.evidence import Record, WorldState, phase_tx
from blockfedml.audit.findings import Check, CheckResult
from blockfedml.audit.groups import check_group_scores, settlements as attribution_settlements
from blockfedml.audit.replay import BlockHistory, TxRecord
from blockfedml.errors import (BlockFedMLError, CryptoError, IntegrityError, NotAuthorizedError,
                               NotFoundError)
from blockfedml.ml.serialization import params_from_bytes, params_to_bytes
from blockfedml.store import ModelStore
from blockfedml.store.model_store import sha256_hex

TITLES = {
    "checkpoints": "checkpoint chain from genesis, models re-hashed",
    "rounds": "phase sequence and allocation",
    "aggregates": "aggregates recomputed from the committed updates",
    "decisions": "rollbacks recomputed from the endorsements",
    "reputation": "balances recomputed from rewards and penalties",
}

RECOVERY_FUNCTIONS = {"configuration": ("ClosePhase",), "allocation": ("ClosePhase",), "update": ("ClosePhase",),
                      "closed": ("ClosePhase", "AbortRound")}
PHASE_FUNCTIONS = {"selection": "OpenRound", "configuration": "CloseSelection", "allocation": "Allocate",
                   "update": "Allocate", "attribution": "ProposeGroups", "feedback": "ProposeAggregate",
                   "closed": "Decide"}
#: A round whose selected members all accepted while screening (EnterRound) is allocated by the very
#: transaction that closes its selection: its configuration, allocation and update entries name it.
ALLOCATED_AT_ONCE = {"allocation", "update"}


@dataclass
class AuditContext:
    """What the checks read: world state, and the store and blocks when they are available."""

    state: WorldState
    store: ModelStore | None = None
    blocks: BlockHistory | None = None

    def settings_at(self, tx_id: str | None) -> dict[str, Any]:
        """Settings in force at a transaction; without blocks (Fabric) the current ones."""
        found = self.blocks.settings_at(tx_id) if self.blocks is not None else None
        return found if found is not None else self.state.settings

    def tx(self, tx_id: str | None) -> TxRecord | None:
        return None if self.blocks is None else self.blocks.txs.get(tx_id or "")

    def writer(self, function: str, round_number: int, creator: str) -> str | None:
        """The valid transaction of ``function`` by ``creator`` in a round (blocks only)."""
        return None if self.blocks is None else self.blocks.writer(function, round_number, creator)


def short(digest: str | None) -> str:
    return (digest or "-")[:16]


# --------------------------------------------------------------------------
# The checkpoint chain
# --------------------------------------------------------------------------

def check_checkpoints(ctx: AuditContext) -> CheckResult:
    """Genesis, then every round's checkpoint: parent = the head the round was opened on,
    digest/contributors/status/metric = the round's proposal and decision; head = the last
    accepted one; every accepted model in the store hashes to its digest."""
    check = Check("checkpoints", TITLES["checkpoints"])
    s = ctx.state
    genesis = s.checkpoint(0)
    if genesis is None:
        check.fail("there is no genesis checkpoint", round=0, object="ckpt~00000000")
        return check.result()
    if (genesis.get("status"), genesis.get("parent")) != (rules.ACCEPTED, ""):
        check.fail(f"genesis has status {genesis.get('status')!r} and parent {genesis.get('parent')!r}, "
                   "expected accepted with no parent", round=0, tx=genesis.get("tx"), object="ckpt~00000000")
    if genesis.get("digest") != s.consortium.get("genesis"):
        check.fail(f"genesis digest {short(genesis.get('digest'))} is not the consortium's genesis "
                   f"{short(s.consortium.get('genesis'))}", round=0, tx=genesis.get("tx"), object="ckpt~00000000")
    head = {"checkpoint": genesis.get("digest"), "metric": genesis.get("metric"), "round": 0}
    for record in s.rounds:
        head = _check_round_checkpoint(check, ctx, record, head)
    for ckpt in s.checkpoints:
        if ckpt["round"] and s.round(ckpt["round"]) is None:
            check.fail("a checkpoint exists for a round that was never opened", round=ckpt["round"],
                       tx=ckpt.get("tx"), object=f"ckpt~{ckpt['round']:08d}")
    last_round = s.rounds[-1]["round"] if s.rounds else 0
    for key, value in (*head.items(), ("last_round", last_round)):
        if s.head.get(key) != value:
            check.fail(f"head {key} is {s.head.get(key)!r}, the chain gives {value!r}", object="head")
    rehashed = _rehash_models(check, ctx)
    return check.result(f"{len(s.checkpoints)} checkpoints linked to genesis, {rehashed} stored models re-hashed")


def _check_round_checkpoint(check: Check, ctx: AuditContext, record: Record, head: dict) -> dict:
    number = record["round"]
    if (record.get("base_checkpoint"), record.get("base_metric")) != (head["checkpoint"], head["metric"]):
        check.fail(f"opened on checkpoint {short(record.get('base_checkpoint'))} (metric "
                   f"{record.get('base_metric')}), but the last accepted checkpoint was "
                   f"{short(head['checkpoint'])} of round {head['round']} (metric {head['metric']})",
                   round=number, tx=phase_tx(record, "selection"), object=f"round~{number:08d}")
    ckpt, proposal, decision = ctx.state.checkpoint(number), record.get("proposal"), record.get("decision")
    if proposal is None:
        if ckpt is not None:
            check.fail("a checkpoint exists but the round has no proposal", round=number,
                       tx=ckpt.get("tx"), object=f"ckpt~{number:08d}")
        return head
    if ckpt is None:
        check.fail(f"the round proposed {short(proposal['digest'])} but has no checkpoint record",
                   round=number, tx=phase_tx(record, "feedback"), object=f"ckpt~{number:08d}")
        return head
    expected = {"round": number, "digest": proposal["digest"], "parent": record.get("base_checkpoint"),
                "contributors": proposal.get("contributors"), "tx": phase_tx(record, "feedback"),
                "status": decision["status"] if decision else rules.PROPOSED,
                "metric": decision.get("metric") if decision else None}
    for key, value in expected.items():
        if ckpt.get(key) != value:
            check.fail(f"checkpoint {key} is {ckpt.get(key)!r}, but its round says {value!r}",
                       round=number, tx=ckpt.get("tx"), object=f"ckpt~{number:08d}")
    if decision and decision.get("status") == rules.ACCEPTED:
        return {"checkpoint": proposal["digest"], "metric": decision.get("metric"), "round": number}
    return head


def _rehash_models(check: Check, ctx: AuditContext) -> int:
    """Re-hash every accepted model (and any other checkpoint the store keeps)."""
    if ctx.store is None:
        check.skip("there is no model store here: stored models were not re-hashed")
        return 0
    rehashed = 0
    for ckpt in ctx.state.checkpoints:
        digest, number = ckpt.get("digest"), ckpt["round"]
        accepted = ckpt.get("status") == rules.ACCEPTED
        try:
            if not accepted and not ctx.store.available(digest):
                continue  # a rejected proposal's model need not be kept
            ctx.store.get(digest)
            rehashed += 1
            check.checked += 1
        except NotFoundError as exc:
            check.fail(f"the accepted model {digest} is missing: no holder could produce it ({exc})",
                       round=number, tx=ckpt.get("tx"), object=f"model {digest}")
        except BlockFedMLError as exc:
            check.fail(str(exc), round=number, tx=ckpt.get("tx"), object=f"model {digest}")
    return rehashed


# --------------------------------------------------------------------------
# Rounds: phase sequence and allocation
# --------------------------------------------------------------------------

def check_rounds(ctx: AuditContext) -> CheckResult:
    """Each round went through the phases in the allowed order, each phase by the right
    transaction, and its selection, participants, aggregator and groups follow the rules."""
    check = Check("rounds", TITLES["rounds"])
    s = ctx.state
    numbers = [r["round"] for r in s.rounds]
    if numbers != list(range(1, len(numbers) + 1)):
        check.fail(f"rounds are numbered {numbers}, not 1..{len(numbers)}", object="round~*")
    seen_tx: dict[str, int] = {}
    for record in s.rounds:
        _check_phases(check, ctx, record, is_last=record is s.rounds[-1], seen_tx=seen_tx)
        _check_allocation(check, ctx, record)
        check.checked += 1
    return check.result(f"{len(s.rounds)} rounds")


def _check_phases(check: Check, ctx: AuditContext, record: Record, is_last: bool,
                  seen_tx: dict[str, int]) -> None:
    number, key = record["round"], f"round~{record['round']:08d}"
    history = record.get("history") or []
    phases = [h.get("phase") for h in history]
    allowed = expected_phases(ctx.settings_at(phase_tx(record, "selection")))
    if (record.get("decision") or {}).get("status") == rules.REJECTED:  # every group harmed: no feedback
        allowed = [p for p in allowed if p != "feedback"]
    if (record.get("decision") or {}).get("status") == rules.ABORTED and phases[-1:] == ["closed"]:
        allowed = allowed[:len(phases) - 1] + ["closed"]  # aborted in whatever phase it had reached
    if phases != allowed[:len(phases)] or not phases:
        check.fail(f"phases {phases} are not in the allowed order {allowed}", round=number, object=key)
        return
    if record.get("phase") != phases[-1]:
        check.fail(f"phase is {record.get('phase')!r} but its history ends in {phases[-1]!r}",
                   round=number, tx=history[-1].get("tx"), object=key)
    if not is_last and phases[-1] != "closed":
        check.fail(f"round is still in phase {phases[-1]} but a later round was opened", round=number, object=key)
    if (record.get("proposal") is not None) != ("feedback" in phases):
        check.fail("a proposal exists exactly when the round reached feedback, not here", round=number, object=key)
    if (record.get("decision") is not None) != ("closed" in phases):
        check.fail("a decision exists exactly when the round is closed, not here", round=number, object=key)
    times = [h.get("time", 0) for h in history]
    if times != sorted(times):
        check.fail(f"phase times {times} go backwards", round=number, object=key)
    by_phase = {h["phase"]: h for h in history}
    if "update" in by_phase and by_phase["update"].get("tx") != by_phase["allocation"].get("tx"):
        check.fail("allocation and update were not recorded by the same Allocate transaction",
                   round=number, tx=by_phase["update"].get("tx"), object=key)
    for entry in history:
        tx_id, phase = entry.get("tx"), entry["phase"]
        if seen_tx.setdefault(tx_id, number) != number:
            check.fail(f"phase {phase} names a transaction that round {seen_tx[tx_id]} names too",
                       round=number, tx=tx_id, object=key)
        if ctx.blocks is None:
            continue
        tx = ctx.tx(tx_id)
        expected = PHASE_FUNCTIONS.get(phase, tx.function if tx else None)
        if tx is not None and tx.function in RECOVERY_FUNCTIONS.get(phase, ()):
            expected = tx.function  # closed at its deadline, or aborted (docs/operations.md)
        if phase in ALLOCATED_AT_ONCE and tx_id == by_phase.get("configuration", {}).get("tx") \
                and tx is not None and tx.function == PHASE_FUNCTIONS["configuration"]:
            expected = tx.function  # allocated when its selection closed
        if tx is None or not tx.valid:
            check.fail(f"phase {phase} names a transaction that is not a valid transaction on the ledger",
                       round=number, tx=tx_id, object=key)
        elif (tx.function, tx.round, tx.time) != (expected, number, entry.get("time")):
            check.fail(f"phase {phase} names {tx.function} of round {tx.round} at time {tx.time} "
                       f"(block {tx.block}), expected {expected} of round {number} at {entry.get('time')}",
                       round=number, tx=tx_id, object=key)


def expected_phases(settings: dict[str, Any]) -> list[str]:
    """The phases a round goes through under ``settings`` (settings cannot change while a
    round is open): every phase of ``rules.PHASES``, attribution only when it is switched on."""
    return [p for p in rules.PHASES if p != "attribution" or settings.get("attribution")]


def _check_allocation(check: Check, ctx: AuditContext, record: Record) -> None:
    number, key = record["round"], f"round~{record['round']:08d}"
    favorable = {s["msp_id"] for s in ctx.state.screenings.get(number, []) if s.get("verdict") == 1}
    selected, participants = record.get("selected") or [], record.get("participants") or []
    if set(selected) - favorable:
        check.fail(f"selected {sorted(set(selected) - favorable)} without a favorable screening",
                   round=number, tx=phase_tx(record, "configuration"), object=key)
    for kind, rows in (("update", ctx.state.updates), ("endorse", ctx.state.endorsements)):
        for row in rows.get(number, []):
            if row["msp_id"] not in participants:
                check.fail(f"{row['msp_id']} wrote an {kind} record without being a participant", round=number,
                           tx=ctx.writer("CommitUpdate" if kind == "update" else "Endorse", number, row["msp_id"]),
                           object=f"{kind}~{number:08d}~{row['msp_id']}")
    if not participants:
        return
    allocate_tx = phase_tx(record, "allocation")
    if set(participants) - set(selected):
        check.fail(f"participants {sorted(set(participants) - set(selected))} were not selected",
                   round=number, tx=allocate_tx, object=key)
    settings = ctx.settings_at(allocate_tx)
    try:
        expected = {"aggregator": rules.choose_aggregator(participants, number),
                    "groups": rules.allocation_groups(participants, number, settings)}
        absent: set[str] = set()
        started = {h.get("phase"): h.get("time", 0) for h in record.get("history") or []}
        for closure in record.get("closures") or []:  # an absent aggregator is replaced (ClosePhase)
            absent |= set(closure.get("absent") or [])
            phase, time = closure.get("phase"), closure.get("time", 0)
            seconds = rules.setting(settings, f"{phase}_deadline") if phase in started else 0
            if not closure.get("reason") and (not seconds or time < started[phase] + seconds):
                check.fail(f"the {phase} phase was closed at time {time}, before its deadline "
                           f"({started.get(phase)} + {phase}_deadline={seconds})", round=number,
                           tx=closure.get("tx"), object=key)
            started[phase] = max(started.get(phase, 0), time)  # the deadline counts again from here
            if closure.get("phase") == "update" and expected["aggregator"] in absent:
                expected["aggregator"] = rules.choose_aggregator(sorted(set(participants) - absent), number)
            if closure.get("aggregator") != expected["aggregator"]:
                check.fail(f"closure at time {closure.get('time')} names aggregator {closure.get('aggregator')!r}, "
                           f"the rules give {expected['aggregator']!r}", round=number, tx=closure.get("tx"),
                           object=key)
        if sorted(absent) != sorted(record.get("absent") or []):
            check.fail(f"absent is {record.get('absent')!r}, its closures give {sorted(absent)!r}",
                       round=number, object=key)
    except ContractError as exc:
        check.fail(f"the participants cannot be allocated: {exc}", round=number, tx=allocate_tx, object=key)
        return
    for field_name, value in expected.items():
        if record.get(field_name) != value:
            check.fail(f"{field_name} is {record.get(field_name)!r}, the rules give {value!r}",
                       round=number, tx=allocate_tx, object=key)


# --------------------------------------------------------------------------
# Aggregates: recomputed from the committed updates
# --------------------------------------------------------------------------

def check_aggregates(ctx: AuditContext) -> CheckResult:
    """Every proposed aggregate is what the round's aggregation mode makes of exactly the
    contributors' committed updates: blobs re-hashed against their commitments, then combined
    by the audit's own FedAvg (plaintext) or, in a secure mode, summed again and checked
    against every authorized sum and its re-checked opening (``audit.secure``, on the audit's
    own arithmetic in ``audit.recompute``, never the members' ``blockfedml.fl``); the
    result's digest is compared with the proposal, and with attribution each group's too."""
    check = Check("aggregates", TITLES["aggregates"])
    rounds = [r for r in ctx.state.rounds if r.get("proposal") or _group_digests(r)]
    counts = {"aggregates": 0, "groups": 0}
    for record in rounds:
        _check_aggregate(check, ctx, record, counts)
    proposed = sum(1 for r in rounds if r.get("proposal"))
    detail = f"{counts['aggregates']} of {proposed} aggregates recomputed"
    sums = sum(len(ctx.state.decryptions.get(r["round"], [])) for r in rounds)
    if counts["groups"]:
        detail += f", {counts['groups']} group aggregates"
    if sums:
        detail += f", {sums} authorized sums re-summed from the committed blobs and their openings re-checked"
    return check.result(detail)


def _group_digests(record: Record) -> list[tuple[int, list[str], str]]:
    """(index, members, digest) of every group aggregate an attribution round proposed."""
    groups = (record.get("attribution") or {}).get("groups") or []
    return [(i, sorted(g["members"]), g["digest"]) for i, g in enumerate(groups) if g.get("digest")]


def _check_aggregate(check: Check, ctx: AuditContext, record: Record, counts: dict[str, int]) -> None:
    number, proposal = record["round"], record.get("proposal")
    propose_tx = phase_tx(record, "feedback")
    commitments = {u["msp_id"]: u for u in ctx.state.updates.get(number, [])}
    contributors = (proposal or {}).get("contributors") or []
    failures = len(check.findings)
    for msp in contributors:
        if msp not in commitments:
            check.fail(f"contributor {msp} committed no update", round=number, tx=propose_tx,
                       object=f"update~{number:08d}~{msp}")
    if ctx.store is None:
        check.skip(f"round {number}: there is no model store here, the aggregate cannot be recomputed")
        return
    mode_name = record.get("mode")
    secure_mode = mode_name in secure.SECURE_MODES
    if mode_name != "plaintext" and not secure_mode:
        check.skip(f"round {number}: this SDK cannot recompute mode {mode_name!r} (it knows plaintext, "
                   f"{', '.join(secure.SECURE_MODES)})")
        return
    groups = _group_digests(record)
    needed = set(contributors) | {m for _, members, _ in groups for m in members}
    for request in ctx.state.decryptions.get(number, []):
        needed |= set(request["contributors"])
    blobs = _committed_blobs(check, ctx, number, sorted(needed), commitments, masked=mode_name == "masking")
    if len(check.findings) > failures or blobs is None:
        return
    meta = _model_meta(ctx.store, (proposal or {}).get("digest"), *(d for _, _, d in groups),
                       record.get("base_checkpoint"))
    if meta is None:
        check.skip(f"round {number}: neither the proposed nor the base model is kept, so the model's "
                   "description needed to hash the aggregate is unknown")
        return
    if secure_mode:
        opened = secure.opened_sums(check, ctx, record, blobs)
        if opened is None:
            return
        requests = ctx.state.decryptions.get(number, [])
        by_members = {tuple(sorted(r["contributors"])): r for r in requests}

        def combine(members: list[str]) -> np.ndarray:
            return secure.aggregate_of(record, requests, opened, members)
    else:
        def combine(members: list[str]) -> np.ndarray:
            return recompute.fedavg({m: blobs[m] for m in members})
    for index, members, digest in groups:
        if secure_mode and tuple(members) not in by_members:
            check.fail(f"group {index} ({', '.join(members)}) has an aggregate but no opened sum of its own",
                       round=number, tx=phase_tx(record, "attribution"), object=f"group {index} of round {number}")
            continue
        params = _recompute(check, combine, members, number, phase_tx(record, "attribution"),
                            f"group {index}'s {mode_name} aggregate", f"group {index} of round {number}")
        if params is not None:
            counts["groups"] += 1
            _compare(check, params, meta, digest, f"group {index} aggregate of {', '.join(members)}", number,
                     phase_tx(record, "attribution"), f"group {index} of round {number}")
    if proposal is None:
        return
    params = _recompute(check, combine, contributors, number, propose_tx, f"a {mode_name} aggregate",
                        f"aggregate of round {number}")
    if params is None:
        return
    counts["aggregates"] += 1
    _compare(check, params, meta, proposal["digest"], f"{mode_name} aggregate of the committed updates of "
             f"{', '.join(sorted(contributors))}", number, propose_tx, f"ckpt~{number:08d}")


def _committed_blobs(check: Check, ctx: AuditContext, number: int, msps: list[str],
                     commitments: dict[str, Record], masked: bool = False) -> dict[str, bytes] | None:
    """The committed update blobs of ``msps``, each re-hashed against its commitment (digest and
    size); a mismatch is a finding; None (with a skip) when the store does not keep them all —
    except for masked updates (``masked``), which reach only the aggregator: then the masked sum
    stored under the request's digest stands in for them, and its opening is still redone."""
    blobs: dict[str, bytes] = {}
    not_kept = []
    for msp in msps:
        commitment = commitments.get(msp)
        if commitment is None:
            continue
        digest = commitment["digest"]
        where = dict(round=number, tx=ctx.writer("CommitUpdate", number, msp), object=f"update blob {digest} of {msp}")
        try:
            if not ctx.store.available(digest):
                not_kept.append(msp)
                continue
            blob = ctx.store.get(digest)
        except BlockFedMLError as exc:
            check.fail(f"does not match its commitment: {exc}", **where)
            continue
        if len(blob) != commitment.get("size"):
            check.fail(f"has {len(blob)} bytes, its commitment says {commitment.get('size')}", **where)
        blobs[msp] = blob
    if not_kept and masked:
        check.skip(f"round {number}: the masked updates of {', '.join(not_kept)} reached only the aggregator, so "
                   "the masked sum is not re-summed: the stored one is used (its opening is still redone)")
    elif not_kept:
        check.skip(f"round {number}: the update blobs of {', '.join(not_kept)} are not kept in the store, "
                   "so the aggregate cannot be recomputed")
        return None
    return blobs


def _recompute(check: Check, combine, members: list[str], number: int, tx: str | None,
               what: str, obj: str) -> np.ndarray | None:
    """``combine(members)``; a blob that cannot be combined is a finding, a mode that needs what
    an auditor does not hold is a skip."""
    try:
        params = combine(members)
    except (CryptoError, NotAuthorizedError) as exc:
        check.skip(f"round {number}: an auditor cannot recompute {what}: {exc}")
        return None
    except (IntegrityError, ValueError, KeyError) as exc:  # InvalidInputError is a ValueError
        check.fail(f"the committed updates cannot be combined: {exc}", round=number, tx=tx, object=obj)
        return None
    except Exception as exc:  # a mode that needs what an auditor does not hold
        check.skip(f"round {number}: {what} cannot be recomputed here: {type(exc).__name__}: {exc}")
        return None
    if not isinstance(params, np.ndarray):
        check.skip(f"round {number}: {what} does not combine into parameters an auditor can hash")
        return None
    return params


def _compare(check: Check, params: np.ndarray, meta: dict[str, Any], proposed: str, what: str, number: int,
             tx: str | None, obj: str) -> None:
    digest = sha256_hex(params_to_bytes(params, meta))
    check.checked += 1
    if digest != proposed:
        check.fail(f"the {what} hashes to {digest}, but the aggregator proposed {proposed}",
                   round=number, tx=tx, object=obj)


def _model_meta(store: ModelStore, *digests: str | None) -> dict[str, Any] | None:
    """The model description (kind, sizes) from the first of ``digests`` the store keeps intact."""
    for digest in digests:
        try:
            if digest and store.has(digest):
                return params_from_bytes(store.get(digest))[1]
        except BlockFedMLError:
            continue
    return None


# --------------------------------------------------------------------------
# Decisions and reputation
# --------------------------------------------------------------------------

def check_decisions(ctx: AuditContext) -> CheckResult:
    """Accept or roll back, recomputed from the endorsements with the settings in force at Decide."""
    check = Check("decisions", TITLES["decisions"])
    decided = _decided(ctx.state)
    for record in decided:
        number, decision = record["round"], record["decision"]
        decide_tx, key = phase_tx(record, "closed"), f"round~{number:08d}"
        settings = ctx.settings_at(decide_tx)
        if record.get("attribution") is not None:
            check_group_scores(check, ctx, record)
        if record.get("proposal") is None:  # every group harmed: rejected, nothing to endorse
            check.checked += 1
            _expect_decision(check, decision, {"status": rules.REJECTED, "metric": None, "improvement": None,
                                               "endorsements": 0}, "no group was accepted", number, decide_tx)
            continue
        proposed = record["proposal"]["digest"]
        endorsements = ctx.state.endorsements.get(number, [])
        for e in endorsements:
            if e.get("digest") != proposed:
                check.fail(f"{e['msp_id']} endorsed {short(e.get('digest'))}, not the proposal {short(proposed)}",
                           round=number, tx=ctx.writer("Endorse", number, e["msp_id"]),
                           object=f"endorse~{number:08d}~{e['msp_id']}")
        remaining = deadlines.remaining_participants(record)
        valid = [e for e in endorsements if e.get("digest") == proposed and e["msp_id"] in remaining]
        needed = rules.quorum_size(settings["quorum_percent"], len(remaining))
        check.checked += 1
        if len(valid) < needed:
            check.fail(f"decided with {len(valid)} endorsements, the quorum is {needed}",
                       round=number, tx=decide_tx, object=key)
        if not valid:
            continue
        improvement = rules.round_improvement(valid, settings)
        rolled_back = rules.should_roll_back(improvement, settings["rollback_tolerance"],
                                             settings["higher_is_better"])
        expected = {"status": rules.ROLLED_BACK if rolled_back else rules.ACCEPTED,
                    "metric": rules.lower_median([e["metric"] for e in valid]),
                    "improvement": improvement, "endorsements": len(valid)}
        _expect_decision(check, decision, expected, f"trimmed mean improvement {improvement} over {len(valid)} "
                         f"endorsements, rollback_tolerance {settings['rollback_tolerance']}", number, decide_tx)
    check_aborts(check, ctx.state)
    rescored = sum(1 for r in decided if r.get("attribution") is not None)
    aborted = len(_aborted(ctx.state))
    return check.result(f"{len(decided)} decisions" + (f", {aborted} aborted" if aborted else "") + (f", groups of {rescored} rounds rescored" if rescored else ""))


def _decided(state: WorldState) -> list[Record]:
    """Decided rounds with something decided on: a proposal, or (attribution) scored groups."""
    return [r for r in state.rounds if r.get("decision") and (r.get("proposal") or r.get("attribution"))
            and r["decision"].get("status") != rules.ABORTED]


def _aborted(state: WorldState) -> list[Record]:
    return [r for r in state.rounds if (r.get("decision") or {}).get("status") == rules.ABORTED]


def check_aborts(check: Check, state: WorldState) -> None:
    """An aborted round: no model, and only absentees that had accepted it are penalized."""
    for record in _aborted(state):
        number, decision = record["round"], record["decision"]
        check.checked += 1
        want = deadlines.absence_penalized(record, decision.get("absentees") or [])
        if sorted(decision.get("penalized") or []) != want:
            check.fail(f"aborted round penalizes {decision.get('penalized')}, the rules give {want} (absentees "
                       "that had accepted the round)", round=number, tx=phase_tx(record, "closed"),
                       object=f"round~{number:08d}")
        if not set(record.get("absent") or []) <= set(decision.get("absentees") or []):
            check.fail(f"members recorded absent {record.get('absent')} are not all among the absentees "
                       f"{decision.get('absentees')}", round=number, object=f"round~{number:08d}")
        if decision.get("metric") is not None or decision.get("endorsements"):
            check.fail("an aborted round has a metric or endorsements", round=number, object=f"round~{number:08d}")


def _expect_decision(check: Check, decision: Record, expected: dict[str, Any], why: str, number: int,
                     tx: str | None) -> None:
    for name, value in expected.items():
        if decision.get(name) != value:
            check.fail(f"decision {name} is {decision.get(name)!r}, the rules give {value!r} ({why})",
                       round=number, tx=tx, object=f"round~{number:08d}")


def check_reputation(ctx: AuditContext) -> CheckResult:
    """Every balance and history entry recomputed from the join and the decisions the
    organization contributed to (rules.reputation_change, settings in force at the time);
    bans recomputed too."""
    check = Check("reputation", TITLES["reputation"])
    s = ctx.state
    decided = _decided(s)
    banned: set[tuple[str, int]] = set()
    entries = 0
    settlements, attribution = attribution_settlements(ctx, decided)
    decided = sorted(decided + _aborted(s), key=lambda r: r["round"])  # aborts may penalize absence
    for org in s.orgs:
        msp = org["msp_id"]
        recorded = s.reputation_history.get(msp, [])
        entries += len(recorded)
        expected, balance = _expected_history(ctx, msp, recorded, decided, banned, settlements)
        if expected is None:
            if recorded:
                check.fail(f"the first history entry {recorded[0]} is not the join",
                           tx=recorded[0].get("tx"), object=f"rephist~{msp}~00000000")
            elif s.reputation.get(msp) is not None or any(msp in (r.get("proposal") or {}).get("contributors", [])
                                                          for r in decided):
                check.fail("has a balance or contributions but no reputation history",
                           object=f"rephist~{msp}~00000000")
            continue
        check.checked += 1
        for index, (have, want) in enumerate(zip(recorded, expected)):
            if have != want:
                check.fail(f"history entry {have} differs from the recomputed {want}", round=want["round"],
                           tx=want["tx"], object=f"rephist~{msp}~{index:08d}")
                break
        if len(recorded) != len(expected):
            check.fail(f"{len(recorded)} history entries, the decisions give {len(expected)}",
                       object=f"rephist~{msp}~*")
        if s.reputation.get(msp) != balance:
            check.fail(f"balance record {s.reputation.get(msp)} differs from the recomputed {balance}",
                       object=f"rep~{msp}")
        if ctx.blocks is not None:
            join = ctx.tx(recorded[0].get("tx"))
            if join is None or (join.function, join.creator, join.valid) != ("Join", msp, True):
                check.fail("the join entry does not name a valid Join transaction of this organization",
                           tx=recorded[0].get("tx"), object=f"rephist~{msp}~00000000")
    for record in decided:
        want = sorted(m for m, n in banned if n == record["round"])
        if sorted(record["decision"].get("banned") or []) != want:
            check.fail(f"decision bans {record['decision'].get('banned')}, the balances give {want}",
                       round=record["round"], tx=phase_tx(record, "closed"), object=f"round~{record['round']:08d}")
    for org in s.orgs:
        if (org.get("status") == rules.BANNED) != any(m == org["msp_id"] for m, _ in banned):
            check.fail(f"status is {org.get('status')!r}, which no decision explains", object=f"org~{org['msp_id']}")
    for msp, recorded_record in sorted(s.attribution.items()):
        want = attribution.get(msp, rules.new_attribution())
        if recorded_record != want:
            check.fail(f"attribution record {recorded_record} differs from the recomputed {want} (rounds in "
                       "accepted and harmful groups, blames)", object=f"attr~{msp}")
    return check.result(f"{check.checked} organizations, {entries} history entries"
                        + (f", {len(settlements)} attribution settlements" if settlements else ""))


def _expected_history(ctx: AuditContext, msp: str, recorded: list[Record], decided: list[Record],
                      banned: set[tuple[str, int]], settlements: dict[int, dict[str, tuple[int, str]]]
                      ) -> tuple[list[Record] | None, Record | None]:
    """The history the contract would have written for ``msp`` (None if it never joined)."""
    if not recorded or recorded[0].get("reason") != "join":
        return None, None
    join = recorded[0]
    settings = ctx.settings_at(join.get("tx"))
    initial = settings["initial_reputation"] if ctx.blocks is not None else join.get("delta")
    balance, entry, _ = rules.reputation_change(None, initial, join.get("round"), "join", join.get("tx"))
    expected = [entry]
    for record in decided:
        decide_tx = phase_tx(record, "closed")
        settings = ctx.settings_at(decide_tx)
        aborted = record["decision"].get("status") == rules.ABORTED
        absent = record["decision"].get("penalized") or [] if aborted else record.get("absent") or []
        if msp in absent:  # accepted the round, then vanished, or its contribution was excluded
            amount, reason = deadlines.absence_amount(settings, msp in deadlines.excluded_members(record))
            delta, penalized = -amount, True
        elif aborted:
            continue
        elif record["round"] in settlements:  # attribution: reputation follows the member's group
            if msp not in settlements[record["round"]]:
                continue
            delta, reason = settlements[record["round"]][msp]
            penalized = delta < 0
        elif msp in record["proposal"]["contributors"]:
            penalized = record["decision"].get("status") == rules.ROLLED_BACK
            if not penalized and not rules.improved(record["decision"].get("improvement") or 0,
                                                    settings["higher_is_better"]):
                continue  # no reward without improvement
            delta, reason = (-settings["penalty"], "penalty") if penalized else (settings["reward"], "reward")
        else:
            continue
        if ctx.blocks is None:  # the settings of that time are unknown: the amount the records imply
            delta = _implied_amount(ctx.state, decide_tx, reason, delta)
        if reason in ("absence", "excluded") and not delta:  # an amount of 0 writes nothing
            continue
        balance, entry, _ = rules.reputation_change(balance, delta, record["round"], reason, decide_tx)
        expected.append(entry)
        if penalized and rules.is_banned(balance["balance"], settings["ban_threshold"]):
            banned.add((msp, record["round"]))
    return expected, balance


def _implied_amount(state: WorldState, decide_tx: str | None, reason: str, default: int) -> int:
    """The reward or penalty a decision applied, read from its history entries.

    Without blocks (Fabric) the settings in force at an old decision are unknown
    (only the current ones are in world state). Every contributor of a decision
    gets the same amount, so the entries of one decision that were not cut at
    zero must agree on it, and its sign must match the decision; the balances
    are then recomputed with it. With blocks the amount comes from the settings.
    """
    amounts = {e["delta"] for entries in state.reputation_history.values() for e in entries
               if e.get("tx") == decide_tx and e.get("reason") == reason and e.get("balance", 0) > 0}
    if len(amounts) != 1:
        return default  # none, or conflicting: the recomputation with the current settings tells
    amount = amounts.pop()
    return amount if (amount >= 0) == reason.endswith("reward") else default
