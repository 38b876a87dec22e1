"""The server-side state every page shares: runs folder, data folder, job queue, uploads, chat, what changed.

State lives here, in the server process, not in the page: a reloaded page finds the job it
started, and two visitors see the same queue. The app's data folder holds ``uploads/`` (datasets
sent through the browser), ``jobs/`` (each job's config file and worker log) and ``exports/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from alignlab.config import check_owner
from alignlab.errors import AlignLabError
from alignlab.labels import owner_of
from alignlab.rundir import UnreadableRunFile, check_output_dir, default_runs_dir, list_runs, read_config
from alignlab.ui.gradio.changes_service import ChangesService
from alignlab.ui.gradio.chat_service import ChatService
from alignlab.ui.gradio.jobs import JobQueue
from alignlab.ui.gradio.uploads import UploadStore
from alignlab.ui.gradio.workshop import Workshop
from alignlab.workshop import may_change_run


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
    admin: str | None = None  # outside workshop mode, the --auth account that may change anyone's jobs and runs

    @classmethod
    def create(cls, runs_dir: str | Path | None = None, data_dir: str | Path | None = None,
               trust_remote_code: bool = False, workshop: Workshop | None = None, max_jobs: int = 1,
               admin: str | None = None) -> Services:
        """Services over ``runs_dir`` (:func:`~alignlab.rundir.default_runs_dir` when None); the data folder
        defaults to ``<runs_dir>/_app``. Both are made here, and AlignLabError names the folder when one cannot be (a
        file, a read-only place, /proc). ``max_jobs``: jobs trained at once (checked by
        :func:`alignlab.job_slots.job_slots` before). ``admin``: outside workshop mode, the signed-in account that may
        stop, cancel, delete and resume anyone's jobs and runs."""
        runs_dir = check_output_dir(default_runs_dir() if runs_dir is None else runs_dir, create=True).resolve()
        data_dir = check_output_dir(data_dir, create=True).resolve() if data_dir else \
            check_output_dir(runs_dir / "_app", create=True)
        admin = None if workshop else check_owner(admin, "instructor") or None
        jobs = JobQueue(runs_dir, data_dir / "jobs", max_jobs=max_jobs, require_owner=workshop is not None,
                        instructor=workshop.instructor if workshop else admin)
        return cls(runs_dir, data_dir, trust_remote_code, jobs, UploadStore(data_dir / "uploads"),
                   ChatService(runs_dir, trust_remote_code), ChangesService(), workshop, admin)

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

    def run_owner(self, run_dir: Path) -> str | None:
        """Who started the run (its config's ``owner``), None for a run without one or with an unreadable config."""
        try:
            return owner_of({"config": read_config(run_dir)})
        except UnreadableRunFile:
            return None

    def check_may_change_run(self, run_dir: Path, request: gr.Request | None, verb: str) -> str | None:
        """AlignLabError, naming the run and its owner, unless the sender of ``request`` may ``verb`` (delete or
        resume) the run: on a shared app (accounts or workshop mode) its owner or the instructor (the admin account
        outside workshop mode), see :func:`alignlab.workshop.may_change_run`; on a single-user app anyone. Returns
        the run's owner."""
        owner = self.run_owner(run_dir)
        if self.workshop is None and (request is None or not request.username):
            return owner  # one user on their own machine: everything is theirs
        user, role = self.user(request), "instructor" if self.workshop else "admin"
        boss = self.workshop.instructor if self.workshop else self.admin
        if may_change_run(owner, user, boss):
            return owner
        who = f"the {role} ({boss})" if boss else None
        if owner is None:
            raise AlignLabError(f"run: {run_dir.name} has no owner (it was not started on this app); only "
                                f"{who or f'the {role} (alignlab app --instructor NAME)'} can {verb} it")
        raise AlignLabError(f"run: {run_dir.name} belongs to {owner}; only {owner}{' or ' + who if who else ''} "
                            f"can {verb} it")

    def runs(self) -> list[dict]:
        """Every run in the runs folder, newest first."""
        return list_runs(self.runs_dir)
