"""The finished session of ``session_builder.py``, built once; every audit test copies it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from session_builder import build_session


@pytest.fixture(scope="session")
def finished_session(tmp_path_factory) -> Path:
    """The work directory of the finished session above (never modify it: copy it)."""
    return build_session(tmp_path_factory.mktemp("audit") / "session")


@pytest.fixture
def session_copy(finished_session, tmp_path) -> Path:
    """A private copy of the finished session, to tamper with, audited by a new auditor (its own
    copy of the chain, kept under ``audit/`` once a test audits the finished session, is left out)."""
    return Path(shutil.copytree(finished_session, tmp_path / "copy", ignore=shutil.ignore_patterns("audit")))
