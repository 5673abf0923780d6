"""The ledger service: an embedded ledger behind Fabric's own Gateway and Deliver protocols.

``blockfedml ledger serve`` runs this in the one process that opens the ledger
file and holds the ledger node's keys. Everyone else (members, the key holder,
the coordinator, auditors) reaches it over mutual TLS with the same Gateway
client they use for a Fabric peer (``ledger/fabric/gateway.py``):

- ``Evaluate``: the proposal's signature and creator are checked, the contract
  runs on committed state, nothing is written;
- ``Endorse``: the same, then the node's peer endorses the result and the
  prepared transaction goes back for the client to sign; the write set is the
  one the contract computed here, and the endorsement signature binds it;
- ``Submit``: the signed transaction is validated (creator and envelope
  signatures, the node's endorsement, replay, MVCC) and committed durably into
  a block the node's orderer signs; a transaction already on the ledger sent
  again byte for byte is acknowledged (a retry), any other replay is refused.
  The Submit answer comes once the block is on disk and carries the commit
  status in its trailing metadata (``COMMIT_STATUS_METADATA``: validation code
  and block number), so this node's clients need not ask ``CommitStatus``
  separately; a Fabric peer sends none, and its clients ask as usual.
  A payload that is byte for byte the one this node endorsed is not decoded
  or verified again: only the submitter's envelope signature is checked.
  Submits that arrive together are committed together (group commit: one block
  each, one write and one fsync for all, as an orderer cuts a batch), which is
  what lets many clients commit faster than one fsync per transaction;
- ``CommitStatus``: a signed request, answered once the transaction is in a
  block;
- ``Deliver`` (``peer.Deliver``): signed seek requests stream blocks as
  ``common.Block`` messages, so anyone the channel admits can keep its own copy
  and check each block's orderer signature (``deliver.py`` reads them).

The TLS layer refuses a client whose certificate no consortium TLS CA issued.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Iterator, NoReturn

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.orderer import ab_pb2
from fabric_protos.peer import events_pb2, events_pb2_grpc, proposal_pb2, proposal_response_pb2

from blockfedml.errors import (
    BlockFedMLError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    NotAuthorizedError,
    NotFoundError,
    wire_message,
)
from blockfedml.identity.signing import Identity, verify_signature
from blockfedml.ledger.embedded import blocks
from blockfedml.ledger.embedded.blocks import ParsedTransaction
from blockfedml.ledger.embedded.ledger import CommitStatus as CommitStatusOf
from blockfedml.ledger.embedded.ledger import EmbeddedLedger
from blockfedml.ledger.fabric.gateway import COMMIT_STATUS_METADATA  # Submit's trailing metadata: code/block
from blockfedml.ledger.proposal import Proposal, parse_proposal

MAX_MESSAGE_BYTES = 100 * 1024 * 1024
PENDING_LIMIT = 4096  # endorsed, not yet submitted transactions kept (decoded, a few KB each) for their Submit
GROUP_COMMIT_LIMIT = 256  # transactions committed in one write at most


@dataclass(frozen=True)
class ServiceTLS:
    """What the service presents and whom it admits (PEM bytes)."""

    server_cert: bytes
    server_key: bytes
    client_roots: bytes  # every consortium organization's TLS CA, concatenated


class LedgerService:
    """The Gateway and Deliver services over one ``EmbeddedLedger`` that holds the node's keys."""

    def __init__(self, ledger: EmbeddedLedger, address: str, tls: ServiceTLS, *, workers: int = 16) -> None:
        if not ledger.writable:
            raise NotAuthorizedError("the ledger service needs the ledger node's keys (open the ledger with them)")
        self.ledger = ledger
        self._committed = threading.Condition()
        self._pending: collections.OrderedDict[str, ParsedTransaction] = collections.OrderedDict()
        self._queue: queue.Queue[tuple[str, bytes, ParsedTransaction, futures.Future] | None] = queue.Queue()
        self._committer = threading.Thread(target=self._commit_loop, name="ledger-committer", daemon=True)
        self._pending_lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ledger"),
                                   # No SO_REUSEPORT: a second service on the address must fail to
                                   # start, never share the ledger's clients (two writers of one file).
                                   options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                                            ("grpc.so_reuseport", 0)])
        gateway_pb2_grpc.add_GatewayServicer_to_server(_Gateway(self), self._server)
        events_pb2_grpc.add_DeliverServicer_to_server(_Deliver(self), self._server)
        credentials = grpc.ssl_server_credentials([(tls.server_key, tls.server_cert)],
                                                  root_certificates=tls.client_roots, require_client_auth=True)
        try:
            self.port = self._server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise InvalidInputError(f"the ledger service cannot listen on {address}: {exc}") from exc
        if self.port == 0:
            raise InvalidInputError(f"the ledger service cannot listen on {address} (in use, or not host:port)")
        self.address = address
        self._stopped = threading.Event()

    def start(self) -> "LedgerService":
        self._committer.start()
        self._server.start()
        return self

    def stop(self, grace: float | None = 1.0) -> None:
        self._stopped.set()
        with self._committed:
            self._committed.notify_all()
        self._server.stop(grace).wait()
        self._queue.put(None)
        if self._committer.is_alive():
            self._committer.join()

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self._server.wait_for_termination(timeout)

    def __enter__(self) -> "LedgerService":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- shared by the services ---------------------------------------------------

    def admitted_proposal(self, signed: proposal_pb2.SignedProposal) -> Proposal:
        """The proposal, if well formed, signed by its creator, from a channel member."""
        proposal = parse_proposal(bytes(signed.proposal_bytes), bytes(signed.signature))
        self.check_signed(proposal.creator, proposal.proposal_bytes, proposal.signature,
                          f"proposal {proposal.tx_id}")
        return proposal

    def check_signed(self, creator: bytes, message: bytes, signature: bytes, what: str) -> Identity:
        """``creator`` is a channel member and signed ``message``; its identity."""
        problem = self.ledger.creator_problem(creator)
        if problem is not None:
            raise problem
        identity = Identity.deserialize(creator)
        if not verify_signature(identity.certificate, message, signature):
            raise IntegrityError(f"{what}: the signature does not verify against its creator")
        return identity

    def remember(self, endorsed: ParsedTransaction) -> None:
        """Keep what Submit needs of an endorsed proposal: the transaction as endorsed, with the
        proposal's signature (stored in the block; not verified twice) and the payload given."""
        with self._pending_lock:
            self._pending[endorsed.proposal.tx_id] = endorsed
            while len(self._pending) > PENDING_LIMIT:
                self._pending.popitem(last=False)

    def submit(self, tx_id: str, envelope: bytes) -> Any:
        """Commit an endorsed, signed transaction; its ``CommitStatus`` (None for a retry of a
        transaction already committed). Refusals raise; an MVCC conflict is a status."""
        with self._pending_lock:
            pending = self._pending.pop(tx_id, None)
        if pending is None:  # not endorsed and waiting: a retry, a replay, or endorsed before a restart
            found = self._stored_envelope(tx_id)
            if found == envelope:
                return None  # the same transaction sent again (a client retry): already committed
            if found is not None:
                raise ConflictError(f"[EXISTS] transaction {tx_id} is already on the ledger (replay refused)")
            raise NotFoundError(f"[NOT_FOUND] transaction {tx_id} was not endorsed by this ledger service "
                                "(or it restarted since): endorse it again, then submit")
        done: futures.Future = futures.Future()
        self._queue.put((tx_id, envelope, pending, done))
        outcome = done.result()
        if isinstance(outcome, ConflictError) and getattr(outcome, "block_number", None) is not None:
            # an MVCC conflict is recorded in its block; the status reports it, as on Fabric
            return CommitStatusOf(tx_id, outcome.block_number,  # type: ignore[attr-defined]
                                  getattr(outcome, "validation_code", blocks.MVCC_READ_CONFLICT))
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _commit_loop(self) -> None:
        """Take every Submit waiting, commit them in one batch, answer each."""
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < GROUP_COMMIT_LIMIT:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            try:
                outcomes = self.ledger.commit_batch([(env, endorsed.proposal.signature, endorsed)
                                                     for _, env, endorsed, _ in batch])
            except BaseException as exc:  # the whole write failed: nothing of the batch was written
                outcomes = [exc] * len(batch)
            with self._committed:
                self._committed.notify_all()
            for (*_, done), outcome in zip(batch, outcomes):
                done.set_result(outcome)

    def _stored_envelope(self, tx_id: str) -> bytes | None:
        try:
            status = self.ledger.transaction_status(tx_id)
        except NotFoundError:
            return None
        return self.ledger.block_row(status.block_number).data

    def wait_for_transaction(self, tx_id: str, deadline: float) -> Any:
        with self._committed:
            while True:
                try:
                    return self.ledger.transaction_status(tx_id)
                except NotFoundError:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._stopped.is_set():
                        raise
                    self._committed.wait(min(remaining, 0.5))

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def wait_for_height(self, height: int, deadline: float) -> bool:
        """True once the ledger reaches ``height``; False at ``deadline`` or when stopping."""
        with self._committed:
            while self.ledger.height() < height:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopped.is_set():
                    return False
                self._committed.wait(remaining)
            return True


