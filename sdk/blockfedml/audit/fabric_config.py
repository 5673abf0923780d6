"""A Fabric channel configuration, read from a configuration block, as an auditor trusts it.

On Fabric the auditor pins the channel's genesis block (its header hash); the
configuration inside it says who may sign what:

- the **orderer organizations'** MSPs: an orderer-signed block must carry a
  signature by an identity their CAs issued (``/Channel/Orderer/BlockValidation``,
  ``ANY Writers`` of the orderer organizations in ``network/configtx.yaml``);
- the **application organizations'** MSPs: a transaction's creator and its
  endorsing peers must hold certificates their CAs issued, and a valid
  transaction of the chaincode needs endorsements from enough organizations for
  ``/Channel/Application/Endorsement`` (an ``ImplicitMeta`` rule: ANY, ALL or
  MAJORITY of the organizations' ``Endorsement`` policies, i.e. their peers).

Nothing here reads a file the audited parties could have written: the
configuration comes from the block whose hash the auditor pinned, or from a
later configuration block the orderer signed under it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.oid import NameOID
from fabric_protos.common import common_pb2, configtx_pb2, policies_pb2
from fabric_protos.msp import identities_pb2, msp_config_pb2

from blockfedml.errors import BlockFedMLError, IntegrityError
from blockfedml.identity.signing import load_certificate, verify_issued_by, verify_signature


@dataclass(frozen=True)
class OrgMSP:
    """One organization's MSP as the channel configuration defines it."""

    msp_id: str
    root_certs: tuple[bytes, ...]
    intermediate_certs: tuple[bytes, ...]
    node_ous: dict[str, str]  # role (client, peer, admin, orderer) -> OU name; empty when NodeOUs are off

    def role_problem(self, cert_pem: bytes, role: str | None) -> str | None:
        """Why ``cert_pem`` is not a valid identity of this MSP (of ``role``, if given), or None."""
        try:
            load_certificate(cert_pem)
        except BlockFedMLError as exc:
            return f"its certificate does not parse: {exc}"
        issuers = self.root_certs + self.intermediate_certs
        if not any(_issued_by(cert_pem, ca) for ca in issuers):
            return f"its certificate was not issued by a CA of {self.msp_id} in the channel configuration"
        if role is not None and self.node_ous:
            ous = _ous(cert_pem)
            wanted = {self.node_ous.get(role, "")} | ({self.node_ous.get("admin", "")} if role == "client" else set())
            if not ous & (wanted - {""}):
                return f"it is not a {role} of {self.msp_id} (its OUs: {', '.join(sorted(ous)) or 'none'})"
        return None


@dataclass
class ChannelConfig:
    """What an auditor needs from a channel configuration (see the module docstring)."""

    channel: str
    sequence: int
    orderer_orgs: dict[str, OrgMSP]
    application_orgs: dict[str, OrgMSP]
    endorsement_rule: str = "MAJORITY"   # ANY, ALL or MAJORITY of the organizations' Endorsement
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_envelope(cls, envelope: bytes) -> "ChannelConfig":
        """Read a configuration transaction (a config block's only envelope); ``IntegrityError`` if malformed."""
        try:
            env = common_pb2.Envelope.FromString(envelope)
            payload = common_pb2.Payload.FromString(env.payload)
            header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
            if header.type != common_pb2.CONFIG:
                raise IntegrityError(f"a configuration block holds a transaction of type {header.type}, not CONFIG")
            config = configtx_pb2.ConfigEnvelope.FromString(payload.data).config
            root = config.channel_group
            orderer = {name: _msp(group) for name, group in root.groups["Orderer"].groups.items()}
            application = {name: _msp(group) for name, group in root.groups["Application"].groups.items()}
        except IntegrityError:
            raise
        except Exception as exc:
            raise IntegrityError(f"the configuration block is not a Fabric channel configuration: {exc}") from exc
        rule = "MAJORITY"
        policy = root.groups["Application"].policies.get("Endorsement")
        if policy is not None and policy.policy.type == policies_pb2.Policy.IMPLICIT_META:
            meta = policies_pb2.ImplicitMetaPolicy.FromString(policy.policy.value)
            rule = policies_pb2.ImplicitMetaPolicy.Rule.Name(meta.rule)
        return cls(header.channel_id, config.sequence,
                   {m.msp_id: m for m in orderer.values()}, {m.msp_id: m for m in application.values()}, rule)

    # -- who signed -------------------------------------------------------------------

    def identity_problem(self, serialized: bytes, orgs: dict[str, OrgMSP], role: str | None) -> tuple[str, str | None]:
        """(MSP ID, why ``serialized`` is not an identity of one of ``orgs`` in ``role`` or None)."""
        try:
            identity = identities_pb2.SerializedIdentity.FromString(serialized)
        except Exception as exc:
            return "?", f"its identity does not parse: {exc}"
        org = orgs.get(identity.mspid)
        if org is None:
            return identity.mspid, f"{identity.mspid or '(no MSP)'} is not one of {', '.join(sorted(orgs))}"
        return identity.mspid, org.role_problem(bytes(identity.id_bytes), role)

    def signed_by(self, serialized: bytes, message: bytes, signature: bytes, orgs: dict[str, OrgMSP],
                  role: str | None) -> tuple[str, str | None]:
        """(MSP ID, problem or None): ``signature`` over ``message`` by a valid identity of ``orgs``."""
        msp_id, problem = self.identity_problem(serialized, orgs, role)
        if problem is not None:
            return msp_id, problem
        cert = bytes(identities_pb2.SerializedIdentity.FromString(serialized).id_bytes)
        try:
            ok = verify_signature(cert, message, signature)
        except BlockFedMLError as exc:
            return msp_id, f"its certificate is unusable: {exc}"
        return msp_id, None if ok else "the signature does not verify"

    def endorsements_needed(self) -> int:
        """Distinct organizations whose peers must endorse under the channel's Endorsement rule."""
        n = len(self.application_orgs)
        return {"ANY": 1, "ALL": n}.get(self.endorsement_rule, n // 2 + 1)


def _msp(group: configtx_pb2.ConfigGroup) -> OrgMSP:
    msp = msp_config_pb2.MSPConfig.FromString(group.values["MSP"].value)
    fabric = msp_config_pb2.FabricMSPConfig.FromString(msp.config)
    ous: dict[str, str] = {}
    if fabric.HasField("fabric_node_ous") and fabric.fabric_node_ous.enable:
        node = fabric.fabric_node_ous
        for role, ident in (("client", node.client_ou_identifier), ("peer", node.peer_ou_identifier),
                            ("admin", node.admin_ou_identifier), ("orderer", node.orderer_ou_identifier)):
            if ident.organizational_unit_identifier:
                ous[role] = ident.organizational_unit_identifier
    return OrgMSP(fabric.name, tuple(bytes(c) for c in fabric.root_certs),
                  tuple(bytes(c) for c in fabric.intermediate_certs), ous)


def _issued_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    try:
        return verify_issued_by(cert_pem, ca_pem)
    except BlockFedMLError:
        return False


def _ous(cert_pem: bytes) -> set[str]:
    cert: x509.Certificate = load_certificate(cert_pem)
    return {str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)}
