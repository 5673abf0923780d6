"""``blockfedml admin``: create the consortium, manage organizations, settings and rounds."""

from __future__ import annotations

from pathlib import Path

import typer

from blockfedml.cli import fabric_admin
from blockfedml.cli.common import (
    JsonOption,
    WorkdirOption,
    console,
    emit,
    err_console,
    handle_errors,
    parse_settings,
    records_table,
)
from blockfedml.consortium import DEFAULT_HOST, ROLES, Consortium
from blockfedml.errors import InvalidInputError, NotFoundError, PhaseError
from blockfedml.fl.measures import VALIDATION, fraction, key, label, shown
from blockfedml.fl.session import Session
from blockfedml.fl.task import TaskSpec

app = typer.Typer(help="Network admins: the consortium, its organizations, settings and rounds.", no_args_is_help=True)
consortium_app = typer.Typer(help="Create or inspect the consortium on the embedded ledger.", no_args_is_help=True)
org_app = typer.Typer(help="Organizations and their roles.", no_args_is_help=True)
settings_app = typer.Typer(help="Federation settings (quorum, rewards, penalties, thresholds).", no_args_is_help=True)
round_app = typer.Typer(help="Open and advance rounds.", no_args_is_help=True)
schema_app = typer.Typer(help="The data schema members' own files must fit (docs/own-data.md).", no_args_is_help=True)
app.add_typer(consortium_app, name="consortium")
app.add_typer(schema_app, name="schema")
app.add_typer(org_app, name="org")
app.add_typer(settings_app, name="settings")
app.add_typer(round_app, name="round")
for _name, _sub_app in fabric_admin.SUBAPPS.items():  # network, chaincode, channel (Fabric)
    app.add_typer(_sub_app, name=_name)


@consortium_app.command("create")
@handle_errors
def create(
    workdir: Path = WorkdirOption,
    orgs: int = typer.Option(3, "--orgs", min=1, help="Number of member organizations (Org1 is also admin)."),
    dataset: str = typer.Option("breast_cancer", help="breast_cancer or digits."),
    partition: str = typer.Option("iid", help="iid or non-iid."),
    model: str = typer.Option("auto", help="auto, logreg, softmax, mlp, sklearn:<Estimator>[{json options}] "
                                           "or torch:<file.py>:<Class> (the last two with --schema)."),
    seed: int = typer.Option(0, help="Seed of the split and of training."),
    setting: list[str] = typer.Option([], "--setting", "-s", help="Federation setting key=value (repeatable)."),
    auditor: bool = typer.Option(True, help="Add a read-only Auditor organization."),
    keyholder: bool = typer.Option(False, help="Give the last organization the keyholder role."),
    collaborator: bool = typer.Option(False, help="Add a Collaborator organization holding only the keyholder "
                                                  "role: the key holder of --secure paillier rounds."),
    force: bool = typer.Option(False, "--force", help="Replace an existing consortium in WORKDIR."),
    schema: Path = typer.Option(None, "--schema", help="A data schema (JSON): members bring their own files "
                                                        "instead of --dataset (docs/own-data.md)."),
    epochs: int = typer.Option(2, min=1, help="Local epochs per round."),
    lr: float = typer.Option(0.1, help="Local learning rate (numpy and torch models)."),
    host: str = typer.Option(DEFAULT_HOST, "--host", help="Address of this machine that the exchange servers and "
                                                          "the ledger service listen on and are reached at."),
    card: list[Path] = typer.Option([], "--card", help="Build the consortium from organizations' cards instead "
                                                       "(repeatable; with --founder and --ledger-card): "
                                                       "writes the bundle, docs/deploy.md."),
    founder: Path = typer.Option(None, "--founder", help="With --card: your own organization's folder (you sign "
                                                         "the bundle and become the admin)."),
    ledger_card: Path = typer.Option(None, "--ledger-card", help="With --card: the ledger node's card."),
    bundle_out: Path = typer.Option(None, "--output", "-o", help="With --card: where to write the bundle."),
    genesis_out: Path = typer.Option(None, "--genesis-out", help="With --card: also write the genesis block's "
                                                                 "hash to this file (send it out of band)."),
    as_json: bool = JsonOption,
) -> None:
    """Issue identities, write the genesis block and register every organization.

    With --card, build the consortium from cards alone: only the bundle is written
    (each organization then joins it, the ledger's operator creates the ledger from it,
    and you found the consortium with `admin consortium init`).
    """
    from blockfedml.data import load_schema

    task = TaskSpec(dataset=dataset, partition=partition, model=model, seed=seed, epochs=epochs, lr=lr)
    if card or founder or ledger_card:
        _create_bundle(card, founder, ledger_card, bundle_out, genesis_out, task, parse_settings(setting), as_json)
        return
    consortium = Consortium.create(
        workdir, n_orgs=orgs, task=task, settings=parse_settings(setting),
        auditor=auditor, keyholder=keyholder, overwrite=force,
        schema=load_schema(schema) if schema is not None else None, collaborator=collaborator, host=host,
    )
    info = _describe(consortium)
    consortium.close()
    if as_json:
        emit(info, True)
    else:
        console.print(records_table(f"Consortium in {workdir}", info["orgs"], ["name", "msp_id", "roles", "status", "msp_dir"]))
        console.print(f"Ledger: {info['ledger']}\nStore:  {info['store']}")


