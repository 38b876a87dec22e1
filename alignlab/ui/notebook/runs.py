"""Past runs: a table of the run directories, the chosen runs' curves overlaid, and their frontier.

Everything is read from the run directories (config, status, metrics and samples, through
:mod:`alignlab.rundir`), so runs from earlier sessions, the CLI or the app show up the same as runs
started here. Press Refresh to pick up runs that are still writing. **Export report** writes the selected runs (all
runs when none is selected) as one HTML file beside them, ``report.html``, that opens offline
(:mod:`alignlab.ui.report`).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from pathlib import Path

import ipywidgets as widgets

from alignlab import runner
from alignlab.config import RunConfig
from alignlab.errors import AlignLabError
from alignlab.labels import run_label
from alignlab.methods import method_names
from alignlab.panels import visible_panels
from alignlab.rundir import UNREADABLE, default_runs_dir, list_runs, samples_summary
from alignlab.task import BUILTIN_TASK
from alignlab.ui.format import FOLLOWED, FOLLOWED_CHANGE, number, samples_followed, share
from alignlab.ui.notebook.figure_widget import FigureWidget
from alignlab.ui.notebook.grid import grid_figure
from alignlab.ui.report import REPORT_NAME, write_report
from alignlab.vote_runs import VOTE_METHODS, votes_run_config
from alignlab.votes import win_rate_cell


def short_id(run_id: str) -> str:
    """A run id without its date (``20250101-120000-dpo-ab12`` -> ``120000-dpo-ab12``): a curve's name in a
    legend and a table's first cell (the pickers name runs in full, :func:`alignlab.labels.run_label`)."""
    return run_id.split("-", 1)[-1]


