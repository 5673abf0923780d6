"""The admin's side of rounds whose members (and key holder) run in their own processes.

Processes meet only on the ledger (and the store, and the exchange): each
member runs ``blockfedml member round`` (or ``member run --data`` with its own
file), the key holder ``blockfedml member keyholder``, and the admin
``blockfedml admin round drive``, which is :func:`coordinate_rounds`: open a
round, close each phase once every expected member has acted in it, wait
while the aggregator (and, in a secure round, the key holder or the members
revealing shares) opens the sum and proposes, then decide.

Nobody polls on the embedded ledger: a waiter reads the ledger height, checks
its condition, and sleeps until the next block (``Consortium.wait_for_block``),
written by any process. A wait that runs out names what it was waiting for.

Stragglers and crashes (docs/operations.md): each phase has a deadline on the
ledger; when the members it waits for have not all acted by then, the
coordinator closes it with ``ClosePhase``: the round goes on with those who
acted (a member that did not commit is recorded absent, a missing aggregator is
replaced, quorums count those who remain) or is aborted when too few are left.
A phase without a deadline is closed after ``timeout`` with those who acted, if
the contract allows it. A coordinator started while a round is open resumes it
from its phase.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from blockfedml.consortium import Consortium
from blockfedml.crypto.paillier import load_or_create_private_key
from blockfedml.errors import ConflictError, InvalidInputError, LedgerError, NotFoundError, PhaseError
from blockfedml.fl.aggregation import make_aggregation
from blockfedml.fl.measures import fraction, shown
from blockfedml.fl.member import KeyHolder, remaining
from blockfedml.fl.recovery import close_when_due, pending, seconds_to_deadline
from blockfedml.ledger.base import Contract

T = TypeVar("T")
Progress = Callable[[str], None]

#: Extra attempts of an admin transaction after an MVCC conflict (the clients re-endorse twice already).
CONFLICT_RETRIES = 3


class Waiter:
    """Wait until a condition on the ledger holds, woken by new blocks (``Consortium.wait_for_block``)."""

    def __init__(self, consortium: Consortium, timeout: float) -> None:
        self.consortium = consortium
        self.timeout = timeout

    def until(self, check: Callable[[], T | None], what: str | Callable[[], str],
              timeout: float | None = None) -> T:
        """``check()``'s first true value; ``LedgerError`` naming ``what`` after the timeout."""
        value = self.within(check, timeout)
        if value:
            return value
        raise LedgerError(f"gave up after {self._limit(timeout):.0f} s waiting for "
                          f"{what() if callable(what) else what}")

    def within(self, check: Callable[[], T | None], timeout: float | None = None) -> T | None:
        """``check()``'s first true value, or its last (false) value once the timeout has passed."""
        limit = self._limit(timeout)
        deadline = time.monotonic() + limit
        while True:
            height = self.consortium.ledger_height()  # read first: a block landing meanwhile ends the wait
            value = check()
            if value or time.monotonic() > deadline:
                return value
            self.consortium.wait_for_block(height, timeout=min(1.0, limit))

    def _limit(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout


# -- the admin ---------------------------------------------------------------------------

def coordinate_rounds(consortium: Consortium, rounds: int, mode: str = "plaintext",
                      members: Iterable[str] | None = None, timeout: float = 300.0,
                      progress: Progress | None = None) -> list[dict[str, Any]]:
    """Drive ``rounds`` rounds of members that run in their own processes; one record per round.

    ``members`` (names or MSP IDs; default every member of the consortium) are
    the organizations each phase waits for, so a missing one is named rather
    than silently left out. Before the first round it waits for them to join
    and, in mode paillier, for a key holder's published key.
    """
    make_aggregation(mode)  # an unknown mode fails here, before anything is written
    if rounds < 1:
        raise InvalidInputError(f"rounds must be at least 1, not {rounds}")
    say = progress or (lambda _: None)
    admin = consortium.contract(consortium.admin.name)
    expected = sorted(consortium.org(m).msp_id for m in (members or [p.name for p in consortium.members]))
    if mode == "masking" and admin.evaluate_json("GetSettings").get("attribution"):
        raise InvalidInputError("attribution needs one opened sum per group and a masking round opens a "
                                "single sum: use the plaintext or paillier mode, or set attribution=0")
    if mode == "paillier" and not any("keyholder" in p.roles and not p.is_member for p in consortium.orgs):
        raise InvalidInputError(f"mode paillier needs a key holder that is not a member; the consortium in "
                                f"{consortium.workdir} has none (create it with --collaborator)")
    wait = Waiter(consortium, timeout)
    joined = lambda: {o["msp_id"] for o in admin.evaluate_json("ListOrgs") if o["status"] != "registered"}  # noqa: E731
    wait.within(lambda: set(expected) <= joined())
    if not set(expected) & joined():
        raise LedgerError(f"gave up after {timeout:.0f} s waiting for {_missing(expected, joined())} to join "
                          "(start their `blockfedml member round`)")
    if mode == "paillier":
        wait.until(lambda: _published_keyholders(admin),
                   "a key holder to publish its Paillier key (start `blockfedml member keyholder --org "
                   f"{_keyholder_name(consortium)}`)")
    driver = _RoundDriver(admin, wait, expected, mode, say)
    results = []
    last = admin.evaluate_json("GetHead")["last_round"]
    if last and admin.evaluate_json("GetRound", last)["phase"] != "closed":  # resume after a crash
        results.append(driver.run_round(last))
    while len(results) < rounds:
        results.append(driver.run_round())
    return results


class _RoundDriver:
    """One round at a time, from whatever phase it is in: wait for the members, close each phase, decide.

    A phase whose members have not all acted by its deadline on the ledger is closed
    with ``ClosePhase`` (the round goes on with those who acted, or is aborted when
    too few are left: docs/operations.md); without a deadline the driver waits
    ``timeout`` and then closes it as before, with those who acted.
    """

    STEPS = {"selection": "CloseSelection", "configuration": "Allocate", "attribution": "ScoreGroups",
             "feedback": "Decide"}

    def __init__(self, admin: Contract, wait: Waiter, expected: list[str], mode: str, say: Progress) -> None:
        self.admin, self.wait = admin, wait
        self.expected, self.mode, self.say = expected, mode, say
        self._late: tuple[str, list[str]] | None = None  # the last phase that went on without some members

    def run_round(self, number: int | None = None) -> dict[str, Any]:
        """Open a round and drive it to its end; with ``number``, resume that open round from its phase."""
        admin = self.admin
        if number is None:
            number = self._submit("OpenRound", None, self.mode)["round"]
            self.say(f"round {number} opened")
        else:
            self.say(f"round {number}: resuming in phase {self._round(number)['phase']}")
        known: dict[str, Any] | None = None  # the round as the last transaction left it (no re-read)
        while True:
            round_, known = known or self._round(number), None
            phase = round_["phase"]
            if phase == "closed":
                break
            if phase == "update" or (phase == "attribution" and round_["attribution"]["accepted"]):
                self._await_aggregator(number, phase)
                continue
            if phase == "attribution" and round_["attribution"]["accepted"] == []:  # every group harmed
                known = self._submit("Decide", phase, number)
                continue
            if not self._await_phase(number, phase):
                continue  # closed at its deadline (or by someone else)
            round_ = known = self._submit(self.STEPS[phase], phase, number)
            if phase in ("selection", "configuration") and round_["phase"] == "update":  # allocated
                self.say(f"round {number}: participants {round_['participants']}, aggregator {round_['aggregator']}"
                         + (f", key holder {round_['keyholder']}" if round_["mode"] == "paillier" else ""))
        decided = self._round(number)
        decision = decided["decision"]
        if decision["status"] == "aborted":
            self.say(f"round {number}: aborted in phase {decision['phase']} ({decision['reason']}); absent: "
                     f"{', '.join(decision['absentees']) or 'nobody'}")
        else:
            self.say(f"round {number}: {decision['status']} (validation metric "
                     f"{shown(fraction(decision.get('metric')))}: the members' median on their own validation data)")
        joined = [o["msp_id"] for o in admin.evaluate_json("ListOrgs")
                  if o["msp_id"] in self.expected and o["status"] != "registered"]
        return {"round": number, "mode": decided["mode"], "participants": decided["participants"],
                "aggregator": decided["aggregator"], "absent": decided.get("absent") or [],
                "digest": decided["proposal"]["digest"] if decided.get("proposal") else None,
                "status": decision["status"], "metric": decision.get("metric"),
                "reputation": {m: admin.evaluate_json("GetReputation", m)["balance"] for m in joined}}

    def _waiting(self, state: dict[str, Any]) -> list[str]:
        """Whom the phase waits for that this driver expects (selection: the members it drives)."""
        if state["phase"] == "selection":
            return [m for m in state["waiting_for"] if m in self.expected]
        return list(state["waiting_for"])

    def _await_phase(self, number: int, phase: str) -> bool:
        """Wait until everyone the phase waits for has acted. At the ledger deadline, close the phase
        with those who did (ClosePhase); without a deadline, after ``timeout`` go on with them.
        True when the phase is still open for the admin's closing transaction."""
        def settled() -> dict[str, Any] | None:
            state = pending(self.admin, number)
            left = seconds_to_deadline(state)
            if state["phase"] != phase or not self._waiting(state) or (left is not None and left <= 0):
                return state
            return None

        state = self.wait.within(settled)
        self._late = None
        if state is None:  # no deadline, and the driver's own timeout has passed
            late = self._waiting(pending(self.admin, number))
            self.say(f"round {number}: {phase}: going on without {', '.join(late)} (no action within "
                     f"{self.wait.timeout:.0f} s)")
            self._late = (phase, late)
            return True
        if state["phase"] == phase and self._waiting(state):
            self._close_at_deadline(number, phase, self._waiting(state))
            return False
        return state["phase"] == phase

    def _await_aggregator(self, number: int, phase: str) -> None:
        """Wait while the aggregator (and in a secure round the key holder, or the members revealing
        shares) opens the sum and proposes; at the deadline go on without members that did not commit,
        or with a new aggregator. An opening under way is waited for up to ``timeout``."""
        def settled() -> dict[str, Any] | None:
            state = pending(self.admin, number)  # one query per block: the phase and its deadline
            if state["phase"] != phase:
                return state
            left = seconds_to_deadline(state)
            if left is not None and left <= 0 and not self.admin.evaluate_json("GetDecryptions", number):
                return state
            return None

        state = self.wait.until(settled, lambda: self._update_pending(number)
                                + f"; `blockfedml admin round abort {number} --reason ...` ends the round")
        if state["phase"] == phase:
            self._close_at_deadline(number, phase, pending(self.admin, number)["waiting_for"])

    def _close_at_deadline(self, number: int, phase: str, missing: list[str]) -> None:
        self.say(f"round {number}: {phase}: deadline passed, closing the phase without {', '.join(missing)}")
        try:
            record = close_when_due(self.admin, number, limit=self.wait.timeout)
        except PhaseError:
            if self._round(number)["phase"] != phase:
                return  # someone else closed it meanwhile
            raise
        if record["phase"] == phase and record.get("closures"):
            self.say(f"round {number}: {phase} goes on with aggregator {record['aggregator']}; absent: "
                     f"{', '.join(record['absent'])}")

    def _submit(self, function: str, phase: str | None, *args: Any) -> dict[str, Any]:
        """An admin transaction; after an MVCC conflict, simulate again on the new state (unless
        the phase has moved on meanwhile). A refusal names the members the phase went on without."""
        late, self._late = self._late, None
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                return self.admin.submit_json(function, *args)
            except ConflictError as exc:
                if "[EXISTS]" in str(exc) or attempt == CONFLICT_RETRIES:
                    raise
                if phase is not None and self._round(args[0])["phase"] != phase:
                    return self._round(args[0])  # someone else closed it
            except PhaseError as exc:
                if phase is not None and self._round(args[0])["phase"] != phase:
                    return self._round(args[0])  # someone else closed it
                if late:
                    raise LedgerError(f"{exc}; the {late[0]} phase waited {self.wait.timeout:.0f} s for "
                                      f"{', '.join(late[1])} in vain") from exc
                raise
        raise AssertionError("unreachable")

    def _round(self, number: int) -> dict[str, Any]:
        return self.admin.evaluate_json("GetRound", number)

    def _update_pending(self, number: int) -> str:
        """What a round in its update phase is waiting for, in words (for a timeout's message)."""
        round_, admin = self._round(number), self.admin
        committed = {u["msp_id"] for u in admin.evaluate_json("GetUpdates", number)}
        participants = remaining(round_)
        if not set(participants) <= committed:
            return (f"round {number}: the updates of {_missing(participants, committed)} "
                    f"(aggregator {round_['aggregator']} proposes once every participant has committed)")
        pending_ = [r for r in admin.evaluate_json("GetDecryptions", number) if r["result"] is None]
        if pending_ and round_["mode"] == "paillier":
            return (f"round {number}: the key holder {round_['keyholder']} to decrypt sum {pending_[0]['index']} "
                    f"(is `blockfedml member keyholder` running?)")
        if pending_ and round_["mode"] == "masking":
            revealed = {r["msp_id"] for r in admin.evaluate_json("GetMaskReveals", number)}
            return (f"round {number}: mask share reveals ({len(revealed)} of the {round_['mask_threshold']} "
                    f"needed; not yet from {_missing(participants, revealed)}), then the aggregator "
                    f"{round_['aggregator']} to unmask and propose")
        return f"round {number}: the aggregator {round_['aggregator']} to propose"


# -- the key holder ----------------------------------------------------------------------

def run_keyholder(consortium: Consortium, org: str, rounds: int = 1, first: int | None = None,
                  timeout: float = 300.0, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Collaborator C in its own process: join, publish the key, decrypt every authorized sum of
    ``rounds`` rounds (from ``first``, default the open round or the next) as requests appear.

    The key stays in ``<its folder>/keys/paillier.key`` (created on first use, mode 0600).
    Returns one record per round: the indexes of the sums it opened and the round's decision.
    """
    say = progress or (lambda _: None)
    profile = consortium.org(org)
    if "keyholder" not in profile.roles:
        raise InvalidInputError(f"{profile.name} has no keyholder role in this consortium (roles: "
                                f"{', '.join(profile.roles)})")
    holder = KeyHolder(profile.msp_id, consortium.contract(profile.name), consortium.blobs(profile.name),
                       load_or_create_private_key(consortium.private_folder(profile.name) / "paillier.key"))
    if holder.contract.evaluate_json("GetOrg", profile.msp_id)["status"] == "registered":
        holder.join()
        say(f"{profile.msp_id} joined")
    from blockfedml.org_host import serving_blobs

    with serving_blobs(consortium, profile.name):  # its key and decryptions are fetched from it
        key = holder.publish_key()
        say(f"key {key['fingerprint'][:12]} ({key['bits']} bits, epoch {key['epoch']}) published")
        return _hold_keys(consortium, holder, first or next_round(holder.contract), rounds, timeout, say)


def _hold_keys(consortium: Consortium, holder: KeyHolder, first: int, rounds: int, timeout: float,
               say: Progress) -> list[dict[str, Any]]:
    wait = Waiter(consortium, timeout)
    results = []
    for number in range(first, first + rounds):
        opened: list[str] = []

        def step(number: int = number, opened: list[str] = opened) -> dict[str, Any] | None:
            try:
                round_ = holder.contract.evaluate_json("GetRound", number)
            except NotFoundError:
                return None  # not opened yet
            done = holder.act(round_)
            if done:
                opened.append(done)
                say(f"round {number}: {done}")
            return round_ if round_["phase"] == "closed" else None

        round_ = wait.until(step, f"round {number} to close")
        results.append({"round": number, "opened": opened, "decision": round_.get("decision")})
    return results


def next_round(contract: Contract) -> int:
    """The open round, or the next one when the latest is closed (1 before any)."""
    last = contract.evaluate_json("GetHead")["last_round"]
    if last and contract.evaluate_json("GetRound", last)["phase"] == "closed":
        return last + 1
    return last or 1


def _published_keyholders(admin: Contract) -> list[str]:
    published = []
    for org in admin.evaluate_json("ListOrgs"):
        if "keyholder" in org["roles"] and org["status"] == "active":
            try:
                admin.evaluate_json("GetPublicKey", org["msp_id"])
                published.append(org["msp_id"])
            except NotFoundError:
                pass
    return published


def _keyholder_name(consortium: Consortium) -> str:
    return next((p.name for p in consortium.orgs if "keyholder" in p.roles and not p.is_member), "<key holder>")


def _if(value: T, condition: Callable[[T], bool]) -> T | None:
    return value if condition(value) else None


def _missing(expected: Iterable[str], present: Any) -> str:
    return ", ".join(m for m in expected if m not in present) or "nobody"