def _abort(context: grpc.ServicerContext, error: BaseException) -> NoReturn:
    """End a call with the SDK error as a status the Gateway client maps back to its class."""
    if isinstance(error, NotAuthorizedError):
        code = grpc.StatusCode.PERMISSION_DENIED
    elif isinstance(error, ConflictError):
        code = grpc.StatusCode.ALREADY_EXISTS
    elif isinstance(error, NotFoundError):
        code = grpc.StatusCode.NOT_FOUND
    elif isinstance(error, (InvalidInputError, IntegrityError)):
        code = grpc.StatusCode.INVALID_ARGUMENT
    elif isinstance(error, BlockFedMLError):
        code = grpc.StatusCode.FAILED_PRECONDITION
    else:
        code = grpc.StatusCode.INTERNAL
    context.abort(code, wire_message(error))


def _deadline(context: grpc.ServicerContext, default: float = 60.0) -> float:
    remaining = context.time_remaining()
    return time.monotonic() + (default if remaining is None else min(remaining, 3600.0))


class _Gateway(gateway_pb2_grpc.GatewayServicer):
    def __init__(self, service: LedgerService) -> None:
        self.service = service

    def Evaluate(self, request: gateway_pb2.EvaluateRequest, context: grpc.ServicerContext) -> Any:
        try:
            proposal = self.service.admitted_proposal(request.proposed_transaction)
            result = self.service.ledger.evaluate(proposal)
        except BlockFedMLError as exc:
            _abort(context, exc)
        return gateway_pb2.EvaluateResponse(result=proposal_response_pb2.Response(status=200, payload=result))

    def Endorse(self, request: gateway_pb2.EndorseRequest, context: grpc.ServicerContext) -> Any:
        try:  # endorse_payload checks the creator and its signature, as a peer does before simulating
            signed = request.proposed_transaction
            proposal = parse_proposal(bytes(signed.proposal_bytes), bytes(signed.signature))
            payload, _, endorsed = self.service.ledger.endorse_payload(proposal)
        except BlockFedMLError as exc:
            _abort(context, exc)
        self.service.remember(endorsed)
        return gateway_pb2.EndorseResponse(prepared_transaction=common_pb2.Envelope(payload=payload))

    def Submit(self, request: gateway_pb2.SubmitRequest, context: grpc.ServicerContext) -> Any:
        try:
            envelope = request.prepared_transaction
            if not envelope.signature:
                raise InvalidInputError(f"[INVALID] transaction {request.transaction_id} is not signed")
            status = self.service.submit(request.transaction_id, envelope.SerializeToString())
        except BlockFedMLError as exc:
            _abort(context, exc)
        if status is not None:
            context.set_trailing_metadata(((COMMIT_STATUS_METADATA,
                                            f"{status.validation_code}/{status.block_number}"),))
        return gateway_pb2.SubmitResponse()

    def CommitStatus(self, request: gateway_pb2.SignedCommitStatusRequest, context: grpc.ServicerContext) -> Any:
        try:
            inner = gateway_pb2.CommitStatusRequest.FromString(request.request)
            self.service.check_signed(bytes(inner.identity), bytes(request.request), bytes(request.signature),
                                      f"commit status request for {inner.transaction_id}")
            status = self.service.wait_for_transaction(inner.transaction_id, _deadline(context))
        except BlockFedMLError as exc:
            _abort(context, exc)
        except Exception as exc:  # a malformed request
            _abort(context, InvalidInputError(f"[INVALID] malformed commit status request: {exc}"))
        return gateway_pb2.CommitStatusResponse(result=status.validation_code, block_number=status.block_number)


