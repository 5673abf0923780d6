"""A whole federated session on one machine, driven through the five phases.

The driver plays the admin (opening rounds and closing phases) and hands each
phase to every member; everything that matters is a signed ledger transaction,
so the session could equally be driven by separate processes. It also times
the ledger calls, so the ledger's share of a round is measured, not guessed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from blockfedml.consortium import Consortium
from blockfedml.errors import PhaseError
from blockfedml.fl.aggregation import make_aggregation
from blockfedml.fl.checkpoints import load_checkpoint
from blockfedml.fl.member import Member, from_fixed
from blockfedml.fl.task import member_data, task_model, task_split
from blockfedml.ledger.base import Contract


class TimedContract(Contract):
    """A contract that adds the time spent in each call to a shared counter."""

    def __init__(self, inner: Contract, clock: "LedgerClock") -> None:
        self.inner, self.clock = inner, clock

    def submit(self, function: str, *args: str) -> bytes:
        with self.clock:
            self.clock.submits += 1
            return self.inner.submit(function, *args)

    def evaluate(self, function: str, *args: str) -> bytes:
        with self.clock:
            return self.inner.evaluate(function, *args)


@dataclass
class LedgerClock:
    seconds: float = 0.0
    submits: int = 0
    _start: float = 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._start


@dataclass
class RoundResult:
    """One row of the session table."""

    round: int
    participants: list[str]
    aggregator: str
    digest: str
    status: str
    endorsed_metric: float | None
    test_accuracy: float
    reputation: dict[str, int]
    wall_seconds: float
    ledger_seconds: float
    metric: str = "accuracy"  # what test_accuracy measures: the task's metric (rmse, r2, ... for own data)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Session:
    """Drive ``rounds`` rounds of a consortium in this process."""

    consortium: Consortium
    mode: str = "plaintext"
    progress: Callable[[int, str], None] | None = None
    clock: LedgerClock = field(default_factory=LedgerClock)
    members: list[Member] | None = None  # members with their own data and model; None: the demo task's
    test: tuple[Any, Any] | None = None  # held-out (X, y) the table reports on, for own-data members

    def __post_init__(self) -> None:
        make_aggregation(self.mode)  # an unknown mode fails here, before any round is opened
        c = self.consortium
        n = len(c.members)
        self.admin = TimedContract(c.contract(c.admin.name), self.clock)
        if self.members is not None:  # own data (blockfedml.data): members built by the caller
            for member in self.members:
                member.contract = TimedContract(member.contract, self.clock)
            self.X_test, self.y_test = self.test if self.test is not None else (None, None)
            self._observer = self.members[0].model.clone()
            return
        self.members = [
            Member(
                msp_id=p.msp_id,
                contract=TimedContract(c.contract(p.name), self.clock),
                store=c.store,
                data=member_data(c.task, n, p.partition),
                model=task_model(c.task, n),
                task=c.task,
            )
            for p in c.members
        ]
        split = task_split(c.task, n)
        self.X_test, self.y_test = split.X_test, split.y_test
        self._observer = task_model(c.task, n)

    def join_all(self) -> None:
        """Activate every member that is only registered so far."""
        for member in self.members:
            org = member.contract.evaluate_json("GetOrg", member.msp_id)
            if org["status"] == "registered":
                member.join()

    def run(self, rounds: int) -> list[RoundResult]:
        self.join_all()
        return [self.run_round() for _ in range(rounds)]

    def run_round(self) -> RoundResult:
        started, ledger_before = time.perf_counter(), self.clock.seconds
        round_ = self.admin.submit_json("OpenRound", self.mode)
        number = round_["round"]
        self._step(number, "selection")
        self.admin.submit_json("CloseSelection", number)
        self._step(number, "configuration")
        self.admin.submit_json("Allocate", number)
        round_ = self._step(number, "update")
        aggregator = next(m for m in self.members if m.msp_id == round_["aggregator"])
        aggregator.aggregate(round_)
        self._step(number, "feedback")
        decided = self.admin.submit_json("Decide", number)
        return self._result(decided, started, ledger_before)

    def _step(self, number: int, phase: str) -> dict[str, Any]:
        round_ = self.admin.evaluate_json("GetRound", number)
        if round_["phase"] != phase:
            raise PhaseError(f"round {number} is in phase {round_['phase']}, expected {phase}")
        if self.progress:
            self.progress(number, phase)
        for member in self.members:
            member.act(round_)
        return round_

    def _result(self, round_: dict[str, Any], started: float, ledger_before: float) -> RoundResult:
        digest = round_["proposal"]["digest"]
        load_checkpoint(self.consortium.store, digest, self._observer)
        metric = self.members[0].metric
        accuracy = float("nan")  # own data without a held-out set
        if self.X_test is not None:
            from blockfedml.data.metrics import score_model

            scores = self._observer.evaluate(self.X_test, self.y_test)
            accuracy = float(scores[metric]) if metric in scores else \
                score_model(self._observer, self.X_test, self.y_test, metric)
        reputation = {
            m.msp_id: self.admin.evaluate_json("GetReputation", m.msp_id)["balance"] for m in self.members
        }
        decision = round_["decision"]
        return RoundResult(
            round=round_["round"],
            participants=list(round_["participants"]),
            aggregator=round_["aggregator"],
            digest=digest,
            status=decision["status"],
            endorsed_metric=from_fixed(decision.get("metric")),
            test_accuracy=accuracy,
            reputation=reputation,
            wall_seconds=time.perf_counter() - started,
            ledger_seconds=self.clock.seconds - ledger_before,
            metric=metric,
        )
