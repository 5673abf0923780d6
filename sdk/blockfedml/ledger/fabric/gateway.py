"""A Fabric Gateway client: the ledger interface (``ledger/base.py``) on a real peer.

The flow is the one of Fabric's own ``fabric-gateway`` clients, over the
official protobufs and grpcio:

1. build and sign a ``SignedProposal`` (``ledger/proposal.py``, the same
   builder the embedded ledger uses);
2. ``Evaluate`` it (a query: one peer runs it, nothing is ordered), or
   ``Endorse`` it: the peer's Gateway collects endorsements from enough
   organizations for the chaincode's policy and returns the prepared
   transaction envelope;
3. sign the envelope's payload and ``Submit`` it to the orderer (via the peer);
4. ask ``CommitStatus`` (a signed request) until the peer has validated the
   block: a VALID code means the writes are applied. The embedded ledger's
   service answers Submit only once the block is on disk and puts the commit
   status in the answer's trailing metadata; when it is there the client takes
   it and saves the round trip (a Fabric peer sends none: the client asks).

Retries are made only where Fabric makes them safe: a transaction invalidated
by an MVCC read conflict wrote nothing, so it is endorsed again as a new
proposal (the contract re-checks everything, so a replay is refused with
``[EXISTS]``); a peer that is UNAVAILABLE before submission has seen nothing;
a Submit is resent only as the same signed envelope (same transaction ID, so
at most one copy can ever be valid).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.peer import events_pb2_grpc, proposal_pb2, proposal_response_pb2, transaction_pb2

from blockfedml.errors import ChaincodeError, IntegrityError, InvalidInputError, LedgerError
from blockfedml.identity.signing import SigningIdentity
from blockfedml.ledger.base import (
    DEFAULT_CHAINCODE,
    DEFAULT_CHANNEL,
    Gateway,
    Network,
    ProposalContract,
)
from blockfedml.ledger.deliver import BlockWatcher, seek_envelope
from blockfedml.ledger.fabric.errors import commit_error, map_rpc_error
from blockfedml.ledger.proposal import Proposal

T = TypeVar("T")


@dataclass(frozen=True)
class PeerEndpoint:
    """Where an organization's peer Gateway listens and how to trust its TLS certificate.

    ``server_name`` overrides the name checked in the peer's certificate (needed when
    the address is not in the certificate's SANs); ``client_cert``/``client_key`` are
    for peers that require mutual TLS.
    """

    address: str
    tls_ca: Path
    server_name: str | None = None
    client_cert: Path | None = None
    client_key: Path | None = None


PAYLOAD_MISMATCH = "ProposalResponsePayloads do not match"


@dataclass(frozen=True)
class GatewayOptions:
    """Timeouts (seconds) per stage and retry limits; the defaults suit a local network."""

    evaluate_timeout: float = 10.0
    endorse_timeout: float = 30.0
    submit_timeout: float = 10.0
    commit_timeout: float = 60.0
    conflict_retries: int = 2        # re-endorse after MVCC_READ_CONFLICT
    unavailable_retries: int = 3     # before submission only
    mismatch_retries: int = 3        # re-endorse when peers at different heights disagree
    retry_backoff: float = 0.2       # seconds, doubled after each retry


def open_channel(endpoint: PeerEndpoint) -> grpc.Channel:
    """A TLS gRPC channel to the peer; ``InvalidInputError`` if a TLS file is missing."""
    try:
        root = Path(endpoint.tls_ca).read_bytes()
        cert = Path(endpoint.client_cert).read_bytes() if endpoint.client_cert else None
        key = Path(endpoint.client_key).read_bytes() if endpoint.client_key else None
    except OSError as exc:
        raise InvalidInputError(f"cannot read the TLS files for peer {endpoint.address}: {exc}") from exc
    credentials = grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=cert)
    options = [("grpc.max_receive_message_length", 100 * 1024 * 1024)]
    if endpoint.server_name:
        options.append(("grpc.ssl_target_name_override", endpoint.server_name))
    return grpc.secure_channel(endpoint.address, credentials, options=options)


class FabricGateway(Gateway):
    """One organization's connection to its peer's Gateway service."""

    def __init__(self, identity: SigningIdentity, endpoint: PeerEndpoint,
                 options: GatewayOptions | None = None) -> None:
        self.identity = identity
        self.msp_id = identity.msp_id
        self.endpoint = endpoint
        self.options = options or GatewayOptions()
        self._channel = open_channel(endpoint)
        self._stub = gateway_pb2_grpc.GatewayStub(self._channel)
        self._deliver = events_pb2_grpc.DeliverStub(self._channel)

    @classmethod
    def connect(cls, identity: SigningIdentity, endpoint: PeerEndpoint,
                options: GatewayOptions | None = None) -> "FabricGateway":
        return cls(identity, endpoint, options)

    def network(self, channel: str = DEFAULT_CHANNEL) -> "FabricNetwork":
        return FabricNetwork(self, channel)

    def close(self) -> None:
        self._channel.close()

    # -- the four Gateway calls, with errors mapped ------------------------------
    def _call(self, stage: str, tx_id: str, timeout: float, fn: Callable[[], T], *,
              retry_unavailable: bool = False) -> T:
        attempts = 1 + (self.options.unavailable_retries if retry_unavailable else 0)
        delay = self.options.retry_backoff
        for attempt in range(attempts):
            try:
                return fn()
            except grpc.RpcError as error:
                unavailable = error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
                if unavailable and attempt + 1 < attempts:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise map_rpc_error(error, stage, tx_id, self.endpoint.address, timeout) from None
        raise AssertionError("unreachable")

    def evaluate(self, proposal: Proposal) -> bytes:
        request = gateway_pb2.EvaluateRequest(
            transaction_id=proposal.tx_id, channel_id=proposal.channel,
            proposed_transaction=_signed(proposal))
        timeout = self.options.evaluate_timeout
        response = self._call("evaluate", proposal.tx_id, timeout,
                              lambda: self._stub.Evaluate(request, timeout=timeout), retry_unavailable=True)
        return bytes(response.result.payload)

    def endorse(self, proposal: Proposal) -> common_pb2.Envelope:
        request = gateway_pb2.EndorseRequest(
            transaction_id=proposal.tx_id, channel_id=proposal.channel,
            proposed_transaction=_signed(proposal))
        timeout = self.options.endorse_timeout
        for attempt in range(self.options.mismatch_retries + 1):
            try:
                response = self._call("endorse", proposal.tx_id, timeout,
                                      lambda: self._stub.Endorse(request, timeout=timeout), retry_unavailable=True)
                return response.prepared_transaction
            except ChaincodeError as error:
                # Peers one block apart simulate on different states and their results differ;
                # nothing was ordered, so endorsing the same proposal again once they caught up is safe.
                if PAYLOAD_MISMATCH not in str(error) or attempt == self.options.mismatch_retries:
                    raise
                time.sleep(self.options.retry_backoff * (attempt + 1))
        raise AssertionError("unreachable")

    def submit(self, tx_id: str, channel: str, envelope: common_pb2.Envelope
               ) -> gateway_pb2.CommitStatusResponse | None:
        """Send a signed envelope; resending the same envelope is harmless (same tx ID).

        The commit status when the node's answer carries it (the embedded ledger's service
        answers once the transaction is committed), else None: ask ``commit_status``.
        """
        request = gateway_pb2.SubmitRequest(transaction_id=tx_id, channel_id=channel,
                                            prepared_transaction=envelope)
        timeout = self.options.submit_timeout
        _, call = self._call("submit", tx_id, timeout,
                             lambda: self._stub.Submit.with_call(request, timeout=timeout),
                             retry_unavailable=True)
        return committed_status(call.trailing_metadata() or ())

    def commit_status(self, tx_id: str, channel: str) -> gateway_pb2.CommitStatusResponse:
        """Wait until the transaction is in a block; its validation code and block number."""
        request = gateway_pb2.CommitStatusRequest(transaction_id=tx_id, channel_id=channel,
                                                  identity=self.identity.serialize()).SerializeToString()
        signed = gateway_pb2.SignedCommitStatusRequest(request=request, signature=self.identity.sign(request))
        timeout = self.options.commit_timeout
        return self._call("commit status", tx_id, timeout,
                          lambda: self._stub.CommitStatus(signed, timeout=timeout), retry_unavailable=True)


    def watch_blocks(self, channel: str) -> BlockWatcher:
        """A ``BlockWatcher`` on this node's Deliver stream (one open call, followed in a thread)."""
        return BlockWatcher(self._deliver, self.identity, channel)

    def blocks(self, channel: str, start: int | None, stop: int | None = None, *, wait: bool = False,
               timeout: float | None = None) -> Iterator[common_pb2.Block]:
        """Blocks ``start..stop`` from the node's Deliver service (a signed seek request).

        ``wait``: block until they are cut (``LedgerError`` after ``timeout``);
        otherwise stop at the current tip.
        """
        request = seek_envelope(self.identity, channel, start, stop, wait)
        stream = self._deliver.Deliver(iter([request]), timeout=timeout)
        try:
            for response in stream:
                kind = response.WhichOneof("Type")
                if kind == "block":
                    yield response.block
                    if stop is not None and response.block.header.number >= stop:
                        return
                elif kind == "status":
                    if response.status in (common_pb2.SUCCESS, common_pb2.NOT_FOUND):
                        return
                    raise LedgerError(f"block delivery from {self.endpoint.address} refused: "
                                      f"{common_pb2.Status.Name(response.status)}")
        except grpc.RpcError as error:
            raise map_rpc_error(error, "deliver", "-", self.endpoint.address, timeout) from None
        finally:
            stream.cancel()


