"""``blockfedml vertical``: the A/B/C protocol, one process per party, plus a demo and the audit.

    blockfedml vertical party A -w runs/v --data a.csv                     # features, no labels
    blockfedml vertical party C -w runs/v                                  # the key holder
    blockfedml vertical party B -w runs/v --data b.csv --label target      # labels; opens the session
    blockfedml vertical sessions -w runs/v                                 # what the ledger holds
    blockfedml vertical verify <session> -w runs/v                         # the auditor's check
    blockfedml vertical demo -w runs/v                                     # all of the above at once

Parties talk over the consortium's mutual-TLS exchange (the endpoints in
consortium.json) and sign their own transactions. See docs/vertical.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from blockfedml.cli.common import JsonOption, WorkdirOption, console, emit, err_console, handle_errors, records_table
from blockfedml.consortium import Consortium
from blockfedml.errors import InvalidInputError
from blockfedml.vertical.audit import verify_session
from blockfedml.vertical.baseline import centralized
from blockfedml.vertical.data import VERTICAL_DATASETS, load_party_csv, save_party_csv, split_dataset
from blockfedml.vertical.he import RANDOMNESS, SOURCES
from blockfedml.vertical.ledger import VerticalLedger
from blockfedml.vertical.collaborator import Collaborator
from blockfedml.vertical.parties import PartyA, PartyB, PartyResult
from blockfedml.vertical.protocol import VerticalSettings
from blockfedml.vertical.session import (
    DEFAULT_ROLES, create_vertical_consortium, new_session_id, party_store, run_in_process,
)
from blockfedml.vertical.transport import ExchangeEndpoint

app = typer.Typer(help="Vertical FL (the paper's Fig. 3): parties A and B, collaborator C.", no_args_is_help=True)

LEARNING_RATES = {"diabetes": 0.4, "breast_cancer": 0.5}


def _settings(model: str, learning_rate: float, l2: float, tolerance: float, max_iterations: int,
              encryption: str, key_bits: int) -> VerticalSettings:
    return VerticalSettings.of(model=model, learning_rate=learning_rate, l2=l2, tolerance=tolerance,
                               max_iterations=max_iterations, encryption=encryption, key_bits=key_bits)


@app.command("party")
@handle_errors
def party(
    role: str = typer.Argument(..., help="A (features), B (features and labels; opens the session) or C."),
    workdir: Path = WorkdirOption,
    a: str = typer.Option(DEFAULT_ROLES["A"], "--a", help="Organization playing party A."),
    b: str = typer.Option(DEFAULT_ROLES["B"], "--b", help="Organization playing party B."),
    c: str = typer.Option(DEFAULT_ROLES["C"], "--c", help="Organization playing collaborator C (a keyholder)."),
    data: Path = typer.Option(None, "--data", help="A's or B's CSV: ID column first, numeric columns."),
    label: str = typer.Option(None, "--label", help="B: the label column of its CSV."),
    session: str = typer.Option(None, "--session", help="B: the session ID (default: a new one)."),
    model: str = typer.Option("linear", help="B: linear, or logistic (Taylor approximation)."),
    learning_rate: float = typer.Option(0.3, "--lr", help="B: gradient step."),
    l2: float = typer.Option(0.0, help="B: L2 penalty."),
    tolerance: float = typer.Option(1e-4, help="B: stop when the loss changes by less than this fraction."),
    max_iterations: int = typer.Option(100, help="B: at most this many iterations."),
    encryption: str = typer.Option("paillier", help="B: paillier, or plain (encryption off: a baseline)."),
    key_bits: int = typer.Option(2048, help="B: Paillier key size C creates (2048 or 3072)."),
    holdout: Path = typer.Option(None, help="B: file of IDs (one per line) not trained on, predicted at the end."),
    randomness: str = typer.Option(RANDOMNESS, help=f"A, B: source of Paillier randomness {list(SOURCES)}."),
    precompute: int = typer.Option(0, help="A, B: make this many iterations' randomness before training."),
    timeout: float = typer.Option(120.0, help="Seconds to wait for a peer's next message."),
    as_json: bool = JsonOption,
) -> None:
    """Run one party of a session as this process, over the consortium's exchange."""
    role = role.upper()
    if role not in ("A", "B", "C"):
        raise typer.BadParameter(f"role must be A, B or C, got {role!r}")
    if role in ("A", "B") and data is None:
        raise InvalidInputError(f"party {role} needs --data")
    if role == "B" and label is None:
        raise InvalidInputError("party B needs --label: the label column of its data")
    roles = {"A": a, "B": b, "C": c}
    me = roles[role]
    consortium = Consortium.open(workdir, ledger_access="service", org=me)  # this party's folder only
    msp = {p: consortium.org(org).msp_id for p, org in roles.items()}
    ledger = VerticalLedger(consortium.contract(me))
    table = load_party_csv(data, label if role == "B" else None) if data is not None else None
    endpoint = ExchangeEndpoint(role, msp, consortium.tls_material(me), consortium.exchange_peers())
    try:
        if role == "A":
            result = PartyA(endpoint, table, ledger, party_store(consortium, me), msp["A"], randomness, timeout,
                            precompute=precompute).run()
        elif role == "C":
            result = Collaborator(endpoint, ledger, msp["C"], timeout).run()
        else:
            settings = _settings(model, learning_rate, l2, tolerance, max_iterations, encryption, key_bits)
            held = _holdout(holdout, table.ids) if holdout is not None else []
            result = PartyB(endpoint, table, session or new_session_id(), msp, settings, ledger,
                            party_store(consortium, me), msp["B"], randomness, timeout, test_ids=held,
                            precompute=precompute).run()
    finally:
        endpoint.close()
        consortium.close()
    emit(asdict(result), as_json, lambda r: _result_table(result))


