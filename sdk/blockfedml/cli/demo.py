"""``blockfedml demo``: a whole consortium on the embedded ledger, in one command."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich import box
from rich.table import Table

from blockfedml.cli.common import JsonOption, cli_command, console, emit, handle_errors, parse_settings
from blockfedml.consortium import Consortium
from blockfedml.fl.attacks import ATTACKS, AttackPlan
from blockfedml.fl.session import RoundResult, Session
from blockfedml.fl.strategy import STRATEGIES, get_strategy
from blockfedml.fl.measures import DATA, TEST, VALIDATION, key, label, shown
from blockfedml.fl.task import OWN_DATA, TaskSpec, task_split
from blockfedml.ml.baseline import fit_centralized
from blockfedml.ml.models import default_kind

PHASES = ("selection", "configuration", "update", "feedback")
SECURE = {"none": "plaintext", "paillier": "paillier", "masking": "masking"}
SecureOption = typer.Option(
    "none", "--secure", help="Secure aggregation: paillier (packed Paillier; a Collaborator organization holds "
    "the key and decrypts sums only), masking (pairwise masks with dropout recovery) or none (plaintext). "
    "See docs/secure-aggregation.md.")


def secure_mode(secure: str) -> str:
    """The ledger's aggregation mode for a ``--secure`` choice."""
    if secure not in SECURE:
        raise typer.BadParameter(f"--secure must be one of {', '.join(SECURE)}, got {secure!r}")
    return SECURE[secure]


