"""Rounds that never stall, the client side: what a phase waits for, closing it at its deadline.

The contract keeps the deadlines (settings ``<phase>_deadline``, in transaction
time); ``GetPending`` says who a round's phase still waits for and from when
it may be closed without them. Anyone may then submit ``ClosePhase``: the round
goes on with those who acted, or is aborted when too few are left. See
docs/operations.md.
"""

from __future__ import annotations

import time
from typing import Any

from blockfedml.errors import LedgerError, PhaseError
from blockfedml.ledger.base import Contract

#: How long to wait again when the ledger's clock has not reached the deadline yet (s).
CLOCK_SLACK = 0.25


def pending(contract: Contract, number: int) -> dict[str, Any]:
    """``{"round", "phase", "waiting_for", "deadline"}`` of an open round (``GetPending``)."""
    return contract.evaluate_json("GetPending", number)


def seconds_to_deadline(state: dict[str, Any]) -> float | None:
    """Seconds until the phase may be closed (negative once it may), None without a deadline."""
    return None if state["deadline"] is None else state["deadline"] - time.time()


def describe(state: dict[str, Any]) -> str:
    """What an open round waits for, in words: ``round 3: update: waiting for Org2MSP (deadline in 4 s)``."""
    waiting = ", ".join(state["waiting_for"]) or "the admin to close the phase"
    left = seconds_to_deadline(state)
    when = ("no deadline" if left is None
            else f"deadline in {left:.0f} s" if left > 0 else "deadline passed: anyone may close the phase")
    return f"round {state['round']}: {state['phase']}: waiting for {waiting} ({when})"


def close_when_due(contract: Contract, number: int, limit: float) -> dict[str, Any]:
    """Submit ``ClosePhase`` for the round's current phase once its deadline has passed; the new record.

    Waits for the ledger's clock (transaction time) to reach the deadline, at most
    ``limit`` seconds. A phase without a deadline is a ``PhaseError`` naming the setting.
    """
    give_up = time.monotonic() + limit
    while True:
        state = pending(contract, number)
        left = seconds_to_deadline(state)
        if left is None:
            raise PhaseError(f"round {number}: phase {state['phase']} has no deadline (setting "
                             f"{state['phase']}_deadline=0); `blockfedml admin round abort {number} --reason ...` "
                             "ends it")
        if left <= 0:
            try:
                return contract.submit_json("ClosePhase", number)
            except PhaseError as exc:
                if "may be closed from time" not in str(exc):
                    raise
                left = CLOCK_SLACK  # our clock ran a little ahead of the transaction's second
        if time.monotonic() + left > give_up:
            raise LedgerError(f"round {number}: the {state['phase']} phase may be closed in {left:.0f} s, at its "
                              f"deadline (waited {limit:.0f} s; --wait waits longer)")
        time.sleep(min(left, 1.0))