def _create_bundle(cards: list[Path], founder: Path | None, ledger_card: Path | None, output: Path | None,
                   genesis_out: Path | None, task: TaskSpec, settings: dict, as_json: bool) -> None:
    import json

    from blockfedml.consortium import DEFAULT_CHAINCODE, DEFAULT_CHANNEL, _check_enough_members
    from blockfedml.membership.bundle import LedgerCard, Member, build_bundle, verify_bundle
    from blockfedml.membership.cards import OrgFolder, read_card, read_json

    if founder is None or ledger_card is None or output is None:
        raise InvalidInputError("building from cards needs --founder <your folder>, --ledger-card <file> and "
                                "--output <bundle.json>")
    if output.exists():
        raise InvalidInputError(f"{output} already exists; choose another --output")
    own = OrgFolder.load(founder)
    read = [own.card()] + [read_card(path) for path in cards]
    cards_by_msp = {c.msp_id: c for c in read}
    members, partition = [], 0
    for c in cards_by_msp.values():
        roles = tuple(dict.fromkeys((("admin",) if c.msp_id == own.msp_id else ()) + c.roles))
        members.append(Member(c, roles, partition if "member" in roles else None))
        partition += "member" in roles
    _check_enough_members(partition, settings)
    ledger = LedgerCard.from_dict(read_json(ledger_card, "ledger card"), str(ledger_card))
    data = build_bundle(own.admin(), members, ledger, channel=DEFAULT_CHANNEL, chaincode=DEFAULT_CHAINCODE,
                        task=task.to_dict(), settings=settings)
    verified = verify_bundle(data, str(output))
    output.write_text(json.dumps(data, indent=2) + "\n")
    if genesis_out is not None:
        genesis_out.write_text(verified.genesis_hash + "\n")
    info = {"bundle": str(output), "genesis_hash": verified.genesis_hash,
            "orgs": [f"{m.card.name} ({', '.join(m.roles)})" for m in verified.members]}
    emit(info, as_json, lambda i: f"bundle {i['bundle']} written for {'; '.join(i['orgs'])}\n"
                                  f"genesis block {i['genesis_hash']}: give both to every organization")


@consortium_app.command("init")
@handle_errors
def init(workdir: Path = WorkdirOption, as_json: bool = JsonOption) -> None:
    """Found the consortium on the ledger as its founder: settings, every organization and its roles,
    the genesis model (served from your store). Run in your own folder once you joined the bundle."""
    from blockfedml.membership.bundle import read_bundle

    consortium = Consortium.open(workdir, ledger_access="service")
    bundle = read_bundle(workdir / "bundle.json", consortium.genesis_hash)
    consortium.found(bundle.settings)
    info = _describe(consortium)
    consortium.close()
    emit(info, as_json, lambda i: records_table(f"Consortium founded from {workdir}", i["orgs"],
                                                ["name", "msp_id", "roles", "status"]))


@consortium_app.command("show")
@handle_errors
def show(workdir: Path = WorkdirOption, as_json: bool = JsonOption) -> None:
    """Organizations, roles and where the ledger and store are."""
    consortium = Consortium.open(workdir)
    info = _describe(consortium)

    def table(i: dict):
        shown = records_table("Organizations", i["orgs"], ["name", "msp_id", "roles", "status"])
        if i["genesis_block_hash"]:
            shown.caption = f"genesis block {i['genesis_block_hash']} (auditors pin it: `audit pin --genesis`)"
        return shown

    emit(info, as_json, table)


