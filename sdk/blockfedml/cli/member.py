"""``blockfedml member``: what an organization runs beside its peer."""

from __future__ import annotations

import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import typer

from blockfedml.cli.common import JsonOption, WorkdirOption, console, emit, err_console, handle_errors, records_table
from blockfedml.consortium import Consortium
from blockfedml.errors import InvalidInputError, LedgerError, NotFoundError
from blockfedml.exchange import open_transport
from blockfedml.fl.measures import fraction, shown
from blockfedml.fl.attribution import reference_set
from blockfedml.fl.member import Member
from blockfedml.fl.recovery import describe, pending
from blockfedml.fl.round_state import RoundSecrets
from blockfedml.fl.task import member_data, task_model

app = typer.Typer(help="Consortium members: join, and take part in rounds.", no_args_is_help=True)
OrgOption = typer.Option(..., "--org", "-o", help="Your organization (name or MSP ID), e.g. Org2.")


# A member process that takes part in rounds reaches the ledger only through the ledger service
# (waiting for it to come up); one-shot commands use it when it is up (``Consortium.open``).
LEDGER_ACCESS = "service"


def _open(workdir: Path, org: str, one_shot: bool = False) -> Consortium:
    """The consortium as ``org`` alone sees it: its own folder, the others' public material, the
    ledger through its service. On the quick path (one folder holding every organization and the
    ledger node) the service is started in the background first unless it runs, and for a one-shot
    command the organizations' standing exchange servers too, so it can fetch their blobs."""
    from blockfedml import ledger_host, org_host

    started = ledger_host.ensure_running(workdir)
    if started is not None:
        err_console.print(f"started the ledger service (pid {started}); stop it with "
                          f"`blockfedml ledger stop -w {workdir}`", highlight=False)
    if one_shot:
        serving = org_host.ensure_serving(workdir)
        if serving:
            err_console.print(f"started the exchange servers of {', '.join(serving)} (they serve their blobs; "
                              f"`blockfedml org stop -d {workdir}/orgs/<Org>` stops one)", highlight=False)
    return Consortium.open(workdir, ledger_access=LEDGER_ACCESS, org=org)


def _member(consortium: Consortium, org: str) -> Member:
    profile = consortium.org(org)
    if not profile.is_member or profile.partition is None:
        raise InvalidInputError(f"{profile.name} has no member role in this consortium")
    n = len(consortium.members)
    return Member(
        msp_id=profile.msp_id,
        contract=consortium.contract(profile.name),
        store=consortium.blobs(profile.name),
        data=member_data(consortium.task, n, profile.partition),
        model=task_model(consortium.task, n),
        task=consortium.task,
        round_secrets=RoundSecrets(consortium.private_folder(profile.name) / "rounds"),
        reference=reference_set(consortium.task, n),
    )


@app.command("join")
@handle_errors
def join(org: str = OrgOption, workdir: Path = WorkdirOption, as_json: bool = JsonOption) -> None:
    """Activate your registered organization; it starts at the reputation baseline."""
    record = _member(_open(workdir, org), org).join()
    emit(record, as_json, lambda r: records_table("Joined", [r], ["msp_id", "roles", "status"]))


@app.command("round")
@handle_errors
def take_part(
    org: str = OrgOption,
    number: int = typer.Option(0, "--round", "-r", help="Round number (default: the open round, or the next "
                                                        "one, waiting for it to open)."),
    rounds: int = typer.Option(1, "--rounds", min=1, help="Take part in this many consecutive rounds."),
    exchange: str = typer.Option(
        "auto", "--exchange", help="How updates reach the aggregator: grpc (mutual TLS, this org's endpoint "
        "in consortium.json), store (the shared model store), or auto (grpc when the org has an endpoint)."),
    timeout: float = typer.Option(300.0, help="Give up after this many seconds without the round closing."),
    workdir: Path = WorkdirOption,
    as_json: bool = JsonOption,
) -> None:
    """Take part in rounds from start to end, acting in each phase as it opens.

    Run one of these per member, each in its own process; the admin advances
    the phases (``blockfedml admin round advance``) or drives whole rounds
    (``blockfedml admin round drive``). A registered organization joins first.
    With the gRPC exchange the process runs its organization's exchange server
    for as long as it takes part, and sends its sealed update only to the
    round's aggregator.
    """
    from blockfedml.fl.coordinator import next_round

    consortium = _open(workdir, org)
    member = _member(consortium, org)
    from blockfedml.exchange.transport import GrpcTransport
    from blockfedml.org_host import serving_blobs

    member.transport = open_transport(consortium, org, exchange, contract=member.contract)  # binds the port first:
    try:  # a process that cannot serve its exchange never joins, so no coordinator waits for it
        # its exchange server serves its blobs; with the store transport a blob server alone does
        with nullcontext() if isinstance(member.transport, GrpcTransport) else serving_blobs(consortium, org):
            if member.contract.evaluate_json("GetOrg", member.msp_id)["status"] == "registered":
                member.join()
            number = number or next_round(member.contract)
            results = [_take_part(consortium, member, n, timeout, as_json) for n in range(number, number + rounds)]
    finally:
        member.transport.close()
    emit(results[0] if rounds == 1 else results, as_json,
         lambda r: records_table("Rounds", [_decision_row(x) for x in results],
                                 ["round", "status", VALIDATION_METRIC, "endorsements"]))


