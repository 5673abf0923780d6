"""The chaincode stub of the embedded ledger: the shim's API over SQLite.

The chaincode runs in-process exactly as it runs behind a Fabric peer: it only
sees ``ChaincodeStubInterface``. As on a peer, a simulation reads committed
state only (its own writes are not visible to its reads), records the version
of every key it reads and every range it scans, and collects its writes; the
ledger applies the writes only if the transaction later validates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from fabric_chaincode_python.fabric_shim.interfaces import ChaincodeStubInterface
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.peer import chaincode_event_pb2
from google.protobuf import timestamp_pb2

from blockfedml.errors import LedgerError
from blockfedml.ledger.proposal import Proposal

Version = tuple[int, int]  # (block number, transaction number in block)
# get(key) -> (value, block, txnum) | None ; scan(start, end) -> [(key, value, block, txnum)]
StateGet = Callable[[str], "tuple[bytes, int, int] | None"]
StateScan = Callable[[str, str], "list[tuple[str, bytes, int, int]]"]

_COMPOSITE_NS = "\x00"
_MIN_RUNE = "\x00"
_MAX_RUNE = "\U0010ffff"
_EMPTY_START = "\x01"  # Fabric's substitute for an empty start key: skips composite keys


@dataclass(frozen=True)
class KV:
    """One result of a range query (``key`` and ``value``, as the shim's KV)."""

    key: str
    value: bytes
    namespace: str = ""


@dataclass
class RangeRead:
    start: str
    end: str
    reads: list[tuple[str, Version]]


@dataclass
class RWSet:
    """What a simulation read (with versions) and wrote."""

    namespace: str
    reads: dict[str, Version | None] = field(default_factory=dict)
    ranges: list[RangeRead] = field(default_factory=list)
    writes: dict[str, bytes | None] = field(default_factory=dict)  # None: delete

    def to_proto(self) -> rwset_pb2.TxReadWriteSet:
        """Fabric's ``TxReadWriteSet`` (KV data model), keys sorted as a peer sorts them."""
        kv = kv_rwset_pb2.KVRWSet()
        for key in sorted(self.reads):
            version = self.reads[key]
            read = kv.reads.add(key=key)
            if version is not None:
                read.version.block_num, read.version.tx_num = version
        for rng in self.ranges:
            info = kv.range_queries_info.add(start_key=rng.start, end_key=rng.end, itr_exhausted=True)
            for key, (block, txnum) in rng.reads:
                info.raw_reads.kv_reads.add(key=key).version.CopyFrom(
                    kv_rwset_pb2.Version(block_num=block, tx_num=txnum))
        for key in sorted(self.writes):
            value = self.writes[key]
            kv.writes.add(key=key, is_delete=value is None, value=value or b"")
        return rwset_pb2.TxReadWriteSet(
            data_model=rwset_pb2.TxReadWriteSet.KV,
            ns_rwset=[rwset_pb2.NsReadWriteSet(namespace=self.namespace, rwset=kv.SerializeToString())],
        )


class EmbeddedStub(ChaincodeStubInterface):
    """A ``ChaincodeStubInterface`` reading one snapshot of committed state."""

    def __init__(self, proposal: Proposal, get: StateGet, scan: StateScan) -> None:
        self._proposal = proposal
        self._get = get
        self._scan = scan
        self.rwset = RWSet(namespace=proposal.chaincode)
        self.event: chaincode_event_pb2.ChaincodeEvent | None = None
        from blockfedml.identity.signing import Identity  # local: avoid a cycle at import
        creator = Identity.deserialize(proposal.creator)
        self._creator = {"mspid": creator.msp_id, "idBytes": creator.certificate}

    # -- transaction facts ------------------------------------------------------

    def get_function_and_parameters(self) -> tuple[str, list[str]]:
        if not self._proposal.args:
            raise LedgerError("no function name provided in transaction payload")
        return self._proposal.function, self._proposal.params

    def get_args(self) -> list[bytes]:
        return list(self._proposal.args)

    def get_txid(self) -> str:
        return self._proposal.tx_id

    def get_channel_id(self) -> str:
        return self._proposal.channel

    def get_creator(self) -> dict[str, Any]:
        return dict(self._creator)

    def get_transient(self) -> dict[str, bytes]:
        return {}

    def get_tx_timestamp(self) -> timestamp_pb2.Timestamp:
        return self._proposal.timestamp()

    # -- state ------------------------------------------------------------------

    async def get_state(self, key: str) -> bytes:
        """Committed value of ``key`` (``b""`` if absent); records its version."""
        _check_key(key)
        found = self._get(key)
        if key not in self.rwset.reads:
            self.rwset.reads[key] = None if found is None else (found[1], found[2])
        return b"" if found is None else found[0]

    async def put_state(self, key: str, value: bytes | str) -> None:
        """Buffer a write; it reaches the ledger only if the transaction validates."""
        _check_key(key)
        if isinstance(value, str):
            value = value.encode()
        # As on Fabric, writing an empty value deletes the key.
        self.rwset.writes[key] = bytes(value) if value else None

    async def delete_state(self, key: str) -> None:
        _check_key(key)
        self.rwset.writes[key] = None

    async def get_state_by_range(self, start_key: str, end_key: str) -> "_KVIterator":
        """Committed keys in ``[start_key, end_key)``; the whole range is recorded
        so that a key inserted into it before commit is a phantom read."""
        start = start_key or _EMPTY_START
        rows = self._scan(start, end_key)
        self.rwset.ranges.append(RangeRead(start, end_key, [(k, (b, t)) for k, _, b, t in rows]))
        return _KVIterator([KV(k, v, self._proposal.chaincode) for k, v, _, _ in rows])

    async def get_state_by_partial_composite_key(self, object_type: str,
                                                 attributes: Sequence[str]) -> "_KVIterator":
        prefix = self.create_composite_key(object_type, attributes)
        return await self.get_state_by_range(prefix, prefix + _MAX_RUNE)

    def create_composite_key(self, object_type: str, attributes: Sequence[str]) -> str:
        for part in (object_type, *attributes):
            if _MIN_RUNE in part or _MAX_RUNE in part:
                raise LedgerError(f"composite key part {part!r} contains a reserved character")
        return _COMPOSITE_NS + object_type + _MIN_RUNE + "".join(a + _MIN_RUNE for a in attributes)

    def split_composite_key(self, composite_key: str) -> tuple[str | None, list[str]]:
        if not composite_key.startswith(_COMPOSITE_NS):
            return None, []
        parts = composite_key[1:].split(_MIN_RUNE)[:-1]
        return (parts[0], parts[1:]) if parts else (None, [])

    def set_event(self, name: str, payload: bytes | str | None) -> None:
        """Record the transaction's event (one per transaction, as on Fabric: the last wins)."""
        if not isinstance(name, str) or not name:
            raise LedgerError("event name must be a non-empty string")
        if isinstance(payload, str):
            payload = payload.encode()
        self.event = chaincode_event_pb2.ChaincodeEvent(
            chaincode_id=self._proposal.chaincode, tx_id=self._proposal.tx_id,
            event_name=name, payload=payload or b"")

    # -- not available on the embedded ledger -----------------------------------

    def _unsupported(self, name: str) -> None:
        raise LedgerError(f"{name} is not supported by the embedded ledger")

    async def get_query_result(self, *args: Any, **kwargs: Any) -> None:
        self._unsupported("get_query_result (CouchDB rich queries)")

    async def get_history_for_key(self, *args: Any, **kwargs: Any) -> None:
        self._unsupported("get_history_for_key")

    async def invoke_chaincode(self, *args: Any, **kwargs: Any) -> None:
        self._unsupported("invoke_chaincode")

    async def get_private_data(self, *args: Any, **kwargs: Any) -> None:
        self._unsupported("private data")

    async def put_private_data(self, *args: Any, **kwargs: Any) -> None:
        self._unsupported("private data")


class _KVIterator:
    """Async iterator over range results (what the shim's StateQueryIterator yields)."""

    def __init__(self, items: list[KV]) -> None:
        self._items = items
        self._next = 0

    def __aiter__(self) -> "_KVIterator":
        return self

    async def __anext__(self) -> KV:
        if self._next >= len(self._items):
            raise StopAsyncIteration
        self._next += 1
        return self._items[self._next - 1]

    async def aclose(self) -> None:
        self._next = len(self._items)


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise LedgerError("a state key must be a non-empty string")
