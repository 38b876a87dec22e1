"""What the Train tab shows of the current job: progress with ETA, its curves, the queue, its status.

Pure functions of a :class:`~alignlab.ui.gradio.jobs.Job` and its metric rows, called by the Train
tab's 1 s timer and by the ``/job_status`` API endpoint.
"""

from __future__ import annotations

import time
from html import escape

from alignlab.metrics import PROBE_KEYS
from alignlab.plots import frontier_points, panels_for
from alignlab.ui.figures import frontier_figure, method_figures
from alignlab.ui.gradio.jobs import Job
from alignlab.ui.gradio.services import Services


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def progress_html(job: Job | None, rows: list[dict]) -> str:
    """State, a progress bar, steps done of total, time per step and ETA of the current job."""
    if job is None:
        return "<div class='lab-progress idle'>No run yet: choose a method and press <b>Start</b>.</div>"
    status = job.follower.status() if job.follower else {}
    total = status.get("total_steps") or job.config.max_steps or None
    step = rows[-1].get("step", 0) if rows else 0
    fraction = min(1.0, step / total) if total else 0.0
    per_step, eta = None, None
    timed = [row for row in rows if row.get("time")]
    if len(timed) >= 2 and timed[-1]["step"] > timed[0]["step"]:
        per_step = (timed[-1]["time"] - timed[0]["time"]) / (timed[-1]["step"] - timed[0]["step"])
        eta = per_step * (total - step) if total else None
    if job.state == "starting":
        detail = "loading the model and data in the worker process…"
    elif job.state == "queued":
        detail = "waiting for the job before it to finish"
    elif job.active:
        detail = f"step {step} / {total or '?'}" + ("" if rows else " · tokenizing and building the trainer…")
        if per_step:
            detail += f" · {per_step:.2f} s/step · ETA {_duration(eta)}"
        if job.stop_requested:
            detail += " · stopping: saving what it has…"
    else:
        elapsed = (job.ended or time.time()) - (job.started or job.submitted)
        detail = f"{step} steps in {_duration(elapsed)}"
        if job.error:
            detail += f" · {job.error}"
    if job.state == "finished":
        fraction = 1.0
    return (f"<div class='lab-progress {job.state}'><div class='lab-progress-head'><span><b>{escape(job.label)}</b>"
            f"<span class='lab-job'>{escape(job.summary)}</span></span>"
            f"<span class='lab-state'>{job.state}</span></div>"
            f"<div class='lab-bar'><div style='width:{100 * fraction:.1f}%'></div></div>"
            f"<div class='lab-progress-detail'>{escape(detail)}</div></div>")


def queue_table(services: Services) -> dict:
    jobs = services.jobs.jobs
    rows = [[job.number, job.config.method, job.config.model, job.state, job.run_id or "–"] for job in reversed(jobs)]
    return {"headers": ["job", "method", "model", "state", "run"], "data": rows}


def job_figures(job: Job, rows: list[dict]) -> list:
    """The current job's panels, plus its reward-vs-KL frontier when it logs reward and KL together.

    Once rows arrive, a panel none of them fills is left out (e.g. Reward and KL when the probe is
    off), unless the probe will fill it later.
    """
    label = job.run_id or job.label
    figures = method_figures(job.config.method, {label: rows})
    probed = set(PROBE_KEYS) if job.config.probe_every else set()
    logged = {key for row in rows for key, value in row.items() if value is not None} | probed
    shown = [figures[panel.title] for panel in panels_for(job.config.method)
             if not rows or logged & set(panel.keys)]
    if job.config.probe_every or frontier_points(rows):
        shown.append(frontier_figure({label: rows}))
    return shown


def job_status(services: Services) -> dict:
    """The current job as plain data (API endpoint ``/job_status``): state, run id, steps and metric rows."""
    job = services.jobs.current()
    if job is None:
        return {"state": None, "queued": 0}
    rows = job.rows()
    return {"job": job.number, "state": job.state, "run_id": job.run_id, "method": job.config.method,
            "step": rows[-1]["step"] if rows else 0, "total_steps": job.config.max_steps, "error": job.error,
            "queued": len(services.jobs.queued()), "rows": rows}
