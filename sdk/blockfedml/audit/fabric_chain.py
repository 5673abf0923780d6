"""Verifying and replaying a Fabric channel's blocks, as an auditor with its own copy.

The embedded ledger's audit (``replay.py``, ``embedded/verify.py``) reads one
transaction per block in the embedded ledger's layout. A Fabric peer's blocks
are Fabric's own: many transactions per block, a channel configuration in
block 0, endorsements by several organizations' peers, read/write sets in
several namespaces (``_lifecycle`` too) with versions ``(block, tx index)``.
This module checks them with the same strictness and produces the same
``BlockHistory``, so the ``ledger`` and ``replay`` checks run on Fabric:

``ledger``  every block's number, link to the block before and data hash; its
            orderer signature by an orderer organization of the configuration
            in the pinned genesis block (``fabric_config.py``); every
            transaction's creator (signature, certificate from an application
            organization's CA, transaction ID from nonce and creator) and
            endorsements (each a peer of an application organization, each
            signature verified, enough organizations for the channel's
            ``Endorsement`` rule); and Fabric's MVCC validation replayed from
            genesis (point reads, range reads with Fabric's read-hashing of
            long ranges, hashed private-data reads): a validation code that
            the replay does not give is a finding naming the block and
            transaction.
``replay``  every valid transaction of the federation's chaincode re-executed
            by the contract against the state replayed from the blocks before
            it: its writes, point reads and result must be the recorded ones.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from fabric_protos.common import common_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.peer import proposal_pb2, proposal_response_pb2, transaction_pb2

from blockfedml.audit.fabric_config import ChannelConfig
from blockfedml.audit.findings import Finding
from blockfedml.audit.replay import BlockHistory, TxRecord, _apply, _describe, _round_of
from blockfedml.errors import BlockFedMLError, IntegrityError, InvalidInputError
from blockfedml.ledger.embedded.blocks import block_header_bytes, validation_code_name
from blockfedml.ledger.embedded.stub import EmbeddedStub
from blockfedml.ledger.embedded.verify import VerifyReport
from blockfedml.ledger.proposal import Proposal, parse_proposal, rebuild_proposal_bytes

VALID = transaction_pb2.VALID
MVCC_CODES = (transaction_pb2.MVCC_READ_CONFLICT, transaction_pb2.PHANTOM_READ_CONFLICT)
LIFECYCLE = "_lifecycle"

Version = tuple[int, int]


def header_bytes(block: common_pb2.Block) -> bytes:
    """Fabric's DER block header: what the block hash covers and the orderer signs."""
    return block_header_bytes(block.header.number, bytes(block.header.previous_hash), bytes(block.header.data_hash))


def block_hash(block: common_pb2.Block) -> bytes:
    return hashlib.sha256(header_bytes(block)).digest()


def read_block_file(path: str | Path) -> str:
    """The header hash (hex) of a Fabric block file, such as the channel genesis block configtxgen
    writes; ``InvalidInputError`` naming the file if it is not one."""
    try:
        block = common_pb2.Block.FromString(Path(path).read_bytes())
    except OSError as exc:
        raise InvalidInputError(f"cannot read the genesis block {path}: {exc}") from exc
    except Exception as exc:
        raise InvalidInputError(f"{path} is not a Fabric block: {exc}") from exc
    if block.header.number != 0 or not block.data.data or not is_config_block(block):
        raise InvalidInputError(f"{path} is not a channel genesis block (block {block.header.number}, "
                                f"{len(block.data.data)} transactions)")
    return block_hash(block).hex()


def validation_codes(block: common_pb2.Block) -> bytes:
    metadata = block.metadata.metadata
    return bytes(metadata[common_pb2.TRANSACTIONS_FILTER]) if len(metadata) > common_pb2.TRANSACTIONS_FILTER else b""


def is_config_block(block: common_pb2.Block) -> bool:
    try:
        payload = common_pb2.Payload.FromString(common_pb2.Envelope.FromString(block.data.data[0]).payload)
        return common_pb2.ChannelHeader.FromString(payload.header.channel_header).type == common_pb2.CONFIG
    except Exception:
        return False


