"""The federation's records as an auditor reads them: through the contract's queries.

Reading through the ``Contract`` interface (not the embedded ledger's tables)
means the same audit runs against a Fabric peer. One object holds everything
the checks, the HTML report and the provenance export need, read once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from blockfedml.audit.copy import AuditorCopy, state_differences
from blockfedml.errors import BlockFedMLError, IntegrityError, LedgerError, NotFoundError
from blockfedml.ledger.base import Contract
from blockfedml.store import ModelStore

if TYPE_CHECKING:
    from blockfedml.audit.fabric_copy import BlockSource
    from blockfedml.audit.replay import BlockHistory
    from blockfedml.consortium import Consortium

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
    # secure rounds: authorized sums; masking rounds: {"keys", "shares", "reveals"} by round
    decryptions: dict[int, list[Record]] = field(default_factory=dict)
    mask_records: dict[int, dict[str, list[Record]]] = field(default_factory=dict)
    public_keys: dict[str, Record] = field(default_factory=dict)  # key holders' published keys
    # attribution: group endorsements by round, and each joined organization's group record
    group_endorsements: dict[int, list[Record]] = field(default_factory=dict)
    attribution: dict[str, Record] = field(default_factory=dict)

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
        secure = [r["round"] for r in rounds if r.get("mode") in ("paillier", "masking")]
        masking = [r["round"] for r in rounds if r.get("mode") == "masking"]
        scored = [r["round"] for r in rounds if r.get("attribution") is not None]
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
            decryptions={n: contract.evaluate_json("GetDecryptions", n) for n in secure},
            mask_records={n: {kind: contract.evaluate_json(f"GetMask{kind.title()}", n)
                              for kind in ("keys", "shares", "reveals")} for n in masking},
            public_keys=_public_keys(contract, orgs),
            group_endorsements={n: contract.evaluate_json("GetGroupEndorsements", n) for n in scored},
            attribution={o["msp_id"]: contract.evaluate_json("GetAttribution", o["msp_id"])
                         for o in orgs if scored and reputation.get(o["msp_id"]) is not None},
        )

    def round(self, number: int) -> Record | None:
        return next((r for r in self.rounds if r["round"] == number), None)

    def checkpoint(self, number: int) -> Record | None:
        return next((c for c in self.checkpoints if c["round"] == number), None)

    @property
    def members(self) -> list[str]:
        """MSP IDs of the organizations with role member, sorted."""
        return sorted(o["msp_id"] for o in self.orgs if "member" in o["roles"])


def _public_keys(contract: Contract, orgs: list[Record]) -> dict[str, Record]:
    """The published Paillier key of every key holder that has one."""
    keys = {}
    for org in orgs:
        if "keyholder" in org["roles"]:
            try:
                keys[org["msp_id"]] = contract.evaluate_json("GetPublicKey", org["msp_id"])
            except NotFoundError:
                continue
    return keys


def phase_tx(round_record: Record, phase: str) -> str | None:
    """The transaction that moved a round into ``phase`` (from its history), or None."""
    return next((h["tx"] for h in round_record.get("history") or [] if h.get("phase") == phase), None)


@dataclass
class Evidence:
    """Everything an audit reads from one consortium work directory."""

    state: WorldState | None       # None: the contract could not read it (see state_error)
    store: ModelStore | None
    blocks: "BlockHistory | None"  # None: no blocks were read
    backend: str
    notes: list[str]
    state_error: str | None = None

    def require_state(self) -> WorldState:
        """The world state, or ``IntegrityError`` saying why the contract cannot read it."""
        if self.state is None:
            raise IntegrityError(f"the world state cannot be read through the contract ({self.state_error}); "
                                 "run `blockfedml audit verify` to find what was damaged")
        return self.state


def gather(consortium: "Consortium", as_org: str | None = None, verify: bool = True,
           witnesses: dict[str, dict] | None = None, sources: "dict[str, BlockSource] | None" = None) -> Evidence:
    """Read world state through the contract, and on the embedded ledger the blocks too
    (verified and re-executed unless ``verify`` is false: then only indexed).

    On Fabric the blocks are the auditor's own copy too, pulled from every organization's
    peer (``sources``: by default the peers of the connection profile) and compared block
    by block (``audit/fabric_copy.py``), then verified and replayed (``audit/fabric_chain.py``).
    On the embedded ledger the blocks are the auditor's own copy (``audit/copy.py``),
    brought up to date first from the ledger service (or the ledger file, when this
    process can read it); ``witnesses`` are members' signed tips (name -> ``tip.json``
    content) the copy must not be shorter than or diverge from. The world state is
    read as the members see it, through the contract's queries, so the
    recomputations check what everybody acts on; the state the copy's blocks
    produce is compared with the ledger file's where this process can read it.
    """
    from blockfedml.audit.replay import read_blocks

    org = auditor_org(consortium, as_org)
    store = local_store(consortium, org)
    if consortium.kind != "embedded":
        from blockfedml.audit.fabric_copy import fabric_history

        state, error = _read_state(consortium.contract(org))
        fabric_blocks, notes = fabric_history(consortium, org, verify=verify, sources=sources, tips=witnesses)
        return Evidence(state, store, fabric_blocks, consortium.kind, notes, error)
    state, error = _read_state(consortium.contract(org))
    copy = AuditorCopy(consortium.audit_folder(org))
    synced = copy.sync(consortium.block_source(org))
    if not copy.path.is_file():
        raise IntegrityError(f"the auditor cannot start its copy of the chain: {'; '.join(synced.problems)}")
    ledger = copy.ledger()
    try:
        blocks = read_blocks(ledger, verify=verify)
    finally:
        ledger.close()
    problems = blocks.ledger.problems
    problems[:0] = synced.problems
    problems.extend(copy.check_tips(witnesses or {}))
    if consortium.ledger_path.is_file() and os.access(consortium.ledger_path, os.R_OK):
        problems.extend(state_differences(copy.path, consortium.ledger_path))
    notes = list(synced.notes)
    if synced.problems:
        notes.append(f"the auditor's copy holds the {synced.held + synced.added} blocks that passed its checks; "
                     "everything after the first problem was not kept")
    return Evidence(state, store, blocks, "embedded", notes, error)


def _read_state(contract: Contract) -> tuple[WorldState | None, str | None]:
    """The world state, or why the contract's queries fail on it (a damaged record is a
    finding of the audit, not a reason to stop it). An unreachable ledger still raises."""
    try:
        return WorldState.read(contract), None
    except LedgerError:
        raise
    except BlockFedMLError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    except (KeyError, TypeError, ValueError) as exc:  # records of an unexpected shape
        return None, f"malformed record: {type(exc).__name__}: {exc}"


def auditor_org(consortium: "Consortium", as_org: str | None = None) -> str:
    """Who audits: ``as_org``, by default the first auditor, else the admin."""
    if as_org is None:
        auditors = [o.name for o in consortium.orgs if "auditor" in o.roles]
        as_org = auditors[0] if auditors else consortium.admin.name
    return consortium.org(as_org).name


def auditor_contract(consortium: "Consortium", as_org: str | None = None) -> Contract:
    """The contract as ``as_org`` sees it; by default as the first auditor, else the admin."""
    return consortium.contract(auditor_org(consortium, as_org))


AUDIT_FETCH_PATIENCE = 2.0  # seconds an auditor asks an unreachable holder again


def local_store(consortium: "Consortium", org: str) -> ModelStore | None:
    """The auditing organization's own blob store (it fetches what it lacks from the organizations
    that hold it), or None when this view does not hold that organization's folder."""
    if not consortium.org(org).is_local:
        return None
    store = consortium.blobs(org)
    store.patience = AUDIT_FETCH_PATIENCE  # a holder that is down is reported, not waited for
    return store
