"""The Runs tab: every run in the runs folder; overlay several; open one for samples, resume, delete, export.

Runs are read from disk (:func:`alignlab.rundir.list_runs`), so an app restart shows every past run. Comparing draws the
union of the selected runs' panels with one line per run, and their reward-vs-KL frontier. **Export report** writes the
overlaid runs (or the one opened) as one HTML file that opens offline (:mod:`alignlab.ui.report`) and offers it for
download.
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

import gradio as gr

from alignlab.errors import AlignLabError
from alignlab.labels import run_label
from alignlab.methods import method_names
from alignlab.panels import visible_panels
from alignlab.rundir import UNREADABLE, delete_run, find_run, read_run, read_samples
from alignlab.runner import resume_point
from alignlab.ui.figures import panel_figures
from alignlab.ui.format import FOLLOWED, FOLLOWED_CHANGE, followed_change, number, share
from alignlab.ui.gradio.components.plot_grid import create_plot_grid, slot_count
from alignlab.ui.gradio.components.vote import create_train_on_votes, win_rate_cell
from alignlab.ui.gradio.run_files import EXPORT_KINDS, export_run
from alignlab.ui.gradio.services import Services
from alignlab.ui.report import report_file_name, write_report

RUN_COLUMNS = ["run", "method", "model", "state", "steps", "loss", "reward", "KL", FOLLOWED, "win-rate (people; AI)",
               "note"]
SAMPLE_COLUMNS = ["prompt", "reference", "reference reward", "aligned", "aligned reward", FOLLOWED_CHANGE]
SAMPLE_WIDTHS = ["18%", "28%", "9%", "28%", "9%", "8%"]  # one per sample column


def comparison_slots() -> int:
    """Plot slots of the comparison: enough for runs of every method at once, and their frontier."""
    return slot_count([method_names()])


def runs_table(runs: list[dict]) -> dict:
    """The runs as table data: id, method, model, state, steps and last loss, reward, KL and instruction followed (the
    probe's share, see :func:`alignlab.metrics.headline`), the people's blind
    win-rate of aligned over reference with its votes (:func:`.vote.win_rate_cell`), and a note: for a run in
    state ``unreadable``, which of its files cannot be read and why."""
    data = [[run["run_id"], run["method"] or "", run["model"] or "", run["state"] or "", run["steps"],
             number(run["loss"]), number(run["reward"]), number(run["kl"]), share(run["follow"]), win_rate_cell(run),
             run["error"] if run["state"] == UNREADABLE else ""] for run in runs]
    return {"headers": RUN_COLUMNS, "data": data}


def run_choices(runs: list[dict]) -> list[tuple[str, str]]:
    """(label, run id) for the run pickers: method, KL knob, steps, final probe reward and state before each id."""
    return [(run_label(run, show_state=True), run["run_id"]) for run in runs]


def comparison_figures(runs: list[dict], selected: list[str]) -> list:
    """Overlay figures for the selected runs: each panel of their methods that some run logged, then the
    frontier (:func:`alignlab.panels.visible_panels`)."""
    chosen = [run for run in runs if run["run_id"] in selected]
    if not chosen:
        return []
    histories = {run["run_id"]: run["history"] for run in chosen}
    return panel_figures(visible_panels(dict.fromkeys(run["method"] for run in chosen), histories), histories)


def sample_rows_table(rows: list[dict]) -> dict:
    """Reference-vs-aligned rows (a run's samples, or what changed) as table data: prompt, each answer, its reward,
    and whether each followed the prompt's instruction (``yes → no``; blank where the task's check cannot tell)."""
    data = [[row.get("prompt", ""), row.get("reference", ""), number(row.get("reference_reward")),
             row.get("aligned", ""), number(row.get("aligned_reward")), followed_change(row)] for row in rows]
    return {"headers": SAMPLE_COLUMNS, "data": data}


def samples_table(run_dir) -> dict:
    return sample_rows_table(read_samples(run_dir))


def create_runs_tab(services: Services, tab: gr.Tab) -> None:
    """Build the Runs tab's components and bind them to the runs folder (re-read when ``tab`` is selected)."""
    with gr.Row():
        refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100, elem_id="runs-refresh")
        gr.Markdown(f"Runs folder: `{services.runs_dir}`")
    table = gr.Dataframe(interactive=False, wrap=True, max_height=320, elem_id="runs-table")
    gr.Markdown("### Compare runs")
    compare = gr.Dropdown([], multiselect=True, label="Runs to overlay (loss, reward, KL, … and the reward-vs-KL "
                          "frontier: up and to the left is better)", elem_id="runs-compare")
    with gr.Row():
        report = gr.Button("Export report", size="sm", scale=0, min_width=140, elem_id="runs-report")
        gr.Markdown("One HTML file of the overlaid runs (or, with none overlaid, the run opened below): curves, "
                    "frontier, config, eval, samples, votes. It opens offline, in any browser.")
    report_file = gr.File(label="Report", visible=False, interactive=False, elem_id="runs-report-file")
    grid = create_plot_grid(comparison_slots(), "runs")
    gr.Markdown("### One run")
    with gr.Row():
        chosen = gr.Dropdown([], label="Run", elem_id="runs-chosen", scale=3)
        kind = gr.Radio(list(EXPORT_KINDS), value="adapter", label="Export as", scale=2,
                        info="adapter: the small LoRA folder; merged: a standalone model with the adapter folded in")
    with gr.Row():
        export = gr.Button("Export", size="sm", elem_id="runs-export")
        resume = gr.Button("Resume", size="sm", elem_id="runs-resume")
        delete = gr.Button("Delete…", size="sm", variant="stop", elem_id="runs-delete")
        confirm = gr.Button("Yes, delete it for good", size="sm", variant="stop", visible=False,
                            elem_id="runs-delete-confirm")
    result = gr.Markdown(elem_id="runs-result")
    with gr.Accordion("Train on this run's blind votes (cast in the Chat tab)", open=False):
        create_train_on_votes(services, chosen, lambda run_id: run_id or None, "runs")
    samples = gr.Dataframe(interactive=False, wrap=True, column_widths=SAMPLE_WIDTHS,
                           label="Samples: reference vs aligned on held-out prompts "
                           "(same seed and settings)", elem_id="runs-samples")
    with gr.Accordion("Config", open=False):
        config = gr.Code(language="json", interactive=False)

    def list_all(selected: list[str] | None = None, current: str | None = None):
        """Table and pickers from the runs folder (keeps the selections that still exist); the pickers name each
        run by what it is (:func:`run_choices`), their values stay run ids."""
        runs = services.runs()
        ids = [run["run_id"] for run in runs]
        kept = [run_id for run_id in (selected or []) if run_id in ids]
        return (runs_table(runs), gr.update(choices=run_choices(runs), value=kept),
                gr.update(choices=run_choices(runs), value=current if current in ids else (ids[0] if ids else None)))

    refresh.click(list_all, [compare, chosen], [table, compare, chosen], api_name="list_runs")
    tab.select(list_all, [compare, chosen], [table, compare, chosen], api_visibility="private")

    def overlay(selected: list[str]):
        return grid.updates(comparison_figures(services.runs(), selected or []))

    compare.change(overlay, [compare], grid.outputs, api_visibility="private")

    def open_run(run_id: str | None):
        if not run_id:
            return {"headers": SAMPLE_COLUMNS, "data": []}, "", gr.update(visible=False), ""
        try:
            run_dir = find_run(services.runs_dir, run_id)
        except AlignLabError as error:
            return {"headers": SAMPLE_COLUMNS, "data": []}, "", gr.update(visible=False), f"✗ {error}"
        run = read_run(run_dir)  # opening a killed run also marks it failed on disk
        text = json.dumps(run["config"], indent=1)
        sample_rows = samples_table(run_dir)
        note = "" if sample_rows["data"] else "This run has no samples yet (they are written when it ends)."
        if run["state"] == UNREADABLE:
            note = f"✗ {run['error']}"
        return sample_rows, text, gr.update(visible=False), note

    chosen.change(open_run, [chosen], [samples, config, confirm, result], api_visibility="private")

    def export_chosen(run_id: str | None, export_kind: str) -> str:
        """Export a run's adapter, or its merged model, to a folder under the app's data folder."""
        try:
            folder = export_run(find_run(services.runs_dir, run_id or ""), services.exports_dir, export_kind)
        except AlignLabError as error:
            raise gr.Error(str(error), title="Cannot export") from None
        return f"✓ Exported to `{folder}`"

    export.click(export_chosen, [chosen, kind], [result], api_name="export_run")

    @functools.cache
    def reports_dir() -> Path:
        """This tab's folder of reports, made at the first export. A temp folder: Gradio hands out files from the
        working folder, the temp folder and ``allowed_paths`` only, and the app's data folder may be anywhere."""
        return Path(tempfile.mkdtemp(prefix="alignlab-reports-"))

    def export_report(selected: list[str] | None, current: str | None):
        """Write the report of the overlaid runs (else the run opened below) and offer it for download."""
        run_ids = list(selected or []) or ([current] if current else [])
        if not run_ids:
            raise gr.Error("Pick runs to overlay, or open one run below, first.", title="No run to report")
        try:
            run_dirs = [find_run(services.runs_dir, run_id) for run_id in run_ids]
            path = write_report(run_dirs, reports_dir() / report_file_name(run_ids), force=True)
        except AlignLabError as error:
            raise gr.Error(str(error), title="Cannot write the report") from None
        return gr.update(value=str(path), visible=True)

    report.click(export_report, [compare, chosen], [report_file], api_name="export_report")

    def resume_chosen(run_id: str | None, request: gr.Request) -> str:
        """Queue a job that continues a stopped, failed or killed run from its last checkpoint, in the same run
        directory (it trains in the Train tab's queue). On a shared app only the run's owner or the instructor may;
        the job is the run owner's (else the sender's)."""
        try:
            run_dir = find_run(services.runs_dir, run_id or "")
            owner = services.check_may_change_run(run_dir, request, "resume")
            config, _, step = resume_point(run_dir)
            job = services.jobs.submit(config, owner=owner or services.user(request), resume=run_dir)
        except AlignLabError as error:
            raise gr.Error(str(error), title="Cannot resume") from None
        return f"✓ Queued job {job.number}: `{run_id}` continues after step {step} (follow it in the Train tab)."

    resume.click(resume_chosen, [chosen], [result], api_name="resume_run")
    delete.click(lambda run_id: (gr.update(visible=bool(run_id)),
                                 f"Delete `{run_id}` and its model?" if run_id else ""),
                 [chosen], [confirm, result], api_visibility="private")

    def delete_chosen(run_id: str | None, selected: list[str] | None, request: gr.Request):
        """Delete a run directory (not the one training now); on a shared app only its owner or the instructor may."""
        try:
            run_dir = find_run(services.runs_dir, run_id or "")
            services.check_may_change_run(run_dir, request, "delete")
            if run_dir.resolve() in services.jobs.running_run_dirs():
                raise AlignLabError(f"run: {run_id} is training now; stop it first")
            delete_run(run_dir)
        except AlignLabError as error:
            raise gr.Error(str(error), title="Cannot delete") from None
        services.chat.forget_run(run_id)
        services.changes.forget_run(run_dir)
        table_value, compare_update, chosen_update = list_all(selected, None)
        return table_value, compare_update, chosen_update, gr.update(visible=False), f"Deleted `{run_id}`."

    confirm.click(delete_chosen, [chosen, compare], [table, compare, chosen, confirm, result], api_name="delete_run")
