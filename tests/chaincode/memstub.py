"""A small in-memory stand-in for a Fabric peer, to drive the contract fast.

``MemWorld`` holds the committed world state. Each ``invoke`` builds a fresh
``MemStub`` for one transaction: reads see only committed state (as on Fabric,
a transaction does not read its own writes), writes are buffered and applied
only when the transaction succeeds (status 200), so a test can check that a
refused transaction wrote nothing.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Optional

from google.protobuf.timestamp_pb2 import Timestamp

from blockfedml_chaincode.shim import new_chaincode


@dataclass
class KV:
    key: str
    value: bytes


class MemStub:
    """The part of ``ChaincodeStubInterface`` the contract uses, for one transaction."""

    def __init__(self, state: dict[str, bytes], function: str, args: list[str],
                 msp_id: str, txid: str, seconds: Optional[int]) -> None:
        self._state = state
        self._function = function
        self._args = args
        self._msp_id = msp_id
        self._txid = txid
        self._seconds = seconds
        self.writes: dict[str, Optional[bytes]] = {}   # None marks a delete

    def get_function_and_parameters(self) -> tuple[str, list[str]]:
        return self._function, list(self._args)

    def get_creator(self) -> dict[str, Any]:
        return {"mspid": self._msp_id, "idBytes": b""}

    def get_txid(self) -> str:
        return self._txid

    def get_tx_timestamp(self) -> Optional[Timestamp]:
        return None if self._seconds is None else Timestamp(seconds=self._seconds)

    async def get_state(self, key: str) -> bytes:
        return self._state.get(key, b"")       # a real peer answers b"" for a missing key

    async def put_state(self, key: str, value: bytes) -> None:
        assert isinstance(value, bytes), f"put_state({key!r}) got {type(value).__name__}"
        self.writes[key] = value

    async def delete_state(self, key: str) -> None:
        self.writes[key] = None

    async def get_state_by_range(self, start: str, end: str) -> AsyncIterator[KV]:
        keys = sorted(k for k in self._state if start <= k and (not end or k < end))
        snapshot = [KV(k, self._state[k]) for k in keys]

        async def iterate() -> AsyncIterator[KV]:
            for kv in snapshot:
                yield kv
        return iterate()


@dataclass
class Result:
    status: int
    payload: bytes
    message: str
    writes: dict[str, Optional[bytes]] = field(default_factory=dict)

    def json(self) -> Any:
        assert self.status == 200, f"transaction failed: {self.message}"
        return json.loads(self.payload)


class MemWorld:
    """Committed world state plus a counter for transaction IDs and timestamps."""

    def __init__(self, start_time: int = 1_732_480_000) -> None:
        self.state: dict[str, bytes] = {}
        self.chaincode = new_chaincode()
        self._count = 0
        self._time = start_time

    def invoke(self, msp_id: str, function: str, *args: str, txid: Optional[str] = None,
               seconds: Optional[int] = -1) -> Result:
        """Run ``function`` as ``msp_id``; commit its writes only on success.

        ``seconds=-1`` (default) uses an advancing clock; None makes the stub
        return no timestamp at all.
        """
        self._count += 1
        self._time += 1
        stub = MemStub(self.state, f"blockfedml:{function}", list(args), msp_id,
                       txid or f"tx{self._count:04d}", self._time if seconds == -1 else seconds)
        response = asyncio.run(self.chaincode.invoke(stub))
        result = Result(response.status, bytes(response.payload), response.message, dict(stub.writes))
        if response.status == 200:
            for key, value in stub.writes.items():
                if value is None:
                    self.state.pop(key, None)
                else:
                    self.state[key] = value
        return result

    def advance(self, seconds: int) -> None:
        """Let ``seconds`` of transaction time pass (deadlines are in transaction time)."""
        self._time += seconds

    def get(self, key: str) -> Any:
        """The committed JSON value at ``key`` (None when absent)."""
        raw = self.state.get(key)
        return None if raw is None else json.loads(raw)
