"""Fixtures that build small real consortia quickly (identities, ledger, store)."""

from __future__ import annotations

import pytest

from blockfedml.consortium import Consortium
from blockfedml.fl.task import TaskSpec
from blockfedml.identity import OrgMaterial, create_organization
from blockfedml.ledger.embedded.node import LedgerNode


@pytest.fixture(scope="session")
def ledger_node_material(tmp_path_factory) -> OrgMaterial:
    """A ledger node's organization (peer + orderer), for tests that create ledgers by hand."""
    return create_organization(tmp_path_factory.mktemp("node"), "Ledger", "LedgerMSP", "ledger.example.com",
                               orderer=True)


@pytest.fixture(scope="session")
def ledger_node(ledger_node_material) -> LedgerNode:
    """The keys that may write a test ledger (endorse and sign blocks)."""
    return LedgerNode.from_material(ledger_node_material)


@pytest.fixture
def consortium(tmp_path):
    """Three members (Org1 also admin) and a read-only Auditor, on a fresh embedded ledger."""
    c = Consortium.create(tmp_path / "consortium", n_orgs=3, task=TaskSpec(), auditor=True)
    yield c
    c.close()


@pytest.fixture(autouse=True)
def _stop_ledger_services(request):
    """Stop any ledger service a test started in the background (``admin round drive`` starts one)."""
    tmp = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if tmp is None:
        return
    from blockfedml import ledger_host

    for pid_file in tmp.rglob(ledger_host.PID_FILE):
        try:
            ledger_host.stop_background(pid_file.parent)
        except Exception:
            pass
