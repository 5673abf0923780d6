"""Proposals are real Fabric SignedProposals."""

from __future__ import annotations

import hashlib

import pytest
from fabric_protos.common import common_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import chaincode_pb2, proposal_pb2

from blockfedml.errors import IntegrityError
from blockfedml.identity import verify_signature
from blockfedml.ledger.proposal import compute_tx_id, create_proposal, parse_proposal


def test_signed_proposal_decodes_as_fabric_reads_it(orgs) -> None:
    admin = orgs[0].admin()
    proposal = create_proposal(admin, "fedchannel", "blockfedml", "OpenRound", ["abc", b"\x00raw"])
    signed = proposal_pb2.SignedProposal.FromString(proposal.signed_proposal())
    assert verify_signature(admin.certificate, signed.proposal_bytes, signed.signature)

    prop = proposal_pb2.Proposal.FromString(signed.proposal_bytes)
    header = common_pb2.Header.FromString(prop.header)
    channel_header = common_pb2.ChannelHeader.FromString(header.channel_header)
    signature_header = common_pb2.SignatureHeader.FromString(header.signature_header)
    assert channel_header.type == common_pb2.ENDORSER_TRANSACTION
    assert channel_header.channel_id == "fedchannel"
    assert channel_header.timestamp.seconds > 1_600_000_000
    ext = proposal_pb2.ChaincodeHeaderExtension.FromString(channel_header.extension)
    assert ext.chaincode_id.name == "blockfedml"
    creator = identities_pb2.SerializedIdentity.FromString(signature_header.creator)
    assert creator.mspid == "Org1MSP" and creator.id_bytes == admin.certificate
    assert len(signature_header.nonce) == 24
    assert channel_header.tx_id == hashlib.sha256(signature_header.nonce + signature_header.creator).hexdigest()
    payload = proposal_pb2.ChaincodeProposalPayload.FromString(prop.payload)
    spec = chaincode_pb2.ChaincodeInvocationSpec.FromString(payload.input).chaincode_spec
    assert list(spec.input.args) == [b"OpenRound", b"abc", b"\x00raw"]

    parsed = parse_proposal(signed.proposal_bytes, signed.signature)
    assert parsed == proposal
    assert parsed.function == "OpenRound" and parsed.params[0] == "abc"


def test_tx_id_must_match_nonce_and_creator(orgs) -> None:
    admin = orgs[0].admin()
    proposal = create_proposal(admin, "fedchannel", "blockfedml", "F", nonce=b"n" * 24)
    assert proposal.tx_id == compute_tx_id(b"n" * 24, admin.serialize())
    prop = proposal_pb2.Proposal.FromString(proposal.proposal_bytes)
    header = common_pb2.Header.FromString(prop.header)
    ch = common_pb2.ChannelHeader.FromString(header.channel_header)
    ch.tx_id = "0" * 64
    header.channel_header = ch.SerializeToString()
    prop.header = header.SerializeToString()
    with pytest.raises(IntegrityError, match="does not match"):
        parse_proposal(prop.SerializeToString())
    with pytest.raises(IntegrityError, match="malformed"):
        parse_proposal(b"\xff\x01garbage")


def test_fresh_nonce_gives_fresh_tx_ids(orgs) -> None:
    admin = orgs[0].admin()
    ids = {create_proposal(admin, "c", "cc", "F").tx_id for _ in range(20)}
    assert len(ids) == 20
