"""Real organizations (cryptogen layout, separate TLS CAs) and real mutual-TLS servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from exchange_helpers import FAST, Orgs

from blockfedml.exchange import ExchangeServer, TLSMaterial
from blockfedml.identity import create_organization


@pytest.fixture(scope="session")
def orgs(tmp_path_factory) -> Orgs:
    base = tmp_path_factory.mktemp("exchange-orgs")
    tls, ca = {}, {}
    for name in ("Org1", "Org2", "Org3", "Outsider"):
        material = create_organization(base, name, f"{name}MSP", f"{name.lower()}.example.com")
        tls[name] = TLSMaterial.from_org_dir(material.org_dir, material.msp_id)
        ca[name] = material.tls_ca_cert_pem
    return Orgs(tls, ca)


@pytest.fixture
def server(orgs) -> Iterator[ExchangeServer]:
    """Org1's exchange server on a free loopback port, trusting Org1..Org3."""
    with ExchangeServer(orgs.tls["Org1"], orgs.trust, "127.0.0.1:0", options=FAST) as srv:
        yield srv