def _describe(consortium: Consortium) -> dict:
    reader = next((o for o in consortium.orgs if o.is_local and "admin" in o.roles), None) or \
        next(o for o in consortium.orgs if o.is_local)  # an organization's own view reads as itself
    contract = consortium.contract(reader.name)
    on_chain = {o["msp_id"]: o for o in contract.evaluate_json("ListOrgs")}
    embedded = consortium.kind == "embedded"
    return {
        "ledger": str(consortium.ledger_path),
        # What auditors pin out of band (`audit pin --genesis`): the founder hands it over.
        "genesis_block_hash": consortium.genesis_hash if embedded else None,
        "ledger_service": consortium.service.address if embedded and consortium.service else None,
        "store": str(consortium.store.root) if any(o.is_local for o in consortium.orgs) else None,
        "channel": consortium.channel,
        "task": consortium.task.to_dict(),
        "orgs": [
            {
                "name": p.name, "msp_id": p.msp_id, "msp_dir": p.msp_dir,
                "roles": on_chain.get(p.msp_id, {}).get("roles", []),
                "status": on_chain.get(p.msp_id, {}).get("status", "unregistered"),
            }
            for p in consortium.orgs
        ],
    }


@org_app.command("register")
@handle_errors
def register(
    msp_id: str = typer.Argument(..., help="MSP ID of an organization in the channel, e.g. Org4MSP."),
    roles: str = typer.Option("member", help=f"Comma-separated roles: {', '.join(ROLES)}."),
    workdir: Path = WorkdirOption,
    as_json: bool = JsonOption,
) -> None:
    """Register an organization of the consortium with its roles.

    Only an organization the consortium has (its MSP folder in consortium.json)
    can be registered: an MSP ID nobody holds identities for could never sign
    a transaction, so registering it would only leave a dead entry on the ledger.
    """
    role_list = [r.strip() for r in roles.split(",") if r.strip()]
    consortium = Consortium.open(workdir)
    if not any(msp_id == o.msp_id for o in consortium.orgs):
        known = ", ".join(o.msp_id for o in consortium.orgs)
        raise NotFoundError(f"organization {msp_id!r} is not in the consortium in {workdir} (its organizations: "
                            f"{known}); add its identities to the consortium first, then register its MSP ID")
    record = consortium.contract(consortium.admin.name).submit_json("RegisterOrg", msp_id, role_list)
    emit(record, as_json, lambda r: records_table("Registered", [r], ["msp_id", "roles", "status"]))


@org_app.command("list")
@handle_errors
def list_orgs(workdir: Path = WorkdirOption, as_json: bool = JsonOption) -> None:
    """Organizations on the ledger with their roles and status."""
    consortium = Consortium.open(workdir)
    orgs = consortium.contract(consortium.admin.name).evaluate_json("ListOrgs")
    emit(orgs, as_json, lambda o: records_table("Organizations", o, ["msp_id", "roles", "status"]))


@settings_app.command("show")
@handle_errors
def settings_show(workdir: Path = WorkdirOption, as_json: bool = JsonOption) -> None:
    """The federation settings in force."""
    consortium = Consortium.open(workdir)
    settings = consortium.contract(consortium.admin.name).evaluate_json("GetSettings")
    rows = [{"setting": k, "value": v} for k, v in sorted(settings.items())]
    emit(settings, as_json, lambda _: records_table("Federation settings", rows, ["setting", "value"]))


@settings_app.command("set")
@handle_errors
def settings_set(
    pairs: list[str] = typer.Argument(..., help="key=value pairs, e.g. quorum_percent=75 penalty=30."),
    workdir: Path = WorkdirOption,
    as_json: bool = JsonOption,
) -> None:
    """Change federation settings (only while no round is open)."""
    consortium = Consortium.open(workdir)
    contract = consortium.contract(consortium.admin.name)
    merged = {**contract.evaluate_json("GetSettings"), **parse_settings(pairs)}
    settings = contract.submit_json("SetSettings", merged)
    rows = [{"setting": k, "value": v} for k, v in sorted(settings.items())]
    emit(settings, as_json, lambda _: records_table("Federation settings", rows, ["setting", "value"]))


