"""The ledger interface every backend implements.

Shaped after Fabric's ``fabric-gateway`` client: a ``Gateway`` is one
organization's connection (its identity signs everything), a ``Network`` is a
channel, a ``Contract`` is a chaincode on it. ``submit`` runs a transaction,
has it validated and committed, and returns the contract's result;
``evaluate`` runs a query and commits nothing. The round driver and the CLI
only ever see these three types, never a backend.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

from blockfedml.errors import ConflictError

DEFAULT_CHANNEL = "fedchannel"
DEFAULT_CHAINCODE = "blockfedml"


class Contract(ABC):
    """A chaincode on a channel, as seen by one organization."""

    @abstractmethod
    def submit(self, function: str, *args: str) -> bytes:
        """Endorse, order, validate and commit a transaction; return its result.

        Raises the ``BlockFedMLError`` subclass matching the contract's refusal,
        or ``ConflictError`` when validation finds an MVCC read conflict.
        """

    @abstractmethod
    def evaluate(self, function: str, *args: str) -> bytes:
        """Run a read-only query against committed state; commit nothing."""

    def submit_json(self, function: str, *args: Any) -> Any:
        """``submit`` with arguments turned into strings and the result decoded."""
        return decode_json(self.submit(function, *(_as_arg(a) for a in args)))

    def evaluate_json(self, function: str, *args: Any) -> Any:
        """``evaluate`` with arguments turned into strings and the result decoded."""
        return decode_json(self.evaluate(function, *(_as_arg(a) for a in args)))


class Network(ABC):
    """A channel."""

    @abstractmethod
    def contract(self, name: str = DEFAULT_CHAINCODE) -> Contract: ...


class Gateway(ABC):
    """One organization's signed connection to the ledger."""

    msp_id: str

    @abstractmethod
    def network(self, channel: str = DEFAULT_CHANNEL) -> Network: ...

    def close(self) -> None:
        """Release connections; the default has none."""

    def __enter__(self) -> "Gateway":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Submittable(Protocol):
    """An endorsed transaction, ready to be ordered and committed."""

    def submit(self) -> bytes: ...


def submit_retrying_conflicts(endorse: Callable[[], Submittable], retries: int) -> bytes:
    """Endorse and submit; after an MVCC conflict, endorse again on the new state.

    A transaction that failed MVCC validation wrote nothing, so simulating it
    afresh is safe (Fabric's own gateway clients do the same); after
    ``retries`` further conflicts the ``ConflictError`` is raised.
    """
    for attempt in range(retries + 1):
        transaction = endorse()
        try:
            return transaction.submit()
        except ConflictError:
            if attempt == retries:
                raise
    raise AssertionError("unreachable")


def _as_arg(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return canonical_json(value)


def canonical_json(value: Any) -> str:
    """The one JSON form used for everything that is hashed or put on a ledger."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def decode_json(payload: bytes) -> Any:
    """Decode a contract result; an empty payload is ``None``."""
    if not payload:
        return None
    return json.loads(payload)