class FabricNetwork(Network):
    def __init__(self, gateway: FabricGateway, channel: str) -> None:
        self.gateway = gateway
        self.channel = channel

    def contract(self, name: str = DEFAULT_CHAINCODE) -> "FabricContract":
        return FabricContract(self, name)


class FabricContract(ProposalContract):
    """``submit``/``evaluate`` in one call; ``new_proposal`` for the stages one by one."""

    def _handle(self, gateway: FabricGateway, proposal: Proposal) -> "FabricProposal":
        return FabricProposal(gateway, proposal)

    def conflict_retries(self) -> int:
        return self.network.gateway.options.conflict_retries


class FabricProposal:
    """A signed proposal, not yet sent."""

    def __init__(self, gateway: FabricGateway, proposal: Proposal) -> None:
        self._gateway = gateway
        self.proposal = proposal

    @property
    def tx_id(self) -> str:
        return self.proposal.tx_id

    def evaluate(self) -> bytes:
        return self._gateway.evaluate(self.proposal)

    def endorse(self) -> "FabricTransaction":
        """Collect endorsements; raise the contract's error if it refuses."""
        envelope = self._gateway.endorse(self.proposal)
        return FabricTransaction(self._gateway, self.proposal, envelope)


class FabricTransaction:
    """An endorsed transaction, signed by the submitter, not yet ordered."""

    def __init__(self, gateway: FabricGateway, proposal: Proposal, envelope: common_pb2.Envelope) -> None:
        self._gateway = gateway
        self.tx_id = proposal.tx_id
        self.channel = proposal.channel
        self.result = envelope_result(envelope, proposal.tx_id)
        self.envelope = common_pb2.Envelope(payload=envelope.payload,
                                            signature=gateway.identity.sign(envelope.payload))
        self.block_number: int | None = None

    def submit(self) -> bytes:
        """Order, wait for the commit, and return the contract's result.

        ``ConflictError`` on MVCC_READ_CONFLICT; ``LedgerError`` for any other
        invalidation or when the network does not answer in time.
        """
        status = self._gateway.submit(self.tx_id, self.channel, self.envelope)
        if status is None:
            status = self._gateway.commit_status(self.tx_id, self.channel)
        self.block_number = status.block_number
        if status.result != transaction_pb2.VALID:
            raise commit_error(status.result, self.tx_id, status.block_number)
        return self.result


