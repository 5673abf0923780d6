"""A consortium on one machine: identities, embedded ledger, model store.

``Consortium.create`` does what a network admin does once: issue every
organization's identities (Fabric MSP layout), write the channel's genesis
block, initialise the federation contract with the genesis model and register
the organizations. Everything lives in one work directory described by
``consortium.json``, so separate processes (members, auditors) can open it.

Only the ledger node writes the embedded ledger (``ledger/embedded/node.py``):
its keys are issued into ``ledger-node/`` and held by the ledger service
(``blockfedml ledger serve``). A consortium object reaches the ledger in one of
three ways (``ledger_access``): ``service`` (always through the service's
Gateway, waiting for it to come up: what members in their own processes do),
``direct`` (in this process, with the node's keys: the demo, one process that
holds every identity anyway) or ``auto`` (the service if it is up, else direct
when this process can read the node's keys).

``Consortium.attach_fabric`` does the same on a real Fabric network instead:
identities are the network's (cryptogen's), each organization talks to its
own peer's Gateway, and ``consortium.json`` keeps the connection profile
under ``"backend"``. Everything above the ``Contract`` interface is unchanged.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from blockfedml.errors import (
    BlockFedMLError,
    ConflictError,
    InvalidInputError,
    LedgerError,
    NotAuthorizedError,
    NotFoundError,
)
from blockfedml.exchange.credentials import ExchangePeer, TLSMaterial
from blockfedml.fl.task import OWN_DATA, TaskSpec, task_model
from blockfedml.identity import create_organization, load_signing_identity
from blockfedml.identity.signing import SigningIdentity
from blockfedml.ledger.deliver import NEWEST, BlockWatcher, DeliveredBlock, embedded_block
from blockfedml.ledger.base import DEFAULT_CHAINCODE, DEFAULT_CHANNEL, Contract, Gateway
from blockfedml.ledger.embedded import EmbeddedLedger
from blockfedml.ledger.embedded.node import LEDGER_MSP_ID, LedgerNode
from blockfedml.ledger.fabric import FabricGateway, FabricProfile, PeerEndpoint
from blockfedml.ml.serialization import model_to_bytes
from blockfedml.store import ModelStore

if TYPE_CHECKING:
    from blockfedml.data.schema import DataSchema
    from blockfedml.ml.models import Model

CONFIG_FILE = "consortium.json"
FABRIC_POLL_SECONDS = 0.1  # how often a member looks at a Fabric ledger for the next phase
ROLES = ("admin", "member", "keyholder", "auditor")
LEDGER_NODE_FOLDER = "ledger-node"
TIP_FILE = "tip.json"  # in an organization's folder: the newest signed block header it has seen
LEDGER_NODE_DOMAIN = "ledger.blockfedml.local"
LEDGER_ACCESS = ("auto", "service", "direct")
SERVICE_WAIT_SECONDS = 60.0  # how long a member waits for the ledger service to come up
#: Where endpoints are placed when ``Consortium.create`` is given no ``host``: the one-machine quick
#: path (every organization on this machine). Certificates are checked by name, not by address.
DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True)
class LedgerServiceProfile:
    """Where the embedded ledger's service listens and where its node's public material is."""

    address: str       # host:port
    node_dir: str      # relative to the work directory: peerOrganizations/<domain> of the node
    server_name: str   # the name in the service's TLS certificate

    def to_dict(self) -> dict[str, str]:
        return {"address": self.address, "node_dir": self.node_dir, "server_name": self.server_name}


@dataclass(frozen=True)
class OrgProfile:
    """One organization of the consortium as its members configure it."""

    name: str
    msp_id: str
    msp_dir: str
    roles: tuple[str, ...]
    partition: int | None = None  # index of its data partition in the demo task
    exchange: str | None = None  # host:port of its exchange server (members), see docs/exchange.md

    @property
    def is_member(self) -> bool:
        return "member" in self.roles


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
    _ledger: EmbeddedLedger | None = field(default=None, repr=False)
    _via_service: bool | None = field(default=None, repr=False)
    _block_watcher: BlockWatcher | None = field(default=None, repr=False)
    _store: ModelStore | None = field(default=None, repr=False)
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
        created = [_new_org(workdir, name, roles, index) for name, roles, index in planned]
        profiles = _with_exchange_endpoints([profile for profile, _ in created], host)
        node_material = create_organization(workdir / LEDGER_NODE_FOLDER, "Ledger", LEDGER_MSP_ID,
                                            LEDGER_NODE_DOMAIN, orderer=True)
        service = LedgerServiceProfile(_free_address(host),
                                       str(node_material.org_dir.relative_to(workdir)),
                                       f"peer0.{LEDGER_NODE_DOMAIN}")
        consortium = cls(workdir=workdir, channel=DEFAULT_CHANNEL, orgs=profiles, task=task, service=service,
                         ledger_access="direct")
        EmbeddedLedger.create(
            consortium.ledger_path,
            DEFAULT_CHANNEL,
            [(profile.msp_id, ca_cert) for profile, ca_cert in created],
            node=LedgerNode.from_material(node_material),
        ).close()
        consortium._initialize(genesis_model, settings, schema)
        return consortium

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
                       roles=("admin", "member") if i == 0 else ("member",), partition=i)
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

    @classmethod
    def open(cls, workdir: Path | str, ledger_access: str = "auto") -> "Consortium":
        """Open an existing work directory (as members, admins and auditors do).

        ``ledger_access``: ``service``, ``direct`` or ``auto`` (module docstring).
        """
        if ledger_access not in LEDGER_ACCESS:
            raise InvalidInputError(f"ledger_access must be one of {', '.join(LEDGER_ACCESS)}, "
                                    f"not {ledger_access!r}")
        workdir = Path(workdir)
        config_path = workdir / CONFIG_FILE
        if not config_path.exists():
            raise NotFoundError(
                f"no consortium in {workdir} (missing {CONFIG_FILE}); create one with "
                "`blockfedml admin consortium create`"
            )
        data = json.loads(config_path.read_text())
        return cls(
            workdir=workdir,
            channel=data["channel"],
            orgs=[OrgProfile(**{**o, "roles": tuple(o["roles"])}) for o in data["orgs"]],
            task=TaskSpec.from_dict(data["task"]),
            fabric=FabricProfile.from_dict(data["backend"]) if data.get("backend") else None,
            service=LedgerServiceProfile(**data["ledger_service"]) if data.get("ledger_service") else None,
            ledger_access=ledger_access,
        )

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
        return LedgerNode.load(self.workdir / self.service.node_dir)

    def service_endpoint(self, name_or_msp: str) -> PeerEndpoint:
        """How ``name_or_msp`` reaches the ledger service: its TLS client certificate, the node's TLS CA."""
        if self.service is None:
            raise InvalidInputError(f"the consortium in {self.workdir} has no ledger service configured")
        tls = self.tls_material(name_or_msp)
        node_dir = self.workdir / self.service.node_dir
        return PeerEndpoint(self.service.address, _single_pem(node_dir / "msp" / "tlscacerts"),
                            self.service.server_name, tls.client_cert, tls.client_key)

    def signing_identity(self, name_or_msp: str) -> SigningIdentity:
        """The organization's signing identity (its own key: only its own processes can read it)."""
        profile = self.org(name_or_msp)
        return load_signing_identity(self.workdir / profile.msp_dir, profile.msp_id)

    def org_folder(self, name_or_msp: str) -> Path:
        """The organization's own folder (``peerOrganizations/<domain>``): keys, its signed tip."""
        return (self.workdir / self.org(name_or_msp).msp_dir).parents[2]

    def audit_folder(self, name_or_msp: str) -> Path:
        """Where an auditing organization keeps its own copy of the chain and its pinned genesis."""
        return self.workdir / "audit" / self.org(name_or_msp).msp_id

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
        return self.workdir / "ledger.sqlite"

    @property
    def store_path(self) -> Path:
        return self.workdir / "store"

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
    def store(self) -> ModelStore:
        if self._store is None:
            self._store = ModelStore(self.store_path)
        return self._store

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
        profile = self.org(name_or_msp)
        org_dir = (self.workdir / profile.msp_dir).parents[2]  # <org>/users/Admin@<domain>/msp
        return TLSMaterial.from_org_dir(org_dir, profile.msp_id)

    def exchange_peers(self) -> dict[str, ExchangePeer]:
        """Every organization with an exchange endpoint: its address and TLS CA, by MSP ID."""
        peers = {}
        for profile in self.orgs:
            if profile.exchange:
                tls = self.tls_material(profile.name)
                peers[profile.msp_id] = ExchangePeer(profile.msp_id, profile.exchange,
                                                     tls.read(tls.ca_cert), tls.server_name)
        return peers

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
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    def _write_config(self) -> None:
        data: dict[str, Any] = {
            "channel": self.channel,
            "ledger": self.ledger_path.name,
            "store": self.store_path.name,
            "task": self.task.to_dict(),
            "orgs": [
                {**o.__dict__, "roles": list(o.roles)} for o in self.orgs
            ],
        }
        if self.service is not None:
            data["ledger_service"] = self.service.to_dict()
        if self.fabric is not None:
            data["backend"] = self.fabric.to_dict()
            data.pop("ledger")
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


def _single_pem(folder: Path) -> Path:
    found = sorted(folder.glob("*.pem")) if folder.is_dir() else []
    if len(found) != 1:
        raise InvalidInputError(f"{folder} must hold exactly one PEM certificate, found {len(found)}")
    return found[0]


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


def _new_org(
    workdir: Path, name: str, roles: tuple[str, ...], partition: int | None
) -> tuple[OrgProfile, bytes]:
    """Issue an organization's identities; return its profile and CA certificate."""
    domain = f"{name.lower()}.blockfedml.local"
    msp_id = f"{name}MSP"
    material = create_organization(workdir / "crypto", name, msp_id, domain)
    msp_dir = Path(material.admin_msp_dir).relative_to(workdir)
    profile = OrgProfile(name=name, msp_id=msp_id, msp_dir=str(msp_dir), roles=roles, partition=partition)
    return profile, material.ca_cert_pem
