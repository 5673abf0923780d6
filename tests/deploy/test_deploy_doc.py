"""docs/deploy.md, run as written: one machine playing six hosts.

Each host of the page (the ledger's operator, three hospitals, the collaborator, the
auditor) runs its commands as **its own Unix user**, in its own home folder that no other
user can read, on its own loopback address (127.0.0.10-.15). Files move between hosts
only where the page says so (``<!-- deploy: copy ... -->``): the test is the courier, as
e-mail would be. So no process can read another organization's keys or blobs: a blob one
needs is fetched over the producer's exchange server, or the run fails.

Running as other users needs root (CI runs as root); elsewhere the test skips and says why.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "deploy.md"
USER_PREFIX = "bfml-"
STEP_TIMEOUT = 900.0

pytestmark = pytest.mark.slow


@dataclass
class Run:
    host: str
    script: str
    background: bool = False
    exits: tuple[int, ...] = (0,)


@dataclass
class Copy:
    source: tuple[str, str]
    targets: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Wait:
    pass


_DEPLOY = re.compile(r"^<!-- deploy: (.*?) -->\s*$")


def steps(text: str) -> list[Run | Copy | Wait]:
    """The page's steps in order: blocks to run (as a host), copies between hosts, waits."""
    lines, found, i = text.splitlines(), [], 0
    while i < len(lines):
        match = _DEPLOY.match(lines[i])
        i += 1
        if not match:
            continue
        words = match.group(1).split()
        if words[0] == "copy":
            pairs = [tuple(w.split(":", 1)) for w in words[1:]]
            found.append(Copy(pairs[0], pairs[1:]))
        elif words[0] == "wait":
            found.append(Wait())
        else:
            while lines[i].startswith("<!--"):
                i += 1
            assert lines[i].startswith("```"), f"deploy.md line {i + 1}: a block must follow <!-- deploy: {words[0]} -->"
            end = lines.index("```", i + 1)
            exits = tuple(int(w) for w in words[words.index("exit") + 1:]) if "exit" in words else (0,)
            found.append(Run(words[0], "\n".join(lines[i + 1:end]), "background" in words, exits))
            i = end + 1
    return found


def test_the_page_parses_into_hosts_copies_and_waits():
    parsed = steps(DOC.read_text())
    hosts = {s.host for s in parsed if isinstance(s, Run)}
    assert hosts == {"ledger", "hospital1", "hospital2", "hospital3", "collaborator", "auditor"}
    assert sum(isinstance(s, Wait) for s in parsed) == 2
    assert any(isinstance(s, Copy) and s.source == ("hospital1", "bundle.json") for s in parsed)


class Machine:
    """Unix users standing for hosts, each with a private home under one base folder."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.users: dict[str, pwd.struct_passwd] = {}
        self.opened: list[tuple[Path, int]] = []  # folders made traversable, with their old mode
        self.venv_bin = Path(sys.executable).parent

    def user(self, host: str) -> pwd.struct_passwd:
        if host not in self.users:
            name = USER_PREFIX + host
            try:
                pwd.getpwnam(name)
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", "--user-group", "--shell",
                                "/usr/sbin/nologin", name], check=True, capture_output=True)
            entry = pwd.getpwnam(name)
            home = self.home(host)
            home.mkdir(mode=0o700)
            os.chown(home, entry.pw_uid, entry.pw_gid)
            self.users[host] = entry
        return self.users[host]

    def home(self, host: str) -> Path:
        return self.base / host

    def open_path_to(self, path: Path) -> None:
        """Let other users traverse (not list) the folders leading to the interpreter and the code."""
        for folder in [p for p in Path(path).resolve().parents]:
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                self.opened.append((folder, stat.S_IMODE(mode)))
                os.chmod(folder, stat.S_IMODE(mode) | stat.S_IXOTH)

    def start(self, step: Run) -> subprocess.Popen:
        entry = self.user(step.host)
        env = {"PATH": f"{self.venv_bin}:/usr/bin:/bin", "HOME": str(self.home(step.host)), "COLUMNS": "200",
               "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        return subprocess.Popen(["bash", "-e", "-c", step.script], cwd=self.home(step.host), env=env,
                                user=entry.pw_uid, group=entry.pw_gid, extra_groups=[], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def as_user(self, host: str, *command: str) -> subprocess.CompletedProcess:
        entry = self.user(host)
        return subprocess.run(list(command), cwd=self.home(host), user=entry.pw_uid, group=entry.pw_gid,
                              extra_groups=[], capture_output=True, text=True, timeout=60)

    def copy(self, step: Copy) -> None:
        source = self.home(step.source[0]) / step.source[1]
        for host, relative in step.targets:
            entry = self.user(host)
            target = self.home(host) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chown(target.parent, entry.pw_uid, entry.pw_gid)
            shutil.copyfile(source, target)
            os.chown(target, entry.pw_uid, entry.pw_gid)

    def close(self) -> None:
        for entry in self.users.values():
            subprocess.run(["pkill", "-KILL", "-u", entry.pw_name], capture_output=True)
        for folder, mode in reversed(self.opened):
            os.chmod(folder, mode)
        shutil.rmtree(self.base, ignore_errors=True)
        for entry in self.users.values():
            subprocess.run(["userdel", entry.pw_name], capture_output=True)


def _finish(process: subprocess.Popen, step: Run, timeout: float = STEP_TIMEOUT) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode in step.exits, (f"{step.host} failed (exit {process.returncode}):\n{step.script}\n"
                                              f"--- stdout\n{out[-4000:]}\n--- stderr\n{err[-4000:]}")
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: each organization runs as its own Unix user "
                                              "(CI runs the tests as root)")
@pytest.mark.skipif(shutil.which("useradd") is None, reason="needs useradd to make one Unix user per host")
def test_three_hospitals_on_three_machines_as_written():
    machine = Machine(Path(tempfile.mkdtemp(prefix="bfml-deploy-", dir="/tmp")))
    os.chmod(machine.base, 0o711)  # users reach their own homes; nobody lists the others
    for path in (Path(sys.executable), Path(os.path.realpath(sys.executable)), REPO / "sdk"):
        machine.open_path_to(path)
    background: list[tuple[subprocess.Popen, Run]] = []
    outputs: list[tuple[str, str]] = []
    try:
        for step in steps(DOC.read_text()):
            if isinstance(step, Copy):
                machine.copy(step)
            elif isinstance(step, Wait):
                for process, run in background:
                    _finish(process, run)
                background.clear()
            elif step.background:
                background.append((machine.start(step), step))
            else:
                outputs.append((step.host, _finish(machine.start(step), step)))
            if isinstance(step, Run) and step.host == "hospital2" and "org init" in step.script:
                _no_organization_reads_another(machine)
        verdict = [out for host, out in outputs if host == "auditor"][-1]
        assert "0 failed" in verdict and "FAIL " not in verdict, verdict
        assert "PASS  ledger" in verdict and "PASS  checkpoints" in verdict and "PASS  aggregates" in verdict
    finally:
        for process, _ in background:
            process.kill()
        machine.close()


def _no_organization_reads_another(machine: Machine) -> None:
    """Hospital2's user cannot read Hospital1's keys, nor the ledger node's."""
    for owner, folder in (("hospital1", "org"), ("ledger", "node")):
        keys = list((machine.home(owner) / folder).rglob("priv_sk"))
        assert keys
        attempt = machine.as_user("hospital2", "cat", str(keys[0]))
        assert attempt.returncode != 0 and "Permission denied" in attempt.stderr
