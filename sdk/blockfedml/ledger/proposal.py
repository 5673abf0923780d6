"""Fabric transaction proposals, built and read with the official protobufs.

Both ledger backends start a transaction the same way: a ``SignedProposal``
whose header names the channel, the chaincode, the creator (a
``SerializedIdentity``) and a fresh nonce, and whose transaction ID is
``hex(sha256(nonce + creator))`` exactly as a Fabric peer recomputes it. The
embedded ledger simulates it in-process; the Fabric client sends it to a
peer's Gateway service. Keeping one builder means a proposal that the embedded
ledger accepts is byte-for-byte one that Fabric would accept.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from typing import Sequence

from fabric_protos.common import common_pb2
from fabric_protos.peer import chaincode_pb2, proposal_pb2
from google.protobuf import timestamp_pb2

from blockfedml.errors import IntegrityError, InvalidInputError
from blockfedml.identity.signing import SigningIdentity

NONCE_BYTES = 24


@dataclass(frozen=True)
class Proposal:
    """A signed proposal and the fields a ledger needs from it, already decoded."""

    tx_id: str
    channel: str
    chaincode: str
    args: tuple[bytes, ...]          # the function name first, as on the wire
    creator: bytes                   # SerializedIdentity bytes
    nonce: bytes
    timestamp_seconds: int
    timestamp_nanos: int
    channel_header: bytes
    signature_header: bytes
    header: bytes                    # common.Header bytes
    payload: bytes                   # ChaincodeProposalPayload bytes
    proposal_bytes: bytes            # what the signature covers
    signature: bytes

    @property
    def function(self) -> str:
        return self.args[0].decode("utf-8", "replace") if self.args else ""

    @property
    def params(self) -> list[str]:
        return [a.decode("utf-8", "replace") for a in self.args[1:]]

    def timestamp(self) -> timestamp_pb2.Timestamp:
        """A fresh protobuf Timestamp (the chaincode's only notion of time)."""
        return timestamp_pb2.Timestamp(seconds=self.timestamp_seconds, nanos=self.timestamp_nanos)

    def signed_proposal(self) -> bytes:
        """The ``peer.SignedProposal`` bytes a Fabric peer receives."""
        return proposal_pb2.SignedProposal(
            proposal_bytes=self.proposal_bytes, signature=self.signature
        ).SerializeToString()

    def hash(self) -> bytes:
        """Fabric's proposal hash, which a proposal response commits to."""
        return proposal_hash(self.channel_header, self.signature_header, self.payload)


def compute_tx_id(nonce: bytes, creator: bytes) -> str:
    """Fabric's transaction ID: hex SHA-256 of nonce followed by creator bytes."""
    return hashlib.sha256(nonce + creator).hexdigest()


def proposal_hash(channel_header: bytes, signature_header: bytes, payload: bytes) -> bytes:
    """SHA-256 over channel header, signature header and payload, as Fabric's
    ``protoutil.GetProposalHash1`` computes it (the payload has no transient map)."""
    return hashlib.sha256(channel_header + signature_header + payload).digest()


def create_proposal(identity: SigningIdentity, channel: str, chaincode: str, function: str,
                    args: Sequence[str | bytes] = (), *, nonce: bytes | None = None,
                    timestamp_ns: int | None = None) -> Proposal:
    """Build and sign an ENDORSER_TRANSACTION proposal for ``function(*args)``."""
    if not channel or not chaincode or not function:
        raise InvalidInputError("a proposal needs a channel, a chaincode and a function name")
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    now = time.time_ns() if timestamp_ns is None else timestamp_ns
    creator = identity.serialize()
    tx_id = compute_tx_id(nonce, creator)
    wire_args = tuple([function.encode()] + [a if isinstance(a, bytes) else str(a).encode() for a in args])
    chaincode_id = chaincode_pb2.ChaincodeID(name=chaincode)

    channel_header = common_pb2.ChannelHeader(
        type=common_pb2.ENDORSER_TRANSACTION,
        channel_id=channel,
        tx_id=tx_id,
        timestamp=timestamp_pb2.Timestamp(seconds=now // 1_000_000_000, nanos=now % 1_000_000_000),
        extension=proposal_pb2.ChaincodeHeaderExtension(chaincode_id=chaincode_id).SerializeToString(),
    ).SerializeToString()
    signature_header = common_pb2.SignatureHeader(creator=creator, nonce=nonce).SerializeToString()
    header = common_pb2.Header(channel_header=channel_header,
                               signature_header=signature_header).SerializeToString()
    spec = chaincode_pb2.ChaincodeSpec(
        chaincode_id=chaincode_id,
        input=chaincode_pb2.ChaincodeInput(args=list(wire_args)),
    )
    payload = proposal_pb2.ChaincodeProposalPayload(
        input=chaincode_pb2.ChaincodeInvocationSpec(chaincode_spec=spec).SerializeToString()
    ).SerializeToString()
    proposal_bytes = proposal_pb2.Proposal(header=header, payload=payload).SerializeToString()
    return Proposal(
        tx_id=tx_id, channel=channel, chaincode=chaincode, args=wire_args, creator=creator,
        nonce=nonce, timestamp_seconds=now // 1_000_000_000, timestamp_nanos=now % 1_000_000_000,
        channel_header=channel_header, signature_header=signature_header, header=header,
        payload=payload, proposal_bytes=proposal_bytes, signature=identity.sign(proposal_bytes),
    )


def rebuild_proposal_bytes(header: bytes, payload: bytes) -> bytes:
    """The proposal bytes for a header and payload (how the ledger re-derives
    the signed bytes from a transaction instead of storing them twice)."""
    return proposal_pb2.Proposal(header=header, payload=payload).SerializeToString()


def parse_proposal(proposal_bytes: bytes, signature: bytes = b"") -> Proposal:
    """Decode a proposal and check that its transaction ID is the one its nonce
    and creator imply. ``IntegrityError`` for anything malformed. The signature
    is carried along, not checked: the caller knows which identities to trust."""
    try:
        proposal = proposal_pb2.Proposal.FromString(proposal_bytes)
        header = common_pb2.Header.FromString(proposal.header)
        channel_header = common_pb2.ChannelHeader.FromString(header.channel_header)
        signature_header = common_pb2.SignatureHeader.FromString(header.signature_header)
        extension = proposal_pb2.ChaincodeHeaderExtension.FromString(channel_header.extension)
        ccpp = proposal_pb2.ChaincodeProposalPayload.FromString(proposal.payload)
        invocation = chaincode_pb2.ChaincodeInvocationSpec.FromString(ccpp.input)
    except Exception as exc:
        raise IntegrityError(f"malformed proposal: {exc}") from exc
    if channel_header.type != common_pb2.ENDORSER_TRANSACTION:
        raise IntegrityError(f"proposal {channel_header.tx_id} is not an endorser transaction")
    tx_id = compute_tx_id(signature_header.nonce, signature_header.creator)
    if channel_header.tx_id != tx_id:
        raise IntegrityError(f"proposal tx_id {channel_header.tx_id} does not match its nonce and creator")
    spec = invocation.chaincode_spec
    if spec.chaincode_id.name != extension.chaincode_id.name:
        raise IntegrityError(f"proposal {tx_id} names two different chaincodes")
    return Proposal(
        tx_id=tx_id, channel=channel_header.channel_id, chaincode=spec.chaincode_id.name,
        args=tuple(bytes(a) for a in spec.input.args), creator=bytes(signature_header.creator),
        nonce=bytes(signature_header.nonce), timestamp_seconds=channel_header.timestamp.seconds,
        timestamp_nanos=channel_header.timestamp.nanos, channel_header=bytes(header.channel_header),
        signature_header=bytes(header.signature_header), header=bytes(proposal.header),
        payload=bytes(proposal.payload), proposal_bytes=bytes(proposal_bytes), signature=bytes(signature),
    )
