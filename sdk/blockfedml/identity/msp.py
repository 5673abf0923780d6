"""An organization's crypto material in Fabric's ``cryptogen`` MSP layout.

The layout is the one Fabric's own tools write and read, so the same folders
serve the embedded ledger, a real peer (``CORE_PEER_MSPCONFIGPATH``) and the
mutual-TLS exchange between organizations::

    peerOrganizations/<domain>/
      ca/        ca.<domain>-cert.pem, priv_sk          signing CA
      tlsca/     tlsca.<domain>-cert.pem, priv_sk       separate TLS CA
      msp/       cacerts/ tlscacerts/ config.yaml       the org's MSP definition
      peers/peer0.<domain>/{msp/..., tls/{ca.crt,server.crt,server.key}}
      users/Admin@<domain>/{msp/..., tls/{ca.crt,client.crt,client.key}}

Signing and TLS use two CAs, as cryptogen does, so a TLS key can never sign a
transaction and a signing key never authenticates a connection.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from blockfedml.errors import ConflictError, CryptoError, InvalidInputError
from blockfedml.identity.signing import SigningIdentity, load_certificate

_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_MSP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CA_YEARS = 10
_LEAF_YEARS = 10
_NODE_OUS = """NodeOUs:
  Enable: true
  ClientOUIdentifier:
    Certificate: cacerts/{ca}
    OrganizationalUnitIdentifier: client
  PeerOUIdentifier:
    Certificate: cacerts/{ca}
    OrganizationalUnitIdentifier: peer
  AdminOUIdentifier:
    Certificate: cacerts/{ca}
    OrganizationalUnitIdentifier: admin
  OrdererOUIdentifier:
    Certificate: cacerts/{ca}
    OrganizationalUnitIdentifier: orderer
"""


@dataclass(frozen=True)
class OrgMaterial:
    """Where an organization's material lives, and its CA certificates (PEM)."""

    name: str
    msp_id: str
    domain: str
    org_dir: Path
    msp_dir: Path
    ca_cert_pem: bytes
    tls_ca_cert_pem: bytes
    admin_msp_dir: Path
    admin_tls_dir: Path
    peer_msp_dir: Path
    peer_tls_dir: Path
    orderer_msp_dir: Path | None = None  # only for a ledger node's organization (``orderer=True``)

    def admin(self) -> SigningIdentity:
        """The organization's Admin signing identity."""
        return load_signing_identity(self.admin_msp_dir, self.msp_id)

    def peer(self) -> SigningIdentity:
        """The organization's peer signing identity."""
        return load_signing_identity(self.peer_msp_dir, self.msp_id)

    def orderer(self) -> SigningIdentity:
        """The organization's orderer signing identity (a ledger node's organization only)."""
        if self.orderer_msp_dir is None:
            raise InvalidInputError(f"organization {self.name} has no orderer identity")
        return load_signing_identity(self.orderer_msp_dir, self.msp_id)


