"""The consortium bundle: everything public a member needs to join, signed by the founder.

The founder (the consortium's first admin) builds it from cards alone
(``admin consortium create --card ...``): the channel, the chaincode, the task
and settings, every organization's card with the roles the consortium gives it,
the ledger node's card, and the genesis block (its configuration and hash).
Each organization imports it (``org join --bundle``); the ledger's operator
creates the ledger from it (``ledger create --bundle``). A bundle is checked
whole before anything is written: the founder's signature, every card's own
signature, and that the genesis block is the one these cards make and hashes to
the hash it states (which an organization can also pin out of band).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blockfedml.errors import IntegrityError, InvalidInputError
from blockfedml.identity.msp import create_organization
from blockfedml.identity.signing import SigningIdentity, verify_signature
from blockfedml.ledger.base import canonical_json
from blockfedml.ledger.embedded import blocks
from blockfedml.ledger.embedded.node import LEDGER_MSP_ID, LedgerNode, NodeCertificates
from blockfedml.membership.cards import OrgCard, _certificate, check_address, read_json

BUNDLE_VERSION = 1
BUNDLE_FILE = "bundle.json"
LEDGER_CARD_FILE = "ledger-card.json"
LEDGER_DOMAIN = "ledger.blockfedml.local"


@dataclass(frozen=True)
class LedgerCard:
    """The ledger node's public card: its pinned certificates and where its service listens."""

    certificates: NodeCertificates
    tls_ca_cert: bytes
    address: str
    server_name: str
    signature: bytes = b""

    def body(self) -> dict[str, Any]:
        return {"version": BUNDLE_VERSION, "node": self.certificates.to_dict(),
                "tls_ca_cert": self.tls_ca_cert.decode("ascii"), "address": self.address,
                "server_name": self.server_name}

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "signature": self.signature.hex()}

    @classmethod
    def from_dict(cls, data: Any, where: str = "the ledger card") -> "LedgerCard":
        if not isinstance(data, dict):
            raise InvalidInputError(f"{where} must be a JSON object")
        for key in ("node", "tls_ca_cert", "address", "server_name", "signature"):
            if key not in data:
                raise InvalidInputError(f"{where}: field {key!r} is missing")
        node = data["node"] if isinstance(data["node"], dict) else {}
        for key in ("ca_cert_pem", "peer_cert_pem", "orderer_cert_pem"):
            _certificate(node.get(key), where, f"node.{key}")
        try:
            certificates = NodeCertificates.from_dict(node)
            certificates.check()
        except (IntegrityError, InvalidInputError) as exc:
            raise InvalidInputError(f"{where}: field 'node': {exc}") from None
        try:
            signature = bytes.fromhex(data["signature"])
        except (TypeError, ValueError):
            raise InvalidInputError(f"{where}: field 'signature' must be hex") from None
        card = cls(certificates, _certificate(data["tls_ca_cert"], where, "tls_ca_cert"),
                   check_address(data["address"], f"{where}: field 'address'"), str(data["server_name"]), signature)
        if not verify_signature(certificates.peer_cert_pem, canonical_json(card.body()).encode(), signature):
            raise IntegrityError(f"{where}: field 'signature' does not verify with the node's peer certificate")
        return card


def init_ledger_node(root: Path | str, address: str) -> LedgerCard:
    """Issue the ledger node's keys into ``root`` (mode 0700) and write its card."""
    check_address(address, "the ledger service address")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    material = create_organization(root / "crypto", "Ledger", LEDGER_MSP_ID, LEDGER_DOMAIN, orderer=True)
    node = LedgerNode.from_material(material)
    card = LedgerCard(node.certificates(), material.tls_ca_cert_pem, address, f"peer0.{LEDGER_DOMAIN}")
    card = LedgerCard(**{**card.__dict__, "signature": node.peer.sign(canonical_json(card.body()).encode())})
    (root / LEDGER_CARD_FILE).write_text(json.dumps(card.to_dict(), indent=2) + "\n")
    return card


def ledger_node_dir(root: Path | str) -> Path:
    """Where ``init_ledger_node`` put the node's MSP tree under ``root``."""
    return Path(root) / "crypto" / "peerOrganizations" / LEDGER_DOMAIN


@dataclass(frozen=True)
class Member:
    """One organization as the consortium admits it: its card and the roles it is given."""

    card: OrgCard
    roles: tuple[str, ...]
    partition: int | None


@dataclass(frozen=True)
class Bundle:
    """A verified consortium bundle."""

    channel: str
    chaincode: str
    task: dict[str, Any]
    settings: dict[str, int]
    founder: str
    members: tuple[Member, ...]
    ledger: LedgerCard
    genesis_config: bytes
    genesis_hash: str
    raw: dict[str, Any]

    def member(self, msp_id: str) -> Member:
        for m in self.members:
            if m.card.msp_id == msp_id:
                return m
        raise InvalidInputError(f"{msp_id} is not in this consortium bundle "
                                f"(it has {', '.join(m.card.msp_id for m in self.members)})")


def genesis_argument(value: str | None) -> str | None:
    """A genesis hash given on the command line: the hash itself, or a file holding it (what the
    founder's ``--genesis-out`` wrote and sent out of band)."""
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        value = path.read_text().strip()
    if len(value) != 64 or value.lower().strip("0123456789abcdef"):
        raise InvalidInputError(f"--genesis must be a genesis block hash (64 hex digits) or a file holding one, "
                                f"got {value[:80]!r}")
    return value.lower()