@round_app.command("open")
@handle_errors
def round_open(
    mode: str = typer.Option("plaintext", help="Aggregation mode of the round."),
    workdir: Path = WorkdirOption,
    as_json: bool = JsonOption,
) -> None:
    """Open the next round on the current head checkpoint (selection phase)."""
    consortium = Consortium.open(workdir)
    record = consortium.contract(consortium.admin.name).submit_json("OpenRound", mode)
    emit(record, as_json, lambda r: records_table("Round opened", [r], ["round", "phase", "mode", "base_checkpoint"]))


ADMIN_STEPS = {"selection": "CloseSelection", "configuration": "Allocate", "feedback": "Decide"}


@round_app.command("advance")
@handle_errors
def round_advance(
    number: int = typer.Argument(..., help="Round number."),
    workdir: Path = WorkdirOption,
    as_json: bool = JsonOption,
) -> None:
    """Close the round's current phase (selection, configuration, attribution or feedback)."""
    consortium = Consortium.open(workdir)
    contract = consortium.contract(consortium.admin.name)
    current = contract.evaluate_json("GetRound", number)
    phase = current["phase"]
    if phase == "attribution":  # score the groups; if none is accepted, close the round (docs/integrity.md)
        accepted = current["attribution"]["accepted"]
        if accepted:
            raise PhaseError(f"round {number}: its aggregator proposes the aggregate of the accepted groups "
                             f"{accepted}")
        record = contract.submit_json("ScoreGroups" if accepted is None else "Decide", number)
        emit(record, as_json, lambda r: records_table(f"Round {number}", [r], ["round", "phase", "attribution"]))
        return
    if phase not in ADMIN_STEPS:
        raise PhaseError(
            f"round {number} is in phase {phase}: "
            + ("its aggregator proposes the aggregate once every participant has committed; after the update "
               f"deadline `blockfedml admin round close {number}` goes on without those who did not"
               if phase == "update" else "nothing left to advance")
        )
    record = contract.submit_json(ADMIN_STEPS[phase], number)
    emit(record, as_json, lambda r: records_table(f"Round {number}", [r], ["round", "phase", "participants", "aggregator"]))


@round_app.command("close")
@handle_errors
def round_close(
    number: int = typer.Argument(0, help="Round number (default: the open round)."),
    wait: float = typer.Option(0.0, "--wait", help="Wait up to this many seconds for the deadline to pass."),
    workdir: Path = WorkdirOption,
    as_json: bool = JsonOption,
) -> None:
    """Close the round's current phase after its deadline, with the members that acted (ClosePhase):
    the round goes on with them, or is aborted when too few are left (docs/operations.md)."""
    from blockfedml.fl.recovery import close_when_due, describe, pending

    consortium = Consortium.open(workdir)
    contract = consortium.contract(consortium.admin.name)
    number = number or _open_round(contract)
    if not as_json:
        console.print(describe(pending(contract, number)), highlight=False)
    record = close_when_due(contract, number, limit=wait)
    emit(record, as_json, lambda r: records_table(
        f"Round {number}", [{"round": number, "phase": r["phase"], "absent": ", ".join(r.get("absent") or []) or "-",
                             "aggregator": r["aggregator"] or "-",
                             "decision": (r.get("decision") or {}).get("status", "-")}],
        ["round", "phase", "absent", "aggregator", "decision"]))


def _open_round(contract) -> int:
    """The number of the round that is open; ``PhaseError`` naming the last one when none is."""
    rounds = contract.evaluate_json("ListRounds")
    open_ = [r["round"] for r in rounds if r["phase"] != "closed"]
    if not open_:
        last = f"round {rounds[-1]['round']} is closed" if rounds else "no round was ever opened"
        raise PhaseError(f"no round is open ({last}); open one with `blockfedml admin round open`")
    return open_[-1]


@round_app.command("abort")
@handle_errors
def round_abort(
    number: int = typer.Argument(0, help="Round number (default: the open round)."),
    reason: str = typer.Option(..., "--reason", help="Why the round cannot finish (recorded on the ledger)."),
    workdir: Path = WorkdirOption,
    as_json: bool = JsonOption,
) -> None:
    """End an open round that cannot finish: the head stays, nobody is rewarded, the reason and the
    absentees are on the ledger; members that accepted and vanished lose absence_penalty."""
    consortium = Consortium.open(workdir)
    contract = consortium.contract(consortium.admin.name)
    record = contract.submit_json("AbortRound", number or _open_round(contract), reason)
    decision = record["decision"]
    emit(record, as_json, lambda r: records_table(
        f"Round {number} aborted", [{"round": number, "phase": decision["phase"], "reason": decision["reason"],
                                     "absentees": ", ".join(decision["absentees"]) or "-",
                                     "penalized": ", ".join(decision["penalized"]) or "-"}],
        ["round", "phase", "reason", "absentees", "penalized"]))


