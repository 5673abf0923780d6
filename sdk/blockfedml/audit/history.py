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
    checkpoints = contract.evaluate_json("ListCheckpoints")
    by_round = {c["round"]: c for c in checkpoints}
    if round_number not in by_round:
        raise NotFoundError(f"there is no checkpoint for round {round_number}")
    accepted = {c["digest"]: c for c in checkpoints if c["status"] == "accepted"}
    lineage = [by_round[round_number]]
    while lineage[-1]["parent"]:
        parent = accepted.get(lineage[-1]["parent"])
        if parent is None:
            raise IntegrityError(
                f"checkpoint of round {lineage[-1]['round']} names parent {lineage[-1]['parent'][:12]}, "
                "which is no accepted checkpoint"
            )
        lineage.append(parent)
    return lineage