#: How often ``member round`` repeats what it is waiting for (s).
STATUS_EVERY = 5.0


def _take_part(consortium: Consortium, member: Member, number: int, timeout: float, quiet: bool) -> dict:
    """Act in every phase of round ``number`` (waiting for it to open) until it closes.

    Says what it is waiting for at once and every few seconds, so a member whose
    round nobody drives, or whose partners are gone, is not left guessing.
    """
    deadline = time.monotonic() + timeout
    actions: list[dict] = []
    said, last_status = 0.0, ""
    while True:
        height = consortium.ledger_height()  # read first: a block landing meanwhile ends the wait at once
        try:
            round_ = member.contract.evaluate_json("GetRound", number)
        except NotFoundError:
            round_ = None  # not opened yet
        if round_ is not None:
            done = member.act(round_)
            if done:
                actions.append({"round": number, "phase": round_["phase"], "action": done})
                if not quiet:
                    console.print(f"round {number}: {round_['phase']}: {done}", highlight=False)
            # A secure round opens its sum in steps (decryption, mask reveals): aggregate()
            # returns None until the proposal is made, and the loop waits for the next block.
            if member.ready_to_aggregate(round_) and member.aggregate(round_) is not None:
                actions.append({"round": number, "phase": "update", "action": "aggregate"})
                continue
            if round_["phase"] == "closed":
                consortium.record_tip(member.msp_id)  # a signed witness of the chain, in its own folder
                return {"round": number, "actions": actions, "decision": round_.get("decision")}
        status = _status(member, number, round_)
        if not quiet and (status != last_status or time.monotonic() - said >= STATUS_EVERY):
            console.print(status, highlight=False)
            said, last_status = time.monotonic(), status
        if time.monotonic() > deadline:
            phase = round_["phase"] if round_ else "not opened"
            raise LedgerError(f"round {number} did not close within {timeout:.0f} s (phase {phase}); "
                              f"{status}")
        consortium.wait_for_block(height, timeout=1.0)  # woken by the next block, from any process


def _status(member: Member, number: int, round_: dict | None) -> str:
    """What this member is waiting for, in words."""
    if round_ is None:
        return (f"round {number}: waiting for it to open (`blockfedml admin round drive` or `admin round run` "
                "opens it)")
    state = describe(pending(member.contract, number))
    if member.msp_id in (round_.get("absent") or []):
        return f"{state}; {member.msp_id} was recorded absent and waits for the round to close"
    return state


@app.command("tip")
@handle_errors
def tip(org: str = OrgOption, workdir: Path = WorkdirOption) -> None:
    """Print (and keep, in the organization's folder) the newest orderer-signed block header it has
    seen: a witness an auditor holds the chain to (`audit verify --witness`)."""
    consortium = _open(workdir, org)
    record = consortium.record_tip(org)
    if record is None:
        raise InvalidInputError(f"the ledger {org}'s node serves holds no block yet")
    sys.stdout.write(json.dumps(record, sort_keys=True) + "\n")


@app.command("keyholder")
@handle_errors
def keyholder(
    org: str = OrgOption,
    number: int = typer.Option(0, "--round", "-r", help="First round (default: the open round, or the next one)."),
    rounds: int = typer.Option(1, "--rounds", min=1, help="Serve this many consecutive rounds."),
    timeout: float = typer.Option(300.0, help="Give up after this many seconds without the round closing."),
    workdir: Path = WorkdirOption,
    as_json: bool = JsonOption,
) -> None:
    """Be the key holder (collaborator C) in its own process: decrypt the sums the ledger authorizes.

    Joins if registered, publishes the Paillier public key (the private key stays in
    ``<workdir>/keys/<org>/paillier.key``), then decrypts every sum the rounds' aggregators
    have asked the ledger to open, as the requests appear (docs/secure-aggregation.md).
    """
    from blockfedml.fl.coordinator import run_keyholder

    say = (lambda _: None) if as_json else (lambda line: console.print(line, highlight=False))
    results = run_keyholder(_open(workdir, org), org, rounds=rounds, first=number or None, timeout=timeout,
                            progress=say)
    emit(results, as_json, lambda r: records_table(
        "Key holder", [{**_decision_row(x), "opened": ", ".join(x["opened"]) or "-"} for x in r],
        ["round", "opened", "status", VALIDATION_METRIC]))


# -- members with their own data (docs/own-data.md) ---------------------------------------