@round_app.command("run")
@handle_errors
def round_run(
    rounds: int = typer.Option(1, "--rounds", min=1, help="How many rounds to drive."),
    mode: str = typer.Option("plaintext", help="Aggregation mode (plaintext, paillier, masking)."),
    secure: str = typer.Option(None, "--secure", help="paillier, masking or none: the same as --mode with "
                                                       "plaintext for none (docs/secure-aggregation.md)."),
    timeout: float = typer.Option(300.0, help="Own data: give up when members keep a step waiting this long (s)."),
    workdir: Path = WorkdirOption,
    as_json: bool = JsonOption,
) -> None:
    """Drive whole rounds with every member of this machine taking part in-process.

    When the members bring their own data (a consortium with a data schema),
    they run ``blockfedml member run --data FILE`` in their own processes and
    this command coordinates them instead: it fixes the federated statistics,
    then opens each round and closes each phase once every member has acted.
    """
    from blockfedml.cli.demo import baseline_line, print_wide, round_json, rounds_table, secure_mode, task_facts
    from blockfedml.fl.task import OWN_DATA

    mode = secure_mode(secure) if secure is not None else mode
    consortium = Consortium.open(workdir)
    if mode == "paillier" and not any("keyholder" in o.roles and not o.is_member for o in consortium.orgs):
        raise InvalidInputError(f"--secure paillier needs a key holder that is not a member; the consortium in "
                                f"{workdir} has none (create it with --collaborator)")
    if consortium.task.dataset == OWN_DATA:
        consortium.close()
        _coordinate(workdir, rounds, mode, timeout, as_json)
        return
    session = Session(consortium, mode=mode)
    results = session.run(rounds)
    if as_json:
        emit([round_json(r) for r in results], True)
    else:
        facts = task_facts(consortium, results[-1].round if results else 0)  # the head trained over every round so far
        print_wide(rounds_table(results, consortium.kind, facts))
        if baseline_line(results, facts):
            console.print(baseline_line(results, facts), highlight=False)
        if session.stopped:
            console.print(f"[yellow]Stopped after {len(results)} of {rounds} rounds:[/] {session.stopped}.",
                          highlight=False)


@round_app.command("drive")
@handle_errors
def round_drive(
    rounds: int = typer.Option(1, "--rounds", min=1, help="How many rounds to drive."),
    secure: str = typer.Option("none", "--secure", help="paillier, masking or none (plaintext)."),
    timeout: float = typer.Option(300.0, help="Wait this long for every member in a phase; then close it with "
                                              "those who acted, or give up naming who is missing (s)."),
    workdir: Path = WorkdirOption,
    as_json: bool = JsonOption,
) -> None:
    """Drive whole rounds whose members run in their own processes, in any mode.

    Each member runs ``blockfedml member round`` (or ``member run --data FILE``),
    the key holder of a paillier round ``blockfedml member keyholder``; all of
    them, and this command, reach the ledger through the ledger service, which
    this command starts in the background unless it runs already. This
    opens each round, closes each phase once every member has acted (screened,
    accepted; with masking also advertised and shared mask keys), waits while
    the sum is opened and proposed, then decides once all have endorsed.
    """
    from blockfedml.cli.demo import secure_mode

    _coordinate(workdir, rounds, secure_mode(secure), timeout, as_json)


