"""Integrity under attack: every attack against every defense, 10 organizations, 30% attackers.

For digits and breast cancer, each attack of ``blockfedml.fl.attacks`` is run
(the last 3 of 10 organizations attack) with no defense, with each defense
alone, and with all the defenses that work under encryption together
(screening + validation endorsement with rollback + attribution with
incentives); the robust plaintext aggregators are run alone for comparison.
Each session is compared with the clean session (no attacker).

Per session: final test accuracy of the head checkpoint, the round by which
every attacker is banned, attackers screened out, honest members ever
penalized or banned, rollbacks and rejected rounds, the backdoor's success
rate. Prints a table, writes bench/results/integrity.json and a plot of
accuracy and reputation per round (bench/results/integrity.png).

Ledgers live in /dev/shm when it exists (the fsync of a disk is not what is
measured here). ``--quick`` runs 2 attacks x 3 defenses on one dataset.

``--grid`` runs the non-IID grid instead (docs/integrity.md): datasets,
Dirichlet alphas (or ``iid``), seeds, attacks (targeted flips, late boosts,
sleepers, framers, any attack with ``+lie``), defenses, the number of
organizations and the share of colluding attackers, in plaintext or under
Paillier or masking (``--mode``); per cell the final accuracy against the clean session
of the same seed, the recall of the targeted class pair, the honest members
ever penalized (the target is 0), the round each attacker was banned, and
rollbacks. ``--markdown`` prints it as a table for the docs, ``--out`` keeps
every session as JSON and ``--from-json`` prints a kept one again.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
DATASETS = ("digits", "breast_cancer")
ATTACKS = ("label_flip", "random_labels", "backdoor", "sign_flip", "scale", "noise", "liar",
           "label_flip+lie", "sign_flip+lie")
REPUTATION = {"reward": 10, "penalty": 30, "ban_threshold": 40}
OFF = {"rollback_tolerance": 1_000_000, "reward": 0, "penalty": 0, "ban_threshold": 0}
DEFENSES: dict[str, dict[str, Any]] = {
    "none": {"settings": OFF},
    "screening": {"settings": OFF, "screening": True},
    "rollback": {"settings": {**REPUTATION, "rollback_tolerance": 20000}},
    "attribution": {"settings": {**REPUTATION, "rollback_tolerance": 1_000_000, "attribution": 1}},
    "median": {"settings": OFF, "strategy": "median"},
    "trimmed_mean": {"settings": OFF, "strategy": "trimmed_mean"},
    "multi_krum": {"settings": OFF, "strategy": "multi_krum"},
    "all": {"settings": {**REPUTATION, "rollback_tolerance": 20000, "attribution": 1}, "screening": True},
    "defaults": {"settings": {"attribution": 1}},
}
"""Every defense: federation settings, screening at selection, a plaintext aggregation rule.