def envelope_result(envelope: common_pb2.Envelope, tx_id: str) -> bytes:
    """The chaincode's return value inside a prepared transaction envelope.

    Payload -> Transaction -> first action -> ChaincodeActionPayload ->
    ProposalResponsePayload -> ChaincodeAction -> Response.payload. The
    envelope must carry ``tx_id``: a Gateway that answered with another
    transaction is an ``IntegrityError``.
    """
    try:
        payload = common_pb2.Payload.FromString(envelope.payload)
        header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
        transaction = transaction_pb2.Transaction.FromString(payload.data)
        action_payload = transaction_pb2.ChaincodeActionPayload.FromString(transaction.actions[0].payload)
        response_payload = proposal_response_pb2.ProposalResponsePayload.FromString(
            action_payload.action.proposal_response_payload)
        action = proposal_pb2.ChaincodeAction.FromString(response_payload.extension)
    except (IndexError, Exception) as exc:
        raise IntegrityError(f"the Gateway returned a malformed transaction for {tx_id}: {exc}") from exc
    if header.tx_id != tx_id:
        raise IntegrityError(f"the Gateway returned transaction {header.tx_id} for proposal {tx_id}")
    return bytes(action.response.payload)


COMMIT_STATUS_METADATA = "blockfedml-commit-status"  # as ledger/embedded/service.py sends it


def committed_status(metadata: Iterable[tuple[str, str | bytes]]) -> gateway_pb2.CommitStatusResponse | None:
    """The commit status a Submit answer's trailing metadata carries (``code/block``), or None."""
    for key, value in metadata:
        if key != COMMIT_STATUS_METADATA:
            continue
        text = value.decode() if isinstance(value, bytes) else value
        code, _, block = text.partition("/")
        if code.isdigit() and block.isdigit():
            return gateway_pb2.CommitStatusResponse(result=int(code), block_number=int(block))
    return None


def _signed(proposal: Proposal) -> proposal_pb2.SignedProposal:
    return proposal_pb2.SignedProposal(proposal_bytes=proposal.proposal_bytes, signature=proposal.signature)


__all__ = [
    "FabricContract", "FabricGateway", "FabricNetwork", "FabricProposal", "FabricTransaction",
    "GatewayOptions", "LedgerError", "PeerEndpoint", "envelope_result",
]
