"""``blockfedml audit export``: where a checkpoint comes from, as one JSON document.

For a chosen checkpoint: the chain of accepted checkpoints it descends from,
back to genesis, and for each link the round that produced it — who was
screened, selected and took part, which aggregator and key holder, the
commitments (digests) of every contributor's update, every endorsement with
its metrics, the decision, the phase transactions and the reputation it
moved — plus the proposals that were rolled back on top of those ancestors.
On the embedded ledger every transaction is named with its block, and the
ledger's tip is recorded so the export can be pinned to the ledger it came from.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blockfedml.audit.evidence import Record, WorldState, gather, phase_tx
from blockfedml.audit.history import lineage_of
from blockfedml.audit.replay import BlockHistory
from blockfedml.errors import BlockFedMLError, InvalidInputError, NotFoundError
from blockfedml.store import ModelStore

if TYPE_CHECKING:
    from blockfedml.consortium import Consortium

FORMAT = "blockfedml-provenance/1"


def provenance(state: WorldState, round_number: int, blocks: BlockHistory | None = None,
               store: ModelStore | None = None, ledger: dict[str, Any] | None = None) -> dict[str, Any]:
    """The provenance of the checkpoint of round ``round_number`` (0 is genesis)."""
    if isinstance(round_number, bool) or not isinstance(round_number, int) or round_number < 0:
        raise InvalidInputError(f"checkpoint must be a round number >= 0, got {round_number!r}")
    if state.checkpoint(round_number) is None:
        known = ", ".join(str(c["round"]) for c in state.checkpoints)
        raise NotFoundError(f"there is no checkpoint of round {round_number}; checkpoints exist for rounds {known}")
    lineage = lineage_of(state.checkpoints, round_number)
    digests = {c["digest"] for c in lineage}
    steps = [_step(state, ckpt, blocks) for ckpt in lineage]
    rejected = [_round_summary(state, r, blocks) for r in state.rounds
                if r.get("base_checkpoint") in digests and (r.get("decision") or {}).get("status") == "rolled_back"]
    organizations = sorted({m for c in lineage for m in c.get("contributors") or []})
    return {
        "format": FORMAT,
        "checkpoint": lineage[0],
        "model": _model_status(store, lineage[0]["digest"]),
        "rounds": [c["round"] for c in lineage],
        "organizations": organizations,
        "lineage": steps,
        "rolled_back_on_lineage": rejected,
        "consortium": state.consortium,
        "settings_now": state.settings,
        "ledger": ledger or {},
    }


def consortium_provenance(consortium: "Consortium", round_number: int, as_org: str | None = None) -> dict[str, Any]:
    """``provenance`` of a checkpoint of a consortium work directory."""
    evidence = gather(consortium, as_org, verify=False)
    ledger: dict[str, Any] = {"backend": evidence.backend, "channel": consortium.channel}
    if evidence.blocks is not None:
        ledger.update(height=evidence.blocks.height, tip_hash=evidence.blocks.tip_hash)
    return provenance(evidence.require_state(), round_number, evidence.blocks, evidence.store, ledger)


def _step(state: WorldState, ckpt: Record, blocks: BlockHistory | None) -> dict[str, Any]:
    if ckpt["round"] == 0:
        return {"round": 0, "checkpoint": ckpt, "genesis": True,
                "transaction": _tx(blocks, ckpt.get("tx"))}
    record = state.round(ckpt["round"])
    return {"round": ckpt["round"], "checkpoint": ckpt, **_round_summary(state, record, blocks)} if record \
        else {"round": ckpt["round"], "checkpoint": ckpt, "round_record": None}


def _round_summary(state: WorldState, record: Record, blocks: BlockHistory | None) -> dict[str, Any]:
    number = record["round"]
    decide_tx = phase_tx(record, "closed")
    reputation = [{"org": msp, **entry} for msp, entries in sorted(state.reputation_history.items())
                  for entry in entries if decide_tx and entry.get("tx") == decide_tx]
    return {
        "round": number,
        "mode": record.get("mode"),
        "base_checkpoint": record.get("base_checkpoint"),
        "base_metric": record.get("base_metric"),
        "screenings": state.screenings.get(number, []),
        "selected": record.get("selected"),
        "participants": record.get("participants"),
        "aggregator": record.get("aggregator"),
        "keyholder": record.get("keyholder"),
        "groups": record.get("groups"),
        "proposal": record.get("proposal"),
        "commitments": [{**u, "tx": _writer(blocks, "CommitUpdate", number, u["msp_id"])}
                        for u in state.updates.get(number, [])],
        "endorsements": [{**e, "tx": _writer(blocks, "Endorse", number, e["msp_id"])}
                         for e in state.endorsements.get(number, [])],
        "decision": record.get("decision"),
        "phases": [{**h, "transaction": _tx(blocks, h.get("tx"))} for h in record.get("history") or []],
        "reputation_changes": reputation,
    }


def _tx(blocks: BlockHistory | None, tx_id: str | None) -> dict[str, Any] | None:
    """Where a transaction is on the chain (embedded ledger only)."""
    tx = blocks.txs.get(tx_id or "") if blocks is not None else None
    if tx is None:
        return None
    return {"block": tx.block, "function": tx.function, "creator": tx.creator, "time": tx.time,
            "valid": tx.valid}


def _writer(blocks: BlockHistory | None, function: str, number: int, creator: str) -> str | None:
    return None if blocks is None else blocks.writer(function, number, creator)


def _model_status(store: ModelStore | None, digest: str) -> dict[str, Any]:
    """Whether the model is in the local store and hashes to its digest."""
    if store is None:
        return {"digest": digest, "stored": False, "verified": False}
    try:
        size = len(store.get(digest))
    except NotFoundError:
        return {"digest": digest, "stored": False, "verified": False}
    except BlockFedMLError as exc:
        return {"digest": digest, "stored": True, "verified": False, "problem": str(exc)}
    return {"digest": digest, "stored": True, "verified": True, "bytes": size}


def write_json(path: Path | str, document: dict[str, Any]) -> Path:
    """Write ``document`` as JSON atomically: a failure leaves no partial file."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InvalidInputError(f"cannot write {path}: folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
