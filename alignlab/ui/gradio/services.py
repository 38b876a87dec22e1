"""The server-side state every page shares: runs folder, data folder, job queue, uploads, chat, what changed.

State lives here, in the server process, not in the page: a reloaded page finds the job it
started, and two visitors see the same queue. The app's data folder holds ``uploads/`` (datasets
sent through the browser), ``jobs/`` (each job's config file and worker log) and ``exports/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alignlab.rundir import check_output_dir, list_runs
from alignlab.ui.gradio.changes_service import ChangesService
from alignlab.ui.gradio.chat_service import ChatService
from alignlab.ui.gradio.jobs import JobQueue
from alignlab.ui.gradio.uploads import UploadStore


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

    @classmethod
    def create(cls, runs_dir: str | Path = "runs", data_dir: str | Path | None = None,
               trust_remote_code: bool = False) -> Services:
        """Services over ``runs_dir``; the data folder defaults to ``<runs_dir>/_app``. Both are made here, and
        AlignLabError names the folder when one cannot be (a file, a read-only place, /proc)."""
        runs_dir = check_output_dir(runs_dir, create=True).resolve()
        data_dir = check_output_dir(data_dir, create=True).resolve() if data_dir else \
            check_output_dir(runs_dir / "_app", create=True)
        return cls(runs_dir, data_dir, trust_remote_code, JobQueue(runs_dir, data_dir / "jobs"),
                   UploadStore(data_dir / "uploads"), ChatService(runs_dir, trust_remote_code), ChangesService())

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"

    def runs(self) -> list[dict]:
        """Every run in the runs folder, newest first."""
        return list_runs(self.runs_dir)
