"""An organization's standing exchange server: its blobs, served to the consortium.

While an organization takes part in rounds, its ``member run`` (or key holder)
process hosts its exchange server, which receives updates when it aggregates
and serves its blob store. Between sessions (an auditor verifying history, a
member that joins late) ``blockfedml org serve`` keeps serving the store, like
a Fabric peer that stays up: it answers ``Fetch`` and ``Ping`` and refuses
updates (no round's aggregator runs here). ``org start`` / ``org stop`` run it
in the background, with its PID and log in the organization's own folder.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from blockfedml import daemons
from blockfedml.consortium import Consortium, service_reachable
from blockfedml.errors import ExchangeError, InvalidInputError, NotAuthorizedError, NotFoundError
from blockfedml.exchange.server import ExchangeServer

PID_FILE = "exchange.pid"
LOG_FILE = "exchange.log"
LOCK_FILE = "exchange-servers.lock"
START_TIMEOUT = 60.0


def _own(folder: Path | str) -> tuple[Consortium, str]:
    consortium = Consortium.open(folder)
    local = [o for o in consortium.orgs if o.is_local]
    if len(local) != 1:
        raise InvalidInputError(f"{folder} is not one organization's folder (it holds "
                                f"{', '.join(o.name for o in local) or 'none'}); give the folder of the "
                                "organization to serve, e.g. <workdir>/orgs/Org2")
    if not local[0].exchange:
        raise InvalidInputError(f"{local[0].name} has no exchange endpoint on its card: it serves nothing")
    return consortium, local[0].name


def build_server(folder: Path | str) -> ExchangeServer:
    """The blob server of the organization whose folder this is (not started)."""
    return blob_server(*_own(folder))


def blob_server(consortium: Consortium, name: str) -> ExchangeServer:
    """The organization's blob server (not started): its TLS keys, the consortium's TLS CAs, its store."""
    profile = consortium.org(name)

    def refuse(round_number: int, sender: str) -> None:
        raise NotAuthorizedError(f"{profile.msp_id}'s standing exchange server serves blobs only; updates for "
                                 f"round {round_number} go to the aggregator's `member run`")

    return ExchangeServer(consortium.tls_material(name), consortium.trust_store(),
                          str(profile.exchange), admit=refuse, blobs=consortium.blobs(name))


@contextmanager
def serving_blobs(consortium: Consortium, name: str) -> Iterator[ExchangeServer | None]:
    """Serve the organization's blobs while the block runs (a key holder's or an own-data member's
    process): its standing server (``org start``) hands over; if another process of it serves
    already (its ``member round``), that one goes on serving."""
    profile = consortium.org(name)
    hand_over(consortium, name)
    if not profile.exchange or service_reachable(profile.exchange):
        yield None
        return
    server = blob_server(consortium, name).start()
    try:
        yield server
    finally:
        server.stop()


def hand_over(consortium: Consortium, name: str) -> bool:
    """Stop the organization's standing server (``org start``), if one runs, so that a process
    taking part in rounds can host the organization's exchange endpoint itself."""
    folder = consortium.org_folder(name)
    if running_pid(folder) is None:
        return False
    try:
        stop_background(folder)
    except NotFoundError:
        return False
    return True


def ensure_serving(workdir: Path | str) -> list[str]:
    """The one-machine quick path: start the standing server of every organization of this work
    directory whose endpoint is not served yet, so a one-shot command of one organization can fetch
    the others' blobs (a process that takes part in rounds takes its own over: ``hand_over``).
    Returns the organizations started; a view of one organization starts nothing."""
    consortium = Consortium.open(workdir)
    local = [o for o in consortium.orgs if o.is_local and o.exchange]
    if consortium.fabric is not None or len([o for o in consortium.orgs if o.is_local]) < 2:
        return []
    started = []
    with daemons.exclusive(Path(workdir) / LOCK_FILE):  # one-shot commands started together start one each
        for profile in local:
            if service_reachable(str(profile.exchange)):
                continue
            try:
                start_background(consortium.org_folder(profile.name))
            except ExchangeError:
                continue  # a process of that organization took the endpoint meanwhile: it serves
            started.append(profile.name)
    return started


def serve(folder: Path | str, ready: Callable[[ExchangeServer], None] | None = None) -> None:
    """Serve until SIGTERM or SIGINT."""
    server = build_server(folder).start()
    stopping = {"now": False}

    def stop(signum: int, frame: object) -> None:
        stopping["now"] = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if ready is not None:
            ready(server)
        while not stopping["now"]:
            time.sleep(0.2)
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def running_pid(folder: Path | str) -> int | None:
    return daemons.running_pid(Path(folder) / PID_FILE)


def start_background(folder: Path | str, timeout: float = START_TIMEOUT) -> int:
    """Start ``blockfedml org serve`` detached; its PID once it accepts connections."""
    consortium, name = _own(folder)
    address = str(consortium.org(name).exchange)
    if service_reachable(address):
        raise ExchangeError(f"something already listens at {address} ({name}'s `member round`, or a server "
                            "started before: `blockfedml org stop`)")
    folder = Path(folder)
    return daemons.start(["org", "serve", "-d", str(folder)], folder / PID_FILE, folder / LOG_FILE,
                         lambda: service_reachable(address), timeout, f"{name}'s exchange server", ExchangeError)


def stop_background(folder: Path | str, timeout: float = 30.0) -> int:
    """Stop the server ``org start`` started (SIGTERM, then wait); its PID."""
    return daemons.stop(Path(folder) / PID_FILE, "exchange server started by `blockfedml org start`", timeout)
