"""A consortium on one machine: identities, embedded ledger, model store.

``Consortium.create`` does what a network admin does once: issue every
organization's identities (Fabric MSP layout), write the channel's genesis
block, initialise the federation contract with the genesis model and register
the organizations. Everything lives in one work directory described by
``consortium.json``, so separate processes (members, auditors) can open it.

``Consortium.attach_fabric`` does the same on a real Fabric network instead:
identities are the network's (cryptogen's), each organization talks to its
own peer's Gateway, and ``consortium.json`` keeps the connection profile
under ``"backend"``. Everything above the ``Contract`` interface is unchanged.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blockfedml.errors import ConflictError, InvalidInputError, LedgerError, NotFoundError
from blockfedml.exchange.credentials import ExchangePeer, TLSMaterial
from blockfedml.fl.task import OWN_DATA, TaskSpec, task_model
from blockfedml.identity import create_organization, load_signing_identity
from blockfedml.ledger.base import DEFAULT_CHAINCODE, DEFAULT_CHANNEL, Contract, Gateway
from blockfedml.ledger.embedded import EmbeddedLedger
from blockfedml.ledger.fabric import FabricGateway, FabricProfile
from blockfedml.ml.serialization import model_to_bytes
from blockfedml.store import ModelStore

if TYPE_CHECKING:
    from blockfedml.data.schema import DataSchema
    from blockfedml.ml.models import Model

CONFIG_FILE = "consortium.json"
FABRIC_POLL_SECONDS = 0.1  # how often a member looks at a Fabric ledger for the next phase
ROLES = ("admin", "member", "keyholder", "auditor")


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
    _ledger: EmbeddedLedger | None = field(default=None, repr=False)
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
    ) -> "Consortium":
        """Create identities, the ledger and the genesis checkpoint for ``n_orgs`` members.

        Org1 is the admin (and a member). An ``Auditor`` organization is added
        with the read-only auditor role unless ``auditor`` is false, and a
        ``Collaborator`` with only the keyholder role (collaborator C of the
        Paillier mode: never a participant, so never the aggregator nor a member
        whose own update would let it read a sum) when ``collaborator`` is true. With a data
        ``schema`` the members bring their own files: the genesis model is sized
        by the schema and the schema is pinned on the ledger (docs/own-data.md).
        """
        if not 1 <= n_orgs <= 64:
            raise InvalidInputError(f"n_orgs must be between 1 and 64, got {n_orgs}")
        _check_enough_members(n_orgs, settings)
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
        profiles = _with_exchange_endpoints([profile for profile, _ in created])

        consortium = cls(workdir=workdir, channel=DEFAULT_CHANNEL, orgs=profiles, task=task)
        EmbeddedLedger.create(
            consortium.ledger_path,
            DEFAULT_CHANNEL,
            [(profile.msp_id, ca_cert) for profile, ca_cert in created],
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
    def open(cls, workdir: Path | str) -> "Consortium":
        """Open an existing work directory (as members, admins and auditors do)."""
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
        )

    # -- waiting for other organizations ------------------------------------------
    def ledger_height(self) -> int | None:
        """The embedded ledger's height; None on Fabric, where callers poll instead."""
        return self.ledger.height() if self.kind == "embedded" else None

    def wait_for_block(self, after: int | None, timeout: float = 1.0) -> None:
        """Return once a block after height ``after`` lands, or ``timeout`` passes.

        The embedded ledger wakes on the next commit by any process. On Fabric
        the Python shim drops chaincode events, so this waits a short poll
        interval instead (block events over the Deliver service would remove it).
        """
        if after is None:
            time.sleep(min(timeout, FABRIC_POLL_SECONDS))
            return
        try:
            self.ledger.wait_for_height(after + 1, timeout=timeout)
        except LedgerError:
            pass  # nothing new within the timeout; the caller looks again

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
        if self.fabric is not None:
            raise InvalidInputError(f"the consortium in {self.workdir} runs on Fabric, not on an embedded "
                                    "ledger; use its contracts (Consortium.contract) or the peer's tools")
        if self._ledger is None:
            self._ledger = EmbeddedLedger.open(self.ledger_path)
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
        identity = load_signing_identity(self.workdir / profile.msp_dir, profile.msp_id)
        if self.fabric is None:
            return self.ledger.connect(identity)
        if profile.msp_id not in self._gateways:  # one TLS channel per organization, reused
            endpoint = self.fabric.org(profile.msp_id).endpoint
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
            raise InvalidInputError(f"exchange endpoint {address!r} must be host:port, e.g. 127.0.0.1:7351")
        updated = replace(profile, exchange=address)
        self.orgs = [updated if o.msp_id == profile.msp_id else o for o in self.orgs]
        self._write_config()
        return updated

    def contract(self, name_or_msp: str) -> Contract:
        chaincode = DEFAULT_CHAINCODE if self.fabric is None else self.fabric.chaincode
        return self.gateway(name_or_msp).network(self.channel).contract(chaincode)

    def close(self) -> None:
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
        if self.fabric is not None:
            data["backend"] = self.fabric.to_dict()
            data.pop("ledger")
        (self.workdir / CONFIG_FILE).write_text(json.dumps(data, indent=2, sort_keys=True))


def _with_exchange_endpoints(profiles: list[OrgProfile]) -> list[OrgProfile]:
    """Give every member a loopback exchange endpoint on a port that is free now
    (the kernel picks it), so several consortia on one machine do not collide."""
    result = []
    for profile in profiles:
        if profile.is_member and profile.exchange is None:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind(("127.0.0.1", 0))
                profile = replace(profile, exchange=f"127.0.0.1:{probe.getsockname()[1]}")
        result.append(profile)
    return result


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
