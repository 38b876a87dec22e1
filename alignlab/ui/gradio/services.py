"""The server-side state every page shares: runs folder, data folder, job queue, uploads, chat, what changed.

State lives here, in the server process, not in the page: a reloaded page finds the job it
started, and two visitors see the same queue. The app's data folder holds ``uploads/`` (datasets
sent through the browser), ``jobs/`` (each job's config file and worker log) and ``exports/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from alignlab.rundir import check_output_dir, default_runs_dir, list_runs
from alignlab.ui.gradio.changes_service import ChangesService
from alignlab.ui.gradio.chat_service import ChatService
from alignlab.ui.gradio.jobs import JobQueue
from alignlab.ui.gradio.uploads import UploadStore
from alignlab.ui.gradio.workshop import Workshop


@dataclass
class Services:
    """What the tab builders bind their events to."""

    runs_dir: Path
    data_dir: Path
    trust_remote_code: bool
    jobs: JobQueue
    uploads: UploadStore
    chat: ChatService
    changes: ChangesService
    workshop: Workshop | None = None  # workshop mode's names, KL budget and instructor (alignlab app --workshop)

    @classmethod
    def create(cls, runs_dir: str | Path | None = None, data_dir: str | Path | None = None,
               trust_remote_code: bool = False, workshop: Workshop | None = None, max_jobs: int = 1) -> Services:
        """Services over ``runs_dir`` (:func:`~alignlab.rundir.default_runs_dir` when None); the data folder
        defaults to ``<runs_dir>/_app``. Both are made here, and AlignLabError names the folder when one cannot be (a
        file, a read-only place, /proc). ``max_jobs``: jobs trained at once (checked by
        :func:`alignlab.job_slots.job_slots` before)."""
        runs_dir = check_output_dir(default_runs_dir() if runs_dir is None else runs_dir, create=True).resolve()
        data_dir = check_output_dir(data_dir, create=True).resolve() if data_dir else \
            check_output_dir(runs_dir / "_app", create=True)
        jobs = JobQueue(runs_dir, data_dir / "jobs", max_jobs=max_jobs, require_owner=workshop is not None,
                        instructor=workshop.instructor if workshop else None)
        return cls(runs_dir, data_dir, trust_remote_code, jobs, UploadStore(data_dir / "uploads"),
                   ChatService(runs_dir, trust_remote_code), ChangesService(), workshop)

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"

    def user(self, request: gr.Request | None) -> str | None:
        """Who sent ``request``: the signed-in account (``--auth``), else in workshop mode the name its page gave,
        else None. Jobs are owned, stopped and cancelled by this name."""
        if request is None:
            return None
        if request.username:
            return request.username
        return self.workshop.name_of(request.session_hash) if self.workshop else None

    def runs(self) -> list[dict]:
        """Every run in the runs folder, newest first."""
        return list_runs(self.runs_dir)
