"""A report to take home: one self-contained HTML file of one or more runs that opens offline in any browser.

``alignlab report RUN [RUN ...] --out report.html``, the app's and the notebook's **Export report** buttons all
call :func:`write_report`. The file holds, in this order:

- the runs: their readable names (:func:`alignlab.labels.run_label`), state, steps, last loss, reward, KL and
  instruction followed (the probe's share, :mod:`alignlab.follow`), and their samples' instruction followed,
  reference → aligned;
- their curves and reward-vs-KL frontier, overlaid: the same panels and figures the Runs views draw
  (:func:`alignlab.panels.visible_panels`, :func:`alignlab.ui.figures.panel_figures`), interactive;
- each run's drift verdict in words (:func:`alignlab.drift.verdict`; its panel is among the curves) and, for a
  DPO-family run, what its metrics mean in its own numbers (:func:`alignlab.explain.explain`);
- the people's blind win-rate with its 95% Wilson interval, the reward's win-rate on the held-out samples and
  their agreement (:func:`alignlab.votes.summary`);
- each run's last ``alignlab eval`` (:func:`alignlab.rundir.read_eval`): reward gain ± paired s.e., win-rate,
  instruction followed aligned vs reference, fluency;
- the configs side by side, the settings that differ between runs marked;
- each run's held-out samples, reference and aligned side by side with their rewards, under which prompts it held
  out (never trained on).

Self-contained: plotly.js is inside the file once (:func:`plotly.offline.get_plotlyjs`), each figure's data
beside it; no script, style sheet or image is fetched from anywhere, so the file works from a USB stick on a
laptop without network. Every text from a run (prompts, answers, names, config values) is HTML-escaped.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import secrets
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import plotly.offline

from alignlab.drift import verdict
from alignlab.errors import AlignLabError
from alignlab.explain import explain
from alignlab.generation import prompt_text
from alignlab.held_out import held_out_of_run
from alignlab.labels import run_label
from alignlab.methods import method_names
from alignlab.panels import visible_panels
from alignlab.rundir import UNREADABLE, enclosing_run_dir, read_eval, read_run, read_samples, samples_summary
from alignlab.ui.figures import panel_figures
from alignlab.ui.format import FOLLOWED, FOLLOWED_CHANGE, MISSING, followed_change, number, samples_followed, share
from alignlab.votes import reward_figure, run_summary

REPORT_NAME = "report.html"  # the notebook's report, beside the runs; the CLI's default --out
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1280px; color: #222; padding: 0 16px; }
h1 { font-size: 1.6em; margin-bottom: 4px; } h2 { margin-top: 32px; border-bottom: 1px solid #ddd; }
.note { color: #666; font-size: 90%; }
table { border-collapse: collapse; font-size: 90%; margin: 8px 0; }
th, td { text-align: left; vertical-align: top; padding: 4px 10px; border-bottom: 1px solid #eee; }
th { background: #f6f6f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.differs td { background: #fff6d5; }
.samples td { max-width: 420px; white-space: pre-wrap; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 12px; }
details { margin: 8px 0; } summary { cursor: pointer; font-weight: 600; }
"""


def check_out(out: str | Path, force: bool = False) -> Path:
    """``out`` as a Path if a report may be written there; else AlignLabError naming out. Refused: a folder, a
    path inside a run folder (a report never replaces a run's own files, whatever ``force`` says), and an existing
    file unless ``force``."""
    out = Path(out).expanduser()
    if out.is_dir():
        raise AlignLabError(f"out: {str(out)!r} is a folder, expected a file path such as {REPORT_NAME}")
    run_dir = enclosing_run_dir(out)
    if run_dir is not None:
        raise AlignLabError(f"out: {str(out)!r} is inside the run folder {str(run_dir)!r}, expected a path outside "
                            f"every run folder (a report never writes into a run)")
    if out.exists() and not force:
        raise AlignLabError(f"out: {str(out)!r} already exists; pass --force (force=True) to replace it")
    return out


