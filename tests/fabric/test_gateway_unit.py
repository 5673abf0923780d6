"""The Fabric Gateway client without a network: signatures, envelopes, error mapping, retries."""

from __future__ import annotations

import json

import grpc
import pytest
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import proposal_pb2, proposal_response_pb2, transaction_pb2

from blockfedml.errors import (
    ChaincodeError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    LedgerError,
    NotFoundError,
    PhaseError,
)
from blockfedml.identity import create_organization
from blockfedml.identity.signing import is_low_s, verify_signature
from blockfedml.ledger.fabric import FabricGateway, FabricProfile, GatewayOptions, PeerEndpoint
from blockfedml.ledger.fabric.errors import STATUS_DETAILS_KEY, RpcStatus, commit_error, map_rpc_error
from blockfedml.ledger.fabric.gateway import COMMIT_STATUS_METADATA, envelope_result
from blockfedml.ledger.proposal import create_proposal, parse_proposal


class FakeRpcError(grpc.RpcError):
    """What grpcio raises: a code, a message and trailers with google.rpc.Status details."""

    def __init__(self, code: grpc.StatusCode, message: str, peer_messages: tuple[str, ...] = ()) -> None:
        self._code, self._message = code, message
        status = RpcStatus(code=code.value[0], message=message)
        for text in peer_messages:
            detail = gateway_pb2.ErrorDetail(address="127.0.0.1:8051", msp_id="Org2MSP", message=text)
            status.details.add(type_url="type.googleapis.com/gateway.ErrorDetail", value=detail.SerializeToString())
        self._trailers = ((STATUS_DETAILS_KEY, status.SerializeToString()),)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._message

    def trailing_metadata(self):
        return self._trailers


@pytest.fixture(scope="module")
def org(tmp_path_factory):
    return create_organization(tmp_path_factory.mktemp("crypto"), "Org1", "Org1MSP", "org1.example.com")


def prepared_envelope(tx_id: str, result: bytes) -> common_pb2.Envelope:
    """An unsigned transaction envelope as a Gateway's Endorse returns it."""
    action = proposal_pb2.ChaincodeAction(response=proposal_response_pb2.Response(status=200, payload=result))
    prp = proposal_response_pb2.ProposalResponsePayload(extension=action.SerializeToString())
    cap = transaction_pb2.ChaincodeActionPayload(
        action=transaction_pb2.ChaincodeEndorsedAction(proposal_response_payload=prp.SerializeToString()))
    tx = transaction_pb2.Transaction(actions=[transaction_pb2.TransactionAction(payload=cap.SerializeToString())])
    header = common_pb2.Header(channel_header=common_pb2.ChannelHeader(tx_id=tx_id).SerializeToString())
    payload = common_pb2.Payload(header=header, data=tx.SerializeToString())
    return common_pb2.Envelope(payload=payload.SerializeToString())


# ---- proposals and envelopes --------------------------------------------------------

def test_a_proposal_is_signed_low_s_by_the_identity_and_parses_back(org):
    identity = org.admin()
    proposal = create_proposal(identity, "fedchannel", "blockfedml", "OpenRound", ["plaintext"])
    assert verify_signature(identity.certificate, proposal.proposal_bytes, proposal.signature)
    assert is_low_s(proposal.signature)
    parsed = parse_proposal(proposal.proposal_bytes, proposal.signature)
    assert (parsed.tx_id, parsed.function, parsed.params) == (proposal.tx_id, "OpenRound", ["plaintext"])


def test_the_result_is_read_from_the_prepared_envelope():
    assert envelope_result(prepared_envelope("tx1", b'{"round":1}'), "tx1") == b'{"round":1}'
    with pytest.raises(IntegrityError, match="returned transaction tx2 for proposal tx1"):
        envelope_result(prepared_envelope("tx2", b"{}"), "tx1")
    with pytest.raises(IntegrityError, match="malformed"):
        envelope_result(common_pb2.Envelope(payload=b"\x01garbage"), "tx1")


# ---- error mapping ----------------------------------------------------------------

@pytest.mark.parametrize("peer_message, error, text", [
    ("chaincode response 500, [PHASE] round 3 is in phase update, not selection", PhaseError,
     "[PHASE] round 3 is in phase update, not selection"),
    ("chaincode response 500, [NOT_FOUND] round 9 does not exist", NotFoundError, "[NOT_FOUND] round 9 does not exist"),
    ("chaincode response 500, [EXISTS] Org2MSP has already joined", ConflictError, "[EXISTS] Org2MSP has already joined"),
])
def test_a_contract_refusal_keeps_its_class_and_exact_message(peer_message, error, text):
    failure = FakeRpcError(grpc.StatusCode.ABORTED, "failed to endorse transaction, see attached details",
                           (peer_message,))
    mapped = map_rpc_error(failure, "endorse", "tx1", "127.0.0.1:7051")
    assert type(mapped) is error and str(mapped) == text


