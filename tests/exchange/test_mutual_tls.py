"""Mutual TLS: each side must prove its organization with a certificate of that
organization's TLS CA, or the exchange refuses it before any blob moves."""

from __future__ import annotations

import dataclasses
import datetime as dt

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from blockfedml.errors import ExchangeError, NotAuthorizedError
from blockfedml.exchange import ExchangeClient, ExchangeServer, wire
from exchange_helpers import FAST, client_of, write_tls


def _self_signed(cn: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def test_both_sides_learn_who_the_other_organization_is(orgs, server):
    with client_of(orgs, server, "Org2") as client:
        assert client.ping(b"hello") == {"echo": 5, "receiver": "Org1MSP", "sender": "Org2MSP"}
        receipt = client.send(1, b"sealed update")
    assert receipt["sender"] == "Org2MSP" and receipt["receiver"] == "Org1MSP"
    assert server.inbox.senders(1) == ["Org2MSP"]


def test_a_certificate_of_another_organization_than_the_claimed_one_is_refused(orgs, server):
    # Org3's genuine client certificate, presented by a client that claims to be Org2.
    impostor = dataclasses.replace(orgs.tls["Org3"], msp_id="Org2MSP")
    with client_of(orgs, server, tls=impostor) as client:
        with pytest.raises(NotAuthorizedError, match="not issued by the TLS CA of Org2MSP"):
            client.send(1, b"a blob sent in Org2's name")
        with pytest.raises(NotAuthorizedError, match="Outsider"):
            ExchangeClient(dataclasses.replace(orgs.tls["Org3"], msp_id="OutsiderMSP"),
                           client.peer, FAST).ping()
    assert server.inbox.senders(1) == []


@pytest.mark.parametrize("kind", ["self-signed", "outside the consortium"])
def test_a_certificate_no_consortium_tls_ca_issued_fails_the_handshake(orgs, server, tmp_path, kind):
    if kind == "self-signed":
        cert, key = _self_signed("Admin@org2.example.com")
        tls = write_tls(tmp_path / "self", "Org2MSP", cert, key, orgs.tls["Org2"])
    else:  # a real organization with its own TLS CA, which the consortium does not trust
        tls = dataclasses.replace(orgs.tls["Outsider"], msp_id="Org2MSP")
    with client_of(orgs, server, tls=tls) as client:
        with pytest.raises(ExchangeError, match="cannot reach Org1MSP"):
            client.send(1, b"blob")
    assert server.inbox.senders(1) == []


def test_a_client_without_a_certificate_fails_the_handshake(orgs, server):
    credentials = grpc.ssl_channel_credentials(root_certificates=orgs.ca["Org1"])
    options = [("grpc.ssl_target_name_override", orgs.tls["Org1"].server_name)]
    with grpc.secure_channel(server.address, credentials, options=options) as channel:
        ping = channel.unary_unary(wire.PING)
        with pytest.raises(grpc.RpcError) as refused:
            ping(b"", timeout=2.0, metadata=((wire.MSP_KEY, "Org2MSP"),))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_client_only_talks_to_a_server_of_the_organization_it_expects(orgs, tmp_path):
    # Org3 listens where the client believes Org1 (the aggregator) is: the client's
    # channel trusts only Org1's TLS CA, so Org3 never receives the blob.
    with ExchangeServer(orgs.tls["Org3"], orgs.trust, "127.0.0.1:0", options=FAST) as org3:
        peer = orgs.peer("Org1", org3.address)
        with ExchangeClient(orgs.tls["Org2"], peer, FAST) as client:
            with pytest.raises(ExchangeError, match="cannot reach Org1MSP"):
                client.send(1, b"Org2's update, meant for Org1 only")
        assert org3.inbox.senders(1) == []
