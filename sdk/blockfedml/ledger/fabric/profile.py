"""A connection profile: how each organization reaches its own peer's Gateway.

``scripts/network.sh up`` writes one (``runs/fabric/network.json``); a user
with another network writes the same small JSON by hand::

    {"channel": "fedchannel", "chaincode": "blockfedml",
     "orgs": [{"name": "Org1", "msp_id": "Org1MSP",
               "peer_endpoint": "127.0.0.1:7051", "tls_ca": ".../tls/ca.crt",
               "server_name": "peer0.org1.blockfedml.local",
               "admin_msp": ".../users/Admin@org1.blockfedml.local/msp"}, ...]}

Relative paths are relative to the profile's folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blockfedml.errors import InvalidInputError, NotFoundError
from blockfedml.ledger.base import DEFAULT_CHAINCODE, DEFAULT_CHANNEL
from blockfedml.ledger.fabric.gateway import PeerEndpoint

_REQUIRED = ("name", "msp_id", "peer_endpoint", "tls_ca", "admin_msp")


@dataclass(frozen=True)
class FabricOrg:
    """One organization: its identity folder and its peer."""

    name: str
    msp_id: str
    endpoint: PeerEndpoint
    admin_msp: Path

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "msp_id": self.msp_id, "peer_endpoint": self.endpoint.address,
                "tls_ca": str(self.endpoint.tls_ca), "server_name": self.endpoint.server_name,
                "admin_msp": str(self.admin_msp)}


@dataclass(frozen=True)
class FabricProfile:
    channel: str
    chaincode: str
    orgs: tuple[FabricOrg, ...]

    @classmethod
    def load(cls, path: str | Path) -> "FabricProfile":
        path = Path(path)
        if not path.is_file():
            raise NotFoundError(f"no Fabric connection profile at {path}; `blockfedml admin network up` "
                                "writes one to runs/fabric/network.json")
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise InvalidInputError(f"{path} is not valid JSON: {exc}") from exc
        return cls.from_dict(data, base=path.parent)

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: Path | None = None) -> "FabricProfile":
        orgs = data.get("orgs")
        if not isinstance(orgs, list) or not orgs:
            raise InvalidInputError("a Fabric connection profile needs a non-empty list 'orgs'")
        parsed = []
        for entry in orgs:
            missing = [k for k in _REQUIRED if not entry.get(k)]
            if missing:
                raise InvalidInputError(f"organization {entry.get('name', '?')} in the Fabric profile lacks "
                                        f"{', '.join(missing)}")

            def resolve(value: str) -> Path:
                p = Path(value)
                return p if p.is_absolute() or base is None else base / p

            endpoint = PeerEndpoint(entry["peer_endpoint"], resolve(entry["tls_ca"]), entry.get("server_name"))
            parsed.append(FabricOrg(entry["name"], entry["msp_id"], endpoint, resolve(entry["admin_msp"])))
        return cls(data.get("channel", DEFAULT_CHANNEL), data.get("chaincode", DEFAULT_CHAINCODE), tuple(parsed))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "fabric", "channel": self.channel, "chaincode": self.chaincode,
                "orgs": [o.to_dict() for o in self.orgs]}

    def org(self, name_or_msp: str) -> FabricOrg:
        for org in self.orgs:
            if name_or_msp in (org.name, org.msp_id):
                return org
        raise NotFoundError(f"organization {name_or_msp!r} is not in the Fabric profile "
                            f"(known: {', '.join(o.name for o in self.orgs)})")