``rollback`` is validation endorsement with checkpoint rollback and the
original incentive (every contributor of a rolled-back aggregate is
penalized); ``attribution`` scores groups and lets reputation follow them;
``all`` is every defense that works under secure aggregation; ``defaults`` is
attribution with every other setting at its default (what ``blockfedml demo
--attribution`` runs)."""


def run_session(dataset: str, attack: str | None, defense: str, rounds: int, orgs: int, fraction: float,
                partition: str = "iid", alpha: float = 0.5, seed: int = 0, mode: str = "plaintext",
                start: int = 0) -> dict:
    """One session; never raises (a session that cannot go on is reported as stalled)."""
    from blockfedml.consortium import Consortium
    from blockfedml.errors import BlockFedMLError
    from blockfedml.fl.attacks import AttackPlan, backdoor_success, target_pair
    from blockfedml.fl.checkpoints import load_checkpoint
    from blockfedml.fl.session import Session
    from blockfedml.fl.strategy import get_strategy
    from blockfedml.fl.task import TaskSpec, task_model, task_split

    config = DEFENSES[defense]
    task = TaskSpec(dataset=dataset, partition=partition, alpha=alpha, seed=seed)
    kind, _, lie = (attack or "").partition("+")
    plan = AttackPlan(kind, fraction, lie=bool(lie), seed=seed, start=start) if attack else None
    root = "/dev/shm" if os.path.isdir("/dev/shm") else None
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        consortium = Consortium.create(Path(tmp) / "c", n_orgs=orgs, task=task, auditor=False,
                                       settings=config["settings"], collaborator=mode == "paillier")
        try:
            try:
                session = Session(consortium, mode=mode, attack=plan, screening=config.get("screening", False),
                                  strategy=get_strategy(config["strategy"]) if "strategy" in config else None)
            except BlockFedMLError as exc:  # e.g. attribution under masking
                return {"dataset": dataset, "attack": attack or "clean", "defense": defense, "mode": mode,
                        "partition": partition if partition == "iid" else f"dirichlet({alpha})", "seed": seed,
                        "refused": f"{type(exc).__name__}: {exc}"[:200]}
            msp_ids = [m.msp_id for m in session.members]
            attackers = plan.attackers(msp_ids) if plan else []
            session.join_all()
            results, stalled = [], None
            for _ in range(rounds):
                try:
                    results.append(session.run_round())
                except BlockFedMLError as exc:  # e.g. too few eligible members left, or training diverged
                    stalled = {"round": len(results) + 1, "error": f"{type(exc).__name__}: {exc}"[:200]}
                    break
            contract = consortium.contract("Org1")
            head = contract.evaluate_json("GetHead")["checkpoint"]
            model = load_checkpoint(consortium.store, head, task_model(task, orgs))
            split = task_split(task, orgs)
            final = float(model.evaluate(split.X_test, split.y_test)["accuracy"])
            backdoor = backdoor_success(model, split.X_test, split.y_test) if kind == "backdoor" else None
            honest = [m for m in msp_ids if m not in attackers]
            penalties = {m: sum(e["delta"] < 0 for e in contract.evaluate_json("GetReputationHistory", m))
                         for m in msp_ids}
            penalized = [m for m in honest if penalties[m]]
            pair = target_pair(split.n_classes)
            predicted = model.predict(split.X_test)
            recall = {str(c): round(float(np.mean(predicted[split.y_test == c] == c)), 4) for c in pair}
            status = {o["msp_id"]: o["status"] for o in contract.evaluate_json("ListOrgs")}
        finally:
            consortium.close()
    banned_in: dict[str, int] = {}
    for r in results:
        for msp in r.banned:
            banned_in.setdefault(msp, r.round)
    ever_selected = {m for r in results for m in r.participants}
    return {
        "dataset": dataset, "attack": attack or "clean", "defense": defense, "rounds": len(results),
        "partition": partition if partition == "iid" else f"dirichlet({alpha})", "seed": seed, "mode": mode,
        "orgs": orgs, "attackers": attackers,
        "final_accuracy": round(final, 4),
        "target_recall": recall,
        "attacker_banned_in": {a: banned_in.get(a) for a in attackers},
        "attacker_penalties": {a: penalties[a] for a in attackers},
        "honest_penalties": sum(penalties[m] for m in honest),
        "group_scores": _group_scores(results, attackers),
        "accuracy": [round(r.head_accuracy, 4) for r in results],
        "reputation": [r.reputation for r in results],
        "status": [r.status for r in results],
        "rollbacks": sum(r.status == "rolled_back" for r in results),
        "rejected": sum(r.status == "rejected" for r in results),
        "attackers_banned_round": max(banned_in[a] for a in attackers) if attackers and all(
            a in banned_in for a in attackers) else None,
        "attackers_banned": sum(a in banned_in for a in attackers),
        "attackers_screened_out": sum(a not in ever_selected for a in attackers) if results else 0,
        "honest_penalized": penalized,
        "honest_banned": [m for m in honest if status.get(m) == "banned"],
        "backdoor_success": None if backdoor is None else round(backdoor, 4),
        "stalled": stalled,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _group_scores(results: list, attackers: list[str]) -> dict[str, Any]:
    """Attribution scores of groups without and with an attacker: the lowest honest ones and the
    attackers' median, after round 1 (when the model is still random)."""
    honest, attacked = [], []
    for r in results[1:]:
        for g in r.groups or []:
            if g["score"] is not None:
                (attacked if set(g["members"]) & set(attackers) else honest).append(g["score"])
    if not honest:
        return {}
    return {"honest_min": min(honest), "honest_p1": int(np.percentile(honest, 1)),
            "honest_harmful": sum(g["verdict"] == "harmful" for r in results[1:] for g in r.groups or []
                                  if not set(g["members"]) & set(attackers)),
            "attacked_median": int(np.median(attacked)) if attacked else None}


def plan_runs(datasets, attacks, defenses) -> list[tuple[str, str | None, str]]:
    runs = [(d, None, "none") for d in datasets] + [(d, None, "all") for d in datasets]
    return runs + [(d, a, f) for d in datasets for a in attacks for f in defenses]


