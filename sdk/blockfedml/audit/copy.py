"""The auditor's own copy of the chain: pulled block by block, checked before it is kept.

An auditor must not trust the files it audits: whoever can write them can cut
the chain's tail (every remaining block still validly signed) or hand over a
different history. So the auditor keeps its own copy, in its own folder, and
trusts only:

- the **genesis block hash it pinned** out of band (``audit pin --genesis``,
  from the founder; pinned on first use otherwise, and the report says so);
- the **orderer signature** of every block, checked against the ledger node
  the pinned genesis names;
- the blocks **it already holds**: a source that serves fewer blocks, or other
  blocks at the same heights, is a finding naming the first block concerned;
- the **signed tips** members keep (``tip.json``, ``member tip``): a chain
  shorter than, or diverging from, a tip the orderer signed is a finding.

Blocks come over the ledger service's Deliver protocol (or, in a process that
can read the ledger file, from that file: the same checks apply). The copy is
an embedded ledger file of its own: the audit then verifies it (hash chain,
signatures, endorsements, MVCC replay) and reads the world state from it with
the contract's own queries, without the ledger node's keys.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from blockfedml.errors import BlockFedMLError, IntegrityError, InvalidInputError
from blockfedml.identity.signing import Identity
from blockfedml.ledger.deliver import DeliveredBlock
from blockfedml.ledger.embedded import blocks
from blockfedml.ledger.embedded.ledger import EmbeddedLedger
from blockfedml.ledger.embedded.node import NodeCertificates
from blockfedml.ledger.embedded.store import BlockRow, LedgerStore

COPY_FILE = "ledger-copy.sqlite"
PIN_FILE = "genesis.sha256"


@dataclass
class SyncResult:
    """What one pull found: blocks added, problems (each naming a block), notes."""

    added: int = 0
    held: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class AuditorCopy:
    """The copy in ``folder`` (``<folder>/ledger-copy.sqlite``, ``<folder>/genesis.sha256``)."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.path = self.folder / COPY_FILE

    # -- the pinned genesis ---------------------------------------------------------

    @property
    def pinned(self) -> str | None:
        pin = self.folder / PIN_FILE
        return pin.read_text().strip() if pin.is_file() else None

    def pin(self, genesis_hash: str) -> None:
        """Pin the genesis block hash (hex); ``InvalidInputError`` if malformed or if another is pinned."""
        value = genesis_hash.strip().lower()
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise InvalidInputError(f"a genesis hash is 64 hex digits, not {genesis_hash!r}")
        if self.pinned not in (None, value):
            raise InvalidInputError(f"{self.folder / PIN_FILE} already pins genesis {self.pinned}; an auditor "
                                    "never re-pins: remove the folder to start a new copy")
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.folder / PIN_FILE).write_text(value + "\n")

    # -- pulling blocks ---------------------------------------------------------------

    def sync(self, source: Iterable[DeliveredBlock]) -> SyncResult:
        """Check ``source`` (every block from 0, in order) against what is held and append what is new.

        Nothing that fails a check is kept; the first problem stops the pull.
        """
        result = SyncResult()
        store = self._open_store()
        try:
            held = store.height() if store is not None else 0
            previous: bytes | None = None
            node: NodeCertificates | None = self._node(store)
            expected = 0
            for block in source:
                problem = self._problem(block, expected, previous, node)
                if problem is None and block.number < held:
                    mine = store.block(block.number)  # type: ignore[union-attr]
                    if mine is None or mine.hash != block.hash:
                        problem = (f"block {block.number}: the source serves another block at this height than "
                                   "the auditor's copy holds (the history was rewritten)")
                if problem is not None:
                    result.problems.append(problem)
                    return result
                if block.number == 0:
                    node = blocks.decode_node(block.envelope)
                    if self.pinned is None:
                        self.pin(block.hash.hex())
                        result.notes.append(f"genesis {block.hash.hex()} pinned on first use: compare it with the "
                                            "founder's (`blockfedml audit pin --genesis`)")
                if block.number >= held:
                    store = self._append(store, block)
                    result.added += 1
                else:
                    result.held += 1
                previous, expected = block.hash, expected + 1
            if previous is None:
                result.problems.append("block 0: the source serves no block at all")
            elif held and result.held + result.added < held:
                result.problems.append(f"block {result.held + result.added}: the source serves "
                                       f"{result.held + result.added} blocks but the auditor's copy holds {held} "
                                       "(the chain's tail was cut)")
        finally:
            if store is not None:
                store.close()
        return result

    def _problem(self, block: DeliveredBlock, expected: int, previous: bytes | None,
                 node: NodeCertificates | None) -> str | None:
        if block.number != expected:
            return (f"block {expected}: missing (the source serves block {block.number} after block "
                    f"{expected - 1})")
        where = f"block {block.number}" + (f" (tx {_tx_id(block)})" if block.number and _tx_id(block) else "")
        if block.number == 0:
            if block.previous_hash != blocks.GENESIS_PREVIOUS_HASH or \
                    block.data_hash != blocks.config_data_hash(block.envelope):
                return f"{where}: the genesis block does not hash to its header"
            if self.pinned is not None and block.hash.hex() != self.pinned:
                return (f"{where}: the genesis block hashes to {block.hash.hex()}, not to the pinned "
                        f"{self.pinned}: this is another consortium's chain, or a forged one")
            try:
                blocks.decode_node(block.envelope)
            except BlockFedMLError as exc:
                return f"{where}: {exc}"
            return None
        if previous is None or block.previous_hash != previous:
            return f"{where}: its previous hash does not match block {block.number - 1}"
        if block.data_hash != blocks.transaction_data_hash(block.envelope, block.proposal_signature,
                                                           block.validation_code):
            return f"{where}: its data hash does not match its transaction"
        if node is None or not node.block_signature_ok(block.header, block.orderer_signature):
            return f"{where}: the orderer signature does not verify against the pinned genesis's ledger node"
        return None

    def _node(self, store: LedgerStore | None) -> NodeCertificates | None:
        if store is None:
            return None
        genesis = store.block(0)
        return blocks.decode_node(genesis.data) if genesis is not None else None

    def _open_store(self) -> LedgerStore | None:
        return LedgerStore(self.path) if self.path.is_file() else None

    def _append(self, store: LedgerStore | None, block: DeliveredBlock) -> LedgerStore:
        """Keep one checked block (and, for a valid transaction, its writes in the copy's state)."""
        if block.number == 0:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            store = LedgerStore(self.path)
            channel, _ = blocks.decode_config(block.envelope)
            store.initialize(BlockRow(0, block.previous_hash, block.data_hash, block.hash, "config", None, None,
                                      None, None, blocks.VALID, block.envelope, None), {"channel": channel})
            return store
        assert store is not None
        try:
            parsed = blocks.parse_envelope(block.envelope, block.proposal_signature)
            creator = Identity.deserialize(parsed.proposal.creator).msp_id
        except BlockFedMLError as exc:  # signed by the orderer, yet unreadable: kept, verify names it
            raise IntegrityError(f"block {block.number}: {exc}") from exc
        with store.write():
            store.insert_block(BlockRow(
                block.number, block.previous_hash, block.data_hash, block.hash, "transaction",
                parsed.proposal.tx_id, creator, parsed.proposal.chaincode, parsed.proposal.function,
                block.validation_code, block.envelope, block.proposal_signature,
                orderer_signature=block.orderer_signature))
            if block.validation_code == blocks.VALID:
                for key, value in parsed.rwset.writes.items():
                    if value is None:
                        store.delete_state(parsed.rwset.namespace, key)
                    else:
                        store.put_state(parsed.rwset.namespace, key, value, block.number, 0)
        return store

    def ledger(self) -> EmbeddedLedger:
        """The copy, opened read-only (no node keys): for ``verify``, replay and queries."""
        return EmbeddedLedger.open(self.path)

    # -- members' signed tips ----------------------------------------------------------

    def check_tips(self, tips: dict[str, dict]) -> list[str]:
        """Problems with the copy against members' signed tips (name -> ``tip.json`` content)."""
        problems = []
        store = self._open_store()
        if store is None:
            return ["block 0: the auditor holds no copy to compare the tips with"]
        try:
            node = self._node(store)
            height = store.height()
            for name, tip in sorted(tips.items()):
                try:
                    number = int(tip["number"])
                    header = blocks.block_header_bytes(number, bytes.fromhex(tip["previous_hash"]),
                                                       bytes.fromhex(tip["data_hash"]))
                    signature = bytes.fromhex(tip["orderer_signature"])
                except (KeyError, TypeError, ValueError) as exc:
                    problems.append(f"tip {name}: malformed ({exc})")
                    continue
                if node is None or not node.block_signature_ok(header, signature):
                    problems.append(f"tip {name}: its orderer signature does not verify; it proves nothing")
                    continue
                if number >= height:
                    problems.append(f"block {number}: {name} holds a tip the orderer signed at block {number}, but "
                                    f"the chain audited ends at block {height - 1} (its tail was cut)")
                    continue
                mine = store.block(number)
                if mine is None or mine.hash != hashlib.sha256(header).digest():
                    problems.append(f"block {number}: the chain audited diverges from the tip {name} holds, "
                                    "signed by the orderer")
        finally:
            store.close()
        return problems


