"""The Train tab: pick a preset or a method, model and data, tune the generated knobs, start, watch, stop; then
see what changed.

The form is generated from ``common_knobs()`` and every method's knobs: each method gets a group of
inputs and only the selected method's group is shown. Start validates the form into a RunConfig and
queues it; the job is trained by a worker process. A 1 s timer follows the current job (see
:mod:`.job_view`): progress and ETA, the live curves (redrawn only when new rows arrived) and the
tail of the worker's log. A page opened while a job trains, waits or after one ran shows that job's settings in
the form, with a note saying so (:func:`job_form`), so the form never disagrees with the card under it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from alignlab.config import LAB_DEFAULTS, method_default
from alignlab.data import VOTES_PREFIX, load_rows
from alignlab.errors import AlignLabError
from alignlab.methods import get_method, method_names, registry
from alignlab.methods.base import KNOB_GROUPS
from alignlab.models import DEFAULT_MODEL, TINY_MODEL
from alignlab.presets import PRESETS, get_preset
from alignlab.rewards import check_no_path
from alignlab.rundir import find_run, votes_names, votes_path
from alignlab.task import BUILTIN_TASK
from alignlab.ui.gradio.components.changes import changes_view, create_changes_view
from alignlab.ui.gradio.components.form_fill import fill_data, fill_js
from alignlab.ui.gradio.components.job_view import (
    end_message,
    job_explainer,
    job_figures,
    job_status,
    progress_html,
    queue_table,
)
from alignlab.ui.gradio.components.plot_grid import create_plot_grid, slot_count
from alignlab.ui.gradio.forms import (
    config_from_form,
    form_knobs,
    form_values,
    knob_input,
    method_input_name,
    preset_form_values,
    suggested,
)
from alignlab.ui.gradio.jobs import Job
from alignlab.ui.gradio.services import Services
from alignlab.ui.gradio.uploads import SUFFIXES, preview, shown_as

DEFAULT_METHOD = "dpo"
UPLOAD_PREFIX = "upload:"
MODEL_NOTES = {DEFAULT_MODEL: "SmolLM2-135M-Instruct (default)",
               TINY_MODEL: "tiny-random (random weights: seconds per run, gibberish text; for trying the app)"}
REFRESH_S = 1.0
# After Start, scroll the page so that the Start row (with the line saying what happened under it), the progress
# card and the first curves are on screen: at 1280×800 the form alone fills the first screen.
SHOW_PROGRESS_JS = ("() => { document.getElementById('train-start')?.scrollIntoView("
                    "{behavior: 'smooth', block: 'start'}); }")
KNOB_WIDTH = 220
NOT_KEPT = "The file was not kept: fix it and upload it again."
# job, method, model, state, run: "job" and the states fit unbroken (style.py wraps whole words but the run id's)
QUEUE_WIDTHS = ["9%", "18%", "24%", "17%", "32%"]


def method_summary(name: str) -> str:
    spec = get_method(name)
    return f"**{spec.title}** — {spec.summary}  \n*Data:* {spec.data_format} · *Paper:* {spec.paper}"


def model_choices() -> list[tuple[str, str]]:
    """The model picker: what the model knob suggests (both forms offer the same), with a note on each."""
    return [(MODEL_NOTES.get(name, name), name) for name in suggested("model")]


def dataset_choices(services: Services) -> list[tuple[str, str]]:
    """Built-in datasets, then uploads (value ``upload:<stored name>``, never a path), then the votes of each run
    that has some (``votes:<run id>``: people's blind votes and any AI annotator's, :mod:`alignlab.votes`)."""
    return [(f"{name} (built-in)", name) for name in suggested("dataset")] + \
        [(f"{name} (uploaded)", UPLOAD_PREFIX + name) for name in services.uploads.names()] + \
        [(f"{VOTES_PREFIX}{name} (votes)", VOTES_PREFIX + name) for name in votes_names(services.runs_dir)]


def dataset_source(services: Services, choice: str) -> str:
    """What the engine reads for a dataset choice: a built-in name, the stored upload's path, or the path of a votes
    file of the runs folder (only names it lists: never a path the browser chose)."""
    if choice in suggested("dataset"):
        return choice
    if choice and choice.startswith(UPLOAD_PREFIX):
        return str(services.uploads.path(choice[len(UPLOAD_PREFIX):]))
    if choice and choice.startswith(VOTES_PREFIX) and choice[len(VOTES_PREFIX):] in votes_names(services.runs_dir):
        return str(votes_path(services.runs_dir, choice[len(VOTES_PREFIX):]))
    raise AlignLabError(f"dataset: got {choice!r}, expected a built-in dataset, an uploaded file or the votes of a run")


def dataset_choice(services: Services, source: str) -> str | None:
    """The Dataset list's value for what the engine reads (:func:`dataset_source` the other way round): a built-in
    name, ``upload:<stored name>`` or ``votes:<run id>``; None when the list no longer offers it (a deleted file)."""
    if source in suggested("dataset"):
        return source
    path = Path(source).resolve()
    for name in services.uploads.names():
        if services.uploads.path(name).resolve() == path:
            return UPLOAD_PREFIX + name
    for name in votes_names(services.runs_dir):
        if votes_path(services.runs_dir, name).resolve() == path:
            return VOTES_PREFIX + name
    return None


def job_form(services: Services, job: Job) -> tuple[dict[str, Any], str | None, str]:
    """What the Train form shows for ``job`` (the one its progress card follows) when the page is opened again: the
    job's settings keyed as the Start handler takes them (:func:`~alignlab.ui.gradio.forms.form_values`; the
    dataset as a Dataset list value), the preset they are (None for settings of one's own), and a note saying
    whose settings the form holds. A dataset the list no longer offers is left out of the values and the note
    says so."""
    values = form_values(job.config.flat())
    choice = dataset_choice(services, values.pop("dataset"))
    if choice is not None:
        values["dataset"] = choice
    ignored = ("run_name",)  # a preset leaves the run's name as it is
    preset = next((name for name in PRESETS if all(values.get(key) == value for key, value in
                                                   preset_form_values(name).items() if key not in ignored)), None)
    made_of = f", preset {get_preset(preset).title!r}" if preset else ""
    note = (f"**The form shows the settings of {job.label}** ({job.state}{made_of}), the run on the card below. "
            "Change any value and press Start for a new run.")
    if choice is None:
        note += f" Its dataset ({Path(job.config.dataset).name}) is no longer in the Dataset list."
    return values, preset, note


def page_job(services: Services, user: str | None, remembered: Any = None) -> Job | None:
    """The job a freshly loaded page's progress card follows (:meth:`~alignlab.ui.gradio.jobs.JobQueue.current`):
    ``user``'s own first (the signed-in account). In workshop mode a reloaded page names itself a moment later,
    from the name its browser ``remembered`` (the workshop bar's BrowserState): that name is used here already, so
    the form shows the participant's own job, the one the card follows once the page has its name."""
    if user is None and services.workshop is not None and isinstance(remembered, dict):
        user = str(remembered.get("name") or "") or None
    return services.jobs.current(user)


def check_dataset(services: Services, choice: str, method: str, name: str | None = None) -> tuple[str, Any]:
    """A format check of the chosen dataset for the chosen method, and a preview table. An upload is named
    ``name`` in the message (default: its name in the Dataset list), never by its path on the server."""
    stored = choice[len(UPLOAD_PREFIX):] if choice and choice.startswith(UPLOAD_PREFIX) else None
    try:
        spec = get_method(method)
        rows = load_rows(dataset_source(services, choice), spec.data_format, method)
    except Exception as error:  # noqa: BLE001 - an unreadable file is a user error here, not a crash
        text = str(error) if isinstance(error, AlignLabError) else \
            f"dataset: cannot read it ({type(error).__name__}: {error})"
        if stored:
            text = shown_as(text, services.uploads.folder / stored, name or stored)
        return f"✗ {text}", gr.update(value=None, visible=False)
    headers, cells = preview(rows)
    message = f"✓ {len(rows)} rows in {spec.data_format} format ({', '.join(headers)}), as {spec.name} needs."
    return message, gr.update(value={"headers": headers, "data": cells}, visible=True)


# --- the tab --------------------------------------------------------------------------------------
def create_train_tab(services: Services, remembered: gr.BrowserState | None = None) -> None:
    """Build the Train tab's components and bind them to the job queue; ``remembered``: in workshop mode, the name
    the browser keeps (:func:`page_job`)."""
    knob_inputs: dict[str, gr.Component] = {}
    method_groups: dict[str, gr.Group] = {}
    with gr.Row(equal_height=False):
        preset = gr.Dropdown([("None: your own settings", ""), *((p.title, p.name) for p in PRESETS.values())],
                             value="", label="Preset", info="A named run to start from; change any value after.",
                             elem_id="train-preset", scale=2)
        preset_note = gr.Markdown(elem_classes=["lab-summary"], elem_id="train-preset-note", scale=3)
    with gr.Row(equal_height=True):
        method = gr.Dropdown([(spec.title, name) for name, spec in registry().items()], value=DEFAULT_METHOD,
                             label="Method", elem_id="train-method", scale=3)
        model = gr.Dropdown(model_choices(), value=DEFAULT_MODEL, label="Model", elem_id="train-model", scale=3)
        dataset = gr.Dropdown(dataset_choices(services), value=BUILTIN_TASK, label="Dataset",
                              elem_id="train-dataset", scale=3)
        upload = gr.UploadButton(f"Upload a dataset ({' '.join(SUFFIXES)}, ≤ 20 MB)", file_types=list(SUFFIXES),
                                 size="md", scale=1, min_width=170, elem_id="train-upload")
    with gr.Row(equal_height=False):
        summary = gr.Markdown(method_summary(DEFAULT_METHOD), elem_classes=["lab-summary"])
        first_check, first_rows = check_dataset(services, BUILTIN_TASK, DEFAULT_METHOD)
        check = gr.Markdown(first_check, elem_classes=["lab-summary"], elem_id="train-dataset-check")
    with gr.Accordion("Dataset preview (first rows)", open=False):  # the built-in set's rows from the start
        table = gr.Dataframe(first_rows.get("value"), interactive=False, wrap=True, max_height=260,
                             elem_id="train-preview")
    for name, spec in registry().items():
        with gr.Group(visible=name == DEFAULT_METHOD) as group:
            gr.Markdown(f"**{spec.title}: method knobs**" if spec.knobs else
                        f"**{spec.title}** has no knobs of its own: the training settings below are all it needs.",
                        elem_classes=["lab-section"])
            with gr.Row():
                for knob in spec.knobs:
                    key = method_input_name(name, knob.name)
                    knob_inputs[key] = knob_input(knob, elem_suffix=key, min_width=KNOB_WIDTH)
        method_groups[name] = group
    for group, title in KNOB_GROUPS.items():  # essential settings open, the other groups folded
        with gr.Group() if group == "essential" else gr.Accordion(title, open=False):
            if group == "essential":
                gr.Markdown(f"**{title}**", elem_classes=["lab-section"])
            with gr.Row():
                for knob in form_knobs():
                    if knob.group == group:
                        knob_inputs[knob.name] = knob_input(knob, min_width=KNOB_WIDTH)
    with gr.Row():
        start = gr.Button("Start", variant="primary", elem_id="train-start")
        stop = gr.Button("Stop", variant="stop", interactive=False, elem_id="train-stop")
    message = gr.Markdown(elem_id="train-message")
    progress = gr.HTML(progress_html(None, []), elem_id="train-progress")
    grid = create_plot_grid(slot_count([name] for name in method_names()), "train")
    explainer = gr.Markdown(visible=False, elem_id="train-explainer", elem_classes=["lab-summary"])
    changes_note, changes_table = create_changes_view()
    with gr.Row(equal_height=False):
        log = gr.Textbox(label="Worker log (tail)", lines=8, max_lines=20, autoscroll=True, interactive=False,
                         elem_id="train-log", scale=3)
        with gr.Column(scale=2):
            at_once = "one job trains" if services.jobs.max_jobs == 1 else f"{services.jobs.max_jobs} jobs train"
            queue = gr.Dataframe(label=f"Job queue ({at_once} at a time)", interactive=False, max_height=220,
                                 wrap=True, column_widths=QUEUE_WIDTHS, elem_id="train-queue")
            cancel = gr.Button("Cancel queued jobs", size="sm")
    seen = gr.State({})
    timer = gr.Timer(REFRESH_S)

    # the method whose own defaults (batch size, learning rate) the form may be showing; a hidden field, so that the
    # page's fill sets it too
    shown = gr.Textbox(DEFAULT_METHOD, visible=False)
    filled = gr.JSON(None, visible=False)  # the settings a page load found for the form (form_fill)

    followed = [knob_inputs[name] for name in LAB_DEFAULTS]  # the settings a method may have its own default of

    def on_method(name: str, choice: str, before: str, *values: float | None):
        """The picked method's knobs, summary and dataset check; the batch size and learning rate follow the
        method's own defaults (online DPO's batch is larger, SimPO's rate lower) unless the user had changed them
        from the previous method's."""
        text, rows = check_dataset(services, choice, name)
        updates = [gr.update(value=method_default(name, setting))
                   if value is None or value == method_default(before or DEFAULT_METHOD, setting) else gr.skip()
                   for setting, value in zip(LAB_DEFAULTS, values, strict=True)]
        return [method_summary(name), *[gr.update(visible=key == name) for key in method_groups], text, rows,
                name, *updates]

    method.change(on_method, [method, dataset, shown, *followed],
                  [summary, *method_groups.values(), check, table, shown, *followed], api_visibility="private")

    def on_upload(file_path: str | None, method_name: str):
        """Store a checked upload and pick it; a file that fails a check is not kept. Messages name the file as the
        user sent it (the web server keeps that name as the received file's name)."""
        if not file_path:
            return gr.skip(), gr.skip(), gr.skip()
        original = Path(file_path).name
        try:
            stored = services.uploads.add(file_path, original)
        except AlignLabError as error:
            return gr.skip(), f"✗ {str(error).rstrip('.')}. {NOT_KEPT}", gr.update(visible=False)
        choice = UPLOAD_PREFIX + stored
        text, rows = check_dataset(services, choice, method_name, original)
        return gr.update(choices=dataset_choices(services), value=choice), text, rows

    upload.upload(on_upload, [upload, method], [dataset, check, table], api_visibility="private")

    fields = {"preset": preset, "shown": shown, "method": method, "model": model, "dataset": dataset, **knob_inputs}

    def on_load(kept: Any, request: gr.Request):
        """On page load: the Dataset list read from disk again, so uploads since the app started are offered; and,
        when the progress card follows a job (training, queued or the last one, the page user's own first), that
        job's settings for the form with a note saying so (:func:`job_form`), so that a reloaded page does not show
        defaults beside another run's card. The page applies them unless its user changed the form first
        (:mod:`~alignlab.ui.gradio.components.form_fill`)."""
        datasets = dataset_choices(services)
        job = page_job(services, services.user(request), kept)
        if job is None:
            return gr.update(choices=datasets), gr.skip(), None
        values, preset_name, note = job_form(services, job)
        models = model_choices()
        if values["model"] not in [value for _, value in models]:  # e.g. a model the API named: offered back
            models.append((values["model"], values["model"]))
        kept_note = (f"**The form keeps the values you changed** before this page could show the settings of "
                     f"{job.label}, the run on the card below.")
        values = {**values, "preset": preset_name or "", "shown": values["method"]}
        return gr.update(choices=datasets), gr.update(choices=models), fill_data(values, list(fields), note,
                                                                                  kept_note)

    def check_filled_dataset(found, choice: str, name: str):
        """After a page load filled the form from a job, check the dataset it put there; otherwise change nothing."""
        return check_dataset(services, choice, name) if found and choice else (gr.skip(), gr.skip())

    gr.on(None, on_load, [remembered if remembered is not None else gr.State(None)], [dataset, model, filled],
          api_visibility="private", show_progress="hidden").then(
        None, js=fill_js([component.value for component in fields.values()]),
        inputs=[filled, preset_note, *fields.values()], outputs=[preset_note, *fields.values()],
        show_progress="hidden").then(
        check_filled_dataset, [filled, dataset, method], [check, table], api_visibility="private",
        show_progress="hidden")
    dataset.input(lambda choice, name: check_dataset(services, choice, name), [dataset, method], [check, table],
                  api_visibility="private")

    def apply_preset(name: str):
        """Set the form to a preset's values (:func:`preset_form_values`); "" leaves the values as they are."""
        if not name:
            return ["", *[gr.skip()] * (5 + len(knob_inputs))]
        values = preset_form_values(name)
        text, rows = check_dataset(services, values["dataset"], values["method"])
        preset = get_preset(name)  # what it did elsewhere, then what it takes here
        note = f"{preset.description}\n\n*{preset.time_estimate(services.runs())}*"
        return [note, values["method"], values["model"], values["dataset"], text, rows,
                *[values.get(key, gr.skip()) for key in knob_inputs]]

    preset.input(apply_preset, [preset], [preset_note, method, model, dataset, check, table, *knob_inputs.values()],
                 api_name="apply_preset")

    def start_run(request: gr.Request, **form: Any) -> str:
        """Validate the form and queue a run (owned by the signed-in user, with auth on); returns what happened."""
        values = dict(form)
        name, model_name, choice = values.pop("method"), values.pop("model"), values.pop("dataset")
        try:
            config = config_from_form(name, model_name, dataset_source(services, choice), values,
                                      str(services.runs_dir), services.trust_remote_code)
            check_no_path(config.reward, services.runs_dir)  # the browser must not pick a path to load
            load_rows(config.dataset, config.spec.data_format, config.method)  # the worker would fail later
            job = services.jobs.submit(config, owner=services.user(request))
        except AlignLabError as error:
            raise gr.Error(str(error), title="Cannot start") from None
        ahead = services.jobs.ahead_of(job)
        at_once = "one job trains" if services.jobs.max_jobs == 1 else f"{services.jobs.max_jobs} jobs train"
        where = f", behind {ahead} other job(s): {at_once} at a time" if ahead >= services.jobs.max_jobs else ""
        return f"Queued job {job.number}: {config.method} on {config.model}{where}."

    start.click(None, js=SHOW_PROGRESS_JS)  # the form fills the first screen: bring the run's progress into view
    start.click(start_run, inputs_kwargs={"method": method, "model": model, "dataset": dataset, **knob_inputs},
                outputs=[message], api_name="start_run")

    def stop_run(request: gr.Request) -> str:
        """Stop the job that is training (it saves what it has); with auth on, only the user who started it can."""
        try:
            job = services.jobs.stop(services.user(request))
        except AlignLabError as error:
            return str(error)  # said inline, as other Stop messages are: asking was not a mistake
        if job is None:
            return "Nothing is training."
        return f"Stopping {job.label}: it finishes the current step, then saves the model and samples."

    stop.click(stop_run, outputs=[message], api_name="stop_run")

    def cancel_queued(request: gr.Request) -> str:
        """Drop the jobs still waiting in the queue (with auth on, the signed-in user's own)."""
        cancelled = services.jobs.cancel_queued(services.user(request))
        others = len(services.jobs.queued())
        return f"Cancelled {cancelled} queued job(s)." + (f" {others} job(s) queued by other users stay queued."
                                                         if others else "")

    cancel.click(cancel_queued, outputs=[message], api_name="cancel_queued")

    def refresh(last: dict, request: gr.Request):
        """The line under Start (once a job ended), progress, curves (when new rows arrived), log, queue and
        Stop of the current job (the page's own, when its user has one); unchanged outputs are skipped so the page
        does not redraw every second."""
        job = services.jobs.current(services.user(request))
        rows = job.rows() if job else []
        log_text = job.log_tail() if job else ""
        progress_text = progress_html(job, rows)
        queue_value = queue_table(services)
        can_stop = bool(job and job.active and not job.stop_requested)
        now = {"job": job.number if job else None, "rows": len(rows), "state": job.state if job else None,
               "progress": progress_text, "log": log_text, "queue": queue_value, "can_stop": can_stop}

        def changed(*keys: str) -> bool:
            return any(now[k] != last.get(k) for k in keys)

        redraw = bool(job) and changed("job", "rows", "state")
        figures = grid.updates(job_figures(job, rows)) if redraw else grid.skip()
        explainer_update = gr.skip()  # the metric explainer beside the panels, redrawn with them
        if redraw or (job is None and changed("job")):
            explained = job_explainer(job, rows) if job else ""
            explainer_update = gr.update(value=explained, visible=bool(explained))
        ended = end_message(job, last)  # the line under Start stops saying "Queued job N…" once N ended
        now["changes"], changes_text, changes_rows = changes_view(services, job)
        return [now,
                gr.skip() if ended is None else ended,
                progress_text if changed("progress") else gr.skip(),
                *figures,
                explainer_update,
                log_text if changed("log") else gr.skip(),
                queue_value if changed("queue") else gr.skip(),
                gr.update(interactive=can_stop) if changed("can_stop") else gr.skip(),
                *((changes_text, changes_rows) if changed("changes") else (gr.skip(), gr.skip()))]

    timer.tick(refresh, [seen], [seen, message, progress, *grid.outputs, explainer, log, queue, stop, changes_note,
                                 changes_table],
               show_progress="hidden", api_visibility="private", concurrency_limit=None)

    def current_job(request: gr.Request) -> dict:
        """The current job (the caller's own first): state, run id, steps and every metric row logged so far."""
        return job_status(services, services.user(request))

    gr.api(current_job, api_name="job_status")

    def what_changed(run_id: str) -> list[dict]:
        """What changed in a finished or stopped run of the runs folder: three held-out prompts, each with the
        reference's and the aligned model's answer and reward (the rows the Train tab shows once a job ends)."""
        try:
            return services.changes.rows(find_run(services.runs_dir, run_id)).result()
        except AlignLabError as error:
            raise gr.Error(str(error), title="Cannot show what changed") from None

    gr.api(what_changed, api_name="what_changed")
