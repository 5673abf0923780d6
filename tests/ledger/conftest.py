"""Fixtures for the embedded ledger tests: a small consortium and fresh ledgers."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger_test_contract import CHANNEL, chaincodes
from blockfedml.identity import OrgMaterial, create_organization
from blockfedml.ledger.embedded import EmbeddedLedger


@pytest.fixture(scope="session")
def orgs(tmp_path_factory: pytest.TempPathFactory) -> list[OrgMaterial]:
    """Four organizations (Org1MSP..Org4MSP); ledgers pick the ones they admit."""
    base = tmp_path_factory.mktemp("crypto")
    return [create_organization(base, f"Org{i}", f"Org{i}MSP", f"org{i}.example.com") for i in range(1, 5)]


@pytest.fixture
def make_ledger(tmp_path: Path, orgs: list[OrgMaterial], ledger_node):
    """Create a ledger admitting the first ``members`` organizations."""
    opened: list[EmbeddedLedger] = []

    def make(members: int = 2, name: str = "ledger.db") -> EmbeddedLedger:
        ledger = EmbeddedLedger.create(tmp_path / name, CHANNEL,
                                       [(o.msp_id, o.ca_cert_pem) for o in orgs[:members]],
                                       chaincodes=chaincodes(), node=ledger_node)
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(make_ledger) -> EmbeddedLedger:
    """A ledger admitting Org1MSP and Org2MSP."""
    return make_ledger()


@pytest.fixture
def contract(ledger: EmbeddedLedger, orgs: list[OrgMaterial]):
    """Org1's contract on ``ledger``."""
    return ledger.connect(orgs[0].admin()).network(CHANNEL).contract("blockfedml")
