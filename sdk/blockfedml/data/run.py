"""Sessions whose members bring their own tables: in one process, or one process per member.

- :func:`own_data_session` — every member's file on this machine, one process
  (scripts, notebooks, tests): validates every file, runs the federated
  statistics, returns a :class:`blockfedml.fl.session.Session`.
- :func:`run_member` — what ``blockfedml member run --data FILE`` does in a
  member's own process: check the file, join, take part in the statistics,
  then in ``rounds`` rounds.
- :func:`coordinate` — the admin's side when members run elsewhere
  (``blockfedml admin round run`` on such a consortium): fix the statistics
  parties and the scaler, then open rounds and close each phase once every
  member has acted in it.

Processes meet only on the ledger and the store; they wait for each other by
watching the ledger grow (a new block wakes the waiter at once on the
embedded ledger; on Fabric it polls, see ``Consortium.wait_for_block``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from blockfedml.consortium import Consortium
from blockfedml.data.federated import (
    StatsParty, close_keys, finalize_scaler, require_schema, run_statistics, stats_status, verified_scaler,
)
from blockfedml.data.schema import DataSchema
from blockfedml.data.stats import Scaler, prepare
from blockfedml.data.table import LocalTable, load_table
from blockfedml.errors import InvalidInputError, NotFoundError
from blockfedml.fl.coordinator import Waiter, coordinate_rounds
from blockfedml.fl.member import Member
from blockfedml.fl.round_state import RoundSecrets
from blockfedml.fl.session import Session
from blockfedml.fl.task import task_model
from blockfedml.ml.models import Model

T = TypeVar("T")
Progress = Callable[[str], None]
DataSource = Path | str | LocalTable


# -- building members ------------------------------------------------------------------

def own_member(consortium: Consortium, org: str, table: LocalTable, scaler: Scaler,
               model: Model | None = None, val_fraction: float = 0.2) -> Member:
    """A member training on its own (scaled, split) table with the consortium's model."""
    profile = consortium.org(org)
    if not profile.is_member:
        raise InvalidInputError(f"{profile.name} has no member role in this consortium")
    schema = table.schema
    return Member(
        msp_id=profile.msp_id,
        contract=consortium.contract(profile.name),
        store=consortium.blobs(profile.name),
        data=prepare(table, scaler, val_fraction, seed=consortium.task.seed),
        model=model.clone() if model is not None else task_model(consortium.task, len(consortium.members), schema),
        task=consortium.task,
        metric=schema.metric,
        round_secrets=RoundSecrets(consortium.private_folder(profile.name) / "rounds"),
    )


def own_data_session(consortium: Consortium, data: Mapping[str, DataSource], model: Model | None = None,
                     mode: str = "plaintext", val_fraction: float = 0.2, test: DataSource | None = None,
                     progress: Callable[[int, str], None] | None = None) -> Session:
    """A session of members with their own files (organization name or MSP ID -> file), in this process.

    Every file is checked against the schema first; a bad one raises before
    anything is written. Members that are only registered join; the
    federated statistics run unless the current epoch already has a scaler
    (then it is verified and reused). ``test``, a held-out file, is what the
    session's table reports on.
    """
    admin = consortium.contract(consortium.admin.name)
    schema, _ = require_schema(admin, consortium.store)
    tables = {consortium.org(org).name: _table(source, schema) for org, source in data.items()}
    held_out = _table(test, schema) if test is not None else None
    for org in tables:
        contract = consortium.contract(org)
        if contract.evaluate_json("GetOrg", consortium.org(org).msp_id)["status"] == "registered":
            contract.submit_json("Join")
    status = stats_status(admin)
    if status["scaler"] is None:
        parties = [StatsParty(consortium.org(org).msp_id, consortium.contract(org), consortium.blobs(org), table)
                   for org, table in tables.items()]
        scaler = run_statistics(admin, consortium.store, schema, parties)
    else:
        scaler = verified_scaler(consortium.store, schema, status)
    members = [own_member(consortium, org, table, scaler, model, val_fraction) for org, table in tables.items()]
    test_xy = (scaler.transform(held_out.X), held_out.y) if held_out is not None else None
    return Session(consortium, mode=mode, progress=progress, members=members, test=test_xy)


def _table(source: DataSource, schema: DataSchema) -> LocalTable:
    if isinstance(source, LocalTable):
        if source.schema != schema:
            raise InvalidInputError(f"{source.path} was checked against another schema than the agreed one")
        return source
    return load_table(source, schema)


# -- a member in its own process -------------------------------------------------------

def run_member(consortium: Consortium, org: str, data: Path | str, label: str | None = None,
               rounds: int = 1, model: Model | None = None, val_fraction: float = 0.2,
               timeout: float = 300.0, progress: Progress | None = None) -> list[dict[str, Any]]:
    """A member's whole part in an own-data session: returns one record per round it took part in.

    The file is read and checked against the agreed schema before anything is
    sent; then the organization joins (if it has not), takes part in the
    federated statistics (if the current epoch has no scaler yet), verifies
    the scaler, and acts in every phase of the next ``rounds`` rounds.
    """
    from blockfedml.org_host import serving_blobs

    with serving_blobs(consortium, org):  # the others fetch its statistics key, update and more from it
        return _run_member(consortium, org, data, label, rounds, model, val_fraction, timeout, progress)


