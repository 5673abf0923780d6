"""``blockfedml audit``: read-only views of the history, as an auditor sees it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from blockfedml.audit.findings import FAILED, PARTLY_VERIFIED, VERIFIED, AuditReport
from blockfedml.audit.history import checkpoint_lineage
from blockfedml.audit.verify import audit_consortium
from blockfedml.cli.common import (
    JsonOption,
    WorkdirOption,
    console,
    emit,
    err_console,
    handle_errors,
    records_table,
)
from blockfedml.consortium import Consortium
from blockfedml.errors import InvalidInputError
from blockfedml.fl.measures import VALIDATION, fraction, key, label, ledger_metric, shown
from blockfedml.ledger.base import Contract

app = typer.Typer(help="Auditors (read-only): history, verification, HTML report, provenance export.",
                  no_args_is_help=True)
MAX_SHOWN = 25  # findings printed per check; --json has them all
AS_HELP = "Organization whose identity queries the ledger (default: the auditor)."
AsOption = typer.Option("Auditor", "--as", help="Organization whose identity queries the ledger.")


def _contract(workdir: Path, org: str) -> Contract:
    return Consortium.open(workdir).contract(org)


@app.command("rounds")
@handle_errors
def rounds(workdir: Path = WorkdirOption, org: str = AsOption, as_json: bool = JsonOption) -> None:
    """Every round with its phase, participants and decision."""
    contract = _contract(workdir, org)
    metric = ledger_metric(contract)
    records = [with_fraction(r, metric, (r.get("decision") or {}).get("metric"))
               for r in contract.evaluate_json("ListRounds")]
    rows = [
        {
            "round": r["round"], "phase": r["phase"], "mode": r["mode"],
            "participants": len(r.get("participants") or []), "aggregator": r.get("aggregator"),
            "decision": (r.get("decision") or {}).get("status"),
            label(metric, VALIDATION): shown(r[key(metric, VALIDATION)]),
        }
        for r in records
    ]
    emit(records, as_json, lambda _: records_table("Rounds", rows, list(rows[0]) if rows else ["round"]))


def with_fraction(record: dict, metric: str, ledger_value: int | None) -> dict:
    """A raw ledger record plus its metric as a fraction under the vocabulary's name (``validation_accuracy``);
    the record's own ``metric`` fields stay the ledger's integers (fraction x 10^6)."""
    return {**record, key(metric, VALIDATION): fraction(ledger_value)}


def _checkpoint_rows(records: list[dict], metric: str) -> list[dict]:
    """Checkpoints for a table: the genesis model was never endorsed, so its ledger metric (0) is no measurement."""
    return [{**c, label(metric, VALIDATION): "-" if c.get("round") == 0 else shown(fraction(c.get("metric")))}
            for c in records]


@app.command("round")
@handle_errors
def round_detail(number: int = typer.Argument(...), workdir: Path = WorkdirOption, org: str = AsOption,
                 as_json: bool = JsonOption) -> None:
    """One round: phases with their transactions, commitments and endorsements."""
    contract = _contract(workdir, org)
    metric = ledger_metric(contract)
    detail = {
        "round": contract.evaluate_json("GetRound", number),
        "updates": contract.evaluate_json("GetUpdates", number),
        "endorsements": [with_fraction(e, metric, e.get("metric"))
                         for e in contract.evaluate_json("GetEndorsements", number)],
    }
    if as_json:
        emit(detail, True)
        return
    console.print(records_table(f"Round {number}: phases", detail["round"]["history"], ["phase", "tx", "time"]))
    console.print(records_table("Committed updates", detail["updates"], ["msp_id", "digest", "size", "num_samples"]))
    rows = [{**e, f"{metric} (own validation data)": shown(e[key(metric, VALIDATION)]),
             f"base {metric}": shown(fraction(e.get("base_metric")))} for e in detail["endorsements"]]
    console.print(records_table("Endorsements", rows, ["msp_id", "digest", f"{metric} (own validation data)",
                                                       f"base {metric}"]))


@app.command("checkpoint")
@handle_errors
def checkpoint(number: int = typer.Argument(..., help="Round of the checkpoint (0 is genesis)."),
               workdir: Path = WorkdirOption, org: str = AsOption, as_json: bool = JsonOption) -> None:
    """A checkpoint and its history back to genesis (parent links)."""
    contract = _contract(workdir, org)
    metric = ledger_metric(contract)
    lineage = [with_fraction(c, metric, c.get("metric")) for c in checkpoint_lineage(contract, number)]
    emit(lineage, as_json, lambda rows: records_table(
        f"Checkpoint {number} and its ancestors", _checkpoint_rows(rows, metric),
        ["round", "status", label(metric, VALIDATION), "digest", "parent"]))


@app.command("checkpoints")
@handle_errors
def checkpoints(workdir: Path = WorkdirOption, org: str = AsOption, as_json: bool = JsonOption) -> None:
    """The whole checkpoint chain, accepted and rolled back."""
    contract = _contract(workdir, org)
    metric = ledger_metric(contract)
    records = [with_fraction(c, metric, c.get("metric")) for c in contract.evaluate_json("ListCheckpoints")]
    emit(records, as_json, lambda rows: records_table("Checkpoints", _checkpoint_rows(rows, metric),
                                                      ["round", "status", label(metric, VALIDATION), "digest", "parent"]))


@app.command("reputation")
@handle_errors
def reputation(msp_id: str = typer.Option(None, "--org", help="Only this organization's history (MSP ID)."),
               workdir: Path = WorkdirOption, org: str = AsOption, as_json: bool = JsonOption) -> None:
    """Reputation history: every change with its round, reason and transaction."""
    contract = _contract(workdir, org)
    msp_ids = [msp_id] if msp_id else [o["msp_id"] for o in contract.evaluate_json("ListOrgs") if "member" in o["roles"]]
    history = [
        {"org": m, **entry} for m in msp_ids for entry in contract.evaluate_json("GetReputationHistory", m)
    ]
    emit(history, as_json, lambda rows: records_table("Reputation history", rows,
                                                       ["org", "round", "delta", "balance", "reason", "tx"]))


@app.command("verify")
@handle_errors
def verify(workdir: Path = WorkdirOption, org: str = typer.Option(None, "--as", help=AS_HELP),
           witness: list[Path] = typer.Option([], "--witness", help="A member's signed tip (tip.json, or the "
                                              "output of `member tip`); the chain must reach it. Repeatable."),
           as_json: bool = JsonOption) -> None:
    """Replay and check the whole history: exit 0 when verified, 1 if any check fails, 3 when
    partly verified (nothing failed, but something could not be recomputed; the last line says what and why).

    The auditor first brings its own copy of the chain up to date (pulled block
    by block, each checked against the pinned genesis and its orderer
    signature; docs/audit.md), then checks the copy: block hash chain and
    signatures, the contract re-executing every transaction, the checkpoint chain
    and stored models, phase sequences, aggregates recomputed from the committed
    updates, reputation and rollback decisions recomputed.
    """
    from blockfedml.audit.copy import read_tip

    witnesses = {str(path): read_tip(path) for path in witness}
    consortium = Consortium.open(workdir)
    report = audit_consortium(consortium, org, witnesses)
    if as_json:
        emit(report.to_dict(), True)
    else:
        print_report(report, f"Audit of {workdir}")
    if report.exit_code:
        raise typer.Exit(code=report.exit_code)


@app.command("pin")
@handle_errors
def pin(genesis: str = typer.Option(None, "--genesis", help="The genesis block hash (64 hex digits), from the "
                                    "founder, out of band (`admin consortium show` prints it), or a file holding it."),
        genesis_block: Path = typer.Option(None, "--genesis-block", help="On Fabric: the channel's genesis block "
                                           "file (configtxgen's output, from the founder); its header hash is pinned."),
        workdir: Path = WorkdirOption, org: str = typer.Option(None, "--as", help=AS_HELP)) -> None:
    """Pin the genesis block hash the auditor's own copy of the chain must start from."""
    from blockfedml.audit.copy import AuditorCopy
    from blockfedml.audit.evidence import auditor_org

    from blockfedml.membership.bundle import genesis_argument

    if (genesis is None) == (genesis_block is None):
        raise InvalidInputError("give the genesis hash (--genesis) or the genesis block file (--genesis-block)")
    if genesis_block is not None:
        from blockfedml.audit.fabric_chain import read_block_file
        genesis = read_block_file(genesis_block)
    consortium = Consortium.open(workdir)
    copy = AuditorCopy(consortium.audit_folder(auditor_org(consortium, org)))
    copy.pin(genesis_argument(genesis) if Path(genesis).is_file() else genesis)
    console.print(f"pinned genesis {copy.pinned} in {copy.folder}", highlight=False)


