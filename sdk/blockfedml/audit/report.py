"""``blockfedml audit report``: one self-contained HTML page that people can read.

Everything is inline (plotly.js included once, CSS in the page), so the file
opens offline, can be mailed or archived beside the ledger, and loads nothing
from the network. Everything shown comes from the ledger: the endorsed metric
is the median of the members' validation metrics that the contract recorded
(the held-out test accuracy of the demo table is not on the ledger).
"""

from __future__ import annotations

import datetime as _dt
import html
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
from blockfedml_chaincode import rules

from blockfedml.audit.evidence import Record, WorldState, gather, phase_tx
from blockfedml.audit.findings import FAILED, PARTLY_VERIFIED, VERIFIED, AuditReport
from blockfedml.errors import InvalidInputError

if TYPE_CHECKING:
    from blockfedml.consortium import Consortium

COLOURS = {"accepted": "#2e7d32", "rolled_back": "#c62828", "proposed": "#f9a825"}
PARTICIPATION = ("absent", "screened", "selected", "contributed", "banned")
PARTICIPATION_COLOURS = ("#eeeeee", "#bbdefb", "#64b5f6", "#1565c0", "#c62828")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash")

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #212121; }
main { max-width: 1120px; margin: 0 auto; padding: 24px; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.meta { color: #616161; } .ok { color: #2e7d32; font-weight: bold; } .partly { color: #ef6c00; font-weight: bold; } .bad { color: #c62828; font-weight: bold; }
table { border-collapse: collapse; width: 100%; font-size: 0.88em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; } tr:nth-child(even) td { background: #fafafa; }
td.pass { color: #2e7d32; font-weight: bold; } td.fail { color: #c62828; font-weight: bold; }
td.skip { color: #ef6c00; font-weight: bold; } td.rolled_back { color: #c62828; } code { font-size: 0.95em; }
.plot { border: 1px solid #eee; margin: 0.8em 0; }
"""


def consortium_report(consortium: "Consortium", path: Path | str, as_org: str | None = None,
                      verify: bool = True) -> tuple[Path, AuditReport | None]:
    """Write the report of a consortium work directory (with its audit unless ``verify`` is false)."""
    from blockfedml.audit.verify import audit

    evidence = gather(consortium, as_org, verify=verify)
    state = evidence.require_state()
    result = None
    if verify:
        result = audit(state, evidence.store, evidence.blocks, evidence.backend)
        result.notes.extend(evidence.notes)
    title = f"BlockFedML audit report: {consortium.workdir.name}"
    return write_report(path, state, result, title), result


def write_report(path: Path | str, state: WorldState, audit: AuditReport | None, title: str) -> Path:
    """Write the report atomically (a failure leaves no partial file) and return its path."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InvalidInputError(f"cannot write the report to {path}: folder {path.parent} does not exist")
    page = render_report(state, audit, title)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(page)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the report from its readers
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def render_report(state: WorldState, audit: AuditReport | None, title: str) -> str:
    """The whole page as a string."""
    figures = [("plot-metric", metric_figure(state)), ("plot-reputation", reputation_figure(state)),
               ("plot-participation", participation_figure(state))]
    plots = [fig.to_html(full_html=False, include_plotlyjs="inline" if i == 0 else False, div_id=div_id,
                         config={"displaylogo": False, "responsive": True})
             for i, (div_id, fig) in enumerate(figures)]
    decided = [r for r in state.rounds if r.get("decision")]
    rolled = sum(r["decision"]["status"] == rules.ROLLED_BACK for r in decided)
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        f"<h1>{_e(title)}</h1>",
        f"<p class='meta'>{len(state.rounds)} rounds ({len(decided) - rolled} accepted, {rolled} rolled back), "
        f"{len(state.members)} members, head checkpoint <code>{_e(state.head.get('checkpoint', '')[:16])}</code> "
        f"of round {_e(state.head.get('round'))}. Generated {generated} from the ledger.</p>",
        _audit_section(audit),
        "<h2>Endorsed metric per round</h2>",
        "<p>The median of the participants' validation metric for each proposed aggregate, as the contract "
        "recorded it; rolled-back aggregates are marked with a red cross, the line follows the accepted model.</p>",
        f"<div class='plot'>{plots[0]}</div>",
        "<h2>Reputation per organization</h2>",
        f"<div class='plot'>{plots[1]}</div>",
        "<h2>Participation</h2>",
        f"<div class='plot'>{plots[2]}</div>",
        "<h2>Rounds</h2>", rounds_table(state),
        "<h2>Checkpoints</h2>", checkpoints_table(state),
        "<h2>Penalties and bans</h2>", penalties_table(state),
    ]
    body = "\n".join(sections)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{_CSS}</style></head>"
            f"<body><main>\n{body}\n</main></body></html>\n")


# --------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------

def metric_figure(state: WorldState) -> go.Figure:
    """Endorsed metric of every decided round; rollbacks as red crosses; the head's metric as a line."""
    start = genesis_metric(state)
    head_x, head_y = ([0], [start]) if start is not None else ([], [])
    fig = go.Figure()
    if start is not None:
        fig.add_trace(go.Scatter(x=[0], y=[start], mode="markers", name="genesis model",
                                 marker={"symbol": "diamond", "size": 11, "color": "#455a64"},
                                 hovertemplate="genesis model<br>%{y:.4f} (its first round's participants' "
                                               "median base metric)<extra></extra>"))
    for status, symbol in (("accepted", "circle"), ("rolled_back", "x")):
        rounds = [r for r in state.rounds if (r.get("decision") or {}).get("status") == status]
        fig.add_trace(go.Scatter(
            x=[r["round"] for r in rounds], y=[_metric(r["decision"]["metric"]) for r in rounds],
            mode="markers", name=status.replace("_", " "),
            marker={"symbol": symbol, "size": 12 if status == "accepted" else 14, "color": COLOURS[status]},
            customdata=[[r["decision"]["improvement"] / rules.METRIC_SCALE, phase_tx(r, "closed") or ""]
                        for r in rounds],
            hovertemplate="round %{x}<br>endorsed %{y:.4f}<br>improvement %{customdata[0]:+.4f}"
                          "<br>tx %{customdata[1]}<extra></extra>"))
    for r in state.rounds:
        decision = r.get("decision") or {}
        if decision.get("status") == rules.ACCEPTED:
            head_x.append(r["round"])
            head_y.append(_metric(decision.get("metric")))
        elif decision:
            head_x.append(r["round"])
            head_y.append(head_y[-1] if head_y else None)
    fig.add_trace(go.Scatter(x=head_x, y=head_y, mode="lines", name="accepted model", line={"color": "#455a64"},
                             line_shape="hv", hoverinfo="skip"))
    higher = state.settings.get("higher_is_better", 1)
    return _layout(fig, "round", "validation accuracy (median)" if higher else "validation loss (median)")


def genesis_metric(state: WorldState) -> float | None:
    """The genesis model's measured metric: the lower median of the base metrics its first round's
    participants endorsed with (the genesis record's own metric is a placeholder, never measured)."""
    genesis = (state.checkpoint(0) or {}).get("digest")
    for r in state.rounds:
        bases = [e["base_metric"] for e in state.endorsements.get(r["round"], []) if "base_metric" in e]
        if r.get("base_checkpoint") == genesis and bases:
            return _metric(rules.lower_median(bases))
    return None


def reputation_figure(state: WorldState) -> go.Figure:
    """Each member's balance after every round, with the ban threshold."""
    last = state.rounds[-1]["round"] if state.rounds else 0
    fig = go.Figure()
    for i, msp in enumerate(state.members):
        entries = state.reputation_history.get(msp, [])
        if not entries:
            continue
        xs = list(range(entries[0]["round"], last + 1))
        ys = [_balance_after(entries, x) for x in xs]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=msp, line_shape="hv",
                                 line={"dash": DASHES[i % len(DASHES)]},  # equal balances stay visible
                                 hovertemplate=f"{msp}<br>after round %{{x}}: %{{y}}<extra></extra>"))
    threshold = state.settings.get("ban_threshold")
    if threshold is not None:
        fig.add_hline(y=threshold, line_dash="dash", line_color=COLOURS["rolled_back"],
                      annotation_text=f"ban threshold {threshold}", annotation_position="top left")
    return _layout(fig, "round", "reputation balance")


def participation_figure(state: WorldState) -> go.Figure:
    """Who screened, was selected and contributed in each round; bans in red."""
    numbers = [r["round"] for r in state.rounds]
    members = state.members
    banned_from = {m: r["round"] for r in state.rounds for m in (r.get("decision") or {}).get("banned") or []}
    z, text = [], []
    for msp in members:
        row, labels = [], []
        for record in state.rounds:
            level = _participation(state, record, msp, banned_from)
            row.append(level)
            labels.append(PARTICIPATION[level])
        z.append(row)
        text.append(labels)
    n = len(PARTICIPATION)
    scale = [[edge, PARTICIPATION_COLOURS[i]] for i in range(n) for edge in (i / n, (i + 1) / n)]
    fig = go.Figure(go.Heatmap(
        z=z, x=numbers, y=members, text=text, texttemplate="%{text}", zmin=-0.5, zmax=n - 0.5,
        colorscale=scale, xgap=2, ygap=2, hovertemplate="%{y}, round %{x}: %{text}<extra></extra>",
        colorbar={"tickvals": list(range(n)), "ticktext": list(PARTICIPATION), "title": "role"}))
    fig = _layout(fig, "round", "organization")
    fig.update_layout(height=140 + 46 * max(len(members), 1), xaxis={"dtick": 1})
    return fig


def _participation(state: WorldState, record: Record, msp: str, banned_from: dict[str, int]) -> int:
    number = record["round"]
    if msp in banned_from and number > banned_from[msp]:
        return PARTICIPATION.index("banned")
    if msp in ((record.get("proposal") or {}).get("contributors") or []):
        return PARTICIPATION.index("contributed")
    if msp in (record.get("selected") or []):
        return PARTICIPATION.index("selected")
    if any(s["msp_id"] == msp for s in state.screenings.get(number, [])):
        return PARTICIPATION.index("screened")
    return PARTICIPATION.index("absent")


def _layout(fig: go.Figure, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(template="plotly_white", height=380, margin={"l": 60, "r": 20, "t": 20, "b": 50},
                      xaxis_title=x_title, yaxis_title=y_title, legend={"orientation": "h", "y": 1.08})
    fig.update_xaxes(dtick=1)
    return fig


def _balance_after(entries: list[Record], round_number: int) -> int | None:
    balance = None
    for entry in entries:
        if entry["round"] <= round_number:
            balance = entry["balance"]
    return balance


# --------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------

def _audit_section(audit: AuditReport | None) -> str:
    if audit is None:
        return "<p class='meta'>Verification was not run for this report.</p>"
    verdict = {
        VERIFIED: "<span class='ok'>verified: every check recomputed everything it covers</span>",
        PARTLY_VERIFIED: f"<span class='partly'>partly verified: nothing failed, but {len(audit.unchecked)} "
                         f"item(s) were not recomputed</span> ({_e('; '.join(audit.unchecked[:5]))}"
                         f"{'; ...' if len(audit.unchecked) > 5 else ''})",
        FAILED: "<span class='bad'>the audit found problems</span>",
    }[audit.verdict]
    rows = []
    for check in audit.checks:
        found = "<br>".join(_e(str(f)) for f in check.findings) or "<br>".join(_e(s) for s in check.skipped)
        rows.append([check.name, (check.status.upper(), check.status), check.title + f" ({check.detail})", found])
    return (f"<h2>Verification</h2><p>{verdict} ({audit.backend} ledger"
            f"{'' if audit.height is None else f', {audit.height} blocks'}).</p>"
            + _table("checks-table", ["check", "status", "what", "findings / skipped"], rows, raw_last=True))


def rounds_table(state: WorldState) -> str:
    rows = []
    for r in state.rounds:
        decision = r.get("decision") or {}
        status = decision.get("status", "")
        rows.append([r["round"], r.get("mode"), r.get("phase"), ", ".join(r.get("participants") or []),
                     r.get("aggregator") or "", (status.replace("_", " "), status),
                     _fmt_metric(decision.get("metric")), _fmt_metric(decision.get("improvement"), signed=True),
                     decision.get("endorsements", ""), ", ".join(decision.get("banned") or []),
                     _short(phase_tx(r, "closed"))])
    return _table("rounds-table", ["round", "mode", "phase", "participants", "aggregator", "decision",
                                   "validation metric (median)", "improvement", "endorsements", "banned", "decided by tx"], rows)


def checkpoints_table(state: WorldState) -> str:
    rows = [[c["round"], (c.get("status", "").replace("_", " "), c.get("status", "")),
             _fmt_metric(c.get("metric")) if c["round"] else "(not endorsed)",
             _short(c.get("digest")), _short(c.get("parent")) or "(genesis)", ", ".join(c.get("contributors") or [])]
            for c in state.checkpoints]
    return _table("checkpoints-table", ["round", "status", "validation metric", "digest", "parent", "contributors"], rows)


def penalties_table(state: WorldState) -> str:
    banned_in = {m: r["round"] for r in state.rounds for m in (r.get("decision") or {}).get("banned") or []}
    rows = [[msp, e["round"], e["delta"], e["balance"], "banned" if banned_in.get(msp) == e["round"] else "",
             _short(e.get("tx"))]
            for msp, entries in sorted(state.reputation_history.items()) for e in entries
            if e.get("reason") in ("penalty", "group_penalty")]
    if not rows:
        return "<p id='penalties-table'>No penalties: every proposed aggregate was accepted.</p>"
    return _table("penalties-table", ["organization", "round", "delta", "balance after", "ban", "tx"], rows)


def _table(table_id: str, headers: list[str], rows: list[list[Any]], raw_last: bool = False) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            if isinstance(cell, tuple):  # (text, css class)
                cells.append(f"<td class='{_e(cell[1])}'>{_e(cell[0])}</td>")
            elif raw_last and i == len(row) - 1:
                cells.append(f"<td>{cell}</td>")  # already escaped
            else:
                cells.append(f"<td>{_e(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table id='{table_id}'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _short(digest: str | None) -> str:
    return (digest or "")[:16]


def _metric(value: int | None) -> float | None:
    return None if value is None else value / rules.METRIC_SCALE


def _fmt_metric(value: int | None, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value / rules.METRIC_SCALE:{'+' if signed else ''}.4f}"
