"""Fixtures that build small real consortia quickly (identities, ledger, store)."""

from __future__ import annotations

import pytest

from blockfedml.consortium import Consortium
from blockfedml.fl.task import TaskSpec


@pytest.fixture
def consortium(tmp_path):
    """Three members (Org1 also admin) and a read-only Auditor, on a fresh embedded ledger."""
    c = Consortium.create(tmp_path / "consortium", n_orgs=3, task=TaskSpec(), auditor=True)
    yield c
    c.close()
