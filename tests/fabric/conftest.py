"""Fabric tests: skipped, with the reason, unless FABRIC_BIN holds Fabric's release binaries.

Tests marked ``fabric`` share one real network (session scope) brought up and
torn down through the CLI in a temporary run folder; the plain tests in this
folder (configuration, error mapping, the CCaaS fixes) run everywhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REQUIRED_BINARIES = ("peer", "orderer", "configtxgen", "cryptogen", "osnadmin")


def fabric_bin_problem() -> str | None:
    """Why the Fabric tests cannot run here, or None when they can."""
    folder = os.environ.get("FABRIC_BIN")
    if not folder:
        return "FABRIC_BIN is not set (point it at the bin/ folder of a Fabric v3 release to run these)"
    missing = [b for b in REQUIRED_BINARIES if not os.access(Path(folder) / b, os.X_OK)]
    if missing:
        return f"FABRIC_BIN={folder} lacks {', '.join(missing)}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problem = fabric_bin_problem()
    if problem is None:
        return
    skip = pytest.mark.skip(reason=f"Fabric test skipped: {problem}")
    for item in items:
        if item.get_closest_marker("fabric") is not None:
            item.add_marker(skip)


def run_cli(*args: str, run_dir: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run the ``blockfedml`` command of this environment."""
    exe = Path(sys.executable).with_name("blockfedml")
    return subprocess.run([str(exe), *args, "--run-dir", str(run_dir)], capture_output=True, text=True,
                          check=check, timeout=300)


@pytest.fixture
def blockfedml():
    """The ``blockfedml`` command, run with ``--run-dir``."""
    return run_cli


@pytest.fixture(scope="session")
def fabric_network(tmp_path_factory: pytest.TempPathFactory):
    """A running network with the chaincode deployed: {run_dir, profile, up_seconds, deploy_seconds}."""
    run_dir = tmp_path_factory.mktemp("fabric") / "run"
    started = time.perf_counter()
    up = run_cli("admin", "network", "up", run_dir=run_dir, check=False)
    assert up.returncode == 0, up.stderr
    up_seconds = time.perf_counter() - started
    started = time.perf_counter()
    deploy = run_cli("admin", "chaincode", "deploy", run_dir=run_dir, check=False)
    assert deploy.returncode == 0, deploy.stderr
    info = {"run_dir": run_dir, "profile": run_dir / "network.json", "up_seconds": up_seconds,
            "deploy_seconds": time.perf_counter() - started, "up_log": up.stderr, "deploy_log": deploy.stderr}
    yield info
    run_cli("admin", "network", "down", run_dir=run_dir, check=False)
