"""Organization material in cryptogen's MSP layout, and loading it back."""

from __future__ import annotations

import shutil
import stat
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from blockfedml.errors import ConflictError, CryptoError, InvalidInputError
from blockfedml.identity import (
    OrgMaterial,
    create_organization,
    load_signing_identity,
    verify_issued_by,
    verify_signature,
)


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> OrgMaterial:
    return create_organization(tmp_path_factory.mktemp("crypto"), "Org1", "Org1MSP", "org1.example.com")


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> OrgMaterial:
    return create_organization(tmp_path_factory.mktemp("crypto"), "Org2", "Org2MSP", "org2.example.com")


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_layout_is_cryptogens(org: OrgMaterial) -> None:
    d = org.org_dir
    assert d == d.parent / "org1.example.com" and d.parent.name == "peerOrganizations"
    expected = [
        "ca/ca.org1.example.com-cert.pem", "ca/priv_sk",
        "tlsca/tlsca.org1.example.com-cert.pem", "tlsca/priv_sk",
        "msp/cacerts/ca.org1.example.com-cert.pem", "msp/tlscacerts/tlsca.org1.example.com-cert.pem",
        "msp/config.yaml",
        "users/Admin@org1.example.com/msp/signcerts/Admin@org1.example.com-cert.pem",
        "users/Admin@org1.example.com/msp/keystore/priv_sk",
        "users/Admin@org1.example.com/msp/cacerts/ca.org1.example.com-cert.pem",
        "users/Admin@org1.example.com/msp/tlscacerts/tlsca.org1.example.com-cert.pem",
        "users/Admin@org1.example.com/tls/ca.crt", "users/Admin@org1.example.com/tls/client.crt",
        "users/Admin@org1.example.com/tls/client.key",
        "peers/peer0.org1.example.com/msp/signcerts/peer0.org1.example.com-cert.pem",
        "peers/peer0.org1.example.com/msp/keystore/priv_sk",
        "peers/peer0.org1.example.com/tls/ca.crt", "peers/peer0.org1.example.com/tls/server.crt",
        "peers/peer0.org1.example.com/tls/server.key",
    ]
    for rel in expected:
        assert (d / rel).is_file(), rel
    for key in d.rglob("*"):
        if key.name in ("priv_sk", "client.key", "server.key"):
            assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    config = (d / "msp" / "config.yaml").read_text()
    assert "Enable: true" in config and "cacerts/ca.org1.example.com-cert.pem" in config


def test_ca_is_a_self_signed_p256_ca(org: OrgMaterial) -> None:
    ca = x509.load_pem_x509_certificate(org.ca_cert_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.issuer == ca.subject
    assert ca.public_key().curve.name == "secp256r1"
    assert verify_issued_by(org.ca_cert_pem, org.ca_cert_pem)
    assert org.ca_cert_pem != org.tls_ca_cert_pem


def test_signing_certs_come_from_the_ca_and_tls_certs_from_the_tls_ca(org: OrgMaterial) -> None:
    admin, peer = org.admin(), org.peer()
    for ident, ou in ((admin, "admin"), (peer, "peer")):
        assert verify_issued_by(ident.certificate, org.ca_cert_pem)
        assert not verify_issued_by(ident.certificate, org.tls_ca_cert_pem)
        cert = x509.load_pem_x509_certificate(ident.certificate)
        assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == ou
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for tls_dir, leaf in ((org.admin_tls_dir, "client.crt"), (org.peer_tls_dir, "server.crt")):
        pem = (tls_dir / leaf).read_bytes()
        assert (tls_dir / "ca.crt").read_bytes() == org.tls_ca_cert_pem
        assert verify_issued_by(pem, org.tls_ca_cert_pem)
        assert not verify_issued_by(pem, org.ca_cert_pem)
        cert = x509.load_pem_x509_certificate(pem)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert IPv4Address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
        assert "localhost" in san.get_values_for_type(x509.DNSName)
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.SERVER_AUTH in usages and ExtendedKeyUsageOID.CLIENT_AUTH in usages
    server = _cert(org.peer_tls_dir / "server.crt")
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "peer0.org1.example.com" in names.get_values_for_type(x509.DNSName)


def test_loaded_identity_signs_for_its_org(org: OrgMaterial) -> None:
    admin = load_signing_identity(org.admin_msp_dir, "Org1MSP")
    assert admin.msp_id == "Org1MSP"
    assert "Admin@org1.example.com" in admin.subject
    assert verify_signature(admin.certificate, b"hello", admin.sign(b"hello"))


def test_other_orgs_ca_did_not_issue_our_certs(org: OrgMaterial, other: OrgMaterial) -> None:
    assert not verify_issued_by(org.admin().certificate, other.ca_cert_pem)
    assert not verify_issued_by(org.admin().certificate, org.admin().certificate)  # a leaf is no CA


def test_creating_twice_is_refused(org: OrgMaterial) -> None:
    with pytest.raises(ConflictError, match="already exists"):
        create_organization(org.org_dir.parent.parent, "Org1", "Org1MSP", "org1.example.com")


@pytest.mark.parametrize("msp_id, domain", [("", "a.example.com"), ("Org 1", "a.example.com"),
                                            ("Org1MSP", "Org1.Example.com"), ("Org1MSP", "a..b"),
                                            ("Org1MSP", "")])
def test_bad_names_are_refused(tmp_path: Path, msp_id: str, domain: str) -> None:
    with pytest.raises(InvalidInputError):
        create_organization(tmp_path, "Org", msp_id, domain)


def _copy_msp(org: OrgMaterial, tmp_path: Path) -> Path:
    msp = tmp_path / "msp"
    shutil.copytree(org.admin_msp_dir, msp)
    return msp


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=str(tmp_path / "nowhere")):
        load_signing_identity(tmp_path / "nowhere", "Org1MSP")


def test_missing_keystore_is_named(org: OrgMaterial, tmp_path: Path) -> None:
    msp = _copy_msp(org, tmp_path)
    shutil.rmtree(msp / "keystore")
    with pytest.raises(InvalidInputError, match="keystore"):
        load_signing_identity(msp, "Org1MSP")


def test_empty_or_crowded_signcerts_are_refused(org: OrgMaterial, tmp_path: Path) -> None:
    msp = _copy_msp(org, tmp_path)
    (msp / "signcerts" / "second-cert.pem").write_bytes(org.peer().certificate)
    with pytest.raises(InvalidInputError, match="exactly one file, found 2"):
        load_signing_identity(msp, "Org1MSP")
    for f in (msp / "signcerts").iterdir():
        f.unlink()
    with pytest.raises(InvalidInputError, match="found 0"):
        load_signing_identity(msp, "Org1MSP")


def test_malformed_cert_and_key_are_named(org: OrgMaterial, tmp_path: Path) -> None:
    msp = _copy_msp(org, tmp_path)
    cert = next((msp / "signcerts").iterdir())
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(CryptoError, match=cert.name):
        load_signing_identity(msp, "Org1MSP")
    shutil.copy(org.admin_msp_dir / "signcerts" / cert.name, cert)
    (msp / "keystore" / "priv_sk").write_bytes(b"garbage")
    with pytest.raises(CryptoError, match="priv_sk"):
        load_signing_identity(msp, "Org1MSP")


def test_key_of_another_identity_is_refused(org: OrgMaterial, tmp_path: Path) -> None:
    msp = _copy_msp(org, tmp_path)
    shutil.copy(org.peer_msp_dir / "keystore" / "priv_sk", msp / "keystore" / "priv_sk")
    with pytest.raises(CryptoError, match="does not belong"):
        load_signing_identity(msp, "Org1MSP")
