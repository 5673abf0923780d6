"""Replaying an embedded ledger's blocks: what only the blocks can tell an auditor.

In one read snapshot of the ledger file this module

* runs the embedded ledger's own verification (``verify_ledger``: hash chain,
  both signatures and certificate issuance of every transaction, MVCC replay,
  world state against the replay), and
* re-executes every valid transaction with the federation contract against
  the state replayed from the blocks before it, and compares the reads, writes
  and result with those recorded. On the embedded ledger the submitter's own
  simulation is the only endorsement; re-executing it is what a second,
  independent endorsing peer would do, so a block that was rewritten and
  re-signed consistently by a key holder is still caught when its effects are
  not what the contract computes. (The replay uses the contract installed
  now; a ledger written by another contract version reports its differences.)

It also indexes every transaction (block, function, creator, time, round) and
the settings in force at each block, so the checks can name transactions and
use the settings *at the time* of a decision. Fabric keeps no local block
file: there these checks are skipped and the settings are the current ones.
"""

from __future__ import annotations

import asyncio
import bisect
import inspect
import json
from dataclasses import dataclass, field
from typing import Any

from blockfedml.audit.findings import Finding
from blockfedml.errors import BlockFedMLError
from blockfedml.identity.signing import Identity
from blockfedml.ledger.embedded import EmbeddedLedger, VerifyReport
from blockfedml.ledger.embedded import blocks
from blockfedml.ledger.embedded.store import LedgerStore
from blockfedml.ledger.embedded.stub import EmbeddedStub, RWSet
from blockfedml.ledger.embedded.verify import verify_ledger

def _round_transactions() -> frozenset[str]:
    """The contract's transactions whose first argument is the round number.

    Read from the contract's own signatures, so a transaction added to the
    contract is attributed to its round without a list to keep up to date.
    """
    from blockfedml_chaincode.contract import FederationContract

    names = set()
    for name, fn in inspect.getmembers(FederationContract, inspect.isfunction):
        params = list(inspect.signature(fn).parameters)
        if name[:1].isupper() and len(params) > 2 and params[2] == "round":
            names.add(name)
    return frozenset(names)


ROUND_ARGUMENT = _round_transactions()


@dataclass(frozen=True)
class TxRecord:
    """One transaction of the chain, as an auditor needs to name it."""

    tx_id: str
    block: int
    function: str
    params: tuple[str, ...]
    creator: str
    time: int
    valid: bool
    round: int | None
    writes: tuple[str, ...]


@dataclass
class BlockHistory:
    """The blocks' testimony: the ledger verification, the re-execution, an index."""

    height: int
    ledger: VerifyReport
    txs: dict[str, TxRecord] = field(default_factory=dict)
    by_block: dict[int, TxRecord] = field(default_factory=dict)
    settings: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    replayed: int = 0
    mismatches: list[Finding] = field(default_factory=list)
    tip_hash: str = ""

    def writer(self, function: str, round_number: int, creator: str) -> str | None:
        """The valid ``function`` transaction of ``creator`` in a round (e.g. its CommitUpdate)."""
        if self._writers is None:
            self._writers = {(t.function, t.round, t.creator): t.tx_id for t in self.txs.values() if t.valid}
        return self._writers.get((function, round_number, creator))

    _writers: dict[tuple[str, int | None, str], str] | None = field(default=None, repr=False)

    def settings_at(self, tx_id: str | None) -> dict[str, Any] | None:
        """The settings in force when ``tx_id`` was committed (None if it is not on the chain)."""
        tx = self.txs.get(tx_id or "")
        if tx is None:
            return None
        index = bisect.bisect_left(self.settings, tx.block, key=lambda s: s[0]) - 1
        return self.settings[index][1] if index >= 0 else None


def read_blocks(ledger: EmbeddedLedger, chaincode: str = "blockfedml", verify: bool = True) -> BlockHistory:
    """Verify, index and re-execute the whole chain in one snapshot of the ledger file.

    With ``verify`` false only the index is built (for the provenance export).
    """
    store = LedgerStore(ledger.path)
    try:
        with store.snapshot():
            history = BlockHistory(height=store.height(), tip_hash=store.tip()[1].hex(),
                                   ledger=verify_ledger(ledger, store) if verify else VerifyReport())
            contract = ledger.chaincode(chaincode) if verify else None
            asyncio.run(_replay(contract, store, history, chaincode))
    finally:
        store.close()
    return history


