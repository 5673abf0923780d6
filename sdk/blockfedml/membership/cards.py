"""An organization's own folder and its public card.

Every organization makes its identity itself, on its own machine
(``blockfedml org init``): its CA, TLS CA, Admin and peer keys are written into
its own folder (mode 0700) and never leave it. What others need to know of it
travels as a **card**: its MSP ID, CA and TLS CA certificates, its Admin's
certificate and where its exchange server listens, signed with its Admin key.
The founder builds the consortium from cards alone (``bundle.py``); the ledger
service's node publishes a card of the same kind (``LedgerCard``).

A folder holds::

    org.json          who this folder is (name, MSP ID, domain, roles asked for)
    card.json         the public card (give it to the founder)
    crypto/...        keys and certificates, Fabric's MSP layout (private)
    consortium.json   after ``org join``: the consortium as this organization sees it
    store/            blobs this organization produced or fetched (served to members)
    keys/             round secrets, the Paillier key, the aggregator's inbox (private)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from blockfedml.errors import ConflictError, IntegrityError, InvalidInputError, NotFoundError
from blockfedml.identity.msp import create_organization, load_signing_identity
from blockfedml.identity.signing import SigningIdentity, load_certificate, verify_issued_by, verify_signature
from blockfedml.ledger.base import canonical_json

CARD_FILE = "card.json"
ORG_FILE = "org.json"
CARD_VERSION = 1
ROLES = ("admin", "member", "keyholder", "auditor")
_CERT_FIELDS = ("ca_cert", "tls_ca_cert", "admin_cert")


def check_address(address: Any, where: str) -> str:
    """``host:port`` with a port in 1..65535, or ``InvalidInputError`` naming ``where``."""
    host, _, port = address.rpartition(":") if isinstance(address, str) else ("", "", "")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c.isspace() for c in host):
        raise InvalidInputError(f"{where} must be host:port (e.g. hospital2.example.org:7351), got {address!r}")
    return address


@dataclass(frozen=True)
class OrgCard:
    """An organization's public card: what the consortium needs to know of it, signed by it."""

    name: str
    msp_id: str
    domain: str
    roles: tuple[str, ...]
    ca_cert: bytes
    tls_ca_cert: bytes
    admin_cert: bytes
    exchange: str | None  # host:port of its exchange server; None for an organization that serves nothing
    signature: bytes = b""

    def body(self) -> dict[str, Any]:
        return {"version": CARD_VERSION, "name": self.name, "msp_id": self.msp_id, "domain": self.domain,
                "roles": list(self.roles), "ca_cert": self.ca_cert.decode("ascii"),
                "tls_ca_cert": self.tls_ca_cert.decode("ascii"), "admin_cert": self.admin_cert.decode("ascii"),
                "exchange": self.exchange}

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "signature": self.signature.hex()}

    def signed(self, admin: SigningIdentity) -> "OrgCard":
        return OrgCard(**{**self.__dict__, "signature": admin.sign(canonical_json(self.body()).encode())})

    @classmethod
    def from_dict(cls, data: Any, where: str = "the card") -> "OrgCard":
        """A card checked field by field; ``InvalidInputError`` / ``IntegrityError`` name ``where`` and the field."""
        if not isinstance(data, dict):
            raise InvalidInputError(f"{where} must be a JSON object")
        for key in ("name", "msp_id", "domain", "roles", *_CERT_FIELDS, "signature"):
            if key not in data:
                raise InvalidInputError(f"{where}: field {key!r} is missing")
        if data.get("version") != CARD_VERSION:
            raise InvalidInputError(f"{where}: field 'version' must be {CARD_VERSION}, got {data.get('version')!r}")
        for key in ("name", "msp_id", "domain"):
            if not isinstance(data[key], str) or not data[key]:
                raise InvalidInputError(f"{where}: field {key!r} must be a non-empty string")
        roles = data["roles"]
        if not isinstance(roles, list) or not roles or any(r not in ROLES for r in roles):
            raise InvalidInputError(f"{where}: field 'roles' must list some of {', '.join(ROLES)}, got {roles!r}")
        certs = {key: _certificate(data[key], where, key) for key in _CERT_FIELDS}
        for key in ("ca_cert", "tls_ca_cert"):
            if not _is_ca(certs[key]):
                raise InvalidInputError(f"{where}: field {key!r} is not a CA certificate")
        if not verify_issued_by(certs["admin_cert"], certs["ca_cert"]):
            raise IntegrityError(f"{where}: field 'admin_cert' was not issued by the card's own CA ('ca_cert')")
        exchange = data.get("exchange")
        if exchange is not None:
            check_address(exchange, f"{where}: field 'exchange'")
        try:
            signature = bytes.fromhex(data["signature"])
        except (TypeError, ValueError):
            raise InvalidInputError(f"{where}: field 'signature' must be hex") from None
        card = cls(data["name"], data["msp_id"], data["domain"], tuple(roles), certs["ca_cert"],
                   certs["tls_ca_cert"], certs["admin_cert"], exchange, signature)
        if not verify_signature(card.admin_cert, canonical_json(card.body()).encode(), signature):
            raise IntegrityError(f"{where}: field 'signature' does not verify with the card's 'admin_cert' "
                                 "(the card was altered after its organization signed it)")
        return card