class _Deliver(events_pb2_grpc.DeliverServicer):
    """``peer.Deliver``: blocks from a signed seek request, as a Fabric peer streams them."""

    def __init__(self, service: LedgerService) -> None:
        self.service = service

    def Deliver(self, requests: Iterator[common_pb2.Envelope], context: grpc.ServicerContext) -> Any:
        for envelope in requests:
            try:
                start, stop, wait = self._seek(envelope)
            except BlockFedMLError as exc:
                yield events_pb2.DeliverResponse(status=_status_of(exc))
                continue
            ledger = self.service.ledger
            number = start
            while stop is None or number <= stop:
                if number >= ledger.height() and not wait:
                    yield events_pb2.DeliverResponse(status=common_pb2.NOT_FOUND)
                    break
                while not self.service.wait_for_height(number + 1, time.monotonic() + 0.5):
                    if not context.is_active() or self.service.stopped:
                        return
                yield events_pb2.DeliverResponse(block=to_fabric_block(ledger.block_row(number)))
                number += 1
            else:
                yield events_pb2.DeliverResponse(status=common_pb2.SUCCESS)

    def _seek(self, envelope: common_pb2.Envelope) -> tuple[int, int | None, bool]:
        try:
            payload = common_pb2.Payload.FromString(envelope.payload)
            header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
            signature_header = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
            seek = ab_pb2.SeekInfo.FromString(payload.data)
        except Exception as exc:
            raise InvalidInputError(f"malformed deliver request: {exc}") from exc
        if header.type != common_pb2.DELIVER_SEEK_INFO:
            raise InvalidInputError("a deliver request must be a DELIVER_SEEK_INFO envelope")
        if header.channel_id != self.service.ledger.channel:
            raise NotFoundError(f"channel {header.channel_id} is not served here")
        self.service.check_signed(bytes(signature_header.creator), bytes(envelope.payload),
                                  bytes(envelope.signature), "deliver request")
        height = self.service.ledger.height()

        def position(pos: ab_pb2.SeekPosition) -> int | None:
            kind = pos.WhichOneof("Type")
            if kind == "oldest":
                return 0
            if kind == "newest":
                return height - 1
            if kind == "specified":
                return pos.specified.number
            return None  # next_commit / unset: open-ended

        start = position(seek.start)
        start = height if start is None else start
        stop = position(seek.stop) if seek.HasField("stop") else None
        if stop is not None and stop < start:
            raise InvalidInputError(f"deliver request: stop {stop} is before start {start}")
        return start, stop, seek.behavior == ab_pb2.SeekInfo.BLOCK_UNTIL_READY


