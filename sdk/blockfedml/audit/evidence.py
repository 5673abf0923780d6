"""The federation's records as an auditor reads them: through the contract's queries.

Reading through the ``Contract`` interface (not the embedded ledger's tables)
means the same audit runs against a Fabric peer. One object holds everything
the checks, the HTML report and the provenance export need, read once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from blockfedml.errors import NotFoundError
from blockfedml.ledger.base import Contract

Record = dict[str, Any]


@dataclass
class WorldState:
    """Every record of the federation contract, as committed."""

    consortium: Record
    settings: Record
    head: Record
    orgs: list[Record]
    rounds: list[Record]
    checkpoints: list[Record]
    updates: dict[int, list[Record]]
    endorsements: dict[int, list[Record]]
    screenings: dict[int, list[Record]]
    reputation: dict[str, Record | None]
    reputation_history: dict[str, list[Record]]

    @classmethod
    def read(cls, contract: Contract) -> "WorldState":
        """Query everything (a few queries per round and per organization)."""
        rounds = contract.evaluate_json("ListRounds")
        orgs = contract.evaluate_json("ListOrgs")
        numbers = [r["round"] for r in rounds]
        reputation: dict[str, Record | None] = {}
        for org in orgs:
            try:
                reputation[org["msp_id"]] = contract.evaluate_json("GetReputation", org["msp_id"])
            except NotFoundError:  # registered, never joined (auditors)
                reputation[org["msp_id"]] = None
        return cls(
            consortium=contract.evaluate_json("GetConsortium"),
            settings=contract.evaluate_json("GetSettings"),
            head=contract.evaluate_json("GetHead"),
            orgs=orgs,
            rounds=rounds,
            checkpoints=contract.evaluate_json("ListCheckpoints"),
            updates={n: contract.evaluate_json("GetUpdates", n) for n in numbers},
            endorsements={n: contract.evaluate_json("GetEndorsements", n) for n in numbers},
            screenings={n: contract.evaluate_json("GetScreenings", n) for n in numbers},
            reputation=reputation,
            reputation_history={o["msp_id"]: contract.evaluate_json("GetReputationHistory", o["msp_id"])
                                for o in orgs},
        )

    def round(self, number: int) -> Record | None:
        return next((r for r in self.rounds if r["round"] == number), None)

    def checkpoint(self, number: int) -> Record | None:
        return next((c for c in self.checkpoints if c["round"] == number), None)

    @property
    def members(self) -> list[str]:
        """MSP IDs of the organizations with role member, sorted."""
        return sorted(o["msp_id"] for o in self.orgs if "member" in o["roles"])


def phase_tx(round_record: Record, phase: str) -> str | None:
    """The transaction that moved a round into ``phase`` (from its history), or None."""
    return next((h["tx"] for h in round_record.get("history") or [] if h.get("phase") == phase), None)