async def _replay(contract: Any, store: LedgerStore, history: BlockHistory, namespace: str) -> None:
    state: dict[str, tuple[bytes, int]] = {}  # key -> (value, block) from valid transactions
    keys: list[str] = []                      # sorted, for range reads

    def get(key: str) -> tuple[bytes, int, int] | None:
        found = state.get(key)
        return None if found is None else (found[0], found[1], 0)

    def scan(start: str, end: str) -> list[tuple[str, bytes, int, int]]:
        lo = bisect.bisect_left(keys, start)
        hi = bisect.bisect_left(keys, end) if end else len(keys)
        return [(k, state[k][0], state[k][1], 0) for k in keys[lo:hi]]

    for row in store.iter_blocks(1):
        try:
            parsed = blocks.parse_envelope(row.data, row.proposal_signature or b"")
            creator = Identity.deserialize(parsed.proposal.creator).msp_id
        except BlockFedMLError:
            continue  # unreadable: the ledger verification reports it
        proposal = parsed.proposal
        valid = row.validation_code == blocks.VALID
        tx = TxRecord(proposal.tx_id, row.number, proposal.function, tuple(proposal.params), creator,
                      proposal.timestamp_seconds, valid, _round_of(proposal.function, proposal.params,
                                                                    parsed.result),
                      tuple(sorted(parsed.rwset.writes)))
        history.txs.setdefault(tx.tx_id, tx)
        history.by_block[row.number] = tx
        if not valid or parsed.rwset.namespace != namespace:
            continue
        if contract is None:
            _apply(state, keys, parsed.rwset.writes, row.number, history)
            continue
        stub = EmbeddedStub(proposal, get, scan)
        try:
            response = await contract.invoke(stub)
            difference = _difference(stub.rwset, response, parsed)
        except Exception as exc:  # the contract itself failing is a finding, not a crash
            difference = f"re-executing it fails: {type(exc).__name__}: {exc}"
        history.replayed += 1
        if difference:
            history.mismatches.append(Finding(
                f"{tx.function} by {creator}: {difference}", tx.round, tx.tx_id, f"block {row.number}"))
        _apply(state, keys, parsed.rwset.writes, row.number, history)  # what the ledger applied


def _apply(state: dict[str, tuple[bytes, int]], keys: list[str], writes: dict[str, bytes | None],
           block: int, history: BlockHistory) -> None:
    for key, value in writes.items():
        if value is None:
            if state.pop(key, None) is not None:
                keys.remove(key)
            continue
        if key not in state:
            bisect.insort(keys, key)
        state[key] = (value, block)
        if key == "settings":
            try:
                history.settings.append((block, json.loads(value)))
            except ValueError:
                pass  # not JSON: the checks fall back to the current settings


def _difference(rwset: RWSet, response: Any, parsed: blocks.ParsedTransaction) -> str | None:
    """What differs between the re-execution and the recorded transaction, or None."""
    if not 200 <= response.status < 400:
        return f"the contract refuses it on re-execution: {response.message}"
    changed = sorted(k for k in set(rwset.writes) | set(parsed.rwset.writes)
                     if rwset.writes.get(k, b"-") != parsed.rwset.writes.get(k, b"-"))
    if changed:
        return (f"the recorded writes differ from what the contract computes for "
                f"{', '.join(changed[:4])}{' ...' if len(changed) > 4 else ''}"
                f" ({_describe(parsed.rwset.writes.get(changed[0]), rwset.writes.get(changed[0]))})")
    if rwset.reads != parsed.rwset.reads or [(r.start, r.end, r.reads) for r in rwset.ranges] != \
            [(r.start, r.end, r.reads) for r in parsed.rwset.ranges]:
        return "the recorded reads differ from what the contract reads"
    if bytes(response.payload) != parsed.result:
        return "the recorded result differs from what the contract returns"
    return None


def _describe(recorded: bytes | None, computed: bytes | None) -> str:
    """How a recorded JSON value differs from the computed one, field by field (a hint:
    new fields only on the contract's side suggest a newer contract, not a forgery)."""
    try:
        have, want = json.loads(recorded or b"null"), json.loads(computed or b"null")
    except ValueError:
        return "recorded value is not JSON"
    if not (isinstance(have, dict) and isinstance(want, dict)):
        return f"recorded {have!r:.60}, computed {want!r:.60}"
    parts = [f"{k}: recorded {have[k]!r:.40}, computed {want[k]!r:.40}"
             for k in sorted(set(have) & set(want)) if have[k] != want[k]]
    if set(want) - set(have):
        parts.append(f"only the contract writes {', '.join(sorted(set(want) - set(have)))}")
    if set(have) - set(want):
        parts.append(f"only the record has {', '.join(sorted(set(have) - set(want)))}")
    return "; ".join(parts[:3])


def _round_of(function: str, params: list[str], result: bytes) -> int | None:
    if function in ROUND_ARGUMENT and params and params[0].isdigit():
        return int(params[0])
    if function == "OpenRound":
        try:
            return int(json.loads(result)["round"])
        except (ValueError, KeyError, TypeError):
            return None
    return None
