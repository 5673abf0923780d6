"""Identities: X.509 + ECDSA P-256 in Fabric's MSP layout (see ``msp``, ``signing``)."""

from blockfedml.identity.msp import OrgMaterial, create_organization, load_signing_identity
from blockfedml.identity.signing import (
    Identity,
    SigningIdentity,
    load_certificate,
    verify_issued_by,
    verify_signature,
)

__all__ = [
    "Identity",
    "OrgMaterial",
    "SigningIdentity",
    "create_organization",
    "load_certificate",
    "load_signing_identity",
    "verify_issued_by",
    "verify_signature",
]