def orderer_signature_problem(block: common_pb2.Block, config: ChannelConfig) -> str | None:
    """None when at least one signature in the block's SIGNATURES metadata is an orderer
    organization's over ``value || signature header || header`` (BlockValidation: ANY Writers)."""
    try:
        metadata = common_pb2.Metadata.FromString(block.metadata.metadata[common_pb2.SIGNATURES])
    except Exception as exc:
        return f"its signature metadata is malformed: {exc}"
    header = header_bytes(block)
    reasons = []
    for signature in metadata.signatures:
        try:
            creator = common_pb2.SignatureHeader.FromString(signature.signature_header).creator
        except Exception as exc:
            reasons.append(f"malformed signature header ({exc})")
            continue
        signed = bytes(metadata.value) + bytes(signature.signature_header) + header
        msp, problem = config.signed_by(creator, signed, bytes(signature.signature), config.orderer_orgs, None)
        if problem is None:
            return None
        reasons.append(f"{msp}: {problem}")
    return ("no orderer signature verifies against the orderer organizations of the pinned genesis ("
            + ("; ".join(reasons) if reasons else "the block carries none") + ")")


@dataclass
class _Tx:
    """One endorser transaction of a block, decoded."""

    tx_id: str
    creator: bytes
    payload: bytes
    signature: bytes
    nonce: bytes
    proposal: Proposal | None
    response_payload: bytes
    endorsements: list[tuple[bytes, bytes]]
    chaincode: str
    rwsets: dict[str, kv_rwset_pb2.KVRWSet]
    hashed: dict[tuple[str, str], rwset_pb2.CollectionHashedReadWriteSet]
    status: int
    result: bytes


def _decode(envelope: bytes) -> tuple[int, _Tx | None]:
    """(header type, the endorser transaction or None for other types); ``IntegrityError`` if malformed."""
    try:
        env = common_pb2.Envelope.FromString(envelope)
        payload = common_pb2.Payload.FromString(env.payload)
        channel_header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
        if channel_header.type != common_pb2.ENDORSER_TRANSACTION:
            return channel_header.type, None
        signature_header = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
        tx = transaction_pb2.Transaction.FromString(payload.data)
        if len(tx.actions) != 1:
            raise IntegrityError(f"a transaction must hold exactly one action, not {len(tx.actions)}")
        action_payload = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
        prp = proposal_response_pb2.ProposalResponsePayload.FromString(action_payload.action.proposal_response_payload)
        action = proposal_pb2.ChaincodeAction.FromString(prp.extension)
        txrw = rwset_pb2.TxReadWriteSet.FromString(action.results)
        rwsets, hashed = {}, {}
        for ns in txrw.ns_rwset:
            rwsets[ns.namespace] = kv_rwset_pb2.KVRWSet.FromString(ns.rwset)
            for coll in ns.collection_hashed_rwset:
                hashed[(ns.namespace, coll.collection_name)] = coll
    except IntegrityError:
        raise
    except Exception as exc:
        raise IntegrityError(f"malformed transaction: {exc}") from exc
    proposal = None
    try:
        proposal = parse_proposal(rebuild_proposal_bytes(payload.header.SerializeToString(),
                                                         action_payload.chaincode_proposal_payload))
    except BlockFedMLError:
        pass  # not an invocation this SDK reads (e.g. a lifecycle call): checked by hash and signature only
    if hashlib.sha256(bytes(payload.header.channel_header) + bytes(payload.header.signature_header)
                      + bytes(action_payload.chaincode_proposal_payload)).digest() != prp.proposal_hash:
        raise IntegrityError("the endorsed action does not answer the transaction's proposal")
    return channel_header.type, _Tx(
        tx_id=channel_header.tx_id, creator=bytes(signature_header.creator), payload=bytes(env.payload),
        signature=bytes(env.signature), nonce=bytes(signature_header.nonce), proposal=proposal,
        response_payload=bytes(action_payload.action.proposal_response_payload),
        endorsements=[(bytes(e.endorser), bytes(e.signature)) for e in action_payload.action.endorsements],
        chaincode=action.chaincode_id.name, rwsets=rwsets, hashed=hashed, status=action.response.status,
        result=bytes(action.response.payload))


