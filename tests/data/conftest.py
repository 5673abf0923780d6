"""Fixtures for members' own data: the hospitals example files and a consortium with their schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_helpers import EXAMPLE, example_module

from blockfedml.consortium import Consortium
from blockfedml.data import load_schema
from blockfedml.fl.task import TaskSpec


@pytest.fixture(scope="session")
def hospitals(tmp_path_factory) -> Path:
    """hospital1..3.csv and test.csv, as the walkthrough writes them (read-only: copy before editing)."""
    out = tmp_path_factory.mktemp("hospitals")
    example_module().write_hospitals(out)
    return out


@pytest.fixture(scope="session")
def schema():
    return load_schema(EXAMPLE / "schema.json")


@pytest.fixture(scope="module")
def data_consortium(tmp_path_factory, schema):
    """Three members and an auditor with the hospitals' schema on the ledger; nobody has joined."""
    c = Consortium.create(tmp_path_factory.mktemp("c") / "consortium", n_orgs=3, task=TaskSpec(), schema=schema)
    yield c
    c.close()