def test_another_endorsement_failure_is_a_chaincode_error_with_the_peers_words():
    failure = FakeRpcError(grpc.StatusCode.ABORTED, "failed to endorse transaction",
                           ("chaincode response 500, Function Nope not found in contract blockfedml",))
    mapped = map_rpc_error(failure, "endorse", "tx1", "127.0.0.1:7051")
    assert type(mapped) is ChaincodeError
    assert "tx1" in str(mapped) and "Org2MSP@127.0.0.1:8051" in str(mapped) and "Function Nope" in str(mapped)


def test_timeouts_and_unreachable_peers_are_ledger_errors_that_say_what_to_do():
    late = map_rpc_error(FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline"), "commit status", "tx1",
                         "127.0.0.1:7051", timeout=60)
    assert type(late) is LedgerError and "within 60 s" in str(late) and "timeout" in str(late)
    down = map_rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused"), "evaluate", "tx1",
                         "127.0.0.1:7051")
    assert type(down) is LedgerError and "network up" in str(down)


def test_invalid_commits_map_by_validation_code():
    assert type(commit_error(transaction_pb2.MVCC_READ_CONFLICT, "tx1", 7)) is ConflictError
    assert type(commit_error(transaction_pb2.PHANTOM_READ_CONFLICT, "tx1", 7)) is ConflictError
    policy = commit_error(transaction_pb2.ENDORSEMENT_POLICY_FAILURE, "tx1", 7)
    assert type(policy) is LedgerError and "ENDORSEMENT_POLICY_FAILURE" in str(policy)


# ---- the client's flow and retries, against a scripted Gateway ----------------------

class _Call:
    """What ``with_call`` returns beside the response: the answer's trailing metadata."""

    def __init__(self, metadata) -> None:
        self.metadata = metadata

    def trailing_metadata(self):
        return self.metadata


class ScriptedGateway:
    """Stands in for the gRPC stub: answers from queues and records every request.
    ``submit_metadata``: the trailing metadata of Submit's answer (a Fabric peer sends none;
    the embedded ledger's service sends the commit status)."""

    def __init__(self, commit_codes=(), evaluate_failures=0, endorse_mismatches=0, submit_metadata=()) -> None:
        self.submit_metadata = tuple(submit_metadata)
        self.Submit = self  # the stub's Submit: called directly, or ``with_call`` for the metadata
        self.commit_codes = list(commit_codes)
        self.evaluate_failures = evaluate_failures
        self.endorse_mismatches = endorse_mismatches
        self.endorsed: list[gateway_pb2.EndorseRequest] = []
        self.submitted: list[gateway_pb2.SubmitRequest] = []
        self.status_requests: list[gateway_pb2.SignedCommitStatusRequest] = []

    def Evaluate(self, request, timeout):  # noqa: N802 - gRPC method names
        if self.evaluate_failures:
            self.evaluate_failures -= 1
            raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused")
        return gateway_pb2.EvaluateResponse(result=proposal_response_pb2.Response(status=200, payload=b"[]"))

    def Endorse(self, request, timeout):  # noqa: N802
        self.endorsed.append(request)
        if self.endorse_mismatches:  # peers one block apart answered differently
            self.endorse_mismatches -= 1
            raise FakeRpcError(grpc.StatusCode.ABORTED, "failed to collect enough transaction endorsements",
                               ("ProposalResponsePayloads do not match",))
        return gateway_pb2.EndorseResponse(prepared_transaction=prepared_envelope(request.transaction_id, b'"ok"'))

    def __call__(self, request, timeout):  # Submit
        self.submitted.append(request)
        return gateway_pb2.SubmitResponse()

    def with_call(self, request, timeout):
        return self(request, timeout), _Call(self.submit_metadata)

    def CommitStatus(self, request, timeout):  # noqa: N802
        self.status_requests.append(request)
        code = self.commit_codes.pop(0) if self.commit_codes else transaction_pb2.VALID
        return gateway_pb2.CommitStatusResponse(result=code, block_number=5)


def scripted(org, tmp_path, script: ScriptedGateway, **options) -> FabricGateway:
    ca = tmp_path / "ca.crt"
    ca.write_bytes(org.tls_ca_cert_pem)
    gateway = FabricGateway(org.admin(), PeerEndpoint("127.0.0.1:1", ca),
                            GatewayOptions(retry_backoff=0.001, **options))
    gateway._stub = script
    return gateway