class _State:
    """The world state as the valid transactions left it: values and versions per namespace."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, tuple[bytes, Version]]] = {}
        self.keys: dict[str, list[str]] = {}
        self.hashed: dict[tuple[str, str, bytes], Version] = {}

    def version(self, ns: str, key: str) -> Version | None:
        found = self.values.get(ns, {}).get(key)
        return None if found is None else found[1]

    def get(self, ns: str, key: str) -> tuple[bytes, int, int] | None:
        found = self.values.get(ns, {}).get(key)
        return None if found is None else (found[0], *found[1])

    def scan(self, ns: str, start: str, end: str, include_end: bool = False) -> list[tuple[str, bytes, int, int]]:
        keys = self.keys.get(ns, [])
        lo = bisect.bisect_left(keys, start)
        hi = (bisect.bisect_right(keys, end) if include_end else bisect.bisect_left(keys, end)) if end else len(keys)
        values = self.values[ns] if keys else {}
        return [(k, values[k][0], *values[k][1]) for k in keys[lo:hi]]

    def put(self, ns: str, key: str, value: bytes | None, version: Version) -> None:
        values, keys = self.values.setdefault(ns, {}), self.keys.setdefault(ns, [])
        if value is None:
            if values.pop(key, None) is not None:
                keys.pop(bisect.bisect_left(keys, key))
            return
        if key not in values:
            bisect.insort(keys, key)
        values[key] = (value, version)


def _range_form(reads: list[kv_rwset_pb2.KVRead], max_degree: int) -> tuple[list[bytes], Any]:
    """Fabric's record of a range read (``rwsetutil.RangeQueryResultsHelper``): the raw reads,
    or, past ``max_degree`` results, a merkle summary (level, top hashes) of their hashes."""
    tree: dict[int, list[bytes]] = {}
    max_level, pending = 1, list(reads)

    def combine(hashes: list[bytes]) -> bytes:
        return hashlib.sha256(b"".join(hashes)).digest()

    def update(leaf: bytes) -> None:
        nonlocal max_level
        tree.setdefault(1, []).append(leaf)
        level = 1
        while len(tree[level]) > max_degree:
            combined = combine(tree.pop(level))
            level += 1
            tree.setdefault(level, []).append(combined)
            max_level = max(max_level, level)

    if len(pending) <= max_degree:
        return [r.SerializeToString() for r in pending], None
    chunks, pending = [], list(reads)
    while len(pending) > max_degree:  # AddResult hashes a chunk once it holds max_degree + 1 reads
        chunks.append(pending[:max_degree + 1])
        pending = pending[max_degree + 1:]
    if pending:
        chunks.append(pending)
    for chunk in chunks:
        update(hashlib.sha256(kv_rwset_pb2.QueryReads(kv_reads=chunk).SerializeToString()).digest())
    level = 1
    while level < max_level:  # merkleTree.done
        hashes = tree.pop(level, [])
        level += 1
        if hashes:
            tree.setdefault(level, []).append(hashes[0] if len(hashes) == 1 else combine(hashes))
    if len(tree.get(max_level, [])) > max_degree:
        top = combine(tree.pop(max_level))
        max_level += 1
        tree[max_level] = [top]
    return [], (max_level, tree.get(max_level, []))


def _mvcc_conflict(tx: _Tx, state: _State) -> str | None:
    """Fabric's read validation of one transaction against the replayed state: the first conflict, or None."""
    for ns, kv in tx.rwsets.items():
        for read in kv.reads:
            recorded = (read.version.block_num, read.version.tx_num) if read.HasField("version") else None
            if state.version(ns, read.key) != recorded:
                return f"read of {ns}/{read.key!r} at version {recorded} (now {state.version(ns, read.key)})"
        for info in kv.range_queries_info:
            rows = state.scan(ns, info.start_key, info.end_key, include_end=not info.itr_exhausted)
            now = [kv_rwset_pb2.KVRead(key=k, version=kv_rwset_pb2.Version(block_num=b, tx_num=t))
                   for k, _, b, t in rows]
            if info.HasField("reads_merkle_hashes"):
                summary = info.reads_merkle_hashes
                _, merkle = _range_form(now, summary.max_degree or 50)
                if merkle != (summary.max_level, list(summary.max_level_hashes)):
                    return f"range {ns}/[{info.start_key!r}, {info.end_key!r}] (phantom)"
            elif [r.SerializeToString() for r in info.raw_reads.kv_reads] != [r.SerializeToString() for r in now]:
                return f"range {ns}/[{info.start_key!r}, {info.end_key!r}] (phantom)"
    for (ns, coll), hashed in tx.hashed.items():
        for read in kv_rwset_pb2.HashedRWSet.FromString(hashed.hashed_rwset).hashed_reads:
            recorded = (read.version.block_num, read.version.tx_num) if read.HasField("version") else None
            if state.hashed.get((ns, coll, bytes(read.key_hash))) != recorded:
                return f"private read in {ns}/{coll} at version {recorded}"
    return None


