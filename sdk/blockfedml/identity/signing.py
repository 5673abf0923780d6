"""Identities and ECDSA signatures exactly as Fabric wants them.

Fabric identifies a signer by a ``SerializedIdentity`` (MSP ID + PEM
certificate) and accepts only ECDSA signatures whose ``s`` is in the lower half
of the curve order ("low-S"): both ``(r, s)`` and ``(r, n - s)`` verify
mathematically, so without the rule anyone could turn a valid signature into a
second valid one and change the bytes of a transaction without its signer.
``sign`` normalizes, ``verify_signature`` refuses high-S, on both ledgers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from fabric_protos.msp import identities_pb2

from blockfedml.errors import CryptoError

#: Order of the P-256 group; a signature's ``s`` must be at most half of it.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_HALF_ORDER = P256_ORDER >> 1
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


@dataclass(frozen=True)
class Identity:
    """Who someone is on the ledger: an MSP ID and an X.509 certificate (PEM)."""

    msp_id: str
    certificate: bytes

    def serialize(self) -> bytes:
        """Fabric's ``SerializedIdentity`` bytes: what a proposal names as creator."""
        return identities_pb2.SerializedIdentity(
            mspid=self.msp_id, id_bytes=self.certificate
        ).SerializeToString()

    @classmethod
    def deserialize(cls, data: bytes) -> "Identity":
        """Read a ``SerializedIdentity``; ``CryptoError`` if the bytes are not one."""
        try:
            sid = identities_pb2.SerializedIdentity.FromString(data)
        except Exception as exc:  # protobuf raises DecodeError, a plain Exception
            raise CryptoError(f"not a serialized identity: {exc}") from exc
        if not sid.mspid or not sid.id_bytes:
            raise CryptoError("serialized identity lacks an MSP ID or a certificate")
        return cls(sid.mspid, bytes(sid.id_bytes))

    @property
    def subject(self) -> str:
        """The certificate's subject, RFC 4514 form (for messages and audit)."""
        return load_certificate(self.certificate).subject.rfc4514_string()


@dataclass(frozen=True)
class SigningIdentity(Identity):
    """An identity together with its private key: it can sign for its org."""

    private_key: ec.EllipticCurvePrivateKey = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            raise CryptoError(f"identity {self.msp_id} needs an EC private key")

    def sign(self, message: bytes) -> bytes:
        """DER ECDSA P-256/SHA-256 signature over ``message``, normalized to low-S."""
        der = self.private_key.sign(message, _ECDSA_SHA256)
        r, s = decode_dss_signature(der)
        if s > _HALF_ORDER:
            s = P256_ORDER - s
            der = encode_dss_signature(r, s)
        return der

    def public(self) -> Identity:
        """The same identity without its key (safe to hand around)."""
        return Identity(self.msp_id, self.certificate)


def load_certificate(cert_pem: bytes) -> x509.Certificate:
    """Parse a PEM certificate (cached: the ledger checks the same few certs often)."""
    return _load_certificate(bytes(cert_pem))


@lru_cache(maxsize=4096)
def _load_certificate(cert_pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(cert_pem)
    except Exception as exc:
        raise CryptoError(f"malformed PEM certificate: {exc}") from exc


@lru_cache(maxsize=4096)
def _public_key(cert_pem: bytes) -> ec.EllipticCurvePublicKey:
    key = load_certificate(cert_pem).public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise CryptoError("certificate key is not ECDSA P-256")
    return key


def is_low_s(signature: bytes) -> bool:
    """True when ``signature`` is DER ECDSA with ``s`` in the lower half order."""
    try:
        _, s = decode_dss_signature(signature)
    except Exception:
        return False
    return 0 < s <= _HALF_ORDER


def verify_signature(cert_pem: bytes, message: bytes, signature: bytes) -> bool:
    """Check a Fabric signature: valid ECDSA P-256/SHA-256 by the cert's key, low-S.

    Returns False for a wrong, malformed or high-S signature; raises
    ``CryptoError`` only when the certificate itself is unusable.
    """
    key = _public_key(bytes(cert_pem))
    if not is_low_s(signature):
        return False
    try:
        key.verify(signature, message, _ECDSA_SHA256)
    except InvalidSignature:
        return False
    return True


def verify_issued_by(cert_pem: bytes, ca_cert_pem: bytes) -> bool:
    """True when ``cert_pem`` was signed by the CA of ``ca_cert_pem``.

    Checks the issuer name and the CA's signature on the certificate, and that
    the issuer is a CA. Validity dates are deliberately not checked: ledger
    validation must give the same answer when the chain is re-verified years
    later. Raises ``CryptoError`` when either certificate cannot be parsed.
    """
    return _verify_issued_by(bytes(cert_pem), bytes(ca_cert_pem))


@lru_cache(maxsize=4096)
def _verify_issued_by(cert_pem: bytes, ca_cert_pem: bytes) -> bool:
    cert = load_certificate(cert_pem)
    ca = load_certificate(ca_cert_pem)
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    if not constraints.ca:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