def _coordinate(workdir: Path, rounds: int, mode: str, timeout: float, as_json: bool) -> None:
    """``round drive`` (and ``round run`` for own data): members in their own processes, all
    reaching the ledger through its service, started here in the background unless it runs."""
    from blockfedml import ledger_host
    from blockfedml.data.run import coordinate
    from blockfedml.fl.coordinator import coordinate_rounds
    from blockfedml.fl.task import OWN_DATA

    started = ledger_host.ensure_running(workdir)
    if started is not None:
        err_console.print(f"started the ledger service (pid {started}); it keeps running for the members: "
                          f"stop it with `blockfedml ledger stop -w {workdir}`", highlight=False)
    consortium = Consortium.open(workdir, ledger_access="service")
    say = (lambda _: None) if as_json else (lambda line: console.print(line, highlight=False))
    if consortium.task.dataset == OWN_DATA:  # the federated statistics first
        results = coordinate(consortium, rounds, mode=mode, timeout=timeout, progress=say)
    else:
        results = [{**r, "metric_name": "accuracy"}
                   for r in coordinate_rounds(consortium, rounds, mode=mode, timeout=timeout, progress=say)]
    results = [{**r, key(r["metric_name"], VALIDATION): fraction(r["metric"])} for r in results]
    if as_json:
        emit(results, True)
        return
    orgs = list(results[0]["reputation"]) if results else []
    name = results[0]["metric_name"] if results else "metric"
    metric = label(name, VALIDATION)
    rows = [{"round": r["round"], "orgs": len(r["participants"]), metric: shown(fraction(r["metric"])),
             "checkpoint": (r["digest"] or "")[:10], "decision": r["status"],
             **{o.removesuffix("MSP"): r["reputation"].get(o, "-") for o in orgs}} for r in results]
    whose = "the members' own data" if consortium.task.dataset == OWN_DATA else "members in their own processes"
    console.print(records_table(f"Federated session on {whose} ({metric}: median of the members' {name} "
                                "on their own validation data, as endorsed on the ledger)", rows,
                                ["round", "orgs", metric, "checkpoint", "decision"] + [o.removesuffix("MSP") for o in orgs]))


@schema_app.command("set")
@handle_errors
def schema_set(
    path: Path = typer.Argument(..., help="The schema file (JSON): features, label, classes or range, "
                                          "missing-value policy, metric."),
    workdir: Path = WorkdirOption,
    as_json: bool = JsonOption,
) -> None:
    """Pin a data schema on the ledger (before the first round); it starts new federated statistics.

    The file is checked first; the genesis model must fit it (same number of
    parameters), otherwise create the consortium again with --schema.
    """
    from blockfedml.data import load_schema
    from blockfedml.data.federated import publish_schema
    from blockfedml.errors import InvalidInputError
    from blockfedml.fl.task import task_model
    from blockfedml.ml.serialization import load_params

    schema = load_schema(path)
    consortium = Consortium.open(workdir)
    contract = consortium.contract(consortium.admin.name)
    genesis, _ = load_params(consortium.store, contract.evaluate_json("GetConsortium")["genesis"])
    needed = task_model(consortium.task, len(consortium.members), schema).n_params
    if len(genesis) != needed:
        raise InvalidInputError(f"the genesis model has {len(genesis)} parameters, a {consortium.task.model} model "
                                f"for this schema has {needed}: create the consortium again with --schema {path}")
    record = publish_schema(contract, consortium.store, schema)
    emit({**record, "schema": schema.to_dict()}, as_json, lambda _: _schema_table(schema, record))


@schema_app.command("show")
@handle_errors
def schema_show(workdir: Path = WorkdirOption, as_json: bool = JsonOption) -> None:
    """The agreed schema, its digest and metric, and the federated scaler once it exists."""
    from blockfedml.data.federated import require_schema, stats_status

    consortium = Consortium.open(workdir)
    contract = consortium.contract(consortium.admin.name)
    schema, record = require_schema(contract, consortium.store)
    status = stats_status(contract)
    emit({**record, "schema": schema.to_dict(), "statistics": status}, as_json,
         lambda _: _schema_table(schema, record, status.get("scaler")))


def _schema_table(schema, record: dict, scaler: dict | None = None):
    rows = [{"column": f.name, "role": "feature", "type": f.type} for f in schema.features]
    if scaler is not None:
        for row, mean, scale in zip(rows, scaler["scaler"]["mean"], scaler["scaler"]["scale"]):
            row.update(mean=f"{mean / 1e6:.6f}", scale=f"{scale / 1e6:.6f}")
    target = ", ".join(map(str, schema.classes)) if schema.is_classification else f"range {list(schema.target_range)}"
    rows.append({"column": schema.label, "role": "label", "type": target})
    title = (f"Schema {record['digest'][:12]} (epoch {record['epoch']}): {schema.task}, metric {schema.metric}, "
             f"missing: {schema.missing}" + (f", scaler {scaler['digest'][:12]}" if scaler else ""))
    return records_table(title, rows, ["column", "role", "type"] + (["mean", "scale"] if scaler else []))