def table(sessions: list[dict], defenses: list[str]) -> str:
    """One block per dataset: rows = attacks, columns = final accuracy per defense."""
    lines = []
    for dataset in dict.fromkeys(s["dataset"] for s in sessions):
        rows = [s for s in sessions if s["dataset"] == dataset]
        clean = {s["defense"]: s["final_accuracy"] for s in rows if s["attack"] == "clean"}
        lines.append(f"\n{dataset}: final test accuracy (clean session {clean.get('none', float('nan')):.3f}; "
                     f"clean with all defenses {clean.get('all', float('nan')):.3f})")
        header = f"{'attack':<15}" + "".join(f"{d:>13}" for d in defenses) + \
            f"{'all-clean':>10}{'banned@':>8}{'honest pen/ban':>15}{'rollbacks':>10}"
        lines += [header, "-" * len(header)]
        for attack in dict.fromkeys(s["attack"] for s in rows if s["attack"] != "clean"):
            by = {s["defense"]: s for s in rows if s["attack"] == attack}
            cells = "".join(f"{_cell(by.get(d)):>13}" for d in defenses)
            everything = by.get("all")
            gap = f"{everything['final_accuracy'] - clean['none']:+.3f}" if everything and "none" in clean else "-"
            banned = everything["attackers_banned_round"] if everything else None
            screened = everything["attackers_screened_out"] if everything else 0
            when = f"r{banned}" if banned else (f"{screened} scr" if screened else "-")
            honest = f"{len(everything['honest_penalized'])}/{len(everything['honest_banned'])}" if everything else "-"
            rollbacks = f"{everything['rollbacks']}+{everything['rejected']}rej" if everything else "-"
            lines.append(f"{attack:<15}{cells}{gap:>10}{when:>8}{honest:>15}{rollbacks:>10}")
    lines.append("\ncells: final accuracy (* stalled: too few members left or training diverged); "
                 "banned@: round by which every attacker was banned under all defenses (scr: screened out); "
                 "honest pen/ban: honest members ever penalized / banned under all defenses; "
                 "rollbacks: rolled-back + rejected rounds under all defenses")
    backdoors = [s for s in sessions if s["backdoor_success"] is not None]
    if backdoors:
        lines.append("backdoor success (share of triggered non-target test samples classified as the target): " +
                     ", ".join(f"{s['dataset']}/{s['defense']} {s['backdoor_success']:.2f}" for s in backdoors))
    return "\n".join(lines)


def _cell(session: dict | None) -> str:
    if session is None:
        return "-"
    return f"{session['final_accuracy']:.3f}" + ("*" if session["stalled"] else "")


def plot(sessions: list[dict], path: Path, headline: str) -> None:
    """Accuracy per round (clean, no defense, all defenses) for every attack, and reputation per
    organization under all defenses for the headline attack; one row per dataset."""
    try:
        import matplotlib
    except ImportError:  # an optional extra: the tables and JSON do not need it
        print(f"no figure: matplotlib is not installed (pip install -e '.[bench]', or make bench); {path} not written")
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(s["dataset"] for s in sessions))
    fig, axes = plt.subplots(len(datasets), 3, figsize=(16, 4.2 * len(datasets)), squeeze=False)
    for row, dataset in zip(axes, datasets):
        rows = {(s["attack"], s["defense"]): s for s in sessions if s["dataset"] == dataset}
        attacks = list(dict.fromkeys(a for a, _ in rows if a != "clean"))
        for ax, defense in zip(row[:2], ("none", "all")):
            if ("clean", "none") in rows:
                ax.plot(_x(rows["clean", "none"]), rows["clean", "none"]["accuracy"], "k-", lw=2.5, label="clean")
            for attack in attacks:
                if (attack, defense) in rows:
                    ax.plot(_x(rows[attack, defense]), rows[attack, defense]["accuracy"], lw=1.2, label=attack)
            ax.set(title=f"{dataset}: accuracy, {'no defense' if defense == 'none' else 'all defenses'}",
                   xlabel="round", ylabel="test accuracy of the head", ylim=(0, 1))
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=7, loc="lower right")
        ax = row[2]
        session = rows.get((headline, "all"))
        if session and session["reputation"]:
            for msp in session["reputation"][0]:
                attacker = msp in session["attackers"]
                ax.plot(_x(session), [r[msp] for r in session["reputation"]], color="tab:red" if attacker else "0.6",
                        lw=2 if attacker else 1, label="attacker" if attacker else "honest")
            handles, labels = ax.get_legend_handles_labels()
            unique = dict(zip(labels, handles))
            ax.legend(unique.values(), unique.keys(), fontsize=8)
            ax.axhline(REPUTATION["ban_threshold"], color="tab:red", ls="--", lw=0.8)
        ax.set(title=f"{dataset}: reputation, {headline}, all defenses", xlabel="round", ylabel="balance")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _x(session: dict) -> list[int]:
    return list(range(1, len(session["accuracy"]) + 1))