def _holdout(path: Path, ids: list[Any]) -> list[Any]:
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return [int(v) for v in lines] if ids and isinstance(ids[0], int) else lines


def _result_table(result: PartyResult) -> Table:
    table = Table(title=f"Party {result.role} of session {result.session or '?'}")
    table.add_column("what")
    table.add_column("value")
    rows = [("aligned entities", result.alignment_size), ("iterations", result.iterations),
            ("final loss", f"{result.losses[-1]:.6f}" if result.losses else "-"),
            ("s / iteration", f"{sum(result.seconds) / max(1, len(result.seconds)):.3f}"),
            ("model part", result.model_digest or "-"), *[(k, f"{v:.4f}") for k, v in result.metrics.items()]]
    for what, value in rows:
        table.add_row(what, str(value))
    return table


@app.command("split")
@handle_errors
def split(
    dataset: str = typer.Option("diabetes", help=f"One of {list(VERTICAL_DATASETS)} (scikit-learn, offline)."),
    out: Path = typer.Option(Path("runs/vertical-data"), help="Folder for a.csv, b.csv and holdout.txt."),
    share: float = typer.Option(0.9, help="Share of the entities each party holds."),
    test_fraction: float = typer.Option(0.2, help="Share of B's entities held out for testing."),
    seed: int = typer.Option(0),
) -> None:
    """Write a dataset split by columns: A's and B's CSV files and B's held-out IDs."""
    data = split_dataset(dataset, share, test_fraction, seed)
    _write_split(data, out)
    console.print(f"A: {out / 'a.csv'} ({data.a.n} rows)  B: {out / 'b.csv'} ({data.b.n} rows, label "
                  f"'label')  held out: {out / 'holdout.txt'} ({len(data.test_ids)} IDs); model: {data.model}")


def _write_split(data: Any, out: Path) -> None:
    save_party_csv(data.a, out / "a.csv")
    save_party_csv(data.b, out / "b.csv")
    (out / "holdout.txt").write_text("".join(f"{i}\n" for i in data.test_ids))