def write_report(run_dirs: Sequence[str | Path], out: str | Path, force: bool = False) -> Path:
    """Write the report of the runs in ``run_dirs`` (:func:`report_html`) to ``out``, atomically (a reader never
    sees half a file); returns its path. AlignLabError naming ``out`` when it cannot be written, or may not be
    (:func:`check_out`: inside a run folder, or a file that exists and ``force`` is not given)."""
    out = check_out(out, force)
    text = report_html(run_dirs)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        temporary = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")  # made with the user's umask
        try:
            with open(temporary, "x", encoding="utf-8") as file:
                file.write(text)
            os.replace(temporary, out)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    except OSError as error:
        raise AlignLabError(f"out: cannot write {str(out)!r} ({error.strerror or error})") from None
    return out


def report_file_name(run_ids: Sequence[str]) -> str:
    """A file name for the report of ``run_ids``: ``report-<run id>.html`` for one run, ``report-<n>-runs-<hash of
    the ids>.html`` for several (the same runs give the same name, so a second export replaces the first).

    >>> report_file_name(["20250101-120000-dpo-ab12"]), report_file_name(["a", "b"])
    ('report-20250101-120000-dpo-ab12.html', 'report-2-runs-7dbde935.html')
    """
    if len(run_ids) == 1:
        return f"report-{run_ids[0]}.html"
    return f"report-{len(run_ids)}-runs-{hashlib.sha1(' '.join(run_ids).encode()).hexdigest()[:8]}.html"


def report_html(run_dirs: Sequence[str | Path]) -> str:
    """The report of the runs in ``run_dirs`` as one HTML page (see the module's docstring); AlignLabError
    without a run."""
    if not run_dirs:
        raise AlignLabError("report: no run given, expected one or more run directories (or run ids)")
    runs = [read_run(run_dir) for run_dir in run_dirs]
    names = ", ".join(run["run_id"] for run in runs)
    sections = [
        f"<h1>alignlab report</h1><p class='note'>{len(runs)} run{'' if len(runs) == 1 else 's'}: "
        f"{html.escape(names)} · written {html.escape(time.strftime('%Y-%m-%d %H:%M'))}</p>",
        "<h2>Runs</h2>" + runs_table(runs),
        "<h2>Curves and the reward-vs-KL frontier</h2><p class='note'>Frontier: up and to the left is better, "
        "more reward for less drift from the reference. Hover a point for its step.</p>" + plots_html(runs),
        "<h2>Drift, and what the metrics mean</h2>" + drift_html(runs),
        "<h2>Win-rate: people's blind votes and the reward</h2>" + votes_html(runs),
        "<h2>Evaluation (<code>alignlab eval</code>)</h2>" + eval_table(runs),
        "<h2>Config</h2><p class='note'>Settings that differ between the runs are marked.</p>" + config_table(runs),
        "<h2>Samples: reference vs aligned on held-out prompts</h2>" + samples_html(runs),
    ]
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>alignlab report: "
            f"{html.escape(names)}</title><style>{STYLE}</style>\n"
            f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script></head>\n"
            f"<body>{''.join(sections)}</body></html>\n")


def _cells(values: Iterable, numeric: Iterable[int] = ()) -> str:
    """One table row's cells, escaped; the columns in ``numeric`` right-aligned."""
    numeric = set(numeric)
    return "".join(f"<td{' class=num' if index in numeric else ''}>{html.escape(str(value))}</td>"
                   for index, value in enumerate(values))


