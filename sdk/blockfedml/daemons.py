"""Background processes of this package (the ledger service, an organization's exchange server):
started detached with a PID file and a log in their own folder, stopped with SIGTERM."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from blockfedml.errors import BlockFedMLError, NotFoundError


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an advisory lock on ``lock_file`` (processes of one machine that would start the same
    background process check and start it one at a time)."""
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def running_pid(pid_file: Path) -> int | None:
    """The PID in ``pid_file`` if that process is alive."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def start(arguments: list[str], pid_file: Path, log_file: Path, ready: Callable[[], bool], timeout: float,
          what: str, error: type[BlockFedMLError]) -> int:
    """Run ``blockfedml <arguments>`` detached; its PID once ``ready()`` (polled: another process's
    state), or ``error`` naming the log when it exits first or ``timeout`` passes."""
    with open(log_file, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "blockfedml.cli.main", *arguments], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    pid_file.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise error(f"{what} exited with code {process.returncode}; see {log_file}")
        if time.monotonic() >= deadline:
            process.terminate()
            raise error(f"{what} did not come up within {timeout:g} s; see {log_file}")
        time.sleep(0.05)
    return process.pid


def stop(pid_file: Path, what: str, timeout: float = 30.0) -> int:
    """SIGTERM the process of ``pid_file`` and wait (SIGKILL after ``timeout``); its PID."""
    pid = running_pid(pid_file)
    if pid is None:
        raise NotFoundError(f"no {what} runs for {pid_file.parent}")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        try:
            os.waitpid(pid, os.WNOHANG)  # our own child (started in this process): collect it
        except ChildProcessError:
            pass
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return pid
