"""The ledger node: the one identity allowed to write an embedded ledger.

On Fabric, members never write the ledger: peers execute the chaincode and
sign what it read and wrote (endorsements), orderers sign the blocks. The
embedded ledger does the same with a node of its own organization
(``LedgerMSP``), issued at consortium creation into the ledger's own folder:

- its **peer** key signs every proposal response (the ``Endorsement`` of a
  Fabric transaction, over the response payload and the endorser's identity),
  so a client cannot change the write set the contract computed;
- its **orderer** key signs every block header, so a block cannot be edited,
  or a member's past transaction rewritten, without that key.

The genesis block pins both certificates (``NodeCertificates``); validation
and audits check every endorsement and block signature against those, never
against a certificate the checked data brings along. Whoever holds the node's
keys is the ledger service (``blockfedml ledger serve``), or a single process
that holds every identity anyway (the demo, unit tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fabric_protos.peer import proposal_response_pb2

from blockfedml.errors import IntegrityError, InvalidInputError, NotAuthorizedError
from blockfedml.identity.msp import OrgMaterial, load_signing_identity
from blockfedml.identity.signing import Identity, SigningIdentity, verify_issued_by, verify_signature

LEDGER_MSP_ID = "LedgerMSP"


@dataclass(frozen=True)
class NodeCertificates:
    """The ledger node's public identity, as pinned in the genesis block."""

    msp_id: str
    ca_cert_pem: bytes
    peer_cert_pem: bytes
    orderer_cert_pem: bytes

    def to_dict(self) -> dict[str, str]:
        return {"msp_id": self.msp_id, "ca_cert_pem": self.ca_cert_pem.decode("ascii"),
                "peer_cert_pem": self.peer_cert_pem.decode("ascii"),
                "orderer_cert_pem": self.orderer_cert_pem.decode("ascii")}

    @classmethod
    def from_dict(cls, data: Any) -> "NodeCertificates":
        try:
            return cls(data["msp_id"], data["ca_cert_pem"].encode("ascii"),
                       data["peer_cert_pem"].encode("ascii"), data["orderer_cert_pem"].encode("ascii"))
        except (KeyError, TypeError, AttributeError, UnicodeError) as exc:
            raise IntegrityError(f"the genesis block's ledger node entry is malformed ({exc})") from exc

    @property
    def endorser(self) -> bytes:
        """The peer's ``SerializedIdentity``: what an endorsement must name."""
        return Identity(self.msp_id, self.peer_cert_pem).serialize()

    def check(self) -> None:
        """``InvalidInputError`` unless both node certificates come from the node's CA."""
        for role, pem in (("peer", self.peer_cert_pem), ("orderer", self.orderer_cert_pem)):
            if not verify_issued_by(pem, self.ca_cert_pem):
                raise InvalidInputError(f"the ledger node's {role} certificate was not issued by its CA")

    def endorsement_problem(self, response_payload: bytes, endorsements: list[tuple[bytes, bytes]]) -> str | None:
        """Why these endorsements do not show that the node computed ``response_payload``, or None."""
        if len(endorsements) != 1:
            return f"it carries {len(endorsements)} endorsements; the ledger node's one is required"
        endorser, signature = endorsements[0]
        if endorser != self.endorser:
            return "it is not endorsed by the ledger node named in the genesis block"
        if not verify_signature(self.peer_cert_pem, response_payload + endorser, signature):
            return "the ledger node's endorsement signature does not verify (the write set was altered)"
        return None

    def block_signature_ok(self, header: bytes, signature: bytes | None) -> bool:
        return bool(signature) and verify_signature(self.orderer_cert_pem, header, signature or b"")


@dataclass(frozen=True)
class LedgerNode:
    """The node's signing identities: only the ledger service (or an all-in-one process) holds them."""

    peer: SigningIdentity
    orderer: SigningIdentity
    ca_cert_pem: bytes

    @classmethod
    def from_material(cls, material: OrgMaterial) -> "LedgerNode":
        return cls(material.peer(), material.orderer(), material.ca_cert_pem)

    @classmethod
    def load(cls, org_dir: str | Path, msp_id: str = LEDGER_MSP_ID) -> "LedgerNode":
        """The node under ``peerOrganizations/<domain>``; ``NotAuthorizedError`` when this
        process cannot read its keys (it belongs to the ledger service, not to members)."""
        org_dir = Path(org_dir)
        domain = org_dir.name
        try:
            peer = load_signing_identity(org_dir / "peers" / f"peer0.{domain}" / "msp", msp_id)
            orderer = load_signing_identity(org_dir / "orderers" / f"orderer0.{domain}" / "msp", msp_id)
            ca = next((org_dir / "msp" / "cacerts").glob("*.pem")).read_bytes()
        except (OSError, StopIteration, InvalidInputError) as exc:
            raise NotAuthorizedError(f"cannot read the ledger node's keys in {org_dir} ({exc}); only the "
                                     "ledger service holds them: connect to it (`blockfedml ledger serve`)"
                                     ) from exc
        return cls(peer, orderer, ca)

    def certificates(self) -> NodeCertificates:
        return NodeCertificates(self.peer.msp_id, self.ca_cert_pem, self.peer.certificate,
                                self.orderer.certificate)

    def endorse(self, response_payload: bytes) -> proposal_response_pb2.Endorsement:
        """Fabric's endorsement: the peer's signature over the response payload and its identity."""
        endorser = self.peer.serialize()
        return proposal_response_pb2.Endorsement(endorser=endorser,
                                                 signature=self.peer.sign(response_payload + endorser))

    def sign_block(self, header: bytes) -> bytes:
        return self.orderer.sign(header)