@handle_errors
def demo(
    orgs: int = typer.Option(3, "--orgs", min=1, help="Number of member organizations."),
    rounds: int = typer.Option(10, "--rounds", min=1, help="Number of federated rounds."),
    dataset: str = typer.Option("breast_cancer", help="breast_cancer or digits (scikit-learn, offline)."),
    partition: str = typer.Option("iid", help="iid, or non-iid (label skew, Dirichlet alpha)."),
    alpha: float = typer.Option(0.5, help="Dirichlet concentration for non-iid partitions."),
    model: str = typer.Option("auto", help="auto, logreg, softmax or mlp."),
    seed: int = typer.Option(0, help="Seed of the split, the partitions and the training."),
    epochs: int = typer.Option(2, help="Local epochs per round."),
    lr: float = typer.Option(0.1, help="Local learning rate."),
    workdir: Path = typer.Option(Path("runs/demo"), "--workdir", "-w", help="Where the ledger, store and identities go (replaced)."),
    setting: list[str] = typer.Option([], "--setting", "-s", help="Federation setting key=value (repeatable)."),
    ledger: str = typer.Option("embedded", "--ledger", help="embedded, or fabric: a running network with the chaincode deployed."),
    profile: Path = typer.Option(Path("runs/fabric/network.json"), "--profile", help="Fabric connection profile (with --ledger fabric)."),
    attack: str = typer.Option("", "--attack", help=f"Run with attackers: {', '.join(ATTACKS)} (docs/integrity.md)."),
    attackers: float = typer.Option(0.3, "--attackers", help="Share of the organizations that attack (the last ones)."),
    lie: bool = typer.Option(False, "--lie", help="Attackers also lie in screening reports and endorsements."),
    strength: float = typer.Option(0.0, "--attack-strength", help="The attack's strength (0: its default)."),
    attack_start: int = typer.Option(0, "--attack-start", min=0, help="sleeper, late_boost: the first round "
                                     "they attack (0: the attack's default)."),
    screening: bool = typer.Option(False, "--screening", help="Members screen their data with the reference SVM."),
    attribution: bool = typer.Option(False, "--attribution", help="Score groups' aggregates (setting attribution=1)."),
    strategy: str = typer.Option("fedavg", "--strategy", help=f"Plaintext aggregation rule: {', '.join(STRATEGIES)}."),
    secure: str = SecureOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a consortium, run a federated session and print the per-round table."""
    task = TaskSpec(dataset=dataset, partition=partition, alpha=alpha, model=model, seed=seed, epochs=epochs, lr=lr)
    plan = AttackPlan(attack, attackers, lie=lie, strength=strength or None, seed=seed,
                      start=attack_start) if attack else None
    rule = get_strategy(strategy) if strategy != "fedavg" else None
    mode = secure_mode(secure)
    if attribution:
        setting = [*setting, "attribution=1"]
    started = time.perf_counter()
    if ledger not in ("embedded", "fabric"):
        raise typer.BadParameter(f"--ledger must be embedded or fabric, got {ledger!r}")
    if ledger == "fabric" and mode == "paillier":
        raise typer.BadParameter("--secure paillier needs a Collaborator key holder, which only the embedded "
                                 "ledger demo creates; use --secure masking on Fabric")
    if ledger == "fabric":
        consortium = Consortium.attach_fabric(workdir, profile, n_orgs=orgs, task=task,
                                              settings=parse_settings(setting), overwrite=True)
    else:
        consortium = Consortium.create(workdir, n_orgs=orgs, task=task, settings=parse_settings(setting), overwrite=True,
                                       collaborator=mode == "paillier")
    try:
        results, stopped = _run(consortium, rounds, quiet=as_json, attack=plan, screening=screening, strategy=rule,
                                mode=mode)
        elapsed = time.perf_counter() - started
        facts = task_facts(consortium, rounds)
        summary = {
            "workdir": str(workdir.resolve()),
            "ledger": str(consortium.ledger_path.resolve()) if ledger == "embedded" else "fabric",
            "store": str(consortium.store.root.resolve()),
            "blocks": consortium.ledger.height() if ledger == "embedded" else None,
            "seconds": round(elapsed, 3),
            "mode": mode,
            "task": facts,
            "rounds": [round_json(r) for r in results],
            "attackers": plan.attackers([p.msp_id for p in consortium.members]) if plan else [],
            "stopped": stopped,
        }
    finally:
        consortium.close()
    if as_json:
        emit(summary, True)
        return
    print_wide(rounds_table(results, ledger, facts))
    if baseline_line(results, facts):
        console.print(baseline_line(results, facts), highlight=False)
    if mode != "plaintext":
        console.print(f"Aggregation: [bold]{mode}[/] (secure: only sums were opened, docs/secure-aggregation.md)")
    if plan:
        console.print(f"Attack: [bold]{plan.name}[/] by {', '.join(summary['attackers'])}")
    if stopped:
        console.print(f"[yellow]Stopped after round {len(results)} of {rounds}:[/] {stopped}.", highlight=False)
    console.print(
        f"Ledger: [bold]{summary['ledger']}[/] ({summary['blocks'] or '?'} blocks)\n"
        f"Model store: [bold]{summary['store']}[/]\n"
        f"Audit it: [bold]{cli_command()} audit verify -w {workdir}[/]   ({elapsed:.1f} s in all)"
    )
    if cli_command() != "blockfedml":
        console.print(f"([bold]. {Path(cli_command()).parent}/activate[/] puts blockfedml on your PATH, as the "
                      "README's examples expect)", highlight=False)


def _run(consortium: Consortium, rounds: int, quiet: bool, **options: object) -> tuple[list[RoundResult], str | None]:
    """The session's rounds, and why it stopped early (None if it ran them all)."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} rounds"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=True,
    ) as progress:
        bar = progress.add_task("starting", total=rounds)
        session = Session(consortium, progress=lambda r, phase: progress.update(bar, description=f"round {r}: {phase}"),
                          **options)
        session.join_all()
        results = []
        for _ in range(rounds):
            if session.why_stop() is not None:
                break
            results.append(session.run_round())
            progress.advance(bar)
    return results, session.stopped


def print_wide(table: Table) -> None:
    """Print a table at its natural width, even past the terminal's, rather than truncate it."""
    natural = console.measure(table, options=console.options.update(max_width=1000)).maximum
    terminal = console.width
    console.width = max(terminal, natural)  # print() caps its width at the console's
    try:
        console.print(table)
    finally:
        console.width = terminal