def print_report(report: AuditReport, heading: str) -> None:
    """One line per check (PASS/FAIL/SKIP), each finding and skip reason beneath it."""
    blocks = f", {report.height} blocks" if report.height is not None else ""
    console.print(f"[bold]{escape(heading)}[/] ({report.backend} ledger{blocks})")
    colour = {"pass": "green", "fail": "red", "skip": "yellow"}
    for check in report.checks:
        console.print(f"[{colour[check.status]}]{check.status.upper():4}[/]  {check.name:<12} "
                      f"{escape(check.title)} [dim]({escape(check.detail)})[/]", highlight=False, soft_wrap=True)
        for finding in check.findings[:MAX_SHOWN]:
            console.print(f"      [red]FAIL[/] {escape(str(finding))}", highlight=False, soft_wrap=True)
        if len(check.findings) > MAX_SHOWN:
            console.print(f"      ... and {len(check.findings) - MAX_SHOWN} more (all of them with --json)")
        reasons = [r for r in check.skipped if r != check.detail]  # a whole-check skip's reason is its detail
        for reason in reasons[:MAX_SHOWN]:
            console.print(f"      [yellow]skip[/] {escape(reason)}", highlight=False, soft_wrap=True)
        if len(reasons) > MAX_SHOWN:
            console.print(f"      ... and {len(reasons) - MAX_SHOWN} more skipped (all of them with --json)")
    for note in report.notes:
        console.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    colour = {VERIFIED: "green", PARTLY_VERIFIED: "yellow", FAILED: "red"}[report.verdict]
    verdict, _, rest = report.summary().partition(":")
    exit_note = f" (exit {report.exit_code})" if report.exit_code else ""
    console.print(f"[{colour}]{verdict}[/]:{escape(rest)}{exit_note}", highlight=False, soft_wrap=True)


