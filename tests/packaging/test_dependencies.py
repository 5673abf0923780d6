"""Dependencies declared exactly: what the code imports is declared, and the core installs no extras' needs."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")

REPO = Path(__file__).resolve().parents[2]
OWN = {"blockfedml", "blockfedml_chaincode", "tamper", "conftest"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = {extra: {_name(r) for r in reqs} for extra, reqs in project["optional-dependencies"].items()}
    return {_name(r) for r in project["dependencies"]}, extras


def imported(folder: str) -> set[str]:
    """Top-level modules imported anywhere under ``folder`` (stdlib and the project's own left out)."""
    found: set[str] = set()
    for path in (REPO / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - OWN - local_modules() - {"__future__"}


def local_modules() -> set[str]:
    """The repository's own helper modules and folders (tests' helpers, benchmarks, examples)."""
    folders = [REPO / f for f in ("sdk", "chaincode", "tests", "bench", "examples", "scripts")]
    return {p.stem for f in folders if f.exists() for p in f.rglob("*.py")} | \
        {p.name for f in folders if f.exists() for p in f.rglob("*") if p.is_dir()}


def distributions(modules: set[str]) -> dict[str, str]:
    """The distribution that provides each module (the module's own name when it is not installed)."""
    provided = packages_distributions()
    return {m: _name(provided.get(m, [m])[0]) for m in modules}


def test_every_module_the_sdk_and_contract_import_is_a_declared_dependency():
    core, extras = declared()
    optional = set().union(*extras.values())
    for folder in ("sdk", "chaincode"):
        for module, dist in distributions(imported(folder)).items():
            assert dist in core or dist in optional, f"{folder} imports {module} ({dist}), not in pyproject.toml"


def test_scipy_is_a_core_dependency_and_matplotlib_only_the_bench_extra():
    core, extras = declared()
    assert "scipy" in core  # blockfedml.data.metrics
    assert "matplotlib" not in core and "matplotlib" in extras["bench"]
    assert "matplotlib" not in distributions(imported("sdk")).values()


def test_tests_and_benchmarks_import_only_what_their_extras_declare():
    core, extras = declared()
    for folder, allowed in (("tests", core | extras["test"] | extras["torch"] | extras["bench"]),
                            ("bench", core | extras["test"] | extras["bench"] | extras["torch"])):
        for module, dist in distributions(imported(folder)).items():
            assert dist in allowed, f"{folder} imports {module} ({dist}), declared nowhere"