def read_card(path: Path | str) -> OrgCard:
    """The card in ``path``, checked; every error names the file and the field."""
    return OrgCard.from_dict(read_json(path, "card"), str(path))


def read_json(path: Path | str, what: str) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFoundError(f"no {what} at {path}") from None
    except (OSError, UnicodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path} is not a {what} (not readable JSON: {exc})") from None


@dataclass(frozen=True)
class OrgFolder:
    """An organization's own folder, as ``org.json`` describes it."""

    root: Path
    name: str
    msp_id: str
    domain: str
    roles: tuple[str, ...]

    @property
    def crypto_dir(self) -> Path:
        """``peerOrganizations/<domain>``: Fabric's MSP layout of this organization."""
        return self.root / "crypto" / "peerOrganizations" / self.domain

    @property
    def admin_msp(self) -> Path:
        return self.crypto_dir / "users" / f"Admin@{self.domain}" / "msp"

    def admin(self) -> SigningIdentity:
        return load_signing_identity(self.admin_msp, self.msp_id)

    def card(self) -> OrgCard:
        return read_card(self.root / CARD_FILE)

    @classmethod
    def load(cls, root: Path | str) -> "OrgFolder":
        root = Path(root)
        data = read_json(root / ORG_FILE, "organization folder description (org.json)")
        try:
            return cls(root, data["name"], data["msp_id"], data["domain"], tuple(data["roles"]))
        except (KeyError, TypeError) as exc:
            raise InvalidInputError(f"{root / ORG_FILE} is malformed (missing {exc})") from None


def init_org(root: Path | str, name: str, *, roles: tuple[str, ...] = ("member",), exchange: str | None = None,
             msp_id: str | None = None, domain: str | None = None) -> OrgFolder:
    """Create an organization's folder: its keys (mode 0700), ``org.json`` and its signed card.

    ``ConflictError`` if ``root`` already holds an organization; nothing is written
    when an argument is wrong.
    """
    root = Path(root)
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise InvalidInputError(f"organization name {name!r} must be letters, digits, '-' or '_'")
    bad = [r for r in roles if r not in ROLES]
    if not roles or bad:
        raise InvalidInputError(f"roles must be some of {', '.join(ROLES)}, got {', '.join(bad) or 'none'}")
    if exchange is not None:
        check_address(exchange, "the exchange endpoint")
    if (root / ORG_FILE).exists():
        raise ConflictError(f"{root} already holds an organization ({root / ORG_FILE}); choose another folder")
    msp_id = msp_id or f"{name}MSP"
    domain = domain or f"{name.lower()}.blockfedml.local"
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)  # the organization's keys: its own processes only
    material = create_organization(root / "crypto", name, msp_id, domain)
    folder = OrgFolder(root, name, msp_id, domain, tuple(roles))
    admin = material.admin()
    card = OrgCard(name, msp_id, domain, tuple(roles), material.ca_cert_pem, material.tls_ca_cert_pem,
                   admin.certificate, exchange).signed(admin)
    (root / ORG_FILE).write_text(json.dumps({"name": name, "msp_id": msp_id, "domain": domain,
                                             "roles": list(roles)}, indent=2) + "\n")
    (root / CARD_FILE).write_text(json.dumps(card.to_dict(), indent=2) + "\n")
    return folder


def _certificate(value: Any, where: str, key: str) -> bytes:
    if not isinstance(value, str) or "BEGIN CERTIFICATE" not in value:
        raise InvalidInputError(f"{where}: field {key!r} must be a PEM certificate")
    pem = value.encode("ascii", "replace")
    try:
        load_certificate(pem)
    except Exception as exc:
        raise InvalidInputError(f"{where}: field {key!r} is not a valid certificate ({exc})") from None
    return pem


def _is_ca(pem: bytes) -> bool:
    try:
        return bool(load_certificate(pem).extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
