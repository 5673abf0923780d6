"""The auditor's own copy of a Fabric channel, pulled from several organizations' peers.

On Fabric no single party holds "the" ledger file: every organization's peer
keeps the channel's blocks. An auditor trusts none of them alone. It pulls
every block over Fabric's Deliver service (a seek request signed with its own
identity: a channel reader) from the peers of **at least two organizations**,
compares them block by block (header, transactions and validation codes; the
orderer signatures may differ, each orderer of a raft cluster signs the
blocks it writes), and keeps the blocks in its own folder
(``<audit folder>/fabric-copy.sqlite``), next to the genesis hash it pinned
(``genesis.sha256``, as on the embedded ledger). A source that serves other
blocks than the copy holds, or fewer, is a finding naming the first block.
Every block is then verified and replayed by ``fabric_chain.FabricChain``
against the configuration in the pinned genesis block.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from fabric_protos.common import common_pb2

from blockfedml.audit.copy import AuditorCopy, SyncResult
from blockfedml.audit.fabric_chain import FabricChain, block_hash, header_bytes, validation_codes
from blockfedml.audit.replay import BlockHistory
from blockfedml.errors import BlockFedMLError

if TYPE_CHECKING:
    from blockfedml.audit.fabric_config import ChannelConfig
    from blockfedml.consortium import Consortium

COPY_FILE = "fabric-copy.sqlite"
CATCH_UP_SECONDS = 10.0  # how long a peer behind the others may take to deliver the missing blocks

# A source: (start, stop or None for "up to its tip", wait for blocks not yet cut) -> blocks
BlockSource = Callable[[int, "int | None", bool], Iterable[common_pb2.Block]]


@dataclass
class FabricPull:
    """What was pulled: the agreed blocks, which peers served them, and problems naming a block."""

    blocks: list[common_pb2.Block] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def pull_and_compare(sources: dict[str, BlockSource]) -> FabricPull:
    """Every block from genesis from each source (in parallel), compared block by block.

    A source that fails to answer is named in a note; fewer than two answering
    sources is a problem (nothing to compare with). A source behind the others
    is waited for (``CATCH_UP_SECONDS``): peers commit the same block a few
    milliseconds apart.
    """
    pulled: dict[str, list[common_pb2.Block]] = {}
    failed: dict[str, str] = {}

    def fetch(name: str, source: BlockSource) -> None:
        try:
            pulled[name] = list(source(0, None, False))
        except BlockFedMLError as exc:
            failed[name] = str(exc)
        except Exception as exc:  # noqa: BLE001 - a peer answering garbage is named, not a crash of the audit
            failed[name] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=fetch, args=item, daemon=True) for item in sources.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = FabricPull(notes=[f"{name} did not deliver blocks: {why}" for name, why in sorted(failed.items())])
    names = [n for n in sources if n in pulled]
    result.peers = names
    if len(names) < 2:
        result.problems.append(f"block 0: blocks came from {len(names)} peer(s) ({', '.join(names) or 'none'}); "
                               "the auditor compares at least two organizations' peers")
        result.blocks = pulled[names[0]] if names else []
        return result
    tallest = max(len(pulled[n]) for n in names)
    for name in names:
        have = len(pulled[name])
        if have < tallest:
            try:
                pulled[name].extend(sources[name](have, tallest - 1, True))
            except BlockFedMLError as exc:
                result.notes.append(f"{name} stopped at block {have - 1}: {exc}")
    reference = names[0]
    for number in range(tallest):
        served = {n: pulled[n][number] for n in names if number < len(pulled[n])}
        if len(served) < 2:
            result.problems.append(f"block {number}: only {', '.join(served)} serves it; "
                                   f"{', '.join(n for n in names if n not in served)} ended before it")
            break
        first = served.get(reference) or next(iter(served.values()))
        for name, block in served.items():
            difference = _difference(first, block)
            if difference:
                result.problems.append(f"block {number}: the peers disagree: {reference} and {name} serve "
                                       f"different {difference}")
                return result
        result.blocks.append(first)
    return result


def _difference(a: common_pb2.Block, b: common_pb2.Block) -> str | None:
    if a.header.number != b.header.number:
        return "block numbers"
    if header_bytes(a) != header_bytes(b):
        return "headers (block hash)"
    if list(a.data.data) != list(b.data.data):
        changed = next(i for i, (x, y) in enumerate(zip(a.data.data, b.data.data)) if x != y) \
            if len(a.data.data) == len(b.data.data) else None
        return "transactions" + (f" (transaction {changed})" if changed is not None else "")
    if validation_codes(a) != validation_codes(b):
        return "validation codes"
    return None


class FabricAuditorCopy:
    """The copy in ``folder``: blocks as Fabric serializes them, the pinned genesis beside them."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.path = self.folder / COPY_FILE
        self.pins = AuditorCopy(folder)  # genesis.sha256: the same pin as on the embedded ledger

    def _db(self) -> sqlite3.Connection:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = sqlite3.connect(self.path)
        db.execute("CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash BLOB NOT NULL, "
                   "block BLOB NOT NULL)")
        return db

    def held(self) -> list[common_pb2.Block]:
        if not self.path.is_file():
            return []
        db = self._db()
        try:
            return [common_pb2.Block.FromString(row[0])
                    for row in db.execute("SELECT block FROM blocks ORDER BY number")]
        finally:
            db.close()

    def sync(self, sources: dict[str, BlockSource], chaincode: str, contract: object,
             tips: dict[str, dict] | None = None) -> tuple[SyncResult, BlockHistory]:
        """Pull, compare, check against the copy and the pin, verify and replay, hold the chain to
        the members' signed ``tips``; keep the new blocks up to the first problem. Returns what the
        pull found and the verified history."""
        result = SyncResult()
        pulled = pull_and_compare(sources)
        result.notes.extend(pulled.notes)
        if pulled.peers:
            result.notes.append(f"blocks pulled from {', '.join(pulled.peers)} and compared block by block")
        result.problems.extend(pulled.problems)
        held = self.held()
        blocks = pulled.blocks
        if blocks:
            genesis = block_hash(blocks[0]).hex()
            if self.pins.pinned is None:
                self.pins.pin(genesis)
                result.notes.append(f"genesis {genesis} pinned on first use: compare it with the founder's "
                                    "(`blockfedml audit pin --genesis`)")
            elif genesis != self.pins.pinned:
                result.problems.append(f"block 0: the genesis block hashes to {genesis}, not to the pinned "
                                       f"{self.pins.pinned}: this is another channel, or a forged one")
                blocks = []
        for number, mine in enumerate(held):
            if number >= len(blocks):
                if blocks:
                    result.problems.append(f"block {number}: the peers serve {len(blocks)} blocks but the "
                                           f"auditor's copy holds {len(held)} (the chain's tail was cut)")
                break
            if block_hash(mine) != block_hash(blocks[number]):
                result.problems.append(f"block {number}: the peers serve another block at this height than "
                                       "the auditor's copy holds (the history was rewritten)")
                blocks = blocks[:number]
                break
        chain = FabricChain(chaincode)
        audited = held if len(held) > len(blocks) else blocks
        history = chain.check(audited, contract)
        result.problems.extend(check_fabric_tips(audited, chain.config, tips or {}))
        first_bad = _first_block(history.ledger.problems + result.problems)
        keep = [b for b in blocks[len(held):] if first_bad is None or b.header.number < first_bad]
        if keep:
            db = self._db()
            try:
                with db:
                    db.executemany("INSERT INTO blocks VALUES (?, ?, ?)",
                                   [(b.header.number, block_hash(b), b.SerializeToString()) for b in keep])
            finally:
                db.close()
        result.added, result.held = len(keep), min(len(held), len(blocks))
        return result, history