def _apply_writes(tx: _Tx, state: _State, version: Version) -> None:
    for ns, kv in tx.rwsets.items():
        for write in kv.writes:
            state.put(ns, write.key, None if write.is_delete else bytes(write.value), version)
    for (ns, coll), hashed in tx.hashed.items():
        for write in kv_rwset_pb2.HashedRWSet.FromString(hashed.hashed_rwset).hashed_writes:
            if write.is_delete:
                state.hashed.pop((ns, coll, bytes(write.key_hash)), None)
            else:
                state.hashed[(ns, coll, bytes(write.key_hash))] = version


@dataclass
class FabricChain:
    """Verification and replay of Fabric blocks from genesis (see the module docstring)."""

    chaincode: str
    report: VerifyReport = field(default_factory=VerifyReport)
    history: BlockHistory | None = None
    config: ChannelConfig | None = None
    _state: _State = field(default_factory=_State)
    _seen: set[str] = field(default_factory=set)
    _pending: list[tuple[int, int, _Tx]] = field(default_factory=list)

    def check(self, blocks: Iterable[common_pb2.Block], contract: Any) -> BlockHistory:
        """Verify every block, then re-execute the chaincode's valid transactions with ``contract``
        (None: index only). Problems go to the history's ``ledger`` report, naming the block."""
        previous: bytes | None = None
        height, tip = 0, b""
        history = BlockHistory(height=0, ledger=self.report)
        self.history = history
        for expected, block in enumerate(blocks):
            number = block.header.number
            self.report.blocks += 1
            if number != expected:
                self.report.add(f"block {expected}: missing (block {number} comes after block {expected - 1})")
                break
            if number and bytes(block.header.previous_hash) != previous:
                self.report.add(f"block {number}: its previous hash does not match block {number - 1}")
            if hashlib.sha256(b"".join(block.data.data)).digest() != bytes(block.header.data_hash):
                self.report.add(f"block {number}: its data hash does not match its transactions")
            self._block(block)
            previous, height, tip = block_hash(block), number + 1, block_hash(block)
        history.height, history.tip_hash = height, tip.hex()
        history.ledger.state_keys = sum(len(v) for v in self._state.values.values())
        asyncio.run(self._reexecute(contract, history))
        return history

    def _block(self, block: common_pb2.Block) -> None:
        number = block.header.number
        if number == 0 or is_config_block(block):
            try:
                config = ChannelConfig.from_envelope(bytes(block.data.data[0]))
            except (IntegrityError, IndexError) as exc:
                self.report.add(f"block {number}: {exc}")
                return
            if number and self.config is not None:
                problem = orderer_signature_problem(block, self.config)
                if problem is not None:
                    self.report.add(f"block {number}: {problem}")
                    return
            self.config = config
            return
        if self.config is None:
            self.report.add(f"block {number}: no channel configuration to check it against")
            return
        problem = orderer_signature_problem(block, self.config)
        if problem is not None:
            self.report.add(f"block {number}: {problem}")
        codes = validation_codes(block)
        if len(codes) != len(block.data.data):
            self.report.add(f"block {number}: {len(codes)} validation codes for {len(block.data.data)} transactions")
            return
        for index, (envelope, code) in enumerate(zip(block.data.data, codes)):
            self._transaction(number, index, bytes(envelope), code)

    def _transaction(self, number: int, index: int, envelope: bytes, code: int) -> None:
        where = f"block {number}"
        try:
            kind, tx = _decode(envelope)
        except IntegrityError as exc:
            if code == VALID:
                self.report.add(f"{where}: transaction {index}: {exc}")
            return
        if tx is None:
            if code == VALID:
                self.report.add(f"{where}: transaction {index} of type {kind} is marked VALID; only endorser "
                                "transactions and configurations are expected")
            return
        where = f"{where} (tx {tx.tx_id})"
        assert self.config is not None
        problem = None
        if hashlib.sha256(tx.nonce + tx.creator).hexdigest() != tx.tx_id:
            problem = "its transaction ID is not derived from its nonce and creator"
        if problem is None:
            msp, why = self.config.signed_by(tx.creator, tx.payload, tx.signature, self.config.application_orgs, "client")
            problem = None if why is None else f"its creator ({msp}): {why}"
        if problem is None and code == VALID:
            problem = self._endorsement_problem(tx)
        if code == VALID and tx.tx_id in self._seen:
            problem = "its transaction ID appears twice on the chain"
        if problem is not None and code == VALID:
            self.report.add(f"{where}: {problem}")
        self._seen.add(tx.tx_id)
        conflict = _mvcc_conflict(tx, self._state) if code in (VALID, *MVCC_CODES) else None
        if code == VALID and conflict:
            self.report.add(f"{where}: recorded as VALID but the replay finds a conflict: {conflict}")
        elif code in MVCC_CODES and not conflict:
            self.report.add(f"{where}: recorded as {validation_code_name(code)} but the replay finds no conflict")
        valid = code == VALID
        if valid:
            self.report.valid_transactions += 1
            self._pending.append((number, index, tx))
            _apply_writes(tx, self._state, (number, index))
        else:
            self.report.invalid_transactions += 1
        self._index(number, index, tx, valid)

    def _endorsement_problem(self, tx: _Tx) -> str | None:
        assert self.config is not None
        orgs = set()
        for endorser, signature in tx.endorsements:
            msp, why = self.config.signed_by(endorser, tx.response_payload + endorser, signature,
                                             self.config.application_orgs, "peer")
            if why is not None:
                return f"an endorsement by {msp}: {why}"
            orgs.add(msp)
        needed = self.config.endorsements_needed() if tx.chaincode == self.chaincode else 1
        if len(orgs) < needed:
            return (f"endorsed by {len(orgs)} organization(s) ({', '.join(sorted(orgs)) or 'none'}); the channel's "
                    f"{self.config.endorsement_rule} Endorsement rule needs {needed}")
        return None

    def _index(self, number: int, index: int, tx: _Tx, valid: bool) -> None:
        assert self.history is not None
        if tx.proposal is None or tx.chaincode != self.chaincode:
            return
        from blockfedml.identity.signing import Identity
        try:
            creator = Identity.deserialize(tx.creator).msp_id
        except BlockFedMLError:
            creator = "?"
        p = tx.proposal
        kv = tx.rwsets.get(self.chaincode)
        record = TxRecord(p.tx_id, number, p.function, tuple(p.params), creator, p.timestamp_seconds, valid,
                          _round_of(p.function, p.params, tx.result),
                          tuple(sorted(w.key for w in kv.writes)) if kv else ())
        self.history.txs.setdefault(record.tx_id, record)
        self.history.by_block.setdefault(number, record)

    async def _reexecute(self, contract: Any, history: BlockHistory) -> None:
        """Re-run the chaincode's valid transactions in order against the state they saw."""
        state = _State()
        indexed: dict[str, tuple[bytes, int]] = {}  # the chaincode's keys, for the settings at each block
        indexed_keys: list[str] = []
        # Every valid transaction changes the state; replay them all, re-executing the chaincode's.
        for number, index, tx in self._pending:
            kv = tx.rwsets.get(self.chaincode)
            if tx.chaincode == self.chaincode and tx.proposal is not None and kv is not None:
                if contract is not None:
                    difference = await self._difference(contract, tx, kv, state)
                    history.replayed += 1
                    if difference:
                        record = history.txs.get(tx.tx_id)
                        history.mismatches.append(Finding(
                            f"{tx.proposal.function} by {record.creator if record else '?'}: {difference}",
                            record.round if record else None, tx.tx_id, f"block {number}"))
                _apply(indexed, indexed_keys,
                       {w.key: None if w.is_delete else bytes(w.value) for w in kv.writes}, number, history)
            _apply_writes(tx, state, (number, index))

    async def _difference(self, contract: Any, tx: _Tx, kv: kv_rwset_pb2.KVRWSet, state: _State) -> str | None:
        assert tx.proposal is not None
        stub = EmbeddedStub(tx.proposal, lambda key: state.get(self.chaincode, key),
                            lambda start, end: state.scan(self.chaincode, start, end))
        try:
            response = await contract.invoke(stub)
        except Exception as exc:  # the contract itself failing is a finding, not a crash
            return f"re-executing it fails: {type(exc).__name__}: {exc}"
        if not 200 <= response.status < 400:
            return f"the contract refuses it on re-execution: {response.message}"
        recorded = {w.key: None if w.is_delete else bytes(w.value) for w in kv.writes}
        changed = sorted(k for k in set(stub.rwset.writes) | set(recorded)
                         if stub.rwset.writes.get(k, b"-") != recorded.get(k, b"-"))
        if changed:
            return (f"the recorded writes differ from what the contract computes for "
                    f"{', '.join(changed[:4])}{' ...' if len(changed) > 4 else ''}"
                    f" ({_describe(recorded.get(changed[0]), stub.rwset.writes.get(changed[0]))})")
        reads = {r.key: (r.version.block_num, r.version.tx_num) if r.HasField("version") else None for r in kv.reads}
        if stub.rwset.reads != reads:
            return "the recorded reads differ from what the contract reads"
        if bytes(response.payload) != tx.result:
            return "the recorded result differs from what the contract returns"
        return None
