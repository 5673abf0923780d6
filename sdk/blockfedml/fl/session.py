"""A whole federated session on one machine, driven through the five phases.

The driver plays the admin (opening rounds and closing phases) and hands each
phase to every member; everything that matters is a signed ledger transaction,
so the session could equally be driven by separate processes. It also times
the ledger calls, so the ledger's share of a round is measured, not guessed.
In the Paillier mode it also plays the consortium's key holders (organizations
with only the keyholder role, e.g. ``Collaborator``), each with its own key.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from blockfedml.consortium import Consortium
from blockfedml.crypto.paillier import load_or_create_private_key
from blockfedml.errors import InvalidInputError, PhaseError
from blockfedml.fl.aggregation import SecureAggregation, make_aggregation
from blockfedml.fl.attacks import HONEST, Attack, AttackPlan
from blockfedml.fl.attribution import reference_set
from blockfedml.fl.checkpoints import load_checkpoint
from blockfedml.fl.member import KeyHolder, Member, from_fixed
from blockfedml.fl.round_state import RoundSecrets
from blockfedml.fl.screening import Screener, SeedSet
from blockfedml.fl.strategy import Strategy
from blockfedml.fl.task import member_data, task_model, task_split
from blockfedml.ledger.base import Contract


class TimedContract(Contract):
    """A contract that adds the time spent in each call to a shared counter."""

    def __init__(self, inner: Contract, clock: "LedgerClock") -> None:
        self.inner, self.clock = inner, clock

    def submit(self, function: str, *args: str) -> bytes:
        started = time.perf_counter()
        try:
            return self.inner.submit(function, *args)
        finally:
            self.clock.add(time.perf_counter() - started, submits=1)

    def evaluate(self, function: str, *args: str) -> bytes:
        started = time.perf_counter()
        try:
            return self.inner.evaluate(function, *args)
        finally:
            self.clock.add(time.perf_counter() - started)


@dataclass
class LedgerClock:
    """Time spent in ledger calls, summed over members (who may call at once)."""

    seconds: float = 0.0
    submits: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, seconds: float, submits: int = 0) -> None:
        with self._lock:
            self.seconds += seconds
            self.submits += submits


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
    head: str = ""  # the head checkpoint after the decision (the proposal if accepted)
    head_accuracy: float = float("nan")  # test_accuracy of the head: what the federation holds now
    banned: list[str] = field(default_factory=list)  # members this decision banned
    groups: list[dict[str, Any]] | None = None  # attribution: each group's members, score and verdict

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
    attack: AttackPlan | None = None  # a share of the demo task's members attack (blockfedml.fl.attacks)
    screening: bool = False  # demo task members screen their data with the reference SVM at selection
    strategy: Strategy | None = None  # a plaintext aggregation rule other than FedAvg (median, krum, ...)
    stopped: str | None = None  # why run() ended before its rounds (e.g. every member banned), or None

    def __post_init__(self) -> None:
        make_aggregation(self.mode)  # an unknown mode fails here, before any round is opened
        c = self.consortium
        n = len(c.members)
        self.admin = TimedContract(c.contract(c.admin.name), self.clock)
        self.keyholders = [  # Paillier: collaborators holding a key, never members (docs/secure-aggregation.md)
            KeyHolder(p.msp_id, TimedContract(c.contract(p.name), self.clock), c.blobs(p.name),
                      load_or_create_private_key(c.private_folder(p.name) / "paillier.key"))
            for p in c.orgs if self.mode == "paillier" and "keyholder" in p.roles and not p.is_member
        ]
        if self.mode == "paillier" and not self.keyholders:  # fail before any round is opened
            raise InvalidInputError("mode paillier needs a key holder that is not a member (a Collaborator "
                                    "organization: Consortium.create(collaborator=True), or --collaborator)")
        if self.members is not None:  # own data (blockfedml.data): members built by the caller
            for member in self.members:
                member.contract = TimedContract(member.contract, self.clock)
            self.X_test, self.y_test = self.test if self.test is not None else (None, None)
            self._observer = self.members[0].model.clone()
            return
        split = task_split(c.task, n)
        behaviours = self.attack.behaviours([p.msp_id for p in c.members]) if self.attack else {}
        screener = Screener(SeedSet.from_split(split, seed=c.task.seed)) if self.screening else None
        reference = reference_set(c.task, n)  # attribution endorses on it (blockfedml.fl.attribution)
        self.members = []
        for p in c.members:
            behaviour = behaviours.get(p.msp_id, HONEST)
            data = member_data(c.task, n, p.partition)
            if isinstance(behaviour, Attack):  # data poisoning happens before anything else
                data = behaviour.poison_data(data, split.n_classes)
            self.members.append(Member(
                msp_id=p.msp_id,
                contract=TimedContract(c.contract(p.name), self.clock),
                store=c.blobs(p.name),
                data=data,
                model=task_model(c.task, n),
                task=c.task,
                behaviour=behaviour,
                screener=screener,
                strategy=self.strategy,
                round_secrets=RoundSecrets(c.private_folder(p.name) / "rounds"),
                reference=reference,
            ))
        self.X_test, self.y_test = split.X_test, split.y_test
        self._observer = task_model(c.task, n)

    def join_all(self) -> None:
        """Activate every member that is only registered so far."""
        for member in self.members:
            org = member.contract.evaluate_json("GetOrg", member.msp_id)
            if org["status"] == "registered":
                member.join()
        for holder in self.keyholders:
            if holder.contract.evaluate_json("GetOrg", holder.msp_id)["status"] == "registered":
                holder.join()
            holder.publish_key()

    def run(self, rounds: int) -> list[RoundResult]:
        """Up to ``rounds`` rounds; fewer when too few members are left to select (``stopped`` says
        why). A round left open (by a crash) is resumed first and counts as one."""
        self.join_all()
        results: list[RoundResult] = []
        for _ in range(rounds):
            if self.why_stop() is not None:
                break
            results.append(self.run_round(resume=True))
        return results

    def why_stop(self) -> str | None:
        """Why no further round can be selected, or None if one can.

        Checked before a round is opened, so a session whose members are banned
        ends cleanly instead of leaving a round stuck in selection on the ledger.
        Sets ``stopped`` to the reason.
        """
        need = self.admin.evaluate_json("GetSettings")["min_participants"]
        orgs = [o for o in self.admin.evaluate_json("ListOrgs") if "member" in o.get("roles", [])]
        active = [o["msp_id"] for o in orgs if o["status"] == "active"]
        if len(active) >= need:
            return None
        banned = [o["msp_id"] for o in orgs if o["status"] == "banned"]
        who = "every member is banned" if len(banned) == len(orgs) else \
            f"{len(active)} active member(s) left ({', '.join(active) or 'none'})"
        self.stopped = (f"{who} ({', '.join(banned)} banned for reputation below ban_threshold); a round needs "
                        f"min_participants={need} members, so no further round can be opened")
        return self.stopped

    def open_round(self) -> int | None:
        """The number of the last round if it is still open, else None."""
        last = self.admin.evaluate_json("GetHead")["last_round"]
        if last and self.admin.evaluate_json("GetRound", last)["phase"] != "closed":
            return last
        return None

    def run_round(self, resume: bool = False) -> RoundResult:
        """Open a round and drive it through its phases; with ``resume``, an open round is continued
        from its phase instead (members' actions already on the ledger are recognized)."""
        started, ledger_before = time.perf_counter(), self.clock.seconds
        number = self.open_round() if resume else None
        if number is None:
            number = self.admin.submit_json("OpenRound", self.mode)["round"]
        record = self.admin.evaluate_json("GetRound", number)
        if record["mode"] != self.mode:
            raise InvalidInputError(f"round {number} is open in mode {record['mode']}, not {self.mode}: resume it "
                                    f"in its mode (--mode {record['mode']}), or abort it "
                                    f"(`blockfedml admin round abort {number} --reason ...`)")
        phase = record["phase"]
        if phase == "selection":
            self._step(number, "selection")
            # "update" at once when every selected member accepted while screening (EnterRound)
            phase = self.admin.submit_json("CloseSelection", number)["phase"]
        if phase == "configuration":
            self._step(number, "configuration")
            self.admin.submit_json("Allocate", number)
            phase = "update"
        if phase == "feedback":
            self._step(number, "feedback")
            return self._result(self.admin.submit_json("Decide", number), started, ledger_before)
        if phase != "update":
            raise PhaseError(f"round {number} is in phase {phase}: `blockfedml admin round drive` resumes it, "
                             f"or `blockfedml admin round abort {number} --reason ...` ends it")
        round_ = self._step(number, "update")
        aggregator = next(m for m in self.members if m.msp_id == round_["aggregator"])
        if self.admin.evaluate_json("GetSettings").get("attribution"):  # groups first (docs/integrity.md)
            if aggregator.propose_groups(round_) is None:  # secure: each group's sum is opened first
                self._open_sums(number, aggregator, aggregator.propose_groups)
            self._step(number, "attribution")
            round_ = self.admin.submit_json("ScoreGroups", number)
        if round_.get("attribution") is None or round_["attribution"]["accepted"]:
            aggregator.aggregate(round_)
            current = self.admin.evaluate_json("GetRound", number)
            if current["phase"] == "closed":  # excluded contributions left too few: the round was aborted
                return self._result(current, started, ledger_before)
            if round_.get("attribution") is None:  # with attribution the groups' sums are open already
                self._open_sums(number, aggregator)
            self._step(number, "feedback")
        decided = self.admin.submit_json("Decide", number)  # a round whose groups all harmed is rejected
        return self._result(decided, started, ledger_before)

    def _open_sums(self, number: int, aggregator: Member,
                   propose: Callable[[dict[str, Any]], Any] | None = None) -> None:
        """Secure modes: the members reveal shares or the key holder decrypts what the ledger
        authorized, then the aggregator proposes from the opened sum (``propose``: the
        aggregate, or with attribution the groups' aggregates)."""
        if not isinstance(make_aggregation(self.mode), SecureAggregation):
            return
        round_ = self.admin.evaluate_json("GetRound", number)
        for member in self.members:
            member.act(round_)  # masking: reveal the shares the recorded contributor set calls for
        for holder in self.keyholders:
            holder.act(round_)  # paillier: decrypt the authorized sum
        if (propose or aggregator.aggregate)(round_) is None:
            raise PhaseError(f"round {number}: the sum was not opened (no key holder decrypted it, or fewer "
                             "members revealed shares than the threshold)")

    def _step(self, number: int, phase: str) -> dict[str, Any]:
        round_ = self.admin.evaluate_json("GetRound", number)
        if round_["phase"] != phase:
            raise PhaseError(f"round {number} is in phase {round_['phase']}, expected {phase}")
        if self.progress:
            self.progress(number, phase)
        members = self.members
        if phase == "selection":  # banned members are out for good
            active = {o["msp_id"] for o in self.admin.evaluate_json("ListOrgs") if o["status"] == "active"}
            members = [m for m in members if m.msp_id in active]
        if self.consortium.kind == "fabric":
            # Members act at once, as separate organizations would: each of their
            # transactions writes its own keys, so a phase costs one block time, not n.
            with ThreadPoolExecutor(max_workers=len(members) or 1) as pool:
                list(pool.map(lambda member: member.act(round_), members))
        else:  # one SQLite connection per process: the embedded ledger takes them in turn
            for member in members:
                member.act(round_)
        return round_

    def _score(self, digest: str) -> float:
        """The task's metric of a checkpoint on the held-out test set (NaN without one)."""
        load_checkpoint(self.consortium.store, digest, self._observer)
        metric = self.members[0].metric
        accuracy = float("nan")  # own data without a held-out set
        if self.X_test is not None:
            from blockfedml.data.metrics import score_model

            scores = self._observer.evaluate(self.X_test, self.y_test)
            accuracy = float(scores[metric]) if metric in scores else \
                score_model(self._observer, self.X_test, self.y_test, metric)
        return accuracy

    def _result(self, round_: dict[str, Any], started: float, ledger_before: float) -> RoundResult:
        head = self.admin.evaluate_json("GetHead")["checkpoint"]
        digest = round_["proposal"]["digest"] if round_["proposal"] else ""  # none when rejected
        accuracy = self._score(digest or head)
        metric = self.members[0].metric
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
            head=head,
            head_accuracy=accuracy if head == (digest or head) else self._score(head),
            banned=list(decision.get("banned", [])),
            groups=round_["attribution"]["groups"] if round_.get("attribution") else None,
        )