def _first_block(problems: list[str]) -> int | None:
    numbers = []
    for problem in problems:
        if problem.startswith("block "):
            head = problem[6:].split(":", 1)[0].split(" ", 1)[0]
            if head.isdigit():
                numbers.append(int(head))
    return min(numbers) if numbers else None


def peer_sources(consortium: "Consortium", auditor: str) -> dict[str, BlockSource]:
    """One source per organization's peer in the connection profile, each asked with the
    auditor's own identity (a channel reader), never with the organization's."""
    from blockfedml.ledger.fabric import FabricGateway

    assert consortium.fabric is not None
    identity = consortium.signing_identity(auditor)
    sources: dict[str, BlockSource] = {}
    for org in consortium.fabric.orgs:
        name = org.endpoint.server_name or f"{org.name} peer at {org.endpoint.address}"

        def source(start: int, stop: int | None, wait: bool, endpoint=org.endpoint) -> Iterable[common_pb2.Block]:
            gateway = FabricGateway.connect(identity, endpoint)
            try:
                yield from gateway.blocks(consortium.channel, start, stop, wait=wait,
                                          timeout=CATCH_UP_SECONDS if wait else 120.0)
            finally:
                gateway.close()
        sources[name] = source
    return sources


def fabric_history(consortium: "Consortium", auditor: str, verify: bool = True,
                   sources: dict[str, BlockSource] | None = None,
                   tips: dict[str, dict] | None = None) -> tuple[BlockHistory, list[str]]:
    """The auditor's copy brought up to date from the peers, verified, replayed and held to the
    members' signed ``tips``: the history (its ``ledger`` report holds every problem) and notes."""
    assert consortium.fabric is not None
    contract = None
    if verify:
        from blockfedml_chaincode.shim import new_chaincode
        contract = new_chaincode()
    copy = FabricAuditorCopy(consortium.audit_folder(auditor))
    synced, history = copy.sync(sources if sources is not None else peer_sources(consortium, auditor),
                                consortium.fabric.chaincode, contract, tips)
    history.ledger.problems[:0] = synced.problems
    return history, synced.notes


