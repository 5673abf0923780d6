"""Fabric Gateway failures turned into the SDK's own exceptions.

A peer's Gateway reports a failure as a gRPC status: a code, a short message
and, in the ``grpc-status-details-bin`` trailer, a ``google.rpc.Status`` whose
details are ``gateway.ErrorDetail`` messages, one per peer, carrying the
peer's own words (for a refused transaction, "chaincode response 500,
[PHASE] round 3 is in phase update, not selection"). The contract's
``[CODE]`` prefix survives in those words, so ``from_chaincode_message``
picks the precise class; the transaction ID and the stage are added so that a
user can find the transaction in the peers' logs.
"""

from __future__ import annotations

from typing import Any, Iterable

import grpc
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import transaction_pb2
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

from blockfedml.errors import BlockFedMLError, ChaincodeError, ConflictError, LedgerError, from_chaincode_message

STATUS_DETAILS_KEY = "grpc-status-details-bin"
#: Validation codes that mean "another transaction changed what this one read":
#: nothing was written, and endorsing again against the new state is safe.
CONFLICT_CODES = frozenset({"MVCC_READ_CONFLICT", "PHANTOM_READ_CONFLICT"})


def _rpc_status_class() -> Any:
    """``google.rpc.Status``, built from its three fields (googleapis-common-protos is
    not a dependency just for this message)."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(any_pb2.DESCRIPTOR.serialized_pb))
    file = descriptor_pb2.FileDescriptorProto(name="blockfedml/rpc_status.proto", package="google.rpc",
                                              dependency=["google/protobuf/any.proto"])
    message = file.message_type.add(name="Status")
    fields = descriptor_pb2.FieldDescriptorProto
    message.field.add(name="code", number=1, type=fields.TYPE_INT32, label=fields.LABEL_OPTIONAL)
    message.field.add(name="message", number=2, type=fields.TYPE_STRING, label=fields.LABEL_OPTIONAL)
    message.field.add(name="details", number=3, type=fields.TYPE_MESSAGE, label=fields.LABEL_REPEATED,
                      type_name=".google.protobuf.Any")
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


RpcStatus = _rpc_status_class()


def error_details(status_bytes: bytes) -> list[gateway_pb2.ErrorDetail]:
    """The per-peer ``ErrorDetail`` messages of a serialized ``google.rpc.Status``."""
    try:
        status = RpcStatus.FromString(status_bytes)
    except Exception:
        return []
    details = []
    for item in status.details:
        if item.type_url.endswith("gateway.ErrorDetail"):
            details.append(gateway_pb2.ErrorDetail.FromString(item.value))
    return details


def rpc_details(error: grpc.RpcError) -> list[gateway_pb2.ErrorDetail]:
    """The ``ErrorDetail`` messages attached to a failed Gateway call, if any."""
    trailers: Iterable[tuple[str, Any]] = ()
    try:
        trailers = error.trailing_metadata() or ()  # type: ignore[attr-defined]
    except Exception:
        pass
    for key, value in trailers:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return error_details(value)
    return []


def describe_details(details: Iterable[gateway_pb2.ErrorDetail]) -> str:
    """"Org2MSP@127.0.0.1:8051: chaincode response 500, ..." joined with "; "."""
    return "; ".join(f"{d.msp_id or '?'}@{d.address or '?'}: {d.message}" for d in details)


def map_rpc_error(error: grpc.RpcError, stage: str, tx_id: str, endpoint: str,
                  timeout: float | None = None) -> BlockFedMLError:
    """The SDK exception for a Gateway call that failed at ``stage``.

    A contract refusal keeps its class (``[PHASE]`` -> ``PhaseError`` ...);
    any other endorsement failure is a ``ChaincodeError``; a timeout or an
    unreachable peer is a ``LedgerError`` that says what to check.
    """
    code = error.code() if hasattr(error, "code") else None
    message = (error.details() if hasattr(error, "details") else None) or str(error)
    peer_details = rpc_details(error)
    # A contract refusal: the first peer message with a [CODE], in the contract's own words.
    for text in [d.message for d in peer_details] + [message]:
        mapped = from_chaincode_message(text)
        if not isinstance(mapped, ChaincodeError):
            return mapped
    details = describe_details(peer_details)
    full = f"{message} ({details})" if details else message
    where = f"{stage} of transaction {tx_id} at {endpoint}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        limit = f" within {timeout:g} s" if timeout else ""
        return LedgerError(f"{where} did not finish{limit}: {full}; the network may be overloaded or "
                           "down (scripts/network.sh status), or raise the timeout option")
    if code == grpc.StatusCode.UNAVAILABLE:
        return LedgerError(f"cannot reach the peer's Gateway at {endpoint} ({stage}): {full}; is the "
                           "network up (blockfedml admin network up) and the endpoint right?")
    if stage in ("endorse", "evaluate") or code == grpc.StatusCode.ABORTED:
        return ChaincodeError(f"{where} failed: {full}")
    return LedgerError(f"{where} failed ({code.name if code else 'error'}): {full}")


def validation_code_name(code: int) -> str:
    """``TxValidationCode`` name of ``code`` ("MVCC_READ_CONFLICT"), or its number."""
    try:
        return transaction_pb2.TxValidationCode.Name(code)
    except ValueError:
        return str(code)


def commit_error(code: int, tx_id: str, block: int) -> BlockFedMLError:
    """The exception for a transaction committed as invalid (nothing it wrote was applied)."""
    name = validation_code_name(code)
    if name in CONFLICT_CODES:
        return ConflictError(f"transaction {tx_id} was invalidated in block {block} with {name}: a "
                             "concurrent transaction changed what it read; run it again")
    return LedgerError(f"transaction {tx_id} was invalidated in block {block} with {name}; nothing it "
                       "wrote was applied")
