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
from blockfedml.ledger.proposal import create_proposal

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


class Submittable(Protocol):
    """An endorsed transaction, ready to be ordered and committed."""

    def submit(self) -> bytes: ...


class Proposed(Protocol):
    """A signed proposal: evaluate it, or endorse it into a transaction."""

    def evaluate(self) -> bytes: ...

    def endorse(self) -> Submittable: ...


class ProposalContract(Contract):
    """A contract whose calls are signed Fabric proposals, on either backend.

    ``submit``/``evaluate`` are the one-call forms; ``new_proposal`` starts the
    step-by-step flow (evaluate, or endorse then submit) that offline signing
    and tests of concurrent transactions need. A backend only says how a
    proposal is handled (``_handle``) and how many MVCC conflicts to retry.
    """

    def __init__(self, network: Any, name: str) -> None:
        self.network = network
        self.name = name

    def submit(self, function: str, *args: str) -> bytes:
        return submit_retrying_conflicts(lambda: self.new_proposal(function, *args).endorse(),
                                         self.conflict_retries())

    def evaluate(self, function: str, *args: str) -> bytes:
        return self.new_proposal(function, *args).evaluate()

    def new_proposal(self, function: str, *args: str | bytes) -> Any:
        """A signed proposal, not yet simulated or sent."""
        gateway = self.network.gateway
        proposal = create_proposal(gateway.identity, self.network.channel, self.name, function, args)
        return self._handle(gateway, proposal)

    @abstractmethod
    def _handle(self, gateway: Any, proposal: Any) -> Proposed:
        """The backend's handle on a signed proposal."""

    @abstractmethod
    def conflict_retries(self) -> int:
        """How many times to endorse again after an MVCC conflict."""


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