# -- members' signed tips on Fabric ---------------------------------------------------

def fabric_tip_record(block: common_pb2.Block) -> dict[str, object]:
    """The signed header of a Fabric block, as a member keeps it (``tip.json``): the header and
    the orderer's signature metadata (the signature covers that metadata's value too)."""
    return {"number": block.header.number, "previous_hash": bytes(block.header.previous_hash).hex(),
            "data_hash": bytes(block.header.data_hash).hex(), "hash": block_hash(block).hex(),
            "orderer_signatures": bytes(block.metadata.metadata[common_pb2.SIGNATURES]).hex()}


def check_fabric_tips(history_blocks: list[common_pb2.Block], config: "ChannelConfig | None",
                      tips: dict[str, dict]) -> list[str]:
    """Problems with the audited chain against members' signed tips (name -> ``tip.json``)."""
    from blockfedml.audit.fabric_chain import orderer_signature_problem

    problems = []
    height = len(history_blocks)
    for name, tip in sorted(tips.items()):
        try:
            block = common_pb2.Block()
            block.header.number = int(tip["number"])
            block.header.previous_hash = bytes.fromhex(tip["previous_hash"])
            block.header.data_hash = bytes.fromhex(tip["data_hash"])
            block.metadata.metadata.append(bytes.fromhex(tip["orderer_signatures"]))
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"tip {name}: malformed for a Fabric chain ({exc})")
            continue
        why = "no channel configuration" if config is None else orderer_signature_problem(block, config)
        if why is not None:
            problems.append(f"tip {name}: its orderer signature does not verify ({why}); it proves nothing")
            continue
        number = block.header.number
        if number >= height:
            problems.append(f"block {number}: {name} holds a tip the orderer signed at block {number}, but the "
                            f"chain audited ends at block {height - 1} (its tail was cut)")
        elif block_hash(history_blocks[number]) != block_hash(block):
            problems.append(f"block {number}: the chain audited diverges from the tip {name} holds, signed by "
                            "the orderer")
    return problems