def runs_table(runs: list[dict]) -> str:
    """HTML table: run, method, state, steps, last loss / reward / KL / instruction followed (the probe's), sample
    reward and instruction followed before -> after, the people's blind win-rate (and an AI annotator's) as the
    app's Runs table shows it (:func:`alignlab.votes.win_rate_cell`), and a note: for a run in state ``unreadable``,
    which of its files cannot be read and why."""
    header = ("run", "method", "state", "steps", "loss", "reward", "KL", FOLLOWED, "sample reward: reference → aligned",
              f"sample {FOLLOWED_CHANGE}", "win-rate (people; AI)", "note")
    lines = []
    for run in runs:
        summary = samples_summary(run["path"])
        change = "" if summary is None else f"{summary['reference']:+.3f} → {summary['aligned']:+.3f}"
        note = run["error"] if run["state"] == UNREADABLE else ""
        votes = win_rate_cell(Path(run["path"]).parent, run["run_id"])
        cells = (short_id(run["run_id"]), run["method"] or "", run["state"] or "", run["steps"], number(run["loss"]),
                 number(run["reward"]), number(run["kl"]), share(run["follow"]), change, samples_followed(summary),
                 votes, note)
        lines.append("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in cells) + "</tr>")
    head = "".join(f"<th style='text-align:left;padding-right:12px'>{cell}</th>" for cell in header)
    return f"<table style='font-size:90%'><tr>{head}</tr>{''.join(lines)}</table>"


class RunsView(widgets.VBox):
    """Pick runs from ``output_dir`` (the lab's runs folder by default, as the app's); see their curves overlaid and
    their reward-vs-KL frontier.

    ``selected``: run ids (or RunHandles) chosen at start; by default none. **Train on these votes** starts a run
    like the one selected on its votes, as the app's button queues one; ``start`` starts it (by default
    :func:`alignlab.runner.start`; the Lab follows it in its Train tab).
    """

    def __init__(self, output_dir: str | Path | None = None, selected: Iterable = (),
                 start: Callable[[RunConfig], runner.RunHandle] | None = None):
        self.output_dir = default_runs_dir() if output_dir is None else Path(output_dir)
        self.runs: dict[str, dict] = {}
        self.picker = widgets.SelectMultiple(description="runs", rows=8,
                                             layout=widgets.Layout(width="720px"), style={"description_width": "60px"})
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.report_button = widgets.Button(description="Export report", icon="download",
                                            tooltip=f"Write the selected runs (all when none is selected) to "
                                            f"{REPORT_NAME} beside them: one HTML file that opens offline")
        self.report_note = widgets.HTML()
        self.start_run = start or runner.start
        self.votes_method = widgets.Dropdown(options=VOTE_METHODS, value="dpo", description="method",
                                             layout=widgets.Layout(width="160px"), style={"description_width": "50px"})
        self.votes_mix = widgets.Checkbox(False, description=f"mix with the built-in pairs ({BUILTIN_TASK})",
                                          indent=False)
        self.votes_button = widgets.Button(description="Train on these votes", icon="check",
                                           tooltip="Start a run like the selected one on its votes (people's blind "
                                           "votes and an AI annotator's), with the method chosen")
        self.votes_note = widgets.HTML()
        self.votes_button.on_click(lambda _: self.train_on_votes())
        self.table = widgets.HTML()
        self.figure: FigureWidget | None = None  # curves and frontier of the selected runs
        self.figure_box = widgets.VBox()
        self.refresh_button.on_click(lambda _: self.refresh())
        self.report_button.on_click(lambda _: self.export_report())
        self.picker.observe(lambda _: self.draw(), names="value")
        super().__init__([widgets.HBox([self.picker, widgets.VBox([self.refresh_button, self.report_button])]),
                          self.report_note, self.table,
                          widgets.HBox([self.votes_method, self.votes_mix, self.votes_button]), self.votes_note,
                          self.figure_box])
        self.refresh([getattr(run, "run_id", run) for run in selected])

    def refresh(self, selected: Iterable[str] | None = None) -> None:
        """Re-read the run directories (keeping the selection unless ``selected`` is given)."""
        keep = tuple(self.picker.value if selected is None else selected)
        self.runs = {run["run_id"]: run for run in list_runs(self.output_dir)}
        self.picker.options = [(run_label(run, show_state=True), run_id) for run_id, run in self.runs.items()]
        self.picker.value = tuple(run_id for run_id in keep if run_id in self.runs)
        self.draw()

    def histories(self) -> dict[str, list[dict]]:
        """Metric rows of the selected runs, by label."""
        return {short_id(run_id): self.runs[run_id]["history"] for run_id in self.picker.value}

    def draw(self) -> None:
        """Redraw the table and the figure for the current selection (a new figure widget each time)."""
        chosen = [self.runs[run_id] for run_id in self.picker.value]
        self.table.value = runs_table(chosen or list(self.runs.values()))
        methods = dict.fromkeys(run["method"] for run in chosen if run["method"] in method_names())
        histories = self.histories()
        self.figure = FigureWidget(grid_figure(visible_panels(methods, histories), histories, overlay=True)) \
            if chosen else None
        self.figure_box.children = [self.figure] if self.figure is not None else []

    def train_on_votes(self, run: str | None = None) -> runner.RunHandle | None:
        """Start a run like ``run`` (by default the one run selected) trained on its votes with the method and mix
        chosen beside the button (:func:`alignlab.vote_runs.votes_run_config`, the app's path too); returns its
        handle, or None when it cannot start (the note below the button says why)."""
        if run is None and len(self.picker.value) != 1:
            self.votes_note.value = "Select the one run whose votes to train on in the list above."
            return None
        run_id = run or self.picker.value[0]
        mixed = bool(self.votes_mix.value)
        try:
            config = votes_run_config(self.output_dir, run_id, self.votes_method.value, mixed)
            handle = self.start_run(config)
        except AlignLabError as error:
            self.votes_note.value = f"✗ {html.escape(str(error))}"
            return None
        self.votes_note.value = (f"✓ Started {html.escape(handle.run_id)}: {config.method} on the votes of "
                                 f"{html.escape(run_id)}{' and the built-in pairs' if mixed else ''}.")
        return handle

    def export_report(self, out: str | Path | None = None) -> Path | None:
        """Write the report of the selected runs (all runs when none is selected) to ``out``, by default
        ``report.html`` beside the runs, and say where below the buttons; returns its path (None when it could not
        be written: the note says why)."""
        run_ids = tuple(self.picker.value) or tuple(self.runs)
        if not run_ids:
            self.report_note.value = f"No runs in {html.escape(str(self.output_dir))} to report yet."
            return None
        try:
            path = write_report([self.runs[run_id]["path"] for run_id in run_ids], out or self.output_dir / REPORT_NAME,
                                force=True)
        except AlignLabError as error:
            self.report_note.value = f"✗ {html.escape(str(error))}"
            return None
        runs = f"{len(run_ids)} run{'' if len(run_ids) == 1 else 's'}"
        self.report_note.value = (f"✓ Report of {runs} written to <code>{html.escape(str(path.resolve()))}</code>: "
                                  "open it in any browser, it works offline.")
        return path