def genesis_of(channel: str, cards: list[OrgCard], node: NodeCertificates) -> tuple[bytes, str]:
    """The genesis block's configuration these cards make, and its block hash (hex)."""
    config = blocks.encode_config(channel, [(c.msp_id, c.ca_cert) for c in cards], node)
    data_hash = blocks.config_data_hash(config)
    return config, blocks.block_header_hash(0, blocks.GENESIS_PREVIOUS_HASH, data_hash).hex()


def build_bundle(founder: SigningIdentity, members: list[Member], ledger: LedgerCard, *, channel: str,
                 chaincode: str, task: dict[str, Any], settings: dict[str, int]) -> dict[str, Any]:
    """The founder-signed bundle (a JSON object) of a consortium of ``members``."""
    msp_ids = [m.card.msp_id for m in members]
    if len(set(msp_ids)) != len(msp_ids):
        raise InvalidInputError(f"two cards carry the same MSP ID: {', '.join(sorted(msp_ids))}")
    if founder.msp_id not in msp_ids:
        raise InvalidInputError(f"the founder {founder.msp_id} must be one of the consortium's organizations")
    if LEDGER_MSP_ID in msp_ids:
        raise InvalidInputError(f"{LEDGER_MSP_ID} is the ledger node's; an organization cannot use it")
    config, genesis_hash = genesis_of(channel, [m.card for m in members], ledger.certificates)
    body = {"version": BUNDLE_VERSION, "channel": channel, "chaincode": chaincode, "task": task,
            "settings": settings, "founder": founder.msp_id,
            "orgs": [{"card": m.card.to_dict(), "roles": list(m.roles), "partition": m.partition} for m in members],
            "ledger": ledger.to_dict(), "genesis": {"config": config.decode("ascii"), "hash": genesis_hash}}
    return {**body, "signature": founder.sign(canonical_json(body).encode()).hex()}


def read_bundle(path: Path | str, expect_genesis: str | None = None) -> Bundle:
    """The bundle in ``path``, verified whole (module docstring); errors name the file and the field."""
    return verify_bundle(read_json(path, "consortium bundle"), str(path), expect_genesis)


def verify_bundle(data: Any, where: str = "the bundle", expect_genesis: str | None = None) -> Bundle:
    if not isinstance(data, dict):
        raise InvalidInputError(f"{where} must be a JSON object")
    for key in ("version", "channel", "chaincode", "task", "settings", "founder", "orgs", "ledger", "genesis",
                "signature"):
        if key not in data:
            raise InvalidInputError(f"{where}: field {key!r} is missing")
    if data["version"] != BUNDLE_VERSION:
        raise InvalidInputError(f"{where}: field 'version' must be {BUNDLE_VERSION}, got {data['version']!r}")
    if not isinstance(data["orgs"], list) or not data["orgs"]:
        raise InvalidInputError(f"{where}: field 'orgs' must list the organizations")
    members = []
    for i, entry in enumerate(data["orgs"]):
        if not isinstance(entry, dict) or "card" not in entry or "roles" not in entry:
            raise InvalidInputError(f"{where}: field 'orgs[{i}]' must hold a card and roles")
        card = OrgCard.from_dict(entry["card"], f"{where}: orgs[{i}].card")
        roles = entry["roles"]
        if not isinstance(roles, list) or not roles or any(r not in card.roles and r != "admin" for r in roles):
            raise InvalidInputError(f"{where}: field 'orgs[{i}].roles' {roles!r} must be roles the card of "
                                    f"{card.msp_id} asks for ({', '.join(card.roles)}), or admin")
        partition = entry.get("partition")
        if partition is not None and (not isinstance(partition, int) or partition < 0):
            raise InvalidInputError(f"{where}: field 'orgs[{i}].partition' must be a non-negative integer")
        members.append(Member(card, tuple(roles), partition))
    ledger = LedgerCard.from_dict(data["ledger"], f"{where}: ledger")
    founder = next((m for m in members if m.card.msp_id == data["founder"]), None)
    if founder is None:
        raise InvalidInputError(f"{where}: field 'founder' names {data['founder']!r}, which has no card in 'orgs'")
    body = {k: v for k, v in data.items() if k != "signature"}
    try:
        signature = bytes.fromhex(data["signature"])
    except (TypeError, ValueError):
        raise InvalidInputError(f"{where}: field 'signature' must be hex") from None
    if not verify_signature(founder.card.admin_cert, canonical_json(body).encode(), signature):
        raise IntegrityError(f"{where}: field 'signature' does not verify with the founder's ({data['founder']}) "
                             "certificate: the bundle was altered or not signed by its founder")
    genesis = data["genesis"] if isinstance(data["genesis"], dict) else {}
    config, genesis_hash = genesis_of(data["channel"], [m.card for m in members], ledger.certificates)
    if genesis.get("config", "").encode("ascii", "replace") != config or genesis.get("hash") != genesis_hash:
        raise IntegrityError(f"{where}: field 'genesis' is not the genesis block of the bundle's cards and "
                             f"ledger node (expected hash {genesis_hash}, the bundle says {genesis.get('hash')!r})")
    if expect_genesis is not None and expect_genesis.lower() != genesis_hash:
        raise IntegrityError(f"{where}: its genesis block hashes to {genesis_hash}, not the {expect_genesis} you "
                             "pinned: this is not the consortium you were told to join")
    return Bundle(str(data["channel"]), str(data["chaincode"]), dict(data["task"]), dict(data["settings"]),
                  founder.card.msp_id, tuple(members), ledger, config, genesis_hash, data)


def load_node(root: Path | str) -> LedgerNode:
    """The ledger node's keys under ``root`` (its own folder)."""
    return LedgerNode.load(ledger_node_dir(root))


__all__ = ["Bundle", "LedgerCard", "Member", "build_bundle", "genesis_of", "init_ledger_node", "ledger_node_dir",
           "load_node", "read_bundle", "verify_bundle"]
