"""The report to take home: one HTML file of real tiny-random runs (curves, frontier, config, eval, samples, votes)
that opens offline; built by ``alignlab report``, the app's Export report button and the notebook's."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import plotly.offline
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from alignlab import rundir
from alignlab.cli import main
from alignlab.drift import verdict
from alignlab.errors import AlignLabError
from alignlab.evaluate import compare_run
from alignlab.metrics import PROBE_LENGTH_RATIO, PROBE_REF_PPL_RATIO
from alignlab.panels import DRIFT, frontier_points, series, visible_panels
from alignlab.ui.gradio.app import create_app
from alignlab.ui.gradio.server import serve
from alignlab.ui.notebook import RunsView
from alignlab.ui.report import REPORT_NAME, flat_config, report_file_name, report_html, write_report
from alignlab.votes import Round, append_vote, reward_figure, run_votes, summary

pytestmark = pytest.mark.timeout(300)
RUN_IDS = ("reported", "reported-beta")
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    """Two finished 2-step tiny-random DPO runs that differ in β, probed every step (a frontier of three points);
    the first evaluated and voted on."""
    data = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Review {i}: the film", "chosen": " was wonderful.",
                                        "rejected": " was awful."}) + "\n" for i in range(12)))
    runs = tmp_path_factory.mktemp("report") / "runs"
    for run_id, beta in zip(RUN_IDS, ("0.1", "0.3")):
        assert main(["train", "--method", "dpo", "--model", "tiny-random", "--dataset", str(data), "--max-steps", "2",
                     "--batch-size", "2", "--max-length", "48", "--max-completion-length", "8", "--probe-every", "1",
                     "--beta", beta, "--output-dir", str(runs), "--run-id", run_id, "--quiet"]) == 0
    compare_run(runs / RUN_IDS[0], samples_per_prompt=1, with_fluency=False)
    for number, choice in enumerate(("A", "B", "tie")):
        voted = Round(RUN_IDS[0], f"Film {number}", "chat", " was dull.", " was wonderful.", "tiny-random",
                      RUN_IDS[0], {"max_new_tokens": 4, "temperature": 1.0, "top_p": 1.0, "seed": 5},
                      reward_source="sentiment", reference_reward=-0.3, aligned_reward=0.6)
        append_vote(rundir.votes_path(runs, RUN_IDS[0]), voted.record(choice))
    return runs


class Links(HTMLParser):
    """Every src and href of a page's tags (a script's text is not parsed as tags)."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.found += [value or "" for name, value in attrs if name in ("src", "href")]


def links(page: str) -> list[str]:
    parser = Links()
    parser.feed(page)
    return parser.found


def numbers_in(page: str) -> set[float]:
    """Every number written in the page, as a float."""
    return {float(text) for text in NUMBER.findall(page)}


def test_the_report_holds_config_curves_frontier_eval_votes_samples_and_plotly(runs_dir):
    run_dir = runs_dir / RUN_IDS[0]
    page = report_html([run_dir])
    config = rundir.read_config(run_dir)
    for key, value in flat_config(config).items():  # each setting with its value, on its row
        assert f"<td>{html.escape(key)}</td><td>{html.escape(value)}</td>" in page
    rows, _ = rundir.read_metrics(run_dir)
    steps, losses = series(rows, "loss")
    points = frontier_points(rows)
    assert len(losses) == 2 and len(points) == 3
    shown = numbers_in(page)  # plotly writes 1.27e-6 where Python writes 1.27e-06: compare numbers as numbers
    for value in [*losses, *(point["kl"] for point in points), *(point["reward"] for point in points)]:
        assert float(value) in shown  # every logged point is in a figure's data
    samples = rundir.read_samples(run_dir)
    assert samples
    for sample in samples:
        assert html.escape(sample["reference"]) in page and html.escape(sample["aligned"]) in page
    result = rundir.read_eval(run_dir)
    assert f"{result['gain']:+.3f} ± {result['gain_se']:.3f}" in page
    counted, _ = run_votes(runs_dir, RUN_IDS[0])
    assert counted.votes == 3
    for line in summary(counted, reward_figure(run_dir)):
        assert html.escape(line) in page
    assert page.count(plotly.offline.get_plotlyjs()) == 1  # plotly.js inside, once
    assert page.count("Plotly.newPlot(") == len(visible_panels(["dpo"], {RUN_IDS[0]: rows}))
    assert links(page) == []  # nothing to fetch: no src, no href at all
    assert html.escape(verdict(rows).text) in page  # the drift verdict in words, the run's own numbers
    last = [row for row in rows if "rewards/chosen" in row][-1]
    loss_title = ("Loss at 0.693 (ln 2)" if not config["method_args"].get("sft_weight")  # default: + chosen NLL
                  else "Loss: DPO plus the chosen answer&#x27;s likelihood")
    assert f"step {last['step']}: chosen {last['rewards/chosen']:+.3f}" in page and loss_title in page
    assert DRIFT in page  # the drift panel, with every probe's ratios in its data
    for row in rows:
        for key in (PROBE_LENGTH_RATIO, PROBE_REF_PPL_RATIO):
            assert key not in row or float(row[key]) in shown