GRID_ATTACKS = ("clean", "targeted_flip+lie", "late_boost", "sleeper+lie", "framer")


def grid_main(args: argparse.Namespace) -> None:
    """Non-IID grid: every (dataset, partition, attack, defense) cell over several seeds.

    Per cell it prints the final accuracy against the clean session of the same
    seed (no attacker, no defense), the recall of the targeted class pair, the
    honest members ever penalized (must be 0) and their penalties, the round each
    attacker was banned in, and rollbacks; ``--out`` gets every session as JSON.
    """
    alphas = [None if a == "iid" else float(a) for a in args.alphas.split(",")]
    attacks = args.attacks.split(",")
    defenses = args.defenses.split(",")
    seeds = [int(x) for x in args.seeds.split(",")]
    runs = []
    for dataset in args.datasets.split(","):
        for alpha in alphas:
            partition = "iid" if alpha is None else "non-iid"
            for seed in seeds:
                runs.append((dataset, None, "none", partition, alpha or 0.5, seed))
                runs += [(dataset, None if a == "clean" else a, d, partition, alpha or 0.5, seed)
                         for a in attacks for d in defenses if not (a == "clean" and d == "none")]
    start = max(1, args.rounds - 2)  # late_boost: the last three rounds
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_session, d, a, f, args.rounds, args.orgs, args.attackers, p, al, sd, args.mode,
                               start if a and a.startswith("late_boost") else 0)
                   for d, a, f, p, al, sd in runs]
        sessions = [f.result() for f in futures]
    refused = [s for s in sessions if "refused" in s]
    sessions = [s for s in sessions if "refused" not in s]
    print(grid_markdown(sessions) if args.markdown else grid_table(sessions, args.rounds))
    for s in refused:
        print(f"refused: {s['dataset']} {s['partition']} {s['attack']} {s['defense']} ({s['mode']}): {s['refused']}")
    print(f"\n{len(sessions)} sessions, {time.perf_counter() - started:.0f} s wall")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"args": vars(args), "sessions": sessions}, indent=1, default=list))


def grid_markdown(sessions: list[dict]) -> str:
    """The grid as a Markdown table (docs/integrity.md): one row per (dataset, partition, attack, defense)."""
    clean = {(s["dataset"], s["partition"], s["seed"]): s["final_accuracy"] for s in sessions
             if s["attack"] == "clean" and s["defense"] == "none"}
    cells: dict[tuple, list[dict]] = {}
    for s in sessions:
        if s["defense"] != "none":
            cells.setdefault((s["dataset"], s["partition"], s["attack"], s["defense"]), []).append(s)
    lines = ["| data | partition | attack | defense | accuracy − clean | recall of the pair | honest penalized "
             "| attackers banned in round (per seed) | rollbacks |", "|---|---|---|---|---:|---:|---:|---|---:|"]
    for (dataset, partition, attack, defense), rows in cells.items():
        gap = statistics.mean(r["final_accuracy"] - clean.get((dataset, partition, r["seed"]), math.nan) for r in rows)
        recall = "/".join(f"{statistics.mean(list(r['target_recall'].values())[i] for r in rows):.2f}" for i in range(2))
        banned = "; ".join(", ".join(str(r["attacker_banned_in"][a] or "–") for a in r["attackers"]) or "–"
                           for r in rows)
        lines.append(f"| {dataset} | {partition} | {attack} | {defense} | {gap:+.3f} | {recall} | "
                     f"{sum(len(r['honest_penalized']) for r in rows)} | {banned} | {sum(r['rollbacks'] for r in rows)} |")
    return "\n".join(lines)


