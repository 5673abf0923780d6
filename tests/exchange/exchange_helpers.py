"""Helpers of the exchange tests: real organizations and clients (imported by tests and conftest)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from blockfedml.exchange import ExchangeClient, ExchangeOptions, ExchangePeer, ExchangeServer, TLSMaterial, TrustStore

#: Fail fast in tests: one retry, short back-off.
FAST = ExchangeOptions(retries=1, retry_backoff=0.05, ping_timeout=2.0, send_timeout=5.0, collect_timeout=2.0)


@dataclasses.dataclass
class Orgs:
    """Org1..Org3 form the consortium; Outsider has the same layout but is not trusted."""

    tls: dict[str, TLSMaterial]
    ca: dict[str, bytes]

    @property
    def trust(self) -> TrustStore:
        return TrustStore({f"{n}MSP": self.ca[n] for n in ("Org1", "Org2", "Org3")})

    def peer(self, name: str, address: str) -> ExchangePeer:
        return ExchangePeer(f"{name}MSP", address, self.ca[name], self.tls[name].server_name)


def client_of(orgs: Orgs, server: ExchangeServer, name: str = "Org2", options: ExchangeOptions = FAST,
              tls: TLSMaterial | None = None) -> ExchangeClient:
    """A client of ``name`` (or with ``tls``) talking to Org1's ``server``."""
    return ExchangeClient(tls or orgs.tls[name], orgs.peer("Org1", server.address), options)


def write_tls(directory: Path, msp_id: str, cert_pem: bytes, key_pem: bytes, like: TLSMaterial) -> TLSMaterial:
    """TLS material whose client certificate and key are the given ones."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "client.crt").write_bytes(cert_pem)
    (directory / "client.key").write_bytes(key_pem)
    return dataclasses.replace(like, msp_id=msp_id, client_cert=directory / "client.crt",
                               client_key=directory / "client.key")
