"""Reading history back from the ledger, as an auditor does."""

from __future__ import annotations

from typing import Any

from blockfedml.errors import IntegrityError, NotFoundError
from blockfedml.ledger.base import Contract


def checkpoint_lineage(contract: Contract, round_number: int) -> list[dict[str, Any]]:
    """The checkpoint of a round followed by its ancestors back to genesis.

    Follows parent digests through the accepted checkpoints; a parent that no
    accepted checkpoint carries means the chain is broken.
    """
    return lineage_of(contract.evaluate_json("ListCheckpoints"), round_number)


def lineage_of(checkpoints: list[dict[str, Any]], round_number: int) -> list[dict[str, Any]]:
    """``checkpoint_lineage`` over checkpoint records already read."""
    by_round = {c["round"]: c for c in checkpoints}
    if round_number not in by_round:
        raise NotFoundError(f"there is no checkpoint for round {round_number}")
    accepted = {c["digest"]: c for c in checkpoints if c["status"] == "accepted"}
    lineage = [by_round[round_number]]
    while lineage[-1]["parent"]:
        parent = accepted.get(lineage[-1]["parent"])
        if parent is None or parent["round"] >= lineage[-1]["round"]:  # a loop cannot go back in rounds
            raise IntegrityError(
                f"checkpoint of round {lineage[-1]['round']} names parent {lineage[-1]['parent'][:12]}, "
                "which is no accepted checkpoint of an earlier round"
            )
        lineage.append(parent)
    return lineage