@app.command("report")
@handle_errors
def report(output: Path = typer.Option(Path("report.html"), "--output", "-o", help="HTML file to write."),
           workdir: Path = WorkdirOption, org: str = typer.Option(None, "--as", help=AS_HELP),
           no_verify: bool = typer.Option(False, "--no-verify", help="Leave the verification table out.")) -> None:
    """Write a self-contained HTML report (plots, tables, verification).

    Plots of the endorsed metric (rollbacks marked), reputation and participation
    per round; tables of rounds, checkpoints and penalties; the verification's
    result. Everything is inline: it opens offline and loads nothing from the network.
    """
    from blockfedml.audit.report import consortium_report  # plotly: only when a report is asked for

    path, result = consortium_report(Consortium.open(workdir), output, org, verify=not no_verify)
    verdict = "" if result is None else {
        VERIFIED: "; verified: every check recomputed everything",
        PARTLY_VERIFIED: f"; [yellow]partly verified[/]: {len(result.unchecked)} item(s) not recomputed (see the report)",
        FAILED: "; [red]the verification found problems[/] (see the report)"}[result.verdict]
    console.print(f"wrote {escape(str(path))} ({path.stat().st_size // 1024} KiB){verdict}", highlight=False)


@app.command("export")
@handle_errors
def export(checkpoint_round: int = typer.Option(..., "--checkpoint", "-c", min=0,
                                                help="Round of the checkpoint (0 is genesis)."),
           output: Path = typer.Option(None, "--output", "-o", help="JSON file to write (default: stdout)."),
           workdir: Path = WorkdirOption, org: str = typer.Option(None, "--as", help=AS_HELP)) -> None:
    """The provenance of one checkpoint as JSON (stdout or --output).

    Its lineage back to genesis and, for each round on it, the organizations,
    commitments, endorsements, decision, phase transactions and reputation changes,
    plus the rolled-back proposals built on those ancestors.
    """
    from blockfedml.audit.provenance import consortium_provenance, write_json

    document = consortium_provenance(Consortium.open(workdir), checkpoint_round, org)
    if output is None:
        emit(document, True)
    else:
        write_json(output, document)
        err_console.print(f"wrote the provenance of checkpoint {checkpoint_round} to {escape(str(output))}",
                          highlight=False)
