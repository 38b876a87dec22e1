"""What the Train tab shows of the current job: progress with ETA, its curves, the queue, its status.

Pure functions of a :class:`~alignlab.ui.gradio.jobs.Job` and its metric rows, called by the Train
tab's 1 s timer and by the ``/job_status`` API endpoint.
"""

from __future__ import annotations

import time
from html import escape

from alignlab.explain import explain, markdown
from alignlab.panels import visible_panels
from alignlab.ui.figures import panel_figures
from alignlab.ui.format import duration, pace_text
from alignlab.ui.gradio.jobs import Job
from alignlab.ui.gradio.services import Services


def progress_html(job: Job | None, rows: list[dict]) -> str:
    """State, a progress bar, steps done of total, time per step and ETA of the current job."""
    if job is None:
        return "<div class='lab-progress idle'>No run yet: choose a method and press <b>Start</b>.</div>"
    status = job.follower.status() if job.follower else {}
    total = status.get("total_steps") or job.config.max_steps or None
    step = rows[-1].get("step", 0) if rows else 0
    fraction = min(1.0, step / total) if total else 0.0
    if job.state == "starting":
        detail = "loading the model and data in the worker process…"
    elif job.state == "queued":
        detail = "waiting for the job before it to finish"
    elif job.active:
        phase = status.get("phase") or ("" if rows else "loading the model and data")
        detail = f"step {step} / {total or '?'}" + (f" · {phase}…" if phase else "")
        pace = pace_text(rows, total)
        if pace:
            detail += f" · {pace}"
        if job.stop_requested:
            detail += " · stopping: saving what it has…"
    else:
        elapsed = (job.ended or time.time()) - (job.started or job.submitted)
        detail = f"{step} steps in {duration(elapsed)}"
        if job.error:
            detail += f" · {job.error}"
    if job.state == "finished":
        fraction = 1.0
    return (f"<div class='lab-progress {job.state}'><div class='lab-progress-head'><span><b>{escape(job.label)}</b>"
            f"<span class='lab-job'>{escape(job.summary)}</span></span>"
            f"<span class='lab-state'>{job.state}</span></div>"
            f"<div class='lab-bar'><div style='width:{100 * fraction:.1f}%'></div></div>"
            f"<div class='lab-progress-detail'>{escape(detail)}</div></div>")


def end_message(job: Job | None, last: dict) -> str | None:
    """What replaces the "Queued job N…" (or "Stopping…") line under Start once the job it spoke of ends:
    None while nothing ended since the last tick (``last``: what the tick before saw; {} on a fresh page)."""
    if job is None or job.active or job.state == "queued" or not last:
        return None
    if last.get("job") == job.number and last.get("state") == job.state:
        return None
    ended = {"finished": "finished: chat with it in the Chat tab, compare it in the Runs tab.",
             "stopped": "stopped: it saved its model and samples.",
             "failed": "failed: its error is on the progress line below and in the worker log.",
             "cancelled": "was cancelled before it started."}
    name = f"Job {job.number}" + (f" ({job.run_id})" if job.run_id else "")
    return f"{name} " + ended.get(job.state, f"ended ({job.state}).")


def queue_table(services: Services) -> dict:
    jobs = services.jobs.jobs
    rows = [[job.number, job.config.method, job.config.model, job.state, job.run_id or "–"] for job in reversed(jobs)]
    return {"headers": ["job", "method", "model", "state", "run"], "data": rows}


def job_figures(job: Job, rows: list[dict]) -> list:
    """The current job's panels and its reward-vs-KL frontier (:func:`alignlab.panels.visible_panels`). While the job
    is queued or training the grid stays fixed at every panel of its method, each filling as its keys arrive (a first
    probe row fills Reward and KL before the first loss: the grid does not shrink to those and grow back); once it
    ended, a panel none of its rows fills is left out."""
    histories = {job.run_id or job.label: rows}
    shown = visible_panels([job.config.method], None if job.active else histories,
                           probing=bool(job.config.probe_every))
    return panel_figures(shown, histories)


EXPLAINER_HEADING = "#### What these curves mean, in this run's numbers"


def job_explainer(job: Job, rows: list[dict]) -> str:
    """The metric explainer beside a DPO-family job's panels (:func:`alignlab.explain.explain`, from its rows so
    far), as markdown under a heading; "" for another method or before its rewards are logged."""
    text = markdown(explain(job.config.method, job.config.method_args, rows))
    return f"{EXPLAINER_HEADING}\n\n{text}" if text else ""


def job_status(services: Services, user: str | None = None) -> dict:
    """The current job (``user``'s own first, :meth:`alignlab.ui.gradio.jobs.JobQueue.current`) as plain data (API
    endpoint ``/job_status``): state, run id, steps and metric rows."""
    job = services.jobs.current(user)
    if job is None:
        return {"state": None, "queued": 0}
    rows = job.rows()
    return {"job": job.number, "state": job.state, "run_id": job.run_id, "method": job.config.method,
            "step": rows[-1]["step"] if rows else 0, "total_steps": job.config.max_steps, "error": job.error,
            "queued": len(services.jobs.queued()), "rows": rows}
