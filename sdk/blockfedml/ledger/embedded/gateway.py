"""The Gateway interface (``ledger/base.py``) over an embedded ledger.

The common case is one call (``contract.submit("OpenRound", ...)``). The
fine-grained flow of ``fabric-gateway`` is there too, for tests and for
offline signing: ``contract.new_proposal(...)`` -> ``.endorse()`` (simulate
now) -> ``.submit()`` (validate and commit later, possibly after other
transactions, which is how MVCC conflicts are reproduced).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blockfedml.errors import NotFoundError
from blockfedml.identity.signing import SigningIdentity
from blockfedml.ledger.base import (
    DEFAULT_CHAINCODE,
    DEFAULT_CHANNEL,
    Gateway,
    Network,
    ProposalContract,
)
from blockfedml.ledger.proposal import Proposal

if TYPE_CHECKING:
    from blockfedml.ledger.embedded.ledger import CommitStatus, EmbeddedLedger, Endorsement


class EmbeddedGateway(Gateway):
    """One organization's connection: ``identity`` signs every proposal and envelope."""

    def __init__(self, ledger: "EmbeddedLedger", identity: SigningIdentity) -> None:
        self.ledger = ledger
        self.identity = identity
        self.msp_id = identity.msp_id

    def network(self, channel: str = DEFAULT_CHANNEL) -> "EmbeddedNetwork":
        if channel != self.ledger.channel:
            raise NotFoundError(f"channel {channel} does not exist; this ledger's channel is "
                                f"{self.ledger.channel}")
        return EmbeddedNetwork(self, channel)


class EmbeddedNetwork(Network):
    def __init__(self, gateway: EmbeddedGateway, channel: str) -> None:
        self.gateway = gateway
        self.channel = channel

    def contract(self, name: str = DEFAULT_CHAINCODE) -> "EmbeddedContract":
        self.gateway.ledger.chaincode(name)  # NotFoundError now rather than at first call
        return EmbeddedContract(self, name)


class EmbeddedContract(ProposalContract):
    def _handle(self, gateway: EmbeddedGateway, proposal: Proposal) -> "ProposalHandle":
        return ProposalHandle(gateway, proposal)

    def conflict_retries(self) -> int:
        return 2  # as the Fabric client's default


class ProposalHandle:
    """A signed proposal: evaluate it, or endorse it into a transaction."""

    def __init__(self, gateway: EmbeddedGateway, proposal: Proposal) -> None:
        self._gateway = gateway
        self.proposal = proposal

    @property
    def tx_id(self) -> str:
        return self.proposal.tx_id

    def evaluate(self) -> bytes:
        return self._gateway.ledger.evaluate(self.proposal)

    def endorse(self) -> "Transaction":
        """Simulate now; raise the contract's error if it refuses."""
        ledger = self._gateway.ledger
        return Transaction(ledger, ledger.endorse(self.proposal, self._gateway.identity))


class Transaction:
    """A simulated, signed transaction that has not been committed yet."""

    def __init__(self, ledger: "EmbeddedLedger", endorsement: "Endorsement") -> None:
        self._ledger = ledger
        self.endorsement = endorsement
        self.status: "CommitStatus | None" = None

    @property
    def tx_id(self) -> str:
        return self.endorsement.tx_id

    @property
    def result(self) -> bytes:
        """What the contract returned in simulation."""
        return self.endorsement.result

    @property
    def envelope(self) -> bytes:
        return self.endorsement.envelope

    @property
    def proposal_signature(self) -> bytes:
        return self.endorsement.proposal_signature

    def submit(self) -> bytes:
        """Validate and commit; return the result. ``ConflictError`` on an MVCC conflict."""
        self.status = self._ledger.commit(self.endorsement.envelope, self.endorsement.proposal_signature,
                                          self.endorsement.endorsed)
        return self.endorsement.result
