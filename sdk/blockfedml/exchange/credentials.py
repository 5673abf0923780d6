"""TLS material of an organization, and who a client certificate belongs to.

The exchange authenticates organizations with the TLS certificates their own
TLS CA issued (Fabric's cryptogen layout, written by ``identity/msp.py``)::

    peerOrganizations/<domain>/
      msp/tlscacerts/tlsca.<domain>-cert.pem      the org's TLS CA (public, in its MSP)
      peers/peer0.<domain>/tls/server.{crt,key}   what its exchange server presents
      users/Admin@<domain>/tls/client.{crt,key}   what its exchange client presents

The TLS handshake already refuses a client without a certificate or with one
no consortium TLS CA issued. It cannot tell *which* organization a client is,
though: every consortium CA is trusted. ``TrustStore.identify`` closes that
gap: the client names its organization, and its certificate must have been
issued by exactly that organization's TLS CA.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from blockfedml.errors import InvalidInputError, NotAuthorizedError


@dataclass(frozen=True)
class TLSMaterial:
    """Paths of one organization's TLS files (cryptogen layout)."""

    msp_id: str
    server_name: str  # the name in the server certificate (peer0.<domain>)
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def from_org_dir(cls, org_dir: Path | str, msp_id: str) -> "TLSMaterial":
        """The material under ``peerOrganizations/<domain>``; ``InvalidInputError`` names a missing file."""
        org_dir = Path(org_dir)
        domain = org_dir.name
        tlscacerts = org_dir / "msp" / "tlscacerts"
        cas = sorted(tlscacerts.glob("*.pem")) if tlscacerts.is_dir() else []
        if len(cas) != 1:
            raise InvalidInputError(f"{tlscacerts} must hold exactly one TLS CA certificate, found {len(cas)}")
        peer_tls = org_dir / "peers" / f"peer0.{domain}" / "tls"
        user_tls = org_dir / "users" / f"Admin@{domain}" / "tls"
        material = cls(
            msp_id=msp_id, server_name=f"peer0.{domain}", ca_cert=cas[0],
            server_cert=peer_tls / "server.crt", server_key=peer_tls / "server.key",
            client_cert=user_tls / "client.crt", client_key=user_tls / "client.key",
        )
        for path in (material.server_cert, material.server_key, material.client_cert, material.client_key):
            if not path.is_file():
                raise InvalidInputError(f"TLS file {path} of {msp_id} is missing (cryptogen layout expected)")
        return material

    def read(self, path: Path) -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise InvalidInputError(f"cannot read TLS file {path} of {self.msp_id}: {exc}") from exc


@dataclass(frozen=True)
class ExchangePeer:
    """Where an organization's exchange server listens, and the TLS CA that vouches for it."""

    msp_id: str
    address: str  # host:port
    tls_ca_pem: bytes
    server_name: str | None = None  # checked against the server certificate; None: the host


class TrustStore:
    """The consortium's TLS CAs, by MSP ID: the roots a server trusts, and the
    check that maps a client certificate to the organization it claims."""

    def __init__(self, cas: Mapping[str, bytes]) -> None:
        if not cas:
            raise InvalidInputError("a trust store needs at least one organization's TLS CA")
        self._pems = dict(cas)
        self._cas: dict[str, x509.Certificate] = {}
        for msp_id, pem in self._pems.items():
            try:
                self._cas[msp_id] = x509.load_pem_x509_certificate(pem)
            except ValueError as exc:
                raise InvalidInputError(f"the TLS CA certificate of {msp_id} is not PEM: {exc}") from exc
        self._known: dict[tuple[bytes, str], None] = {}  # certificates already verified
        self._lock = threading.Lock()

    @classmethod
    def from_peers(cls, peers: Mapping[str, ExchangePeer]) -> "TrustStore":
        return cls({msp: peer.tls_ca_pem for msp, peer in peers.items()})

    @property
    def msp_ids(self) -> list[str]:
        return sorted(self._pems)

    def roots_pem(self) -> bytes:
        """Every TLS CA, concatenated: the root set of the TLS handshake."""
        return b"".join(self._pems[msp] for msp in sorted(self._pems))

    def identify(self, cert_pem: bytes, claimed: str) -> str:
        """Return ``claimed`` if ``cert_pem`` was issued by its TLS CA and is valid now.

        ``NotAuthorizedError`` otherwise, naming the certificate and the organization.
        """
        if (cert_pem, claimed) in self._known:
            return claimed
        ca = self._cas.get(claimed)
        if ca is None:
            raise NotAuthorizedError(
                f"{claimed or 'an unnamed client'} is not an organization of this consortium "
                f"(known: {', '.join(self.msp_ids)})"
            )
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as exc:
            raise NotAuthorizedError(f"the client certificate is unreadable: {exc}") from exc
        subject = cert.subject.rfc4514_string()
        try:
            cert.verify_directly_issued_by(ca)
        except Exception:  # wrong issuer name, wrong signature, unsupported key: all "not issued by"
            raise NotAuthorizedError(
                f"the client certificate ({subject}) was not issued by the TLS CA of {claimed}, "
                f"the organization it claims to be"
            ) from None
        now = _dt.datetime.now(_dt.timezone.utc)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise NotAuthorizedError(f"the client certificate ({subject}) of {claimed} is not valid now")
        with self._lock:
            if len(self._known) > 1024:
                self._known.clear()
            self._known[(cert_pem, claimed)] = None
        return claimed