DataOption = typer.Option(..., "--data", "-d", help="Your table: a CSV or Parquet file that fits the agreed schema.")
LabelOption = typer.Option(None, "--label", help="Your label column; must be the schema's (a guard against "
                                                 "pointing at the wrong consortium).")


@app.command("check")
@handle_errors
def check(org: str = OrgOption, data: Path = DataOption, label: str = LabelOption, workdir: Path = WorkdirOption,
          as_json: bool = JsonOption) -> None:
    """Check your file against the agreed schema; sends nothing, writes nothing."""
    from blockfedml.data import load_table
    from blockfedml.data.federated import require_schema

    consortium = _open(workdir, org, one_shot=True)
    schema, record = require_schema(consortium.contract(consortium.org(org).name), consortium.store)
    table = load_table(data, schema, label)
    info = {"file": str(data), "schema": record["digest"], "rows": table.rows_read, "usable_rows": table.n_rows,
            "dropped_rows": table.rows_dropped, "missing_cells": table.n_missing, "features": schema.n_features,
            "label": schema.label}
    emit(info, as_json, lambda i: records_table(f"{data} fits schema {record['digest'][:12]}", [i],
                                                ["rows", "usable_rows", "dropped_rows", "missing_cells", "features"]))


@app.command("run")
@handle_errors
def run(
    org: str = OrgOption,
    data: Path = DataOption,
    label: str = LabelOption,
    rounds: int = typer.Option(1, "--rounds", min=1, help="Take part in this many rounds, then stop."),
    val_fraction: float = typer.Option(0.2, help="Share of your rows kept aside to judge proposals on."),
    timeout: float = typer.Option(300.0, help="Give up when a step waits this long for the others (s)."),
    workdir: Path = WorkdirOption,
    as_json: bool = JsonOption,
) -> None:
    """Train on your own file: check it, join, compute the federated scaler, take part in rounds.

    Nothing is sent before the file has passed the schema check. Run one per
    member, each in its own process; the admin runs ``blockfedml admin round
    run`` to coordinate. Your rows never leave this process: only masked
    statistics and model updates do.
    """
    from blockfedml.data.run import run_member

    say = (lambda _: None) if as_json else (lambda line: console.print(line, highlight=False))
    consortium = _open(workdir, org)
    results = run_member(consortium, org, data, label=label, rounds=rounds, val_fraction=val_fraction,
                         timeout=timeout, progress=say)
    rows = [{**_decision_row(r), "aggregator": r["aggregator"]} for r in results]
    emit(results, as_json, lambda _: records_table(f"{consortium.org(org).name}: rounds", rows,
                                                    ["round", "aggregator", "status", VALIDATION_METRIC,
                                                     "endorsements"]))


@app.command("evaluate")
@handle_errors
def evaluate(
    org: str = OrgOption,
    data: Path = DataOption,
    label: str = LabelOption,
    number: int = typer.Option(None, "--round", "-r", help="Checkpoint of this round (default: the head)."),
    workdir: Path = WorkdirOption,
    as_json: bool = JsonOption,
) -> None:
    """Score the consortium's model on a file of yours (held-out data): every metric of the task."""
    from blockfedml.data import load_table
    from blockfedml.data.federated import require_schema, stats_status, verified_scaler
    from blockfedml.fl.checkpoints import load_checkpoint
    from blockfedml.fl.task import task_model

    consortium = _open(workdir, org, one_shot=True)
    contract = consortium.contract(consortium.org(org).name)
    schema, _ = require_schema(contract, consortium.store)
    table = load_table(data, schema, label)
    scaler = verified_scaler(consortium.store, schema, stats_status(contract))
    checkpoint = (contract.evaluate_json("GetHead") if number is None
                  else contract.evaluate_json("GetCheckpoint", number))
    digest = checkpoint.get("checkpoint") or checkpoint["digest"]
    model = load_checkpoint(consortium.store, digest, task_model(consortium.task, len(consortium.members), schema))
    scores = model.evaluate(scaler.transform(table.X), table.y)
    if schema.metric not in scores:
        from blockfedml.data.metrics import score_model

        scores[schema.metric] = score_model(model, scaler.transform(table.X), table.y, schema.metric)
    info = {"file": str(data), "checkpoint": digest, "round": checkpoint["round"], "rows": table.n_rows,
            **{k: round(v, 6) for k, v in scores.items()}}
    emit(info, as_json, lambda i: records_table(f"Checkpoint of round {i['round']} ({digest[:10]}) on {data}", [i],
                                                ["rows", *scores]))


VALIDATION_METRIC = "validation metric"  # the members' median on their own validation data, as a fraction


def _decision_row(result: dict) -> dict:
    """A round's decision for a table: the ledger's integer metric shown as the fraction it stands for."""
    decision = result.get("decision") or {}
    return {"round": result["round"], **decision, VALIDATION_METRIC: shown(fraction(decision.get("metric")))}
