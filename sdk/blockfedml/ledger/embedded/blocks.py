"""Transactions and blocks of the embedded ledger, in Fabric's own formats.

A transaction is a Fabric ``common.Envelope`` signed by its submitter: the
proposal's header and payload, and the simulation's ``ChaincodeAction``
(read/write set, response, event) committed to by the proposal hash. The
proposal's own signature travels beside it. The proposal bytes are not stored
a second time: ``Proposal(header, payload)`` re-derived from the envelope is
byte-identical to what was signed, so the stored signature still verifies
(and would not if either were changed).

The ledger node's peer endorses every transaction as a Fabric peer does
(``ChaincodeEndorsedAction.endorsements``: its signature over the proposal
response payload and its own identity, ``node.py``), so the write set is the
one the contract computed and no client can change it. One departure from a
Fabric block: the ``TransactionAction.header`` copy of the signature header is
left out (it repeats the creator's certificate already in the payload header).

A block holds one transaction. Its hash is Fabric's: SHA-256 of the ASN.1 DER
``SEQUENCE { number INTEGER, previous_hash OCTET STRING, data_hash OCTET
STRING }``, and the node's orderer signs those DER bytes (Fabric's orderer
signs its block header too). The data hash covers the envelope, the proposal
signature and the validation code, so an invalid transaction cannot later be
passed off as valid.

This module deals in envelopes as signed. On disk an envelope is stored in a
compact form (certificate by reference, proposal hash recomputed, compressed:
``codec.py``, ``store.py``), rebuilt byte for byte before anything here sees it.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

from fabric_protos.common import common_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    chaincode_pb2,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)

from blockfedml.errors import IntegrityError
from blockfedml.identity.signing import SigningIdentity
from blockfedml.ledger.embedded.node import LedgerNode, NodeCertificates
from blockfedml.ledger.embedded.stub import RangeRead, RWSet
from blockfedml.ledger.proposal import Proposal, parse_proposal, rebuild_proposal_bytes

VALID = transaction_pb2.VALID
MVCC_READ_CONFLICT = transaction_pb2.MVCC_READ_CONFLICT
PHANTOM_READ_CONFLICT = transaction_pb2.PHANTOM_READ_CONFLICT
GENESIS_PREVIOUS_HASH = b"\x00" * 32


@dataclass(frozen=True)
class ParsedTransaction:
    """Everything the validator needs from a stored or submitted transaction."""

    proposal: Proposal              # carries the proposal signature
    payload: bytes                  # the envelope payload: what the envelope signature covers
    envelope_signature: bytes
    rwset: RWSet
    status: int
    message: str
    result: bytes
    event: chaincode_event_pb2.ChaincodeEvent | None
    response_payload: bytes = b""                                # what the endorsements sign
    endorsements: tuple[tuple[bytes, bytes], ...] = ()          # (endorser, signature)


def assemble_envelope(proposal: Proposal, rwset: RWSet, response: proposal_response_pb2.Response,
                      event: chaincode_event_pb2.ChaincodeEvent | None,
                      signer: SigningIdentity, node: LedgerNode) -> bytes:
    """Build the node-endorsed, submitter-signed ``common.Envelope`` for a simulated proposal."""
    return sign_envelope(endorsed_payload(proposal, rwset, response, event, node), signer)


def sign_envelope(payload: bytes, signer: SigningIdentity) -> bytes:
    """The submitter's envelope around an endorsed payload (what a Gateway client does)."""
    return common_pb2.Envelope(payload=payload, signature=signer.sign(payload)).SerializeToString()


def endorsed_payload(proposal: Proposal, rwset: RWSet, response: proposal_response_pb2.Response,
                     event: chaincode_event_pb2.ChaincodeEvent | None, node: LedgerNode) -> bytes:
    """The transaction payload a Gateway's Endorse returns: the simulation's action,
    endorsed by the node's peer, not yet signed by the submitter."""
    return transaction_payload(proposal, *endorse_action(proposal, rwset, response, event, node))


