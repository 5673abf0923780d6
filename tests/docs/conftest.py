"""Fixtures of the documentation tests: a fresh copy of the repository, as a newcomer's clone would be."""

from __future__ import annotations

import pytest
from repo_copy import REPO, fresh_checkout  # noqa: F401  (REPO: for the tests)


@pytest.fixture
def clone(tmp_path):
    """A fresh checkout of the working tree in a temporary folder."""
    return fresh_checkout(tmp_path / "clone")
