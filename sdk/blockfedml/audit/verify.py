"""``blockfedml audit verify``: replay and check the whole history, trusting no single party.

The checks, in order (each passes, fails naming the round, transaction and
object at fault, or is skipped with its reason):

``ledger``       block hash chain, both signatures and the certificate of every
                 transaction, world state against a replay of the blocks
                 (the embedded ledger's ``verify``; on Fabric the auditor's copy
                 pulled from two or more organizations' peers and compared,
                 checked against the pinned genesis's configuration,
                 ``fabric_chain.py``);
``replay``       every valid transaction re-executed by the contract;
``checkpoints``  the checkpoint chain from genesis; accepted models re-hashed;
``rounds``       every round's phase sequence and allocation;
``aggregates``   every aggregate recomputed from exactly the committed updates
                 (secure rounds: every authorized sum re-summed, its opening
                 decoded; attribution: every group's aggregate too);
``reputation``   balances recomputed from the rewards and penalties (attribution:
                 group rewards and blames);
``decisions``    every accept/rollback recomputed from the endorsements
                 (attribution: every group rescored).

The last five read the world state through the contract's queries. All seven
run on both ledgers.
"""

from __future__ import annotations

import re

from blockfedml.audit.checks import (
    TITLES,
    AuditContext,
    check_aggregates,
    check_checkpoints,
    check_decisions,
    check_reputation,
    check_rounds,
)
from blockfedml.audit.evidence import WorldState, gather
from blockfedml.audit.findings import AuditReport, Check, CheckResult, Finding, skipped
from blockfedml.audit.replay import BlockHistory
from blockfedml.consortium import Consortium
from blockfedml.store import ModelStore

LEDGER_TITLE = "block hash chain, signatures, world state"
REPLAY_TITLE = "transactions re-executed by the contract"
ON_FABRIC = "skipped: no blocks were read (only the world state was given)"

_BLOCK_PROBLEM = re.compile(r"block (\d+)(?: \(tx ([0-9a-f]+)\))?: (.*)", re.S)
_STATE_PROBLEM = re.compile(r"state [^/]*/'(.*?)': (.*?)(?:at block (\d+))?$", re.S)


RECOMPUTATIONS = (check_checkpoints, check_rounds, check_aggregates, check_reputation, check_decisions)


def audit(state: WorldState | None, store: ModelStore | None = None, blocks: BlockHistory | None = None,
          backend: str = "embedded", state_error: str | None = None) -> AuditReport:
    """Run every check on what was read; ``blocks`` None means no local blocks (Fabric),
    ``state`` None that the contract could not read the world state (``state_error``)."""
    if blocks is None:
        checks = [skipped("ledger", LEDGER_TITLE, ON_FABRIC), skipped("replay", REPLAY_TITLE, ON_FABRIC)]
    else:
        checks = [_ledger_check(blocks), _replay_check(blocks)]
    ctx = AuditContext(state, store, blocks) if state is not None else None
    for recompute in RECOMPUTATIONS:
        checks.append(_run(recompute, ctx, state_error))
    notes = [] if blocks is not None else [
        "without blocks the settings in force at each round are unknown: rewards and penalties were "
        "checked for consistency (each decision applies one amount to all its contributors), the other "
        "rules against the current settings"]
    return AuditReport(backend, checks, blocks.height if blocks is not None else None, notes)


def audit_consortium(consortium: Consortium, as_org: str | None = None,
                     witnesses: dict[str, dict] | None = None, sources=None) -> AuditReport:
    """Audit a consortium work directory: its ledger through the auditor's own copy (embedded:
    held to the members' signed tips in ``witnesses``; Fabric: pulled from the organizations'
    peers, or from ``sources``) and its model store."""
    evidence = gather(consortium, as_org, witnesses=witnesses, sources=sources)
    report = audit(evidence.state, evidence.store, evidence.blocks, evidence.backend, evidence.state_error)
    report.notes.extend(evidence.notes)
    return report


def _run(recompute, ctx: AuditContext | None, state_error: str | None) -> CheckResult:
    """One recomputation; records it cannot even read are its finding, not a crash of the audit."""
    name = recompute.__name__.removeprefix("check_")
    if ctx is None:
        check = Check(name, TITLES[name])
        check.fail(f"the world state cannot be read through the contract: {state_error}", object="world state")
        return check.result("not recomputed")
    try:
        return recompute(ctx)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        check = Check(name, TITLES[name])
        check.fail(f"a record has an unexpected shape: {type(exc).__name__}: {exc}", object="world state")
        return check.result("stopped")


def _ledger_check(blocks: BlockHistory) -> CheckResult:
    report = blocks.ledger
    check = Check("ledger", LEDGER_TITLE)
    check.checked = report.blocks
    for problem in report.problems:
        check.findings.append(_finding(problem, blocks))
    return check.result(f"{report.blocks} blocks, {report.valid_transactions} valid and "
                        f"{report.invalid_transactions} invalid transactions, {report.state_keys} state keys")


def _replay_check(blocks: BlockHistory) -> CheckResult:
    check = Check("replay", REPLAY_TITLE)
    check.checked = blocks.replayed
    check.findings.extend(blocks.mismatches)
    return check.result(f"{blocks.replayed} valid transactions re-executed")


def _finding(problem: str, blocks: BlockHistory) -> Finding:
    """Name the block, transaction and round of a ``verify_ledger`` problem line."""
    match = _BLOCK_PROBLEM.fullmatch(problem)
    if match:
        number = int(match.group(1))
        tx = blocks.txs.get(match.group(2) or "") or blocks.by_block.get(number)
        return Finding(match.group(3), tx.round if tx else None, match.group(2) or (tx.tx_id if tx else None),
                       f"block {number}")
    match = _STATE_PROBLEM.fullmatch(problem)
    if match:
        key = match.group(1)
        tx = blocks.by_block.get(int(match.group(3))) if match.group(3) else None
        round_number = re.search(r"~(\d{8})(?:~|$)", key)
        return Finding(problem.split(": ", 1)[-1], int(round_number.group(1)) if round_number else None,
                       tx.tx_id if tx else None, f"state key {key}")
    return Finding(problem)
