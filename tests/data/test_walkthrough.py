"""docs/own-data.md's walkthrough, run exactly as written: its ``sh`` blocks, in order, in one shell.

Four processes (three members and the admin) meet on one embedded ledger, as
the newcomer following the page would run them; the test then checks what
the page promises: five accepted rounds with three members, a scaler on the
ledger, a model that scores well on the held-out file, and a clean audit.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from blockfedml.consortium import Consortium

from data_helpers import ROOT

DOC = ROOT / "docs" / "own-data.md"


def walkthrough_commands() -> list[str]:
    section = DOC.read_text().split("## Walkthrough", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)]


@pytest.mark.slow
def test_the_walkthrough_runs_as_written(tmp_path) -> None:
    commands = walkthrough_commands()
    assert len(commands) >= 5 and any("member run" in c for c in commands)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "COLUMNS": "200"}
    script = "set -euo pipefail\n" + "\n".join(commands) + "\n"
    process = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)  # the shell and the members it started, nothing else
        output, _ = process.communicate()
        pytest.fail(f"the walkthrough did not finish in 300 s:\n{output[-3000:]}")
    assert process.returncode == 0, output[-3000:]

    assert "fits schema" in output and "scaler" in output
    table = re.findall(r"│ (\d) +│ 3 +│ ([01]\.\d{4}) +│ [0-9a-f]{10} │ (\w+) ", output)
    assert [(r, s) for r, _, s in table] == [(str(i), "accepted") for i in range(1, 6)], output[-3000:]
    scores = re.search(r"│ 113 +│ ([01]\.\d+) +│ ([01]\.\d+) +│ ([01]\.\d+) +│", output)
    assert scores and float(scores.group(1)) > 0.95, output[-2000:]  # accuracy on the held-out rows
    assert "OK: 0 failed" in output
    for org in (1, 2, 3):
        log = (tmp_path / "runs" / f"hospitals-org{org}.log").read_text()
        assert "verified against the members' statistics" in log and "round 5: feedback: endorse" in log

    consortium = Consortium.open(tmp_path / "runs" / "hospitals")
    auditor = consortium.contract("Auditor")
    stats = auditor.evaluate_json("data:GetStats")
    assert stats["parties"] == ["Org1MSP", "Org2MSP", "Org3MSP"] and stats["scaler"]["scaler"]["rows"] == 456
    assert auditor.evaluate_json("GetSettings")["higher_is_better"] == 1
    assert json.loads(consortium.store.get(auditor.evaluate_json("data:GetSchema")["digest"]))["label"] == {
        "classes": ["malignant", "benign"], "name": "diagnosis"}
    consortium.close()
