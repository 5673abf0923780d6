"""Fabric-style identities and low-S ECDSA signatures."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from fabric_protos.msp import identities_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from blockfedml.errors import CryptoError
from blockfedml.identity import Identity, OrgMaterial, SigningIdentity, create_organization, verify_signature
from blockfedml.identity.signing import P256_ORDER, is_low_s


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> OrgMaterial:
    return create_organization(tmp_path_factory.mktemp("crypto"), "Org1", "Org1MSP", "org1.example.com")


@pytest.fixture(scope="module")
def admin(org: OrgMaterial) -> SigningIdentity:
    return org.admin()


def test_serialize_is_fabrics_serialized_identity(admin: SigningIdentity) -> None:
    sid = identities_pb2.SerializedIdentity.FromString(admin.serialize())
    assert sid.mspid == "Org1MSP"
    assert sid.id_bytes == admin.certificate
    assert Identity.deserialize(admin.serialize()) == admin.public()


def test_deserialize_garbage_is_a_crypto_error() -> None:
    with pytest.raises(CryptoError):
        Identity.deserialize(b"\xff\xff\xff")
    with pytest.raises(CryptoError):
        Identity.deserialize(b"")


@settings(max_examples=60, deadline=None)
@given(message=st.binary(max_size=512))
def test_signatures_are_low_s_and_verify(admin: SigningIdentity, message: bytes) -> None:
    signature = admin.sign(message)
    assert is_low_s(signature)
    assert verify_signature(admin.certificate, message, signature)
    assert not verify_signature(admin.certificate, message + b"x", signature)


def test_high_s_twin_is_refused_though_mathematically_valid(admin: SigningIdentity) -> None:
    message = b"a transaction"
    r, s = decode_dss_signature(admin.sign(message))
    twin = encode_dss_signature(r, P256_ORDER - s)
    admin.private_key.public_key().verify(twin, message, ec.ECDSA(hashes.SHA256()))  # valid ECDSA
    assert not verify_signature(admin.certificate, message, twin)


def test_wrong_signer_and_garbage_signature_fail(org: OrgMaterial, admin: SigningIdentity) -> None:
    signature = admin.sign(b"m")
    assert not verify_signature(org.peer().certificate, b"m", signature)
    assert not verify_signature(admin.certificate, b"m", b"not a signature")
    assert not verify_signature(admin.certificate, b"m", b"")


def test_unusable_certificate_is_a_crypto_error(admin: SigningIdentity) -> None:
    with pytest.raises(CryptoError):
        verify_signature(b"not a certificate", b"m", admin.sign(b"m"))


def test_signing_identity_needs_an_ec_key(admin: SigningIdentity) -> None:
    with pytest.raises(CryptoError):
        SigningIdentity("Org1MSP", admin.certificate, None)  # type: ignore[arg-type]
    assert "private_key" not in repr(admin) or "EllipticCurvePrivateKey" not in repr(admin)