def _run_member(consortium: Consortium, org: str, data: Path | str, label: str | None, rounds: int,
                model: Model | None, val_fraction: float, timeout: float,
                progress: Progress | None) -> list[dict[str, Any]]:
    say = progress or (lambda _: None)
    profile = consortium.org(org)
    contract = consortium.contract(profile.name)
    schema, _ = require_schema(contract, consortium.store)
    table = load_table(data, schema, label)  # the check: nothing has been sent yet
    say(f"{data}: {table.n_rows} rows fit the schema ({table.rows_dropped} dropped, "
        f"{table.n_missing} missing cells to impute)")
    if contract.evaluate_json("GetOrg", profile.msp_id)["status"] == "registered":
        contract.submit_json("Join")
        say(f"{profile.msp_id} joined")
    wait = Waiter(consortium, timeout)
    scaler = _statistics(consortium, profile.msp_id, contract, schema, table, wait, say)
    member = own_member(consortium, profile.name, table, scaler, model, val_fraction)
    head = contract.evaluate_json("GetHead")
    first = head["last_round"] or 1
    if head["last_round"] and contract.evaluate_json("GetRound", head["last_round"])["phase"] == "closed":
        first = head["last_round"] + 1
    return [_take_part(member, number, wait, say) for number in range(first, first + rounds)]


def _statistics(consortium: Consortium, msp_id: str, contract: Any, schema: DataSchema, table: LocalTable,
                wait: Waiter, say: Progress) -> Scaler:
    status = stats_status(contract)
    if status["scaler"] is None and status["parties"] is None:
        party = StatsParty(msp_id, contract, consortium.store, table)
        if msp_id in status["keys"]:
            raise InvalidInputError(f"{msp_id} already published a statistics key for epoch {status['epoch']} "
                                    "(a previous run that stopped?); the admin restarts the statistics with "
                                    "`blockfedml admin schema set` (same file)")
        party.publish_key(status["epoch"])
        say(f"statistics epoch {status['epoch']}: key published, waiting for the parties to be fixed")
        status = wait.until(lambda: _if(stats_status(contract), lambda s: s["parties"] is not None),
                            "the admin to fix the statistics parties")
        if msp_id in status["parties"]:
            party.commit(status)
            say("masked statistics committed")
    status = wait.until(lambda: _if(stats_status(contract), lambda s: s["scaler"] is not None),
                        "the scaler of the federated statistics")
    scaler = verified_scaler(consortium.store, schema, status)
    say(f"scaler {status['scaler']['digest'][:12]} verified against the members' statistics")
    return scaler


def _take_part(member: Member, number: int, wait: Waiter, say: Progress) -> dict[str, Any]:
    """Act in each phase of round ``number`` (waiting for it to open) until it closes."""
    def step() -> dict[str, Any] | None:
        try:
            round_ = member.contract.evaluate_json("GetRound", number)
        except NotFoundError:
            return None
        done = member.act(round_)
        if done:
            say(f"round {number}: {round_['phase']}: {done}")
        if member.ready_to_aggregate(round_):
            if member.aggregate(round_) is not None:  # secure: None while the sum is being opened
                say(f"round {number}: update: aggregate")
        return round_ if round_["phase"] == "closed" else None

    round_ = wait.until(step, f"round {number} to close")
    return {"round": number, "decision": round_.get("decision"), "aggregator": round_.get("aggregator"),
            "participants": round_.get("participants")}


# -- the admin, when members run elsewhere -----------------------------------------------

def coordinate(consortium: Consortium, rounds: int, mode: str = "plaintext", members: list[str] | None = None,
               timeout: float = 300.0, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Drive an own-data session whose members run :func:`run_member` in their own processes.

    Waits for every expected member (default: all members of the
    consortium), so a missing one is named rather than silently left out.
    The statistics step is this module's; the rounds, in any mode, are
    :func:`blockfedml.fl.coordinator.coordinate_rounds`'s (Paillier: the key
    holder runs ``blockfedml member keyholder``). Returns one record per round
    (decision, endorsed metric, participants).
    """
    say = progress or (lambda _: None)
    admin = consortium.contract(consortium.admin.name)
    schema, _ = require_schema(admin, consortium.store)
    expected = sorted(consortium.org(m).msp_id for m in (members or [p.name for p in consortium.members]))
    wait = Waiter(consortium, timeout)

    status = stats_status(admin)
    if status["scaler"] is None:
        if status["parties"] is None:
            say(f"statistics epoch {status['epoch']}: waiting for the keys of {expected}")
            wait.until(lambda: all(m in stats_status(admin)["keys"] for m in expected),
                       lambda: f"statistics keys from {_missing(expected, stats_status(admin)['keys'])} "
                               "(start their `blockfedml member run`)")
            close_keys(admin, status["epoch"])
        wait.until(lambda: _complete(stats_status(admin)),
                   lambda: f"the masked statistics of {_missing(expected, stats_status(admin)['commits'])}")
        record = finalize_scaler(admin, consortium.store, schema)
        say(f"scaler {record['digest'][:12]} recorded ({record['scaler']['rows']} rows in all)")

    results = coordinate_rounds(consortium, rounds, mode=mode, members=expected, timeout=timeout, progress=say)
    return [{**r, "metric_name": schema.metric} for r in results]


def _if(value: T, condition: Callable[[T], bool]) -> T | None:
    return value if condition(value) else None


def _complete(status: dict[str, Any]) -> bool:
    return status["parties"] is not None and all(p in status["commits"] for p in status["parties"])


def _missing(expected: list[str], present: Any) -> str:
    return ", ".join(m for m in expected if m not in present) or "nobody"