def grid_table(sessions: list[dict], rounds: int) -> str:
    """One row per (dataset, partition, attack, defense), aggregated over seeds."""
    clean = {(s["dataset"], s["partition"], s["seed"]): s["final_accuracy"] for s in sessions
             if s["attack"] == "clean" and s["defense"] == "none"}
    cells: dict[tuple, list[dict]] = {}
    for s in sessions:
        cells.setdefault((s["dataset"], s["partition"], s["attack"], s["defense"]), []).append(s)
    header = (f"{'dataset':<14}{'partition':<16}{'attack':<19}{'defense':<10}{'acc':>7}{'-clean':>8}"
              f"{'recall a/b':>12}{'honest pen':>11}{'attackers banned in (per seed)':>34}{'rb':>4}{'stall':>6}")
    lines = [header, "-" * len(header)]
    for (dataset, partition, attack, defense), rows in cells.items():
        accuracy = statistics.mean(r["final_accuracy"] for r in rows)
        gap = statistics.mean(r["final_accuracy"] - clean.get((dataset, partition, r["seed"]), math.nan) for r in rows)
        recalls = [list(r["target_recall"].values()) for r in rows]
        recall = "/".join(f"{statistics.mean(v[i] for v in recalls):.2f}" for i in range(2))
        honest = f"{sum(len(r['honest_penalized']) for r in rows)}m/{sum(r['honest_penalties'] for r in rows)}x"
        banned = " ".join(",".join(f"{r['attacker_banned_in'][a]}" if r["attacker_banned_in"][a] else "-"
                                   for a in r["attackers"]) or "." for r in rows)
        rollbacks = sum(r["rollbacks"] for r in rows)
        stalls = sum(r["stalled"] is not None for r in rows)
        lines.append(f"{dataset:<14}{partition:<16}{attack:<19}{defense:<10}{accuracy:>7.3f}{gap:>+8.3f}"
                     f"{recall:>12}{honest:>11}{banned:>34}{rollbacks:>4}{stalls:>6}")
    lines.append(f"\nacc: final accuracy (mean over seeds); -clean: minus the clean session of the same seed; "
                 f"recall a/b: test recall of the targeted class pair; honest pen: honest members ever penalized "
                 f"(summed over seeds) / penalties; banned in: round each attacker was banned ('-': not within "
                 f"{rounds} rounds), seeds separated by spaces; rb: rollbacks; stall: sessions that stopped")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--orgs", type=int, default=10)
    parser.add_argument("--attackers", type=float, default=0.3)
    parser.add_argument("--jobs", type=int, default=2, help="sessions run in parallel (processes)")
    parser.add_argument("--quick", action="store_true", help="one dataset, two attacks, three defenses")
    parser.add_argument("--grid", action="store_true", help="the non-IID grid (options below) instead")
    parser.add_argument("--datasets", default="digits")
    parser.add_argument("--alphas", default="0.5", help="Dirichlet alphas, comma-separated ('iid' for IID)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--attacks", default=",".join(GRID_ATTACKS))
    parser.add_argument("--defenses", default="none,all")
    parser.add_argument("--mode", default="plaintext", help="plaintext, paillier or masking")
    parser.add_argument("--out", default="", help="write the grid's sessions to this JSON file")
    parser.add_argument("--markdown", action="store_true", help="print the grid as a Markdown table")
    parser.add_argument("--from-json", default="", help="print the grid of an earlier --out file (runs nothing)")
    args = parser.parse_args()
    if args.from_json:
        sessions = json.loads(Path(args.from_json).read_text())["sessions"]
        return print(grid_markdown(sessions) if args.markdown else grid_table(sessions, args.rounds))
    if args.grid:
        return grid_main(args)
    datasets, attacks, defenses = DATASETS, ATTACKS, list(DEFENSES)
    if args.quick:
        datasets, attacks, defenses = ("breast_cancer",), ("sign_flip", "label_flip+lie"), ["none", "attribution", "all"]
    runs = plan_runs(datasets, attacks, defenses)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_session, d, a, f, args.rounds, args.orgs, args.attackers) for d, a, f in runs]
        sessions = [f.result() for f in futures]
    wall = time.perf_counter() - started
    clean = {s["dataset"]: s["final_accuracy"] for s in sessions if s["attack"] == "clean" and s["defense"] == "none"}
    with_all = [s for s in sessions if s["defense"] == "all" and s["attack"] != "clean"]
    summary = {
        "orgs": args.orgs, "rounds": args.rounds, "attackers": args.attackers, "sessions": len(sessions),
        "wall_seconds": round(wall, 1),
        "goal_within_2_points_with_all_defenses": all(
            s["final_accuracy"] >= clean[s["dataset"]] - 0.02 for s in with_all),
        "worst_gap_with_all_defenses": round(min(
            (s["final_accuracy"] - clean[s["dataset"]] for s in with_all), default=math.nan), 4),
        "honest_penalized_with_all_defenses": sorted({(s["dataset"], s["attack"], m)
                                                      for s in with_all for m in s["honest_penalized"]}),
        "honest_banned_with_all_defenses": sorted({(s["dataset"], s["attack"], m)
                                                   for s in with_all for m in s["honest_banned"]}),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "integrity.json").write_text(json.dumps({"summary": summary, "defenses": DEFENSES,
                                                        "sessions": sessions}, indent=1, default=list))
    plot(sessions, RESULTS / "integrity.png", headline="sign_flip+lie" if "sign_flip+lie" in attacks else attacks[0])
    print(table(sessions, defenses))
    print("\n" + "\n".join(f"{k}: {v}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