def _table(header: Sequence[str], rows: Iterable[str], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    return f"<table{f' class={css}' if css else ''}><tr>{head}</tr>{''.join(rows)}</table>"


def runs_table(runs: list[dict]) -> str:
    """The runs: readable name, state, steps, last loss / reward / KL / instruction followed (the probe's), the
    samples' instruction followed (reference → aligned), and the error of a failed or unreadable run."""
    rows = []
    for run in runs:
        summary = samples_summary(run["path"]) if run["state"] != UNREADABLE else None
        values = (run_label(run), run["state"] or MISSING, run["steps"], number(run["loss"]), number(run["reward"]),
                  number(run["kl"]), share(run["follow"]), samples_followed(summary), run["error"] or "")
        rows.append(f"<tr>{_cells(values, numeric=(2, 3, 4, 5, 6))}</tr>")
    return _table(("run", "state", "steps", "loss", "reward", "KL", FOLLOWED, f"samples {FOLLOWED_CHANGE}", "error"),
                  rows)


def plots_html(runs: list[dict]) -> str:
    """Every panel the runs logged, their lines overlaid, then the frontier: one interactive plot each, drawn by
    the plotly.js in the page's head."""
    readable = [run for run in runs if run["state"] != UNREADABLE]
    histories = {run["run_id"]: run["history"] for run in readable}
    methods = dict.fromkeys(run["method"] for run in readable if run["method"] in method_names())
    figures = panel_figures(visible_panels(methods, histories), histories)
    divs = "".join(f"<div>{figure.to_html(full_html=False, include_plotlyjs=False, config=PLOT_CONFIG)}</div>"
                   for figure in figures)
    return f"<div class='plots'>{divs}</div>"


def drift_html(runs: list[dict]) -> str:
    """Per run: its drift verdict in one line (:func:`alignlab.drift.verdict`, from its probe rows; red when it
    alarms) and, for a DPO-family run, the explanations of its metrics in its own numbers
    (:func:`alignlab.explain.explain`)."""
    parts = []
    for run in runs:
        if run["state"] == UNREADABLE:
            continue
        said = verdict(run["history"])
        line = ("<span class='note'>fewer than two probes: no drift to read</span>" if said is None else
                f"<span style='color:{'#b00020' if said.alarm else '#2e7d32'}'>{html.escape(said.text)}</span>")
        parts.append(f"<p><b>{html.escape(run_label(run))}</b>: {line}</p>")
        config = run["config"] or {}
        points = explain(run["method"] or "", config.get("method_args") or {}, run["history"])
        parts += [f"<p><b>{html.escape(point.title)}.</b> {html.escape(point.text)}</p>" for point in points or ()]
    return "".join(parts)


def votes_html(runs: list[dict]) -> str:
    """Per run: the people's blind win-rate of aligned over reference (95% Wilson interval, ties and both-bad
    apart), the reward's win-rate on the held-out samples and their agreement, then each AI annotator's win-rate
    and its agreement with people (:func:`alignlab.votes.run_summary`)."""
    parts = []
    for run in runs:
        run_dir = Path(run["path"])
        try:
            lines, problems = run_summary(run_dir.parent, run["run_id"], reward_figure(run_dir))
        except AlignLabError as error:
            lines, problems = [str(error)], []
        if problems:
            lines.append(f"{len(problems)} damaged line(s) of the votes file skipped: {problems[0]}")
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        parts.append(f"<p><b>{html.escape(run_label(run))}</b></p><ul>{items}</ul>")
    return "".join(parts)


def eval_table(runs: list[dict]) -> str:
    """Each run's last ``alignlab eval``: reward source, prompts × samples, both means, the gain ± paired s.e.,
    the win-rate with its interval, the instruction followed and fluency (distinct words, reference perplexity)
    aligned vs reference."""
    rows = []
    for run in runs:
        result = read_eval(run["path"])
        if result is None:
            note = html.escape(f"not evaluated yet: alignlab eval {run['path']}")
            rows.append(f"<tr>{_cells((run_label(run),))}<td colspan=9 class='note'>{note}</td></tr>")
            continue
        aligned, reference = result.get("aligned_fluency") or {}, result.get("reference_fluency") or {}
        values = (run_label(run), result.get("reward", ""),
                  f"{result.get('prompts', MISSING)} × {result.get('samples_per_prompt', MISSING)}",
                  _signed(result.get("aligned_mean")), _signed(result.get("reference_mean")),
                  f"{result['gain']:+.3f} ± {result['gain_se']:.3f}", _win_rate(result), _eval_followed(result),
                  f"{_number(aligned.get('distinct'))} vs {_number(reference.get('distinct'))}",
                  f"{_number(aligned.get('perplexity'))} vs {_number(reference.get('perplexity'))}")
        rows.append(f"<tr>{_cells(values, numeric=(3, 4, 5))}</tr>")
    header = ("run", "reward", "prompts × samples", "aligned", "reference", "gain ± paired s.e.",
              "win-rate [95% CI]", f"{FOLLOWED} (aligned vs reference)", "distinct words (aligned vs reference)",
              "reference perplexity")
    return _table(header, rows)


def _eval_followed(result: dict) -> str:
    """``0% vs 31% (-31 ± 8 points)`` from an eval's figures; ``–`` where it checked none."""
    aligned, reference = result.get("aligned_follow"), result.get("reference_follow")
    if _number(aligned) == MISSING or _number(reference) == MISSING:
        return MISSING
    change, error = result.get("follow_change"), result.get("follow_change_se")
    paired = (f" ({change * 100:+.0f} ± {error * 100:.0f} points)"
              if _number(change) != MISSING and _number(error) != MISSING else "")
    return f"{share(aligned)} vs {share(reference)}{paired}"


def _number(value) -> str:
    """A table cell of a number read from a file: :func:`~alignlab.ui.format.number`, ``–`` for what is not a finite
    number (an eval without fluency has no perplexity: None, or NaN in files written before)."""
    finite = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return number(value) if finite else MISSING


def _signed(value) -> str:
    return f"{value:+.3f}" if _number(value) != MISSING else MISSING


def _win_rate(result: dict) -> str:
    """``62% [41–79%] (8 won, 5 lost, 0 tied)`` from an eval's figures."""
    if not all(isinstance(result.get(key), (int, float)) for key in ("win_rate", "win_low", "win_high")):
        return MISSING
    return (f"{result['win_rate']:.0%} [{result['win_low']:.0%}–{result['win_high']:.0%}] "
            f"({result.get('wins', MISSING)} won, {result.get('losses', MISSING)} lost, "
            f"{result.get('ties', MISSING)} tied)")


def flat_config(config: dict) -> dict[str, str]:
    """A saved config as ``{setting: text}``, a nested table (``method_args``) flattened to ``method_args.beta``.

    >>> flat_config({"method": "dpo", "method_args": {"beta": 0.1}, "lora": True})
    {'method': 'dpo', 'method_args.beta': '0.1', 'lora': 'true'}
    """
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{name}": _text(inner) for name, inner in value.items()})
        else:
            flat[key] = _text(value)
    return flat


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def config_table(runs: list[dict]) -> str:
    """The runs' configs side by side, a setting a row and a run a column; rows whose values differ are marked."""
    configs = [flat_config(run["config"] or {}) for run in runs]
    keys = list(dict.fromkeys(key for config in configs for key in config))
    rows = []
    for key in keys:
        values = [config.get(key, MISSING) for config in configs]
        differs = " class='differs'" if len(runs) > 1 and len(set(values)) > 1 else ""
        rows.append(f"<tr{differs}>{_cells((key, *values))}</tr>")
    return _table(("setting", *(run["run_id"] for run in runs)), rows)


def samples_html(runs: list[dict]) -> str:
    """Each run's held-out samples (written when it ended): which prompts it held out (:mod:`alignlab.held_out`),
    then prompt, the reference's answer and reward, the aligned model's answer and reward, from the same seed and
    settings."""
    parts = []
    for run in runs:
        try:
            held_out = "Held-out prompts: " + held_out_of_run(run["path"]).describe().replace("`", "") + "."
        except AlignLabError as error:
            held_out = f"Held-out prompts: none known ({error})."
        rows = read_samples(run["path"])
        if not rows:
            body = "<p class='note'>No samples: they are written when a run ends.</p>"
        else:
            cells = ((prompt_text(row.get("prompt", "")), row.get("reference", ""),
                      _number(row.get("reference_reward")), row.get("aligned", ""), _number(row.get("aligned_reward")),
                      followed_change(row))
                     for row in rows)
            body = _table(("prompt", "reference", "reward", "aligned", "reward", FOLLOWED_CHANGE),
                          (f"<tr>{_cells(values, numeric=(2, 4))}</tr>" for values in cells), css="samples")
        parts.append(f"<details open><summary>{html.escape(run_label(run))} ({len(rows)} samples)</summary>"
                     f"<p class='note'>{html.escape(held_out)}</p>{body}</details>")
    return "".join(parts)
