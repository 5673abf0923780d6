"""What an auditor checks about a vertical session, from the ledger alone (and model parts, if shown).

The contract already refused a finish whose transcripts disagree; the
auditor does not take that on trust and checks again, read-only:

- A and B approved the same alignment (size, transcript digest), the one the
  session record holds, and C published a key fingerprint;
- every party recorded iterations 1..T, every message carries the same
  digest in its sender's and its receiver's records, all three recorded the
  same loss (the check the contract runs, ``transcript_problem``);
- the finished record's iteration count, final loss and model digests match
  the records they summarize;
- given a party's model store, its model part hashes to the digest on the
  ledger and says it belongs to this session and party.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from blockfedml.errors import BlockFedMLError
from blockfedml.ml.serialization import params_from_bytes
from blockfedml.store import ModelStore
from blockfedml.vertical.ledger import VerticalLedger
from blockfedml.vertical.protocol import LOSS_SCALE


@dataclass
class SessionAudit:
    session: str
    phase: str
    problems: list[str] = field(default_factory=list)
    iterations: int = 0
    losses: list[float] = field(default_factory=list)
    alignment: dict[str, Any] | None = None
    key_fingerprint: str | None = None
    models: dict[str, str] = field(default_factory=dict)
    models_checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def verify_session(ledger: VerticalLedger, session: str,
                   stores: Mapping[str, ModelStore] | None = None) -> SessionAudit:
    """Audit one session; ``stores`` maps "A"/"B" to a party's model store, if it shows its part."""
    from blockfedml_chaincode.vertical import transcript_problem  # the contract's own pure check

    record = ledger.session(session)
    audit = SessionAudit(session, record["phase"], alignment=record["alignment"],
                         key_fingerprint=record["key_fingerprint"], models=dict(record["models"]))
    problems = audit.problems
    if record["phase"] == "aborted":
        problems.append(f"the session was aborted by {record['abort']['party']}: {record['abort']['reason']}")
    elif record["phase"] != "finished":
        problems.append(f"the session is still in phase {record['phase']}")
    approvals = ledger.approvals(session)
    if sorted(approvals) != ["A", "B"]:
        problems.append(f"alignment approvals by {sorted(approvals)}, not by both A and B")
    elif approvals["A"] != approvals["B"]:
        problems.append(f"A and B approved different alignments: {approvals}")
    elif record["alignment"] is not None and record["alignment"] != approvals["A"]:
        problems.append("the session's alignment differs from the approvals")
    if record["phase"] in ("training", "finished") and not record["key_fingerprint"]:
        problems.append("no key fingerprint of collaborator C")
    records = ledger.iterations(session)
    if records:
        problem = transcript_problem(records)
        if problem:
            problems.append(problem)
        losses = {r["iteration"]: r["loss"] for r in records if r["party"] == "C"}
        audit.iterations = max(losses, default=0)
        audit.losses = [losses[i] / LOSS_SCALE for i in sorted(losses)]
    if record["phase"] == "finished":
        if record["iterations"] != audit.iterations:
            problems.append(f"the record says {record['iterations']} iterations, C recorded {audit.iterations}")
        if audit.losses and record["final_loss"] != round(audit.losses[-1] * LOSS_SCALE):
            problems.append(f"the final loss {record['final_loss']} is not C's last recorded loss")
        if ledger.models(session) != record["models"]:
            problems.append("the finished record's model digests differ from the parties' commitments")
    for party, store in (stores or {}).items():
        digest = record["models"].get(party)
        if digest is None:
            continue
        try:
            _, meta = params_from_bytes(store.get(digest))  # the store re-hashes: a swapped blob is an error
        except BlockFedMLError as exc:
            problems.append(f"model part of {party}: {exc}")
            continue
        if meta.get("session") != session or meta.get("party") != party:
            problems.append(f"model part of {party} ({digest}) belongs to session {meta.get('session')!r}, "
                            f"party {meta.get('party')!r}")
        else:
            audit.models_checked.append(party)
    return audit
