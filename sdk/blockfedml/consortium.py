"""A consortium as one organization (or, on the quick path, one machine) sees it.

Every organization has its own folder (``membership/cards.py``): its keys,
which never leave it, its blob store, its round secrets. The consortium is
described by a founder-signed **bundle** (``membership/bundle.py``) built from
the organizations' public cards; each organization imports it into its own
folder (``Consortium.join``), and ``consortium.json`` there is that
organization's *view*: every organization's public material, and a local
folder only for itself. ``Consortium.open(folder)`` acts for the organizations
whose folders the view holds; ``open(..., org=X)`` narrows a view to X alone.

``Consortium.create`` is the one-machine quick path: it does all of this for
you, with one folder per organization under ``orgs/``, the ledger node's
folder ``ledger/`` and ``bundle.json``, and writes a root view holding every
folder (what the demo and tests use, one process acting for everybody).

Only the ledger node writes the embedded ledger (``ledger/embedded/node.py``):
its keys live in its own folder and are held by the ledger service
(``blockfedml ledger serve``). A view reaches the ledger in one of three ways
(``ledger_access``): ``service`` (always through the service's Gateway, waiting
for it to come up: what members in their own processes do), ``direct`` (in
this process, with the node's keys: the demo) or ``auto`` (the service if it is
up, else direct when this view holds the node's keys).

Blobs are kept by the organization that produced them and fetched over the
exchange by the others (``store/blobs.py``): ``Consortium.blobs(org)``.

``Consortium.attach_fabric`` does the same on a real Fabric network instead:
identities are the network's (cryptogen's), each organization talks to its
own peer's Gateway, and ``consortium.json`` keeps the connection profile
under ``"backend"``. Everything above the ``Contract`` interface is unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from blockfedml.errors import (
    BlockFedMLError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    LedgerError,
    NotAuthorizedError,
    NotFoundError,
)
from blockfedml.exchange.client import ExchangeClient
from blockfedml.exchange.credentials import ExchangePeer, TLSMaterial, TrustStore
from blockfedml.exchange.wire import ExchangeOptions
from blockfedml.fl.task import OWN_DATA, TaskSpec, task_model
from blockfedml.identity import load_signing_identity
from blockfedml.identity.signing import SigningIdentity
from blockfedml.ledger.deliver import NEWEST, BlockWatcher, DeliveredBlock, embedded_block
from blockfedml.ledger.base import DEFAULT_CHAINCODE, DEFAULT_CHANNEL, Contract, Gateway
from blockfedml.ledger.embedded import EmbeddedLedger
from blockfedml.ledger.embedded.node import LedgerNode
from blockfedml.ledger.fabric import FabricGateway, FabricProfile, PeerEndpoint
from blockfedml.membership.bundle import (
    BUNDLE_FILE,
    Bundle,
    Member,
    build_bundle,
    init_ledger_node,
    ledger_node_dir,
    load_node,
    read_bundle,
    verify_bundle,
)
from blockfedml.membership.cards import CARD_FILE, ROLES, OrgFolder, init_org
from blockfedml.ml.serialization import model_to_bytes
from blockfedml.store import BlobSource, BlobStore, LocalSource

if TYPE_CHECKING:
    from blockfedml.data.schema import DataSchema
    from blockfedml.ml.models import Model

CONFIG_FILE = "consortium.json"
FABRIC_POLL_SECONDS = 0.1  # how often a member looks at a Fabric ledger for the next phase
ORGS_FOLDER = "orgs"  # the quick path: one folder per organization
LEDGER_FOLDER = "ledger"  # the quick path: the ledger node's folder
LEDGER_FILE = "ledger.sqlite"
TIP_FILE = "tip.json"  # in an organization's folder: the newest signed block header it has seen
LEDGER_ACCESS = ("auto", "service", "direct")
SERVICE_WAIT_SECONDS = 60.0  # how long a member waits for the ledger service to come up
#: Where endpoints are placed when ``Consortium.create`` is given no ``host``: the one-machine quick
#: path (every organization on this machine). Certificates are checked by name, not by address.
DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True)
class LedgerServiceProfile:
    """Where the embedded ledger's service listens, and how to trust it."""

    address: str       # host:port
    server_name: str   # the name in the service's TLS certificate
    tls_ca_cert: str = ""  # the node's TLS CA (PEM, public: from the ledger card in the bundle)
    node_dir: str | None = None  # the node's MSP tree, relative to the view: only in a view that holds its keys

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class OrgProfile:
    """One organization of the consortium: its public material, and its folder when this view holds it."""

    name: str
    msp_id: str
    msp_dir: str | None  # its Admin's MSP, relative to the view (None: not this view's organization)
    roles: tuple[str, ...]
    partition: int | None = None  # index of its data partition in the demo task
    exchange: str | None = None  # host:port of its exchange server, see docs/exchange.md
    folder: str | None = None  # its own folder, relative to the view (None: another organization's)
    domain: str | None = None  # the DNS name its TLS certificates are issued for
    ca_cert: str | None = None  # its CA certificate (PEM), from its card
    tls_ca_cert: str | None = None  # its TLS CA certificate (PEM), from its card

    @property
    def is_member(self) -> bool:
        return "member" in self.roles

    @property
    def is_local(self) -> bool:
        """Whether this view holds the organization's keys."""
        return self.msp_dir is not None


