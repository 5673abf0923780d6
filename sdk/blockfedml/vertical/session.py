"""Run a whole vertical session in one process: three parties, three threads, in-process queues.

This is the driver of the tests, the benchmark and ``blockfedml vertical demo
--in-process``. Each party still has its own ledger identity (its
organization signs its own transactions) and its own private model store;
only the message transport is a set of queues instead of the exchange. For
parties as separate processes, see ``blockfedml vertical party``.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from blockfedml.consortium import Consortium
from blockfedml.store import ModelStore
from blockfedml.vertical.data import PartyData
from blockfedml.vertical.he import RANDOMNESS, PaillierKeyPair
from blockfedml.vertical.ledger import VerticalLedger
from blockfedml.vertical.collaborator import Collaborator
from blockfedml.vertical.parties import PartyA, PartyB, PartyResult
from blockfedml.vertical.protocol import VerticalSettings
from blockfedml.vertical.transport import DEFAULT_TIMEOUT, Endpoint, LocalHub, SessionAborted

DEFAULT_ROLES = {"A": "Org1", "B": "Org2", "C": "Org3"}
"""Who plays which part in a consortium made by :func:`create_vertical_consortium`."""


def create_vertical_consortium(workdir: Path | str, overwrite: bool = False) -> Consortium:
    """Three organizations for A, B and C (Org3 also holds the keyholder role), all joined, plus an auditor."""
    consortium = Consortium.create(workdir, n_orgs=3, keyholder=True, overwrite=overwrite)
    for org in consortium.members:
        consortium.contract(org.name).submit_json("Join")
    return consortium


def party_store(consortium: Consortium, org: str) -> ModelStore:
    """An organization's private store of vertical model parts (never shared with the others)."""
    return ModelStore(consortium.org_folder(org) / "vertical")


def new_session_id() -> str:
    return f"vfl-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


@dataclass
class VerticalRun:
    """The three parties' results of one session."""

    session: str
    a: PartyResult
    b: PartyResult
    c: PartyResult
    seconds: float
    parties: dict[str, Any] = field(default_factory=dict, repr=False)  # the party objects (tests, benchmarks)

    @property
    def seconds_per_iteration(self) -> float:
        """Mean wall time of an iteration, as party B (which starts and ends each one) measured it."""
        return sum(self.b.seconds) / max(1, len(self.b.seconds))

    def to_dict(self) -> dict[str, Any]:
        return {"session": self.session, "seconds": self.seconds, "A": asdict(self.a), "B": asdict(self.b),
                "C": asdict(self.c)}


def run_in_process(a_data: PartyData, b_data: PartyData, settings: VerticalSettings, *,
                   session: str | None = None, consortium: Consortium | None = None,
                   roles: dict[str, str] = DEFAULT_ROLES, test_ids: Sequence[Any] = (),
                   wrap: Callable[[Endpoint], Endpoint] | None = None, randomness: str = RANDOMNESS,
                   timeout: float = DEFAULT_TIMEOUT, absent: Sequence[str] = (),
                   keys: PaillierKeyPair | None = None, precompute: int = 0) -> VerticalRun:
    """Train (and, with ``test_ids``, evaluate) a vertical model with the three parties as threads.

    Without a consortium nothing is recorded on a ledger. ``wrap`` decorates
    each party's endpoint (the tests record every message a party receives);
    ``absent`` names parties that never start (to test an unreachable peer);
    ``keys`` gives C a key pair instead of a fresh one (tests reuse one);
    ``precompute``: A and B make that many iterations' random factors before training.
    The first real error of any party is raised once all threads stopped.
    """
    session = session or new_session_id()
    hub = LocalHub()
    endpoints = {p: hub.endpoint(p) for p in "ABC"}
    if wrap is not None:
        endpoints = {p: wrap(e) for p, e in endpoints.items()}
    msp = {p: consortium.org(org).msp_id for p, org in roles.items()} if consortium else \
        {p: f"Party{p}MSP" for p in "ABC"}

    def ledger(p: str) -> VerticalLedger | None:
        return VerticalLedger(consortium.contract(roles[p])) if consortium else None

    def store(p: str) -> ModelStore | None:
        return party_store(consortium, roles[p]) if consortium else None

    parties = {
        "A": PartyA(endpoints["A"], a_data, ledger("A"), store("A"), msp["A"], randomness, timeout,
                    precompute=precompute),
        "B": PartyB(endpoints["B"], b_data, session, msp, settings, ledger("B"), store("B"), msp["B"],
                    randomness, timeout, test_ids=test_ids, precompute=precompute),
        "C": Collaborator(endpoints["C"], ledger("C"), msp["C"], timeout, keys),
    }
    errors: dict[str, BaseException] = {}

    def run(party: str) -> None:
        try:
            parties[party].run()
        except BaseException as exc:  # collected and re-raised below
            errors[party] = exc

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(p,), name=f"vertical-{p}") for p in "ABC" if p not in absent]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        root = [e for e in errors.values() if not isinstance(e, SessionAborted)] or list(errors.values())
        raise root[0]
    return VerticalRun(session, parties["A"].result, parties["B"].result, parties["C"].result,
                       time.perf_counter() - started, parties)
