"""What changed, under the Train tab's results once a job has ended: three held-out prompts side by side.

The reference's and the aligned model's answers with their rewards (:mod:`alignlab.changes`: prompts picked at
random with a fixed seed, not cherry-picked), sampled once per run by the server's
:class:`~alignlab.ui.gradio.changes_service.ChangesService`. The Train tab's timer calls :func:`changes_view`
every second; it says what it waits for until the rows are ready.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from alignlab.changes import CHANGE_PROMPTS, PICK_SEED
from alignlab.methods import generates_text
from alignlab.rundir import has_model
from alignlab.ui.gradio.components.runs import SAMPLE_COLUMNS, SAMPLE_WIDTHS, sample_rows_table
from alignlab.ui.gradio.jobs import Job
from alignlab.ui.gradio.services import Services

WAITING = (f"**What changed** — the reference and the aligned model are answering {CHANGE_PROMPTS} held-out "
           "prompts…")


def create_changes_view() -> tuple[gr.Markdown, gr.Dataframe]:
    """The note and the table (hidden until a job has ended with a model that writes text)."""
    note = gr.Markdown(elem_id="train-changes-note")
    table = gr.Dataframe(headers=SAMPLE_COLUMNS, interactive=False, wrap=True, visible=False, max_height=1200,
                         column_widths=SAMPLE_WIDTHS, elem_id="train-changes")
    return note, table


def changes_view(services: Services, job: Job | None) -> tuple[Any, str, Any]:
    """``(key, note, table update)`` for the current job: nothing while it trains or when it has nothing to show
    (failed, no model, a method that writes no text); a waiting note while the rows are sampled; then the rows.
    ``key`` changes exactly when what is shown does, so the tab redraws only then."""
    if job is None or job.state not in ("finished", "stopped") or job.run_dir is None or \
            not generates_text(job.config.method) or not has_model(job.run_dir):
        return None, "", gr.update(visible=False)
    future = services.changes.rows(job.run_dir)
    if not future.done():
        return (job.run_id, "waiting"), WAITING, gr.update(visible=False)
    error = future.exception()
    if error is not None:
        return (job.run_id, "failed"), f"**What changed** — cannot sample: {error}", gr.update(visible=False)
    note = (f"**What changed** in `{job.run_id}`: {CHANGE_PROMPTS} held-out prompts picked at random (seed "
            f"{PICK_SEED}, not cherry-picked), answered by the reference and the aligned model with the same seed "
            f"and settings; reward: {job.config.reward}.")
    return (job.run_id, "ready"), note, gr.update(value=sample_rows_table(future.result()), visible=True)