def test_several_runs_overlay_and_their_differing_settings_are_marked(runs_dir):
    page = report_html([runs_dir / run_id for run_id in RUN_IDS])
    assert "<tr class='differs'><td>method_args.beta</td><td>0.1</td><td>0.3</td></tr>" in page
    assert "<tr><td>method</td><td>dpo</td><td>dpo</td></tr>" in page
    assert all(f'"name":"{run_id}"' in page for run_id in RUN_IDS)  # one line per run in the overlays
    assert "not evaluated yet: alignlab eval" in page  # the second run has no eval: said, not left blank


def test_text_from_a_run_is_escaped(runs_dir, tmp_path):
    copy = tmp_path / "runs" / "copied"
    shutil.copytree(runs_dir / RUN_IDS[0], copy)
    with open(copy / rundir.SAMPLES, "a", encoding="utf-8") as out:
        out.write(json.dumps({"prompt": "<b>bold</b>", "reference": "</table><script>alert(1)</script>",
                              "reference_reward": 0.1, "aligned": "a & b", "aligned_reward": 0.2}) + "\n")
    page = report_html([copy])
    assert "&lt;/table&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "a &amp; b" in page


def test_errors_name_what_is_wrong(runs_dir, tmp_path):
    with pytest.raises(AlignLabError, match="report: no run given"):
        report_html([])
    with pytest.raises(AlignLabError, match="out: .* is a folder"):
        write_report([runs_dir / RUN_IDS[0]], tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_cli_writes_the_report_of_run_ids_and_refuses_an_unknown_run(runs_dir, tmp_path):
    out = tmp_path / "take-home.html"
    command = [sys.executable, "-m", "alignlab", "report", *RUN_IDS, "--output-dir", str(runs_dir), "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"report of 2 runs -> {out}"
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and all(run_id in page for run_id in RUN_IDS)
    missing = subprocess.run([*command[:4], "no-such-run", "--output-dir", str(runs_dir), "--out",
                              str(tmp_path / "other.html")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and missing.stderr.startswith("error: run: no run 'no-such-run'")
    assert not (tmp_path / "other.html").exists()


def test_the_cli_never_writes_into_a_run_and_replaces_a_file_only_with_force(runs_dir, tmp_path, capsys):
    """``report --out`` inside a run folder is refused even with --force (the run's config.json stays as it was);
    an existing file is replaced only with --force; each refusal is one line and exit code 2."""
    run_dir = runs_dir / RUN_IDS[0]
    config = run_dir / rundir.CONFIG
    before = config.read_bytes()
    for out in (config, run_dir / rundir.MODEL / "report.html", run_dir / "report.html"):
        assert main(["report", RUN_IDS[0], "--output-dir", str(runs_dir), "--out", str(out), "--force"]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and f"is inside the run folder {str(run_dir.resolve())!r}" in error
    assert config.read_bytes() == before and not (run_dir / "report.html").exists()
    assert not (run_dir / rundir.MODEL / "report.html").exists()
    assert all(run["state"] != rundir.UNREADABLE for run in rundir.list_runs(runs_dir))
    mine = tmp_path / "mine.html"
    mine.write_text("my notes", encoding="utf-8")
    assert main(["report", RUN_IDS[0], "--output-dir", str(runs_dir), "--out", str(mine)]) == 2
    error = capsys.readouterr().err
    assert error == f"error: out: {str(mine)!r} already exists; pass --force (force=True) to replace it\n"
    assert mine.read_text(encoding="utf-8") == "my notes"
    assert main(["report", RUN_IDS[0], "--output-dir", str(runs_dir), "--out", str(mine), "--force"]) == 0
    assert mine.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_the_app_exports_the_overlaid_runs_for_download(runs_dir):
    demo = create_app(runs_dir)
    _, url, _ = serve(demo, port=None, block=False)
    try:
        client = Client(url, verbose=False)
        client.predict(api_name="/list_runs")  # the session's pickers learn the run ids
        overlaid = client.predict(list(RUN_IDS), RUN_IDS[0], api_name="/export_report")  # the File, shown
        assert overlaid["visible"] and Path(overlaid["value"]).name == report_file_name(RUN_IDS)
        page = Path(overlaid["value"]).read_text(encoding="utf-8")  # downloaded through the app
        assert "<tr class='differs'><td>method_args.beta</td>" in page and plotly.offline.get_plotlyjs() in page
        opened = client.predict([], RUN_IDS[1], api_name="/export_report")  # none overlaid: the run opened
        assert Path(opened["value"]).name == f"report-{RUN_IDS[1]}.html"
        assert f"<th>{RUN_IDS[0]}</th>" not in Path(opened["value"]).read_text(encoding="utf-8")
        with pytest.raises(AppError, match="Pick runs to overlay"):
            client.predict([], None, api_name="/export_report")
    finally:
        demo.services.jobs.close()
        demo.close()


def test_the_notebook_writes_report_html_beside_the_runs(runs_dir):
    view = RunsView(runs_dir, selected=[RUN_IDS[1]])
    view.report_button.click()
    path = runs_dir / REPORT_NAME
    assert f"<code>{html.escape(str(path.resolve()))}</code>" in view.report_note.value
    page = path.read_text(encoding="utf-8")
    assert RUN_IDS[1] in page and f"<th>{RUN_IDS[0]}</th>" not in page  # the selected run only
    assert [run["run_id"] for run in rundir.list_runs(runs_dir)] == sorted(RUN_IDS, reverse=True)  # not a run


@pytest.mark.browser
def test_the_report_draws_its_plots_offline_in_chromium(runs_dir, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make browser)")
    out = write_report([runs_dir / run_id for run_id in RUN_IDS], tmp_path / "report.html")
    rows = {run_id: rundir.read_metrics(runs_dir / run_id)[0] for run_id in RUN_IDS}
    panels = visible_panels(["dpo"], rows)
    requested: list[str] = []
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1400, "height": 1000})
            context.route(re.compile(r"^(?!file:).*"), lambda route: (requested.append(route.request.url),
                                                                       route.abort()))
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(out.as_uri())
            page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {len(panels)}",
                                   timeout=60_000)
            drawn = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].map(
                plot => ({title: plot.layout.title.text, lines: plot.data.filter(t => t.fill !== 'toself')
                          .map(t => ({name: t.name, x: t.x, y: t.y}))}))""")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        finally:
            browser.close()
    assert errors == [] and requested == []  # drawn from the file alone
    assert [plot["title"].split("<br>")[0] for plot in drawn] == [panel.title for panel in panels]
    drift = next(plot["title"] for plot in drawn if plot["title"].startswith(DRIFT))  # its verdict under its title
    assert all(f"{run_id}: " in drift for run_id in RUN_IDS)
    loss = next(plot for plot in drawn if plot["title"] == "Loss")
    for run_id in RUN_IDS:
        line = next(line for line in loss["lines"] if line["name"] in (run_id, f"{run_id} · loss"))
        assert (line["x"], line["y"]) == tuple(map(list, series(rows[run_id], "loss")))
    frontier = drawn[-1]["lines"]
    assert {line["name"]: len(line["x"]) for line in frontier} == {run_id: 3 for run_id in RUN_IDS}
