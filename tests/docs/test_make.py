"""``make demo`` on a fresh clone: the installer stays quiet unless it fails."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


@pytest.mark.slow
def test_make_demo_prints_the_demo_not_the_installer(clone, tmp_path):
    repo = clone
    result = subprocess.run(["make", "demo", "ARGS=--rounds 1"], cwd=repo, capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "WARNING" not in output and "pip" not in output and "setuptools" not in output, output
    assert "Installing BlockFedML into .venv (log: .venv/install.log)" in output
    assert "accepted" in output and "Audit it:" in output
    assert (repo / ".venv" / "install.log").exists() and (repo / ".venv" / "bin" / "blockfedml").exists()


def test_a_failed_install_shows_the_installers_output_and_fails(clone, tmp_path):
    repo = clone
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path / "nowhere"),
           "PIP_CONFIG_FILE": os.devnull}
    result = subprocess.run(["make", "demo"], cwd=repo, capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert "Installing BlockFedML failed" in result.stdout and "install.log" in result.stdout
    assert "ERROR" in result.stdout  # pip's own words, from the log
    assert not (repo / ".venv" / ".installed").exists()