def _status_of(error: BlockFedMLError) -> int:
    if isinstance(error, NotAuthorizedError | IntegrityError):
        return common_pb2.FORBIDDEN
    if isinstance(error, NotFoundError):
        return common_pb2.NOT_FOUND
    return common_pb2.BAD_REQUEST


def to_fabric_block(row: Any) -> common_pb2.Block:
    """A stored block as a Fabric ``common.Block``.

    ``data`` holds the envelope and the creator's proposal signature (the genesis
    block: its configuration); ``metadata`` holds the orderer's signature in the
    SIGNATURES slot and the validation code in TRANSACTIONS_FILTER, as on Fabric.
    The data hash is this ledger's (``blocks.transaction_data_hash``): see ``deliver.py``.
    """
    if row.kind == "config":
        data = [row.data]
    else:
        data = [row.data, row.proposal_signature or b""]
    signatures = common_pb2.Metadata(signatures=[common_pb2.MetadataSignature(
        signature=row.orderer_signature or b"")]).SerializeToString()
    metadata = [b""] * 5
    metadata[common_pb2.SIGNATURES] = signatures
    metadata[common_pb2.TRANSACTIONS_FILTER] = bytes([row.validation_code])
    return common_pb2.Block(
        header=common_pb2.BlockHeader(number=row.number, previous_hash=row.previous_hash,
                                      data_hash=row.data_hash),
        data=common_pb2.BlockData(data=data), metadata=common_pb2.BlockMetadata(metadata=metadata))


__all__ = ["LedgerService", "ServiceTLS", "to_fabric_block"]