def endorse_action(proposal: Proposal, rwset: RWSet, response: proposal_response_pb2.Response,
                   event: chaincode_event_pb2.ChaincodeEvent | None,
                   node: LedgerNode) -> tuple[bytes, proposal_response_pb2.Endorsement]:
    """The proposal response payload of a simulation (the action: read/write set, response,
    event) and the node's endorsement of it."""
    action = proposal_pb2.ChaincodeAction(
        results=rwset.to_proto().SerializeToString(),
        events=event.SerializeToString() if event is not None else b"",
        response=response,
        chaincode_id=chaincode_pb2.ChaincodeID(name=proposal.chaincode),
    )
    response_bytes = proposal_response_pb2.ProposalResponsePayload(
        proposal_hash=proposal.hash(), extension=action.SerializeToString()).SerializeToString()
    return response_bytes, node.endorse(response_bytes)


def transaction_payload(proposal: Proposal, response_bytes: bytes,
                        endorsement: proposal_response_pb2.Endorsement) -> bytes:
    """The transaction payload around an endorsed response (what the submitter signs)."""
    action_payload = transaction_pb2.ChaincodeActionPayload(
        chaincode_proposal_payload=proposal.payload,
        action=transaction_pb2.ChaincodeEndorsedAction(
            proposal_response_payload=response_bytes, endorsements=[endorsement]),
    )
    tx = transaction_pb2.Transaction(
        actions=[transaction_pb2.TransactionAction(payload=action_payload.SerializeToString())])
    return common_pb2.Payload(
        header=common_pb2.Header.FromString(proposal.header), data=tx.SerializeToString()
    ).SerializeToString()


def parse_envelope(envelope: bytes, proposal_signature: bytes) -> ParsedTransaction:
    """Decode a transaction; ``IntegrityError`` naming the defect if it is malformed
    or its action does not answer its own proposal. Signatures are not checked here."""
    try:
        env = common_pb2.Envelope.FromString(envelope)
        payload = common_pb2.Payload.FromString(env.payload)
        header_bytes = payload.header.SerializeToString()
        tx = transaction_pb2.Transaction.FromString(payload.data)
        if len(tx.actions) != 1:
            raise IntegrityError(f"a transaction must hold exactly one action, not {len(tx.actions)}")
        action_payload = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
        prp = proposal_response_pb2.ProposalResponsePayload.FromString(
            action_payload.action.proposal_response_payload)
        action = proposal_pb2.ChaincodeAction.FromString(prp.extension)
        txrw = rwset_pb2.TxReadWriteSet.FromString(action.results)
        event = (chaincode_event_pb2.ChaincodeEvent.FromString(action.events)
                 if action.events else None)
    except IntegrityError:
        raise
    except Exception as exc:
        raise IntegrityError(f"malformed transaction envelope: {exc}") from exc
    proposal = parse_proposal(
        rebuild_proposal_bytes(header_bytes, action_payload.chaincode_proposal_payload),
        proposal_signature)
    if prp.proposal_hash != proposal.hash():
        raise IntegrityError(f"transaction {proposal.tx_id}: the action does not answer its proposal")
    if action.chaincode_id.name != proposal.chaincode:
        raise IntegrityError(f"transaction {proposal.tx_id}: action and proposal name different chaincodes")
    return ParsedTransaction(
        proposal=proposal, payload=bytes(env.payload), envelope_signature=bytes(env.signature),
        rwset=_rwset_from_proto(txrw, proposal), status=action.response.status,
        message=action.response.message, result=bytes(action.response.payload), event=event,
        response_payload=bytes(action_payload.action.proposal_response_payload),
        endorsements=tuple((bytes(e.endorser), bytes(e.signature))
                           for e in action_payload.action.endorsements),
    )


def _rwset_from_proto(txrw: rwset_pb2.TxReadWriteSet, proposal: Proposal) -> RWSet:
    rwset = RWSet(namespace=proposal.chaincode)
    for ns in txrw.ns_rwset:
        if ns.namespace != proposal.chaincode:
            raise IntegrityError(f"transaction {proposal.tx_id} touches namespace {ns.namespace!r} "
                                 f"outside its chaincode {proposal.chaincode!r}")
        try:
            kv = kv_rwset_pb2.KVRWSet.FromString(ns.rwset)
        except Exception as exc:
            raise IntegrityError(f"transaction {proposal.tx_id}: malformed read/write set") from exc
        for read in kv.reads:
            has_version = read.HasField("version")
            rwset.reads[read.key] = (read.version.block_num, read.version.tx_num) if has_version else None
        for info in kv.range_queries_info:
            rwset.ranges.append(RangeRead(info.start_key, info.end_key, [
                (r.key, (r.version.block_num, r.version.tx_num)) for r in info.raw_reads.kv_reads]))
        for write in kv.writes:
            rwset.writes[write.key] = None if write.is_delete else bytes(write.value)
    return rwset


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(body)) + body