@dataclass
class Consortium:
    """An opened consortium work directory."""

    workdir: Path
    channel: str
    orgs: list[OrgProfile]
    task: TaskSpec
    fabric: FabricProfile | None = None  # None: the embedded ledger in ledger.sqlite
    service: LedgerServiceProfile | None = None  # the embedded ledger's service
    ledger_access: str = "auto"  # see the module docstring
    ledger_dir: str | None = None  # the ledger node's folder (its ledger file), when this view holds it
    genesis_hash: str | None = None  # the genesis block's hash, from the bundle
    _ledger: EmbeddedLedger | None = field(default=None, repr=False)
    _via_service: bool | None = field(default=None, repr=False)
    _block_watcher: BlockWatcher | None = field(default=None, repr=False)
    _stores: dict[str, BlobStore] = field(default_factory=dict, repr=False)
    _exchange_clients: dict[tuple[str, str], ExchangeClient] = field(default_factory=dict, repr=False)
    _gateways: dict[str, Gateway] = field(default_factory=dict, repr=False)

    # -- creation -----------------------------------------------------------------
    @classmethod
    def create(
        cls,
        workdir: Path | str,
        n_orgs: int = 3,
        task: TaskSpec | None = None,
        settings: dict[str, int] | None = None,
        auditor: bool = True,
        keyholder: bool = False,
        overwrite: bool = False,
        schema: DataSchema | None = None,
        collaborator: bool = False,
        host: str = DEFAULT_HOST,
    ) -> "Consortium":
        """Create identities, the ledger and the genesis checkpoint for ``n_orgs`` members.

        Org1 is the admin (and a member). An ``Auditor`` organization is added
        with the read-only auditor role unless ``auditor`` is false, and a
        ``Collaborator`` with only the keyholder role (collaborator C of the
        Paillier mode: never a participant, so never the aggregator nor a member
        whose own update would let it read a sum) when ``collaborator`` is true. With a data
        ``schema`` the members bring their own files: the genesis model is sized
        by the schema and the schema is pinned on the ledger (docs/own-data.md).
        ``host``: the address of this machine every endpoint (the members' exchange
        servers, the ledger service) listens on and is reached at.
        """
        if not 1 <= n_orgs <= 64:
            raise InvalidInputError(f"n_orgs must be between 1 and 64, got {n_orgs}")
        _check_enough_members(n_orgs, settings)
        _free_address(host)  # an unusable host is refused before anything is written
        workdir, task, genesis_model = _prepare(workdir, task, n_orgs, schema, overwrite)

        planned: list[tuple[str, tuple[str, ...], int | None]] = []
        for i in range(n_orgs):
            roles = ("admin", "member") if i == 0 else ("member",)
            if keyholder and i == n_orgs - 1:
                roles = roles + ("keyholder",)
            planned.append((f"Org{i + 1}", roles, i))
        if auditor:
            planned.append(("Auditor", ("auditor",), None))
        if collaborator:
            planned.append(("Collaborator", ("keyholder",), None))
        members_roles = [(roles, index) for _, roles, index in planned]
        folders = [init_org(workdir / ORGS_FOLDER / name, name, roles=roles,
                            exchange=_free_address(host) if {"member", "keyholder"} & set(roles) else None)
                   for name, roles, _ in planned]
        ledger_card = init_ledger_node(workdir / LEDGER_FOLDER, _free_address(host))
        bundle_data = build_bundle(
            folders[0].admin(), [Member(f.card(), roles, index) for f, (roles, index) in zip(folders, members_roles)],
            ledger_card, channel=DEFAULT_CHANNEL, chaincode=DEFAULT_CHAINCODE, task=task.to_dict(),
            settings=settings or {})
        (workdir / BUNDLE_FILE).write_text(json.dumps(bundle_data, indent=2) + "\n")
        bundle = verify_bundle(bundle_data, str(workdir / BUNDLE_FILE))
        create_ledger(workdir / LEDGER_FOLDER, bundle)  # what the ledger's operator does
        for folder in folders:  # what each organization does in its own folder
            cls.join(folder.root, workdir / BUNDLE_FILE)
        consortium = cls.from_bundle(workdir, bundle, local={f.msp_id: f.root for f in folders},
                                     ledger_root=workdir / LEDGER_FOLDER, ledger_access="direct")
        consortium._initialize(genesis_model, settings, schema)
        return consortium

    @classmethod
    def from_bundle(cls, workdir: Path, bundle: Bundle, *, local: dict[str, Path],
                    ledger_root: Path | None = None, ledger_access: str = "auto") -> "Consortium":
        """A view in ``workdir`` of the consortium ``bundle`` describes, holding the folders in
        ``local`` (by MSP ID) and, with ``ledger_root``, the ledger node's folder."""
        profiles = []
        for member in bundle.members:
            card, root = member.card, local.get(member.card.msp_id)
            folder = OrgFolder.load(root) if root is not None else None
            profiles.append(OrgProfile(
                name=card.name, msp_id=card.msp_id, roles=member.roles, partition=member.partition,
                exchange=card.exchange, domain=card.domain, ca_cert=card.ca_cert.decode("ascii"),
                tls_ca_cert=card.tls_ca_cert.decode("ascii"),
                folder=_relative(root, workdir) if root is not None else None,
                msp_dir=_relative(folder.admin_msp, workdir) if folder is not None else None))
        ledger = bundle.ledger
        service = LedgerServiceProfile(
            ledger.address, ledger.server_name, ledger.tls_ca_cert.decode("ascii"),
            _relative(ledger_node_dir(ledger_root), workdir) if ledger_root is not None else None)
        consortium = cls(workdir=workdir, channel=bundle.channel, orgs=profiles,
                         task=TaskSpec.from_dict(bundle.task), service=service, ledger_access=ledger_access,
                         ledger_dir=_relative(ledger_root, workdir) if ledger_root is not None else None,
                         genesis_hash=bundle.genesis_hash)
        consortium._write_config()
        return consortium

    @classmethod
    def join(cls, folder: Path | str, bundle_path: Path | str, expect_genesis: str | None = None) -> "Consortium":
        """Import a consortium bundle into an organization's own folder (``org join``).

        The bundle is verified whole first (founder's signature, every card, the
        genesis block; ``expect_genesis``: the hash you were given out of band) and must
        carry this organization's own card unchanged; nothing is written otherwise.
        """
        org = OrgFolder.load(folder)
        bundle = read_bundle(bundle_path, expect_genesis)
        member = bundle.member(org.msp_id)
        if member.card.to_dict() != org.card().to_dict():
            raise IntegrityError(f"{bundle_path}: the card of {org.msp_id} in the bundle is not the one in "
                                 f"{org.root / CARD_FILE}; ask the founder to build the bundle from your card")
        if Path(bundle_path).resolve() != (org.root / BUNDLE_FILE).resolve():
            shutil.copyfile(bundle_path, org.root / BUNDLE_FILE)
        return cls.from_bundle(org.root, bundle, local={org.msp_id: org.root})

    @classmethod
    def attach_fabric(
        cls,
        workdir: Path | str,
        profile: FabricProfile | Path | str,
        n_orgs: int | None = None,
        task: TaskSpec | None = None,
        settings: dict[str, int] | None = None,
        overwrite: bool = False,
        schema: DataSchema | None = None,
    ) -> "Consortium":
        """Create the consortium on a running Fabric network with the chaincode deployed.

        The profile's first organization is the admin (and a member), the next
        ``n_orgs - 1`` are members; each signs as its network Admin identity.
        The model store stays in ``workdir``. ``ConflictError`` if the channel
        already holds a consortium (a fresh network has none).
        """
        profile = profile if isinstance(profile, FabricProfile) else FabricProfile.load(profile)
        n_orgs = len(profile.orgs) if n_orgs is None else n_orgs
        if not 1 <= n_orgs <= len(profile.orgs):
            raise InvalidInputError(f"n_orgs must be between 1 and {len(profile.orgs)} (the organizations "
                                    f"of the Fabric network), got {n_orgs}")
        _check_enough_members(n_orgs, settings)
        workdir, task, genesis_model = _prepare(workdir, task, n_orgs, schema, overwrite)
        profiles = _with_exchange_endpoints([
            OrgProfile(name=org.name, msp_id=org.msp_id, msp_dir=str(org.admin_msp),
                       roles=("admin", "member") if i == 0 else ("member",), partition=i,
                       folder=_own_folder(workdir, org.name), **_public_material(Path(org.admin_msp)))
            for i, org in enumerate(profile.orgs[:n_orgs])
        ])
        consortium = cls(workdir=workdir, channel=profile.channel, orgs=profiles, task=task, fabric=profile)
        admin = consortium.contract(profiles[0].name)
        if admin.evaluate_json("ListOrgs"):
            raise ConflictError(f"channel {profile.channel} already holds a consortium; start from a fresh "
                                "network (blockfedml admin network down, then up and chaincode deploy)")
        consortium._initialize(genesis_model, settings, schema)
        return consortium

    def _initialize(self, genesis_model: Model, settings: dict[str, int] | None,
                    schema: DataSchema | None) -> None:
        """Write consortium.json, then found the consortium on the ledger as its admin."""
        self._write_config()
        genesis_digest = self.store.put(model_to_bytes(genesis_model))
        admin = self.contract(self.admin.name)
        admin.submit_json("InitConsortium", settings or {}, genesis_digest, 0)
        for org in self.orgs:
            admin.submit_json("RegisterOrg", org.msp_id, list(org.roles))
        if schema is not None:
            from blockfedml.data.federated import publish_schema

            publish_schema(admin, self.store, schema)

    def found(self, settings: dict[str, int] | None = None) -> None:
        """Found the consortium on the ledger as its admin (``admin consortium init``), from the
        founder's own folder once the ledger service runs: the genesis model is built from the task."""
        if self.contract(self.admin.name).evaluate_json("ListOrgs"):
            raise ConflictError("this consortium is founded already (the ledger lists its organizations)")
        self._initialize(task_model(self.task, len(self.members), None), settings, None)

    @classmethod
    def open(cls, workdir: Path | str, ledger_access: str = "auto", org: str | None = None) -> "Consortium":
        """Open a view: a quick-path work directory, an organization's folder after ``org join``,
        or the ledger node's folder. ``org``: act for that organization alone (a process of one
        organization never touches another's folder, even on the quick path).

        ``ledger_access``: ``service``, ``direct`` or ``auto`` (module docstring).
        """
        if ledger_access not in LEDGER_ACCESS:
            raise InvalidInputError(f"ledger_access must be one of {', '.join(LEDGER_ACCESS)}, "
                                    f"not {ledger_access!r}")
        workdir = Path(workdir)
        config_path = workdir / CONFIG_FILE
        if not config_path.exists():
            hint = ("join it first: `blockfedml org join --bundle <bundle.json> -d " + str(workdir) + "`"
                    if (workdir / CARD_FILE).exists() else "create one with `blockfedml admin consortium create`")
            raise NotFoundError(f"no consortium in {workdir} (missing {CONFIG_FILE}); {hint}")
        data = json.loads(config_path.read_text())
        consortium = cls(
            workdir=workdir,
            channel=data["channel"],
            orgs=[OrgProfile(**{**o, "roles": tuple(o["roles"])}) for o in data["orgs"]],
            task=TaskSpec.from_dict(data["task"]),
            fabric=FabricProfile.from_dict(data["backend"]) if data.get("backend") else None,
            service=LedgerServiceProfile(**data["ledger_service"]) if data.get("ledger_service") else None,
            ledger_access=ledger_access,
            ledger_dir=data.get("ledger_dir"),
            genesis_hash=data.get("genesis_hash"),
        )
        return consortium if org is None else consortium.acting_for(org)

    def acting_for(self, name_or_msp: str) -> "Consortium":
        """This view narrowed to one organization: the others' folders, and the ledger node's
        keys and file, are out of reach (reached over the exchange and the ledger service)."""
        me = self.org(name_or_msp)
        if self.fabric is None and not me.is_local:
            raise NotAuthorizedError(f"the view in {self.workdir} does not hold {me.name}'s folder; open "
                                     f"{me.name}'s own folder instead")
        orgs = [o if o.msp_id == me.msp_id else replace(o, msp_dir=None, folder=None) for o in self.orgs]
        if self.fabric is not None:
            orgs = [replace(o, msp_dir=o.msp_dir if o.msp_id == me.msp_id else None) for o in self.orgs]
        service = replace(self.service, node_dir=None) if self.service is not None else None
        return replace(self, orgs=orgs, service=service, ledger_dir=None, _ledger=None, _via_service=None,
                       _block_watcher=None, _stores={}, _exchange_clients={}, _gateways={})

    # -- waiting for other organizations ------------------------------------------
    def ledger_height(self) -> int | None:
        """The embedded ledger's height; None on Fabric, where callers poll instead."""
        if self.kind != "embedded":
            return None
        if self.via_service:
            height = self._watcher().height()
            if height is not None:
                return height
            blocks = list(self._reader_gateway().blocks(self.channel, NEWEST, NEWEST, timeout=30.0))
            return blocks[-1].header.number + 1 if blocks else 0
        return self.ledger.height()

    def wait_for_block(self, after: int | None, timeout: float = 1.0) -> None:
        """Return once a block after height ``after`` lands, or ``timeout`` passes.

        The embedded ledger wakes on the next commit by any process; through the
        ledger service, on the block's delivery. On Fabric the Python shim drops
        chaincode events, so this waits a short poll interval instead.
        """
        if after is None:
            time.sleep(min(timeout, FABRIC_POLL_SECONDS))
            return
        try:
            if self.via_service:
                watcher = self._watcher()
                if not watcher.wait_beyond(after, timeout) and not watcher.alive:
                    time.sleep(min(timeout, FABRIC_POLL_SECONDS))  # the service restarts: look again soon
            else:
                self.ledger.wait_for_height(after + 1, timeout=timeout)
        except LedgerError:
            pass  # nothing new within the timeout; the caller looks again

    @property
    def via_service(self) -> bool:
        """Whether this process reaches the embedded ledger through its service (decided once)."""
        if self._via_service is None:
            self._via_service = self._decide_access()
        return self._via_service

    def _decide_access(self) -> bool:
        if self.fabric is not None or self.ledger_access == "direct":
            return False
        if self.service is None:
            if self.ledger_access == "service":
                raise InvalidInputError(f"the consortium in {self.workdir} has no ledger service configured")
            return False
        if self.ledger_access == "service":
            wait_for_service(self.service.address, SERVICE_WAIT_SECONDS)
            return True
        if service_reachable(self.service.address):
            return True
        try:
            self.ledger_node()
        except NotAuthorizedError as exc:
            raise LedgerError(f"the ledger service at {self.service.address} is not reachable and this "
                              f"process cannot write the ledger itself ({exc})") from None
        return False

    def ledger_node(self) -> LedgerNode:
        """The ledger node's keys; ``NotAuthorizedError`` when this process cannot read them."""
        if self.service is None:
            raise NotAuthorizedError(f"the consortium in {self.workdir} has no ledger node")
        if self.service.node_dir is None:
            raise NotAuthorizedError(f"the view in {self.workdir} does not hold the ledger node's keys; only the "
                                     "ledger service does: connect to it (`blockfedml ledger serve`)")
        return LedgerNode.load(self.workdir / self.service.node_dir)

    def service_endpoint(self, name_or_msp: str) -> PeerEndpoint:
        """How ``name_or_msp`` reaches the ledger service: its TLS client certificate, the node's TLS CA."""
        if self.service is None:
            raise InvalidInputError(f"the consortium in {self.workdir} has no ledger service configured")
        tls = self.tls_material(name_or_msp)
        return PeerEndpoint(self.service.address, self._public_pem("ledger-tls-ca", self.service.tls_ca_cert),
                            self.service.server_name, tls.client_cert, tls.client_key)

    def _public_pem(self, name: str, pem: str) -> Path:
        """A public certificate written as a file in this view (gRPC and Fabric's tools read files)."""
        path = self.workdir / "public" / f"{name}.pem"
        if not path.is_file() or path.read_text() != pem:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(pem)
        return path

    def signing_identity(self, name_or_msp: str) -> SigningIdentity:
        """The organization's signing identity (its own key: only its own processes can read it)."""
        profile = self._local(name_or_msp)
        return load_signing_identity(self.workdir / str(profile.msp_dir), profile.msp_id)

    def _local(self, name_or_msp: str) -> OrgProfile:
        """The organization's profile if this view holds its folder, else ``NotAuthorizedError``."""
        profile = self.org(name_or_msp)
        if not profile.is_local:
            mine = ", ".join(o.name for o in self.orgs if o.is_local) or "none"
            raise NotAuthorizedError(f"{profile.name}'s keys and folder belong to {profile.name}: this view "
                                     f"({self.workdir}) acts for {mine}")
        return profile

    def org_folder(self, name_or_msp: str) -> Path:
        """The organization's own folder: its keys, store, round secrets, its signed tip."""
        profile = self._local(name_or_msp)
        if profile.folder is not None:
            return self.workdir / profile.folder
        return (self.workdir / str(profile.msp_dir)).parents[2]  # Fabric: cryptogen's peerOrganizations/<domain>

    def private_folder(self, name_or_msp: str) -> Path:
        """Secrets outside the store (round secrets, the Paillier key, the inbox): mode 0700."""
        folder = self.org_folder(name_or_msp) / "keys"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return folder

    def audit_folder(self, name_or_msp: str) -> Path:
        """Where an auditing organization keeps its own copy of the chain and its pinned genesis."""
        return self.org_folder(name_or_msp) / "audit"

    def block_source(self, name_or_msp: str) -> Iterator[DeliveredBlock]:
        """Every block from genesis, as ``name_or_msp`` receives them: over the ledger service's
        Deliver protocol, or read from the ledger file by a process that holds it."""
        from blockfedml.audit.copy import file_source

        if self.fabric is not None:
            raise InvalidInputError("on Fabric an auditor pulls blocks from several organizations' peers and "
                                    "compares them: blockfedml.audit.fabric_copy.peer_sources")
        if self.via_service:
            gateway = self.gateway(name_or_msp)
            assert isinstance(gateway, FabricGateway)
            return (embedded_block(b) for b in gateway.blocks(self.channel, 0, None, timeout=300.0))
        return iter(file_source(self.ledger_path))

    def record_tip(self, name_or_msp: str) -> dict[str, Any] | None:
        """Keep the newest orderer-signed block header this organization has seen in its own
        folder (``tip.json``): a witness an auditor can hold the chain to. The tip, or None."""
        from blockfedml.audit.copy import tip_record, write_tip

        if self.fabric is not None or self.via_service:  # the newest block its own ledger node holds
            gateway = self.gateway(name_or_msp)
            assert isinstance(gateway, FabricGateway)
            newest = list(gateway.blocks(self.channel, NEWEST, NEWEST, timeout=30.0))
            if not newest:
                return None
            if self.fabric is not None:
                from blockfedml.audit.fabric_copy import fabric_tip_record
                record = fabric_tip_record(newest[-1])
            else:
                record = tip_record(embedded_block(newest[-1]))
        else:
            record = tip_record(self.ledger.block_row(self.ledger.height() - 1))
        write_tip(self.org_folder(name_or_msp) / TIP_FILE, record)
        return record

    def _watcher(self) -> BlockWatcher:
        """This process's follower of new blocks (one Deliver stream, reopened if it broke)."""
        if self._block_watcher is None or not self._block_watcher.alive:
            if self._block_watcher is not None:
                self._block_watcher.close()
            self._block_watcher = self._reader_gateway().watch_blocks(self.channel)
        return self._block_watcher

    def _reader_gateway(self) -> FabricGateway:
        """A service gateway of an organization this process acts for (the last one it opened)."""
        for gateway in reversed(list(self._gateways.values())):
            if isinstance(gateway, FabricGateway):
                return gateway
        errors = []
        for profile in self.orgs:
            try:
                gateway = self.gateway(profile.name)
            except BlockFedMLError as exc:
                errors.append(f"{profile.name}: {exc}")
                continue
            if isinstance(gateway, FabricGateway):
                return gateway
        raise NotAuthorizedError("no organization's identity is readable in this process: "
                                 + "; ".join(errors))

    # -- access -------------------------------------------------------------------
    @property
    def ledger_path(self) -> Path:
        """The ledger file, in the ledger node's folder (a view without it reads through the service)."""
        return self.workdir / (self.ledger_dir or LEDGER_FOLDER) / LEDGER_FILE

    @property
    def kind(self) -> str:
        """``embedded`` or ``fabric``: which ledger the consortium runs on."""
        return "embedded" if self.fabric is None else "fabric"

    @property
    def ledger(self) -> EmbeddedLedger:
        """The ledger file, opened in this process: writable when this process can read the
        ledger node's keys (the one-machine quick path), read-only otherwise."""
        if self.fabric is not None:
            raise InvalidInputError(f"the consortium in {self.workdir} runs on Fabric, not on an embedded "
                                    "ledger; use its contracts (Consortium.contract) or the peer's tools")
        if self._ledger is None:
            try:
                node: LedgerNode | None = self.ledger_node()
            except NotAuthorizedError:
                node = None
            self._ledger = EmbeddedLedger.open(self.ledger_path, node=node)
        return self._ledger

    @property
    def store(self) -> BlobStore:
        """The blob store of the organization this view acts for first (the admin on the quick path)."""
        local = [o for o in self.orgs if o.is_local]
        if not local:
            raise NotAuthorizedError(f"the view in {self.workdir} holds no organization's folder")
        preferred = next((o for o in local if "admin" in o.roles), local[0])
        return self.blobs(preferred.name)

    def blobs(self, name_or_msp: str) -> BlobStore:
        """The organization's own blob store; what it lacks is fetched from the organization
        that holds it: read in this process when this view holds that folder too (the quick
        path), else over the exchange (``store/blobs.py``)."""
        profile = self._local(name_or_msp)
        if profile.msp_id not in self._stores:
            self._stores[profile.msp_id] = BlobStore(self.org_folder(profile.name) / "store", profile.msp_id,
                                                     lambda: self._blob_sources(profile))
        return self._stores[profile.msp_id]

    def _blob_sources(self, me: OrgProfile) -> list[BlobSource]:
        sources: list[BlobSource] = []
        peers = None
        for other in self.orgs:
            if other.msp_id == me.msp_id:
                continue
            if other.is_local:
                sources.append(LocalSource(other.msp_id, self.blobs(other.name)))
                continue
            peers = self.exchange_peers() if peers is None else peers
            if other.msp_id in peers:
                sources.append(_ExchangeSource(other.msp_id, lambda o=other.msp_id: self._exchange_client(me, o)))
        return sources

    def _exchange_client(self, me: OrgProfile, peer: str) -> ExchangeClient:
        key = (me.msp_id, peer)
        if key not in self._exchange_clients:
            options = ExchangeOptions(retries=0, fetch_timeout=60.0)  # BlobStore asks again
            self._exchange_clients[key] = ExchangeClient(self.tls_material(me.name), self.exchange_peers()[peer],
                                                         options)
        return self._exchange_clients[key]

    @property
    def members(self) -> list[OrgProfile]:
        return [o for o in self.orgs if o.is_member]

    @property
    def admin(self) -> OrgProfile:
        return next(o for o in self.orgs if "admin" in o.roles)

    def org(self, name_or_msp: str) -> OrgProfile:
        for o in self.orgs:
            if name_or_msp in (o.name, o.msp_id):
                return o
        known = ", ".join(o.name for o in self.orgs)
        raise NotFoundError(f"organization {name_or_msp!r} is not in this consortium (known: {known})")

    def gateway(self, name_or_msp: str) -> Gateway:
        """A gateway signing as the organization's admin user (on Fabric: to its own peer)."""
        profile = self.org(name_or_msp)
        if profile.msp_id in self._gateways:  # one TLS channel per organization, reused
            return self._gateways[profile.msp_id]
        identity = self.signing_identity(profile.name)
        if self.fabric is None and not self.via_service:
            return self.ledger.connect(identity)
        endpoint = self.fabric.org(profile.msp_id).endpoint if self.fabric else self.service_endpoint(profile.name)
        self._gateways[profile.msp_id] = FabricGateway.connect(identity, endpoint)
        return self._gateways[profile.msp_id]

    def tls_material(self, name_or_msp: str) -> TLSMaterial:
        """Paths of the organization's TLS CA, server and client certificates and keys."""
        profile = self._local(name_or_msp)
        org_dir = (self.workdir / str(profile.msp_dir)).parents[2]  # <org>/users/Admin@<domain>/msp
        return TLSMaterial.from_org_dir(org_dir, profile.msp_id)

    def exchange_peers(self) -> dict[str, ExchangePeer]:
        """Every organization with an exchange endpoint: its address and TLS CA, by MSP ID."""
        peers = {}
        for profile in self.orgs:
            if not profile.exchange:
                continue
            if profile.tls_ca_cert is not None and profile.domain is not None:  # public, from its card
                peers[profile.msp_id] = ExchangePeer(profile.msp_id, profile.exchange,
                                                     profile.tls_ca_cert.encode("ascii"), f"peer0.{profile.domain}")
            else:  # Fabric: cryptogen's tree of every organization
                tls = self.tls_material(profile.name)
                peers[profile.msp_id] = ExchangePeer(profile.msp_id, profile.exchange,
                                                     tls.read(tls.ca_cert), tls.server_name)
        return peers

    def trust_store(self) -> TrustStore:
        """Every organization's TLS CA, by MSP ID: who may call an exchange server at all (an
        auditor serves nothing, yet fetches blobs); each method then applies its own rule."""
        cas = {msp: peer.tls_ca_pem for msp, peer in self.exchange_peers().items()}
        cas.update({p.msp_id: p.tls_ca_cert.encode("ascii") for p in self.orgs if p.tls_ca_cert})
        return TrustStore(cas)

    def set_exchange_endpoint(self, name_or_msp: str, address: str | None) -> OrgProfile:
        """Move (or, with None, remove) an organization's exchange endpoint in consortium.json."""
        profile = self.org(name_or_msp)
        host, _, port = (address or "").rpartition(":")
        if address is not None and not (host and port.isdigit() and 0 < int(port) < 65536):
            raise InvalidInputError(f"exchange endpoint {address!r} must be host:port, e.g. hospital2.example.org:7351")
        updated = replace(profile, exchange=address)
        self.orgs = [updated if o.msp_id == profile.msp_id else o for o in self.orgs]
        self._write_config()
        return updated

    def contract(self, name_or_msp: str) -> Contract:
        chaincode = DEFAULT_CHAINCODE if self.fabric is None else self.fabric.chaincode
        return self.gateway(name_or_msp).network(self.channel).contract(chaincode)

    def close(self) -> None:
        if self._block_watcher is not None:
            self._block_watcher.close()
            self._block_watcher = None
        for gateway in self._gateways.values():
            gateway.close()
        self._gateways.clear()
        for client in self._exchange_clients.values():
            client.close()
        self._exchange_clients.clear()
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    def _write_config(self) -> None:
        data: dict[str, Any] = {
            "channel": self.channel,
            "task": self.task.to_dict(),
            "orgs": [
                {**o.__dict__, "roles": list(o.roles)} for o in self.orgs
            ],
            "ledger_dir": self.ledger_dir,
            "genesis_hash": self.genesis_hash,
        }
        if self.service is not None:
            data["ledger_service"] = self.service.to_dict()
        if self.fabric is not None:
            data["backend"] = self.fabric.to_dict()
        (self.workdir / CONFIG_FILE).write_text(json.dumps(data, indent=2, sort_keys=True))