def task_facts(consortium: Consortium, rounds: int) -> dict[str, Any] | None:
    """What the table measures, and the centralized baseline to judge it by (None for members' own data).

    The baseline trains the same model on all members' training data pooled, for as many
    epochs as a member trains over the whole session (rounds x local epochs), and scores
    it on the same held-out test data as the table.
    """
    task = consortium.task
    if task.dataset == OWN_DATA:
        return None
    split = task_split(task, len(consortium.members))
    kind = default_kind(split.n_classes) if task.model == "auto" else task.model
    epochs = task.epochs * rounds
    model = fit_centralized(split, kind, epochs=epochs, lr=task.lr, batch_size=task.batch_size, seed=task.seed,
                            l2=task.l2)
    return {"dataset": task.dataset, "partition": task.partition, "model": kind, "metric": "accuracy",
            "test_samples": len(split.y_test), "orgs": len(consortium.members),
            "centralized": {key("accuracy", TEST): float(model.evaluate(split.X_test, split.y_test)["accuracy"]),
                            "epochs": epochs, "train_samples": len(split.union_train()[1])}}


def rounds_table(results: list[RoundResult], ledger: str = "embedded", facts: dict[str, Any] | None = None) -> Table:
    """Per round: participants, test and validation metric, checkpoint, decision, reputation per org.

    The title names the dataset and the model, the caption what each number is measured on.
    """
    orgs = list(results[0].reputation) if results else []
    metric = results[0].metric if results else "accuracy"
    about = (f"{facts['dataset']} ({facts['partition']}), {facts['model']} model, {facts['orgs']} organizations, "
             if facts else "")
    test_data = f"the held-out test data ({facts['test_samples']} samples)" if facts else DATA[TEST]
    caption = (f"{label(metric, TEST)}: the round's aggregate (the head if rejected) on {test_data}, "
               f"measured here, not on the ledger\n{label(metric, VALIDATION)}: median of the members' "
               f"{metric} on their own validation data, as endorsed on the ledger\n"
               "reputation per organization on the right")
    table = Table(title=f"Federated session: {about}{ledger} ledger", box=box.SIMPLE_HEAD, caption=caption,
                  caption_justify="left")
    table.add_column("round", justify="right", no_wrap=True)
    table.add_column("orgs", justify="right", no_wrap=True)
    table.add_column(label(metric, TEST), justify="right", no_wrap=True)
    table.add_column(label(metric, VALIDATION), justify="right", no_wrap=True)
    table.add_column("checkpoint", no_wrap=True)
    table.add_column("decision", no_wrap=True)
    for org in orgs:
        table.add_column(org.removesuffix("MSP"), justify="right", no_wrap=True)
    for r in results:
        status = {"accepted": "[green]accepted[/]", "rejected": "[yellow]rejected[/]"}.get(r.status, "[red]rolled back[/]")
        table.add_row(
            str(r.round),
            str(len(r.participants)),
            shown(r.test_accuracy),
            shown(r.endorsed_metric),
            r.digest[:10],
            status,
            *[str(r.reputation[o]) for o in orgs],
        )
    return table


def baseline_line(results: list[RoundResult], facts: dict[str, Any] | None) -> str | None:
    """The centralized baseline and the federated head's gap to it, in the table's words."""
    if not facts or not results:
        return None
    central = facts["centralized"][key("accuracy", TEST)]
    head = results[-1].head_accuracy
    return (f"Centralized baseline: {label('accuracy', TEST)} [bold]{central:.4f}[/] ({facts['model']} trained on "
            f"all members' training data pooled, {facts['centralized']['train_samples']} samples, "
            f"{facts['centralized']['epochs']} epochs)\n"
            f"Federated head after round {results[-1].round}: {label('accuracy', TEST)} [bold]{head:.4f}[/], "
            f"gap to centralized [bold]{head - central:+.4f}[/]")


def round_json(result: RoundResult) -> dict[str, Any]:
    """A round for --json: its fields plus the metric under the vocabulary's names (fractions)."""
    return {**result.to_dict(), key(result.metric, TEST): result.test_accuracy,
            key(result.metric, VALIDATION): result.endorsed_metric}
