"""Helpers shared by the own-data tests (importable: ``from data_helpers import ...``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from blockfedml.consortium import Consortium

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hospitals"


def example_module():
    """examples/hospitals/make_hospitals.py, imported from its file."""
    spec = importlib.util.spec_from_file_location("make_hospitals", EXAMPLE / "make_hospitals.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def snapshot(consortium: Consortium) -> tuple[int, list[str]]:
    """Ledger height and every blob in the store: what a refused input must leave unchanged."""
    root = consortium.workdir / "orgs"
    return consortium.ledger.height(), sorted(str(p.relative_to(root)) for p in root.glob("*/store/**/*")
                                              if p.is_file())