def _with_exchange_endpoints(profiles: list[OrgProfile], host: str = DEFAULT_HOST) -> list[OrgProfile]:
    """Give every member an exchange endpoint on ``host``, on a port that is free now
    (the kernel picks it), so several consortia on one machine do not collide."""
    return [replace(p, exchange=_free_address(host)) if p.is_member and p.exchange is None else p
            for p in profiles]


def _free_address(host: str) -> str:
    """``host:port`` with a port free on ``host`` now; ``InvalidInputError`` if ``host`` is not this machine's."""
    try:
        with socket.create_server((host, 0)) as probe:
            return f"{host}:{probe.getsockname()[1]}"
    except OSError as exc:
        raise InvalidInputError(f"cannot place endpoints on host {host!r}: {exc}; give an address of this "
                                "machine (--host)") from exc


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InvalidInputError(f"address {address!r} must be host:port")
    return host.strip("[]"), int(port)


def service_reachable(address: str, timeout: float = 0.5) -> bool:
    """True when something accepts connections at ``address`` (a TCP probe, no handshake)."""
    try:
        with socket.create_connection(_split_address(address), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_service(address: str, timeout: float, *, up: bool = True) -> None:
    """Wait until the ledger service accepts connections (``up``), or no longer does (a stopped or
    killed service, before it is started again); ``LedgerError`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay, told = 0.02, False
    while service_reachable(address) != up:
        if up and not told and time.monotonic() + timeout - deadline > 1.0:
            told = True
            logging.getLogger("blockfedml").warning(
                "waiting up to %g s for the ledger service at %s (start it with `blockfedml ledger start -w "
                "<workdir>`; `admin round drive` starts it too)", timeout, address)
        if time.monotonic() >= deadline:
            if up:
                raise LedgerError(f"the ledger service at {address} did not come up within {timeout:g} s; start "
                                  "it with `blockfedml ledger start -w <workdir>` (or `ledger serve`)")
            raise LedgerError(f"something still listens at {address} after {timeout:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _check_enough_members(n_orgs: int, settings: dict[str, int] | None) -> None:
    """Refuse, before anything is written, settings the contract would refuse and a consortium
    whose rounds could never gather ``min_participants`` members."""
    from blockfedml_chaincode import rules
    from blockfedml_chaincode.errors import ContractError

    try:
        merged = rules.validate_settings(settings or {})
    except ContractError as exc:
        raise InvalidInputError(exc.detail) from None
    if n_orgs < merged["min_participants"]:
        raise InvalidInputError(f"a consortium of {n_orgs} member organization{'s' if n_orgs > 1 else ''} could "
                                f"never hold a round: every round needs at least min_participants="
                                f"{merged['min_participants']} members; create at least "
                                f"{merged['min_participants']} (--orgs) or lower min_participants")


def _prepare(workdir: Path | str, task: TaskSpec | None, n_orgs: int, schema: DataSchema | None,
             overwrite: bool) -> tuple[Path, TaskSpec, Model]:
    """Check the work directory and build the genesis model before anything is written."""
    task = task or TaskSpec()
    workdir = Path(workdir)
    if (workdir / CONFIG_FILE).exists():
        if not overwrite:
            raise ConflictError(
                f"a consortium already exists in {workdir}; choose another directory or overwrite it"
            )
        shutil.rmtree(workdir)
    task = task if schema is None else replace(task, dataset=OWN_DATA)
    genesis_model = task_model(task, n_orgs, schema)  # validates the dataset and model first
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir, task, genesis_model


class _ExchangeSource:
    """Another organization's exchange server, as a source of blobs (its client opened on first use)."""

    def __init__(self, msp_id: str, client: Callable[[], ExchangeClient]) -> None:
        self.msp_id = msp_id
        self._client = client

    def fetch(self, digest: str) -> bytes | None:
        return self._client().fetch(digest)


def _public_material(admin_msp: Path) -> dict[str, str]:
    """A Fabric organization's public certificates, read once from cryptogen's tree, so that a view
    of one organization knows the others' TLS CAs without reading their folders."""
    org_dir = admin_msp.parents[2]  # peerOrganizations/<domain>/users/Admin@<domain>/msp
    pems = {key: sorted((org_dir / "msp" / folder).glob("*.pem")) for key, folder in
            (("ca_cert", "cacerts"), ("tls_ca_cert", "tlscacerts"))}
    return {"domain": org_dir.name, **{key: found[0].read_text() for key, found in pems.items() if found}}


def _own_folder(workdir: Path, name: str) -> str:
    """A folder of the organization's own under the quick path's ``orgs/`` (Fabric's identities stay cryptogen's)."""
    folder = workdir / ORGS_FOLDER / name
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return _relative(folder, workdir)


def _relative(path: Path, base: Path) -> str:
    return os.path.relpath(Path(path).resolve(), Path(base).resolve())


def create_ledger(root: Path | str, bundle: Bundle) -> Path:
    """Create the ledger file in the ledger node's folder from a verified bundle (``ledger create``):
    its genesis block must hash to the bundle's, and the node must be the one the bundle names."""
    root = Path(root)
    node = load_node(root)
    if node.certificates() != bundle.ledger.certificates:
        raise IntegrityError(f"the ledger node in {root} is not the one the bundle names (its certificates "
                             "differ); create the ledger with the node whose card the founder used")
    path = root / LEDGER_FILE
    ledger = EmbeddedLedger.create(path, bundle.channel, [(m.card.msp_id, m.card.ca_cert) for m in bundle.members],
                                   node=node)
    try:
        made = ledger.block_row(0).hash.hex()
    finally:
        ledger.close()
    if made != bundle.genesis_hash:
        path.unlink()
        raise IntegrityError(f"the genesis block made from the bundle hashes to {made}, not the bundle's "
                             f"{bundle.genesis_hash}; nothing was created")
    Consortium.from_bundle(root, bundle, local={}, ledger_root=root, ledger_access="direct")
    return path
