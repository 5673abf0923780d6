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


@pytest.fixture(autouse=True, scope="session")
def _stop_every_background_server(tmp_path_factory):
    """At the end, stop the background servers that module-scoped work directories left running."""
    yield
    from blockfedml import ledger_host, org_host

    base = tmp_path_factory.getbasetemp()
    for host, pid_name in ((ledger_host, ledger_host.PID_FILE), (org_host, org_host.PID_FILE)):
        for pid_file in base.rglob(pid_name):
            try:
                host.stop_background(pid_file.parent)
            except Exception:
                pass


@pytest.fixture(autouse=True)
def _stop_ledger_services(request):
    """Stop any ledger service a test started in the background (``admin round drive`` starts one)."""
    tmp = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if tmp is None:
        return
    from blockfedml import ledger_host, org_host

    for host, pid_name in ((ledger_host, ledger_host.PID_FILE), (org_host, org_host.PID_FILE)):
        for pid_file in tmp.rglob(pid_name):  # and organizations' standing exchange servers (`org start`)
            try:
                host.stop_background(pid_file.parent)
            except Exception:
                pass
