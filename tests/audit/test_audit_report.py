"""The HTML report is self-contained and renders in a real headless browser.

Debian's chromium loads the file with networking disabled, runs its scripts
(plotly draws the three plots as SVG) and dumps the resulting DOM; a screenshot
must be a real picture. Skipped, with the reason, where no chromium is installed
(``make test`` installs it where apt can).
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from tamper import corrupt_blob

from blockfedml.audit.report import consortium_report
from blockfedml.consortium import Consortium
from blockfedml.errors import InvalidInputError
from blockfedml.store import ModelStore

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.fixture(scope="module")
def report(finished_session, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    consortium = Consortium.open(finished_session)
    try:
        written, audit = consortium_report(consortium, path)
    finally:
        consortium.close()
    assert written == path and audit.ok
    return path


def test_the_report_inlines_everything_and_holds_the_tables(report):
    page = report.read_text()
    markup = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)  # plotly.js holds URLs it never loads here
    assert not re.search(r"<(script|link|img|iframe)[^>]*(src|href)=", page), "the page loads a resource"
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", markup), "the page links to the network"
    assert page.count("<script") >= 3 and "Plotly.newPlot" in page
    for table in ("checks-table", "rounds-table", "checkpoints-table", "penalties-table"):
        assert f"id='{table}'" in page
    assert "rolled back" in page and "Org3MSP" in page and "banned" in page


def test_the_report_of_a_tampered_copy_shows_the_failure(session_copy, tmp_path):
    digest = next(ModelStore(session_copy / "orgs" / "Org1" / "store").digests())
    corrupt_blob(session_copy, digest)
    consortium = Consortium.open(session_copy)
    try:
        path, audit = consortium_report(consortium, tmp_path / "r.html")
    finally:
        consortium.close()
    page = path.read_text()
    assert not audit.ok and "the audit found problems" in page
    assert "<td class='fail'>FAIL</td>" in page and digest in page


def test_a_report_to_a_missing_folder_is_refused_and_writes_nothing(finished_session, tmp_path):
    consortium = Consortium.open(finished_session)
    try:
        with pytest.raises(InvalidInputError, match="does not exist"):
            consortium_report(consortium, tmp_path / "nowhere" / "r.html")
    finally:
        consortium.close()
    assert list(tmp_path.iterdir()) == []


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-extensions", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, timeout=120, check=True)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium)")
def test_the_report_renders_its_plots_and_tables_in_headless_chromium(report, tmp_path):
    dom = _chromium(tmp_path, "--dump-dom", report.as_uri()).stdout.decode()
    for plot in ("plot-metric", "plot-reputation", "plot-participation"):
        rendered = re.search(rf'<div id="{plot}"[^>]*class="[^"]*js-plotly-plot', dom)
        assert rendered, f"{plot} was not drawn by plotly"
    assert dom.count('class="main-svg"') >= 6  # each plot draws two SVG layers
    assert dom.count("<table") == 4 and "rolled back" in dom
    shot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2600", report.as_uri())
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 50_000  # a page with plots, not a blank one


def test_the_metric_plot_starts_at_the_genesis_models_measured_metric(finished_session):
    from blockfedml.audit.evidence import gather
    from blockfedml.audit.report import metric_figure
    from blockfedml_chaincode import rules

    consortium = Consortium.open(finished_session)
    try:
        state = gather(consortium, None).require_state()
    finally:
        consortium.close()
    first = state.endorsements[1]
    measured = rules.lower_median([e["base_metric"] for e in first]) / rules.METRIC_SCALE
    assert state.checkpoint(0)["metric"] == 0 and measured > 0  # the ledger's genesis metric is a placeholder
    line = next(t for t in metric_figure(state).data if t.name == "accepted model")
    assert line.x[0] == 0 and line.y[0] == measured