@app.command("sessions")
@handle_errors
def sessions(workdir: Path = WorkdirOption, org: str = typer.Option("Auditor", "--as"),
             as_json: bool = JsonOption) -> None:
    """Every vertical session on the ledger (read-only)."""
    records = VerticalLedger(Consortium.open(workdir).contract(org)).sessions()
    rows = [{"session": r["session"], "phase": r["phase"], "A": r["parties"]["A"], "B": r["parties"]["B"],
             "C": r["parties"]["C"], "model": r["settings"]["model"], "aligned": (r["alignment"] or {}).get("size"),
             "iterations": r["iterations"], "final loss": r["final_loss"]} for r in records]
    emit(records, as_json, lambda _: records_table("Vertical sessions", rows, list(rows[0]) if rows else ["session"]))


@app.command("verify")
@handle_errors
def verify(session: str = typer.Argument(...), workdir: Path = WorkdirOption,
           org: str = typer.Option("Auditor", "--as"), as_json: bool = JsonOption) -> None:
    """Audit a session: approvals, transcripts, losses, model digests (and the parts found in this work dir)."""
    consortium = Consortium.open(workdir)
    ledger = VerticalLedger(consortium.contract(org))
    parties = ledger.session(session)["parties"]
    stores = {p: party_store(consortium, parties[p]) for p in ("A", "B")
              if consortium.org(parties[p]).is_local and (consortium.org_folder(parties[p]) / "vertical").is_dir()}
    report = verify_session(ledger, session, stores)
    emit(report.to_dict(), as_json, lambda _: _audit_table(report))
    if not report.ok:
        raise typer.Exit(code=1)


def _audit_table(report: Any) -> Table:
    table = Table(title=f"Vertical session {report.session}: {'OK' if report.ok else 'PROBLEMS'}")
    table.add_column("check")
    table.add_column("result")
    table.add_row("phase", report.phase)
    table.add_row("alignment", json.dumps(report.alignment))
    table.add_row("key fingerprint", report.key_fingerprint or "-")
    table.add_row("iterations", str(report.iterations))
    table.add_row("loss first → last", f"{report.losses[0]:.6f} → {report.losses[-1]:.6f}" if report.losses else "-")
    table.add_row("model parts checked", ", ".join(report.models_checked) or "-")
    for problem in report.problems:
        table.add_row("[red]problem[/]", problem)
    return table


@app.command("demo")
@handle_errors
def demo(
    workdir: Path = typer.Option(Path("runs/vertical"), "--workdir", "-w", help="Replaced by a new consortium."),
    dataset: str = typer.Option("diabetes", help=f"One of {list(VERTICAL_DATASETS)}."),
    encryption: str = typer.Option("paillier", help="paillier, or plain (encryption off)."),
    max_iterations: int = typer.Option(30, help="At most this many iterations."),
    tolerance: float = typer.Option(1e-4, help="Relative loss change that counts as converged."),
    processes: bool = typer.Option(True, "--processes/--in-process",
                                   help="Each party its own process over mutual TLS (default), or threads."),
    as_json: bool = JsonOption,
) -> None:
    """A consortium with parties A, B and collaborator C, a dataset split by columns, a session, its audit."""
    if dataset not in VERTICAL_DATASETS:
        raise InvalidInputError(f"dataset must be one of {list(VERTICAL_DATASETS)}, got {dataset!r}")
    started = time.perf_counter()
    consortium = create_vertical_consortium(workdir, overwrite=True)
    data = split_dataset(dataset)
    _write_split(data, workdir / "data")
    settings = _settings(data.model, LEARNING_RATES[dataset], 0.0, tolerance, max_iterations, encryption, 2048)
    session = new_session_id()
    if not as_json:
        console.print(f"[bold]{dataset}[/] split by columns: A {data.a.X.shape[1]} features, B "
                      f"{data.b.X.shape[1]} features + label; {encryption}; "
                      f"{'three processes over mutual TLS' if processes else 'three threads'}…")
    try:
        if processes:  # the parties reach the ledger through its service, run here meanwhile
            from blockfedml import ledger_host

            with ledger_host.serving(workdir):
                results = run_party_processes(workdir, session, settings, data.model)
        else:
            run = run_in_process(data.a, data.b, settings, session=session, consortium=consortium,
                                 test_ids=data.test_ids)
            results = {p: asdict(getattr(run, p.lower())) for p in "ABC"}
        report = verify_session(VerticalLedger(consortium.contract("Auditor")), session,
                                {p: party_store(consortium, DEFAULT_ROLES[p]) for p in "AB"})
    finally:
        consortium.close()
    reference = centralized(data, settings)
    summary = {"session": session, "workdir": str(workdir.resolve()), "dataset": dataset, "encryption": encryption,
               "parties": results, "centralized": reference, "audit": report.to_dict(),
               "seconds": round(time.perf_counter() - started, 2)}
    if as_json:
        emit(summary, True)
        return
    console.print(_demo_table(results["B"], results["C"], reference))
    console.print(f"Audit: [bold]{'OK' if report.ok else 'PROBLEMS: ' + '; '.join(report.problems)}[/]  "
                  f"(blockfedml vertical verify {session} -w {workdir})\n"
                  f"Ledger: {workdir / 'ledger.sqlite'}   model parts: {workdir / 'vertical'}/<org>   "
                  f"({summary['seconds']:.1f} s in all)")