def create_organization(base_dir: str | os.PathLike[str], name: str, msp_id: str,
                        domain: str, *, orderer: bool = False) -> OrgMaterial:
    """Create a CA, a TLS CA, an Admin and a peer0 for one organization.

    With ``orderer`` also an ``orderers/orderer0.<domain>`` node: the ledger
    service's organization has a peer (it endorses) and an orderer (it signs
    blocks), each with its own key, as a Fabric ordering/peer pair has.

    ``ConflictError`` if the organization's folder already exists (material is
    never silently replaced: certificates on a ledger would stop matching).
    """
    if not name or not name.strip():
        raise InvalidInputError("organization name must not be empty")
    if not _MSP_ID.match(msp_id or ""):
        raise InvalidInputError(f"MSP ID {msp_id!r} must be 1-64 letters, digits, '.', '_' or '-'")
    if not _DOMAIN.match(domain or ""):
        raise InvalidInputError(f"domain {domain!r} must be a lower-case DNS name like org1.example.com")
    org_dir = Path(base_dir) / "peerOrganizations" / domain
    if org_dir.exists():
        raise ConflictError(f"{org_dir} already exists; remove it or choose another domain")

    ca_key, ca_cert = _make_ca(f"ca.{domain}", name, domain)
    tls_key, tls_cert = _make_ca(f"tlsca.{domain}", name, domain)
    ca_file, tls_file = f"ca.{domain}-cert.pem", f"tlsca.{domain}-cert.pem"
    ca_pem, tls_pem = _pem(ca_cert), _pem(tls_cert)

    _write_key(org_dir / "ca" / "priv_sk", ca_key)
    _write(org_dir / "ca" / ca_file, ca_pem)
    _write_key(org_dir / "tlsca" / "priv_sk", tls_key)
    _write(org_dir / "tlsca" / tls_file, tls_pem)
    msp_dir = org_dir / "msp"
    _write_msp_common(msp_dir, ca_file, ca_pem, tls_file, tls_pem)

    admin_name, peer_name = f"Admin@{domain}", f"peer0.{domain}"
    admin_dir = org_dir / "users" / admin_name
    peer_dir = org_dir / "peers" / peer_name
    orderer_dir = org_dir / "orderers" / f"orderer0.{domain}"
    nodes = [(admin_dir, admin_name, "admin", "client"), (peer_dir, peer_name, "peer", "server")]
    if orderer:
        nodes.append((orderer_dir, f"orderer0.{domain}", "orderer", "server"))
    for node_dir, cn, ou, tls_kind in nodes:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(ca_key, ca_cert, key.public_key(), cn, ou, tls=False)
        node_msp = node_dir / "msp"
        _write_msp_common(node_msp, ca_file, ca_pem, tls_file, tls_pem)
        _write(node_msp / "signcerts" / f"{cn}-cert.pem", _pem(cert))
        _write_key(node_msp / "keystore" / "priv_sk", key)
        tls_key_leaf = ec.generate_private_key(ec.SECP256R1())
        tls_leaf = _issue(tls_key, tls_cert, tls_key_leaf.public_key(), cn, ou, tls=True)
        _write(node_dir / "tls" / "ca.crt", tls_pem)
        _write(node_dir / "tls" / f"{tls_kind}.crt", _pem(tls_leaf))
        _write_key(node_dir / "tls" / f"{tls_kind}.key", tls_key_leaf)

    return OrgMaterial(
        name=name, msp_id=msp_id, domain=domain, org_dir=org_dir, msp_dir=msp_dir,
        ca_cert_pem=ca_pem, tls_ca_cert_pem=tls_pem,
        admin_msp_dir=admin_dir / "msp", admin_tls_dir=admin_dir / "tls",
        peer_msp_dir=peer_dir / "msp", peer_tls_dir=peer_dir / "tls",
        orderer_msp_dir=orderer_dir / "msp" if orderer else None,
    )


def load_signing_identity(msp_dir: str | os.PathLike[str], msp_id: str) -> SigningIdentity:
    """Load the identity of an MSP folder: ``signcerts/*`` and ``keystore/*``.

    Each folder must hold exactly one file; the key must belong to the
    certificate. Errors name the offending path.
    """
    msp = Path(msp_dir)
    if not msp.is_dir():
        raise InvalidInputError(f"MSP folder {msp} does not exist")
    cert_path = _single_file(msp / "signcerts")
    key_path = _single_file(msp / "keystore")
    cert_pem = cert_path.read_bytes()
    try:
        cert = load_certificate(cert_pem)
    except CryptoError as exc:
        raise CryptoError(f"{cert_path}: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except Exception as exc:
        raise CryptoError(f"{key_path}: not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise CryptoError(f"{key_path}: key is not ECDSA P-256")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():
        raise CryptoError(f"{key_path} does not belong to the certificate {cert_path}")
    return SigningIdentity(msp_id, cert_pem, key)


def _single_file(folder: Path) -> Path:
    if not folder.is_dir():
        raise InvalidInputError(f"MSP folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if len(files) != 1:
        raise InvalidInputError(f"{folder} must hold exactly one file, found {len(files)}")
    return files[0]


def _subject(cn: str, ou: str | None = None, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
             x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "California"),
             x509.NameAttribute(NameOID.LOCALITY_NAME, "San Francisco")]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _validity(years: int) -> tuple[_dt.datetime, _dt.datetime]:
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    return now - _dt.timedelta(minutes=5), now + _dt.timedelta(days=365 * years)


def _make_ca(cn: str, name: str, domain: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _subject(cn, org=domain)
    not_before, not_after = _validity(_CA_YEARS)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=True, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                              ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issue(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
           public_key: ec.EllipticCurvePublicKey, cn: str, ou: str, *, tls: bool) -> x509.Certificate:
    not_before, not_after = _validity(_LEAF_YEARS)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_subject(cn, ou=None if tls else ou))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
    )
    if tls:
        names = [x509.DNSName(cn), x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
        if "@" in cn:  # a user's name is not a DNS name
            names = names[1:]
        builder = (
            builder
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=True, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False,
                          crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
    return builder.sign(ca_key, hashes.SHA256())


def _write_msp_common(msp_dir: Path, ca_file: str, ca_pem: bytes, tls_file: str, tls_pem: bytes) -> None:
    _write(msp_dir / "cacerts" / ca_file, ca_pem)
    _write(msp_dir / "tlscacerts" / tls_file, tls_pem)
    _write(msp_dir / "config.yaml", _NODE_OUS.format(ca=ca_file).encode())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write a PKCS#8 PEM key readable by its owner only (as cryptogen does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
