"""Running a consortium's ledger service: in the foreground, or in the background.

``blockfedml ledger serve`` runs ``serve`` in the foreground (as a system
service manager would run it); ``ledger start`` launches that same command as
a detached process, records its PID in ``ledger-service.pid`` and returns once
the service accepts connections; ``ledger stop`` ends it. ``admin round
drive`` calls ``ensure_running`` so that members in their own processes always
have a ledger to talk to. Everything the service needs comes from the
consortium's files: the address (``consortium.json``), the node's keys and TLS
certificate (the node's folder, ``ledger/`` on the quick path) and the organizations' TLS CAs.
"""

from __future__ import annotations

import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from blockfedml import daemons
from blockfedml.consortium import SERVICE_WAIT_SECONDS, Consortium, service_reachable, wait_for_service
from blockfedml.errors import InvalidInputError, LedgerError, NotFoundError
from blockfedml.ledger.embedded import EmbeddedLedger
from blockfedml.ledger.embedded.service import LedgerService, ServiceTLS

PID_FILE = "ledger-service.pid"
LOG_FILE = "ledger-service.log"
LOCK_FILE = "ledger-service.lock"


def build_service(workdir: Path | str, address: str | None = None) -> LedgerService:
    """The ledger service of the consortium in ``workdir`` (not started yet)."""
    consortium = Consortium.open(workdir, ledger_access="direct")
    if consortium.fabric is not None or consortium.service is None:
        raise InvalidInputError(f"the consortium in {workdir} has no embedded ledger service "
                                "(it runs on Fabric, whose peers are its ledger)")
    node = consortium.ledger_node()
    node_dir = consortium.workdir / consortium.service.node_dir
    server_tls = node_dir / "peers" / consortium.service.server_name / "tls"
    roots = b"".join(org.tls_ca_cert.encode("ascii") for org in consortium.orgs if org.tls_ca_cert)
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
    return daemons.running_pid(Path(workdir) / PID_FILE)


def start_background(workdir: Path | str, timeout: float = SERVICE_WAIT_SECONDS) -> int:
    """Start ``blockfedml ledger serve`` detached; return its PID once it accepts connections."""
    consortium = Consortium.open(workdir, ledger_access="direct")
    if consortium.service is None:
        raise InvalidInputError(f"the consortium in {workdir} has no embedded ledger service")
    address = consortium.service.address
    if service_reachable(address):
        raise LedgerError(f"something already listens at {address} (a ledger service "
                          "started before?): `blockfedml ledger status` says which")
    workdir = Path(workdir)
    return daemons.start(["ledger", "serve", "-w", str(workdir)], workdir / PID_FILE, workdir / LOG_FILE,
                         lambda: service_reachable(address), timeout, "the ledger service", LedgerError)


def ensure_running(workdir: Path | str) -> int | None:
    """Start the background service unless it is reachable; the PID if this call started it."""
    consortium = Consortium.open(workdir, ledger_access="direct")
    if consortium.service is None or consortium.fabric is not None:
        return None
    if service_reachable(consortium.service.address) or consortium.service.node_dir is None:
        return None  # up already, or run by the ledger's operator on its own host: members wait for it
    with daemons.exclusive(Path(workdir) / LOCK_FILE):  # members started together start one service
        if service_reachable(consortium.service.address):
            return None
        return start_background(workdir)


def stop_background(workdir: Path | str, timeout: float = 30.0) -> int:
    """Stop the background service (SIGTERM, then wait); its PID. ``NotFoundError`` if none runs."""
    return daemons.stop(Path(workdir) / PID_FILE, "ledger service started by `blockfedml ledger start`", timeout)


__all__ = ["build_service", "ensure_running", "running_pid", "serve", "serving", "start_background",
           "stop_background", "wait_for_service"]