def run_party_processes(workdir: Path, session: str, settings: VerticalSettings, model: str) -> dict[str, Any]:
    """Start C, A, then B as ``blockfedml vertical party`` processes; collect their JSON results."""
    base = [sys.executable, "-m", "blockfedml.cli.main", "vertical", "party"]
    common = ["-w", str(workdir), "--json"]
    data = workdir / "data"
    commands = {
        "C": base + ["C", *common],
        "A": base + ["A", *common, "--data", str(data / "a.csv")],
        "B": base + ["B", *common, "--data", str(data / "b.csv"), "--label", "label", "--session", session,
                     "--model", model, "--lr", str(settings.learning_rate), "--tolerance", str(settings.tol_ppm / 1e6),
                     "--max-iterations", str(settings.max_iterations), "--encryption", settings.encryption,
                     "--holdout", str(data / "holdout.txt")],
    }
    running = {p: subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for p, cmd in commands.items()}
    outputs = {p: proc.communicate() for p, proc in running.items()}
    failed = {p: err.strip().splitlines()[-1] if err.strip() else f"exit {running[p].returncode}"
              for p, (_, err) in outputs.items() if running[p].returncode != 0}
    if failed:
        for p, line in failed.items():
            err_console.print(f"party {p}: {line}", markup=False)
        raise InvalidInputError(f"the session failed in {', '.join(sorted(failed))}: {next(iter(failed.values()))}")
    return {p: json.loads(out) for p, (out, _) in outputs.items()}


def _demo_table(b: dict[str, Any], c: dict[str, Any], reference: dict[str, float]) -> Table:
    table = Table(title=f"Vertical session {b['session']} ({b['iterations']} iterations)",
                  caption="loss: party B's objective on the aligned training entities")
    for column in ("iteration", "loss", "s"):
        table.add_column(column, justify="right")
    losses, seconds = b["losses"], b["seconds"]
    shown = sorted({0, 1, 2, len(losses) // 2, len(losses) - 2, len(losses) - 1} & set(range(len(losses))))
    for i in shown:
        table.add_row(str(i + 1), f"{losses[i]:.6f}", f"{seconds[i]:.3f}")
    metric = "test_mse" if "test_mse" in b["metrics"] else "test_accuracy"
    table.add_section()
    table.add_row(metric.replace("_", " "), f"{b['metrics'].get(metric, float('nan')):.4f}", "vertical")
    table.add_row("", f"{reference[metric]:.4f}", "centralized")
    return table
