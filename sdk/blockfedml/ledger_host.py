"""Running a consortium's ledger service: in the foreground, or in the background.

``blockfedml ledger serve`` runs ``serve`` in the foreground (as a system
service manager would run it); ``ledger start`` launches that same command as
a detached process, records its PID in ``ledger-service.pid`` and returns once
the service accepts connections; ``ledger stop`` ends it. ``admin round
drive`` calls ``ensure_running`` so that members in their own processes always
have a ledger to talk to. Everything the service needs comes from the
consortium's files: the address (``consortium.json``), the node's keys and TLS
certificate (``ledger-node/``) and the organizations' TLS CAs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from blockfedml.consortium import SERVICE_WAIT_SECONDS, Consortium, service_reachable, wait_for_service
from blockfedml.errors import InvalidInputError, LedgerError, NotFoundError
from blockfedml.ledger.embedded import EmbeddedLedger
from blockfedml.ledger.embedded.service import LedgerService, ServiceTLS

PID_FILE = "ledger-service.pid"
LOG_FILE = "ledger-service.log"


def build_service(workdir: Path | str, address: str | None = None) -> LedgerService:
    """The ledger service of the consortium in ``workdir`` (not started yet)."""
    consortium = Consortium.open(workdir, ledger_access="direct")
    if consortium.fabric is not None or consortium.service is None:
        raise InvalidInputError(f"the consortium in {workdir} has no embedded ledger service "
                                "(it runs on Fabric, whose peers are its ledger)")
    node = consortium.ledger_node()
    node_dir = consortium.workdir / consortium.service.node_dir
    server_tls = node_dir / "peers" / consortium.service.server_name / "tls"
    roots = b"".join(consortium.tls_material(org.name).read(consortium.tls_material(org.name).ca_cert)
                     for org in consortium.orgs)
    try:
        tls = ServiceTLS((server_tls / "server.crt").read_bytes(), (server_tls / "server.key").read_bytes(), roots)
    except OSError as exc:
        raise InvalidInputError(f"cannot read the ledger service's TLS files in {server_tls}: {exc}") from exc
    ledger = EmbeddedLedger.open(consortium.ledger_path, node=node)
    try:
        return LedgerService(ledger, address or consortium.service.address, tls)
    except BaseException:
        ledger.close()
        raise


def serve(workdir: Path | str, address: str | None = None,
          ready: Callable[[LedgerService], None] | None = None) -> None:
    """Run the service until SIGTERM or SIGINT; ``ready(service)`` is called once it listens."""
    service = build_service(workdir, address)
    stopping = {"now": False}

    def stop(signum: int, frame: object) -> None:
        stopping["now"] = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    service.start()
    try:
        if ready is not None:
            ready(service)
        while not stopping["now"]:
            service.wait_for_termination(0.2)
    finally:
        service.stop()
        service.ledger.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def serving(workdir: Path | str) -> Iterator[LedgerService]:
    """The service running in this process (threads) for as long as the block runs: for a
    process that holds every identity and starts the others (the vertical demo)."""
    service = build_service(workdir).start()
    try:
        yield service
    finally:
        service.stop()
        service.ledger.close()


def running_pid(workdir: Path | str) -> int | None:
    """The PID of the background service started for ``workdir``, if it is alive."""
    path = Path(workdir) / PID_FILE
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def start_background(workdir: Path | str, timeout: float = SERVICE_WAIT_SECONDS) -> int:
    """Start ``blockfedml ledger serve`` detached; return its PID once it accepts connections."""
    consortium = Consortium.open(workdir, ledger_access="direct")
    if consortium.service is None:
        raise InvalidInputError(f"the consortium in {workdir} has no embedded ledger service")
    if service_reachable(consortium.service.address):
        raise LedgerError(f"something already listens at {consortium.service.address} (a ledger service "
                          "started before?): `blockfedml ledger status` says which")
    workdir = Path(workdir)
    log = open(workdir / LOG_FILE, "ab")
    process = subprocess.Popen([sys.executable, "-m", "blockfedml.cli.main", "ledger", "serve", "-w", str(workdir)],
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    log.close()
    (workdir / PID_FILE).write_text(f"{process.pid}\n")
    deadline = time.monotonic() + timeout
    while not service_reachable(consortium.service.address):
        if process.poll() is not None:
            raise LedgerError(f"the ledger service exited with code {process.returncode}; see {workdir / LOG_FILE}")
        if time.monotonic() >= deadline:
            process.terminate()
            raise LedgerError(f"the ledger service did not come up within {timeout:g} s; see {workdir / LOG_FILE}")
        time.sleep(0.05)
    return process.pid


def ensure_running(workdir: Path | str) -> int | None:
    """Start the background service unless it is reachable; the PID if this call started it."""
    consortium = Consortium.open(workdir, ledger_access="direct")
    if consortium.service is None or consortium.fabric is not None:
        return None
    if service_reachable(consortium.service.address):
        return None
    return start_background(workdir)


def stop_background(workdir: Path | str, timeout: float = 30.0) -> int:
    """Stop the background service (SIGTERM, then wait); its PID. ``NotFoundError`` if none runs."""
    pid = running_pid(workdir)
    if pid is None:
        raise NotFoundError(f"no ledger service started by `blockfedml ledger start` runs for {workdir}")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        _reap(pid)
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
    (Path(workdir) / PID_FILE).unlink(missing_ok=True)
    return pid


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)  # our own child (started in this process): collect it
    except ChildProcessError:
        pass


__all__ = ["build_service", "ensure_running", "running_pid", "serve", "serving", "start_background",
           "stop_background", "wait_for_service"]