def _tx_id(block: DeliveredBlock) -> str | None:
    try:
        return blocks.parse_envelope(block.envelope, block.proposal_signature).proposal.tx_id
    except BlockFedMLError:
        return None


def tip_record(row: BlockRow | DeliveredBlock) -> dict[str, object]:
    """The signed header of a block, as a member keeps it (``tip.json``)."""
    return {"number": row.number, "previous_hash": row.previous_hash.hex(), "data_hash": row.data_hash.hex(),
            "hash": row.hash.hex(), "orderer_signature": (row.orderer_signature or b"").hex()}


def read_tip(path: Path | str) -> dict:
    """A witness file; ``InvalidInputError`` naming it if unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"witness {path} is not a tip file: {exc}") from exc


def write_tip(path: Path, record: dict[str, object]) -> bool:
    """Keep ``record`` unless the tip already kept is higher; True if written (atomically)."""
    try:
        if int(json.loads(path.read_text())["number"]) >= int(record["number"]):  # type: ignore[arg-type]
            return False
    except (OSError, ValueError, KeyError, TypeError):
        pass
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, sort_keys=True))
    os.replace(tmp, path)
    return True


def file_source(path: Path | str) -> Iterable[DeliveredBlock]:
    """The blocks of a ledger file this process can read, as delivered blocks (same checks)."""
    from blockfedml.ledger.deliver import embedded_block
    from blockfedml.ledger.embedded.service import to_fabric_block

    store = LedgerStore(Path(path))
    try:
        with store.snapshot():
            for row in store.iter_blocks():
                yield embedded_block(to_fabric_block(row))
    finally:
        store.close()


def state_differences(copy_path: Path, source_path: Path) -> list[str]:
    """World-state rows of a readable ledger file that its own blocks (as the copy replayed
    them) do not produce: ``verify``-style problem lines naming the key."""
    def rows(path: Path) -> dict[tuple[str, str], tuple[bytes, int]]:
        store = LedgerStore(path)
        try:
            return {(ns, key): (value, block) for ns, key, value, block, _ in store.iter_state()}
        finally:
            store.close()

    mine, theirs = rows(copy_path), rows(source_path)
    problems = []
    for ns, key in sorted(set(mine) | set(theirs)):
        label = f"state {ns}/{key!r}"
        if (ns, key) not in mine:
            problems.append(f"{label}: present in the ledger's state table but written by no valid transaction")
        elif (ns, key) not in theirs:
            problems.append(f"{label}: written at block {mine[(ns, key)][1]} but missing from the state table")
        elif mine[(ns, key)] != theirs[(ns, key)]:
            problems.append(f"{label}: value differs from the one written at block {mine[(ns, key)][1]}")
    return problems