def test_a_commit_status_carried_by_submit_spares_the_commit_status_request(org, tmp_path):
    """The embedded ledger's service answers Submit with ``code/block``; a conflict there is a conflict."""
    script = ScriptedGateway(submit_metadata=[(COMMIT_STATUS_METADATA, "0/9")])
    gateway = scripted(org, tmp_path, script)
    contract = gateway.network().contract()
    assert contract.submit_json("Join") == "ok" and script.status_requests == []
    script.submit_metadata = ((COMMIT_STATUS_METADATA, f"{transaction_pb2.MVCC_READ_CONFLICT}/10"),)
    with pytest.raises(ConflictError):
        contract.submit_json("Join")
    assert len(script.endorsed) == 1 + 3 and script.status_requests == []  # endorsed again twice, as Fabric's
    gateway.close()


def test_submit_signs_the_envelope_and_the_commit_status_request(org, tmp_path):
    script = ScriptedGateway()
    gateway = scripted(org, tmp_path, script)
    assert gateway.network().contract().submit_json("Join") == "ok"
    identity = org.admin()
    envelope = script.submitted[0].prepared_transaction
    assert verify_signature(identity.certificate, envelope.payload, envelope.signature)
    signed = script.status_requests[0]
    assert verify_signature(identity.certificate, signed.request, signed.signature)
    request = gateway_pb2.CommitStatusRequest.FromString(signed.request)
    assert request.transaction_id == script.endorsed[0].transaction_id
    gateway.close()


def test_an_mvcc_conflict_is_endorsed_again_as_a_new_transaction(org, tmp_path):
    script = ScriptedGateway(commit_codes=[transaction_pb2.MVCC_READ_CONFLICT])
    gateway = scripted(org, tmp_path, script)
    assert gateway.network().contract().submit("Decide", "1") == b'"ok"'
    assert len(script.endorsed) == 2
    assert script.endorsed[0].transaction_id != script.endorsed[1].transaction_id


def test_conflicts_beyond_the_retry_limit_raise_conflict_error(org, tmp_path):
    script = ScriptedGateway(commit_codes=[transaction_pb2.MVCC_READ_CONFLICT] * 3)
    gateway = scripted(org, tmp_path, script, conflict_retries=1)
    with pytest.raises(ConflictError, match="MVCC_READ_CONFLICT"):
        gateway.network().contract().submit("Decide", "1")
    assert len(script.endorsed) == 2


def test_peers_at_different_heights_are_asked_to_endorse_the_same_proposal_again(org, tmp_path):
    script = ScriptedGateway(endorse_mismatches=2)
    gateway = scripted(org, tmp_path, script)
    assert gateway.network().contract().submit("Decide", "1") == b'"ok"'
    assert len(script.endorsed) == 3 and len({e.transaction_id for e in script.endorsed}) == 1
    assert len(script.submitted) == 1
    gateway = scripted(org, tmp_path, ScriptedGateway(endorse_mismatches=9), mismatch_retries=1)
    with pytest.raises(ChaincodeError, match="ProposalResponsePayloads do not match"):
        gateway.network().contract().submit("Decide", "1")


def test_an_unavailable_peer_is_retried_before_submission_then_reported(org, tmp_path):
    gateway = scripted(org, tmp_path, ScriptedGateway(evaluate_failures=2))
    assert gateway.network().contract().evaluate_json("ListOrgs") == []
    gateway = scripted(org, tmp_path, ScriptedGateway(evaluate_failures=9), unavailable_retries=2)
    with pytest.raises(LedgerError, match="cannot reach"):
        gateway.network().contract().evaluate("ListOrgs")


def test_missing_tls_files_are_reported_with_the_endpoint(org, tmp_path):
    with pytest.raises(InvalidInputError, match="127.0.0.1:7051"):
        FabricGateway(org.admin(), PeerEndpoint("127.0.0.1:7051", tmp_path / "missing.crt"))


# ---- connection profiles ------------------------------------------------------------

def test_a_profile_resolves_relative_paths_and_names_what_is_missing(tmp_path):
    entry = {"name": "Org1", "msp_id": "Org1MSP", "peer_endpoint": "127.0.0.1:7051",
             "tls_ca": "crypto/ca.crt", "admin_msp": "crypto/admin/msp", "server_name": "peer0.org1"}
    (tmp_path / "network.json").write_text(json.dumps({"channel": "fedchannel", "orgs": [entry]}))
    profile = FabricProfile.load(tmp_path / "network.json")
    org = profile.org("Org1MSP")
    assert org.endpoint.tls_ca == tmp_path / "crypto/ca.crt" and org.endpoint.server_name == "peer0.org1"
    assert FabricProfile.from_dict(profile.to_dict()) == profile
    with pytest.raises(InvalidInputError, match="lacks tls_ca"):
        FabricProfile.from_dict({"orgs": [{**entry, "tls_ca": ""}]})
    with pytest.raises(NotFoundError, match="network up"):
        FabricProfile.load(tmp_path / "absent.json")