def block_header_bytes(number: int, previous_hash: bytes, data_hash: bytes) -> bytes:
    """Fabric's DER-encoded block header (number, previous, data): what is hashed and signed."""
    integer = number.to_bytes(number.bit_length() // 8 + 1, "big", signed=False)
    return _der(0x30, _der(0x02, integer) + _der(0x04, previous_hash) + _der(0x04, data_hash))


def block_header_hash(number: int, previous_hash: bytes, data_hash: bytes) -> bytes:
    """Fabric's block hash: SHA-256 of the DER-encoded header."""
    return hashlib.sha256(block_header_bytes(number, previous_hash, data_hash)).digest()


def transaction_data_hash(envelope: bytes, proposal_signature: bytes, validation_code: int) -> bytes:
    """SHA-256 over the length-prefixed envelope and proposal signature, and the code."""
    return hashlib.sha256(
        struct.pack(">Q", len(envelope)) + envelope
        + struct.pack(">Q", len(proposal_signature)) + proposal_signature
        + struct.pack(">I", validation_code)).digest()


def config_data_hash(config: bytes) -> bytes:
    return hashlib.sha256(config).digest()


def encode_config(channel: str, organizations: list[tuple[str, bytes]], node: NodeCertificates) -> bytes:
    """The genesis block's data: canonical JSON of the channel, its organizations
    and the ledger node whose endorsements and block signatures count."""
    orgs = [{"msp_id": msp, "ca_cert_pem": pem.decode("ascii")} for msp, pem in organizations]
    return json.dumps({"channel": channel, "organizations": orgs, "ledger_node": node.to_dict()},
                      sort_keys=True, separators=(",", ":")).encode()


def decode_node(data: bytes) -> NodeCertificates:
    """The ledger node pinned in a genesis block's configuration."""
    try:
        entry = json.loads(data)["ledger_node"]
    except Exception as exc:
        raise IntegrityError(f"the genesis block names no ledger node: {exc}") from exc
    return NodeCertificates.from_dict(entry)


def decode_config(data: bytes) -> tuple[str, dict[str, bytes]]:
    try:
        config = json.loads(data)
        return config["channel"], {o["msp_id"]: o["ca_cert_pem"].encode("ascii")
                                   for o in config["organizations"]}
    except Exception as exc:
        raise IntegrityError(f"the genesis block is not a channel configuration: {exc}") from exc


def validation_code_name(code: int) -> str:
    try:
        return transaction_pb2.TxValidationCode.Name(code)
    except ValueError:
        return f"UNKNOWN({code})"


def transaction_dict(parsed: ParsedTransaction) -> dict[str, Any]:
    """A readable form of a transaction (for ``EmbeddedLedger.block`` and audits)."""
    from blockfedml.identity.signing import Identity
    creator = Identity.deserialize(parsed.proposal.creator)
    return {
        "tx_id": parsed.proposal.tx_id,
        "channel": parsed.proposal.channel,
        "chaincode": parsed.proposal.chaincode,
        "creator_msp": creator.msp_id,
        "creator_subject": creator.subject,
        "timestamp": parsed.proposal.timestamp_seconds,
        "timestamp_nanos": parsed.proposal.timestamp_nanos,
        "function": parsed.proposal.function,
        "args": parsed.proposal.params,
        "reads": {k: (list(v) if v is not None else None) for k, v in parsed.rwset.reads.items()},
        "range_reads": [{"start": r.start, "end": r.end, "keys": [k for k, _ in r.reads]}
                        for r in parsed.rwset.ranges],
        "writes": {k: v for k, v in parsed.rwset.writes.items()},
        "response": {"status": parsed.status, "message": parsed.message, "payload": parsed.result},
        "event": None if parsed.event is None else {"name": parsed.event.event_name,
                                                    "payload": bytes(parsed.event.payload)},
    }
