"""The app's training queue: one job at a time (or ``max_jobs`` on a GPU), each trained by a worker process.

The web server never trains. A job is a validated :class:`~alignlab.config.RunConfig` written to a
JSON file and trained by ``python -m alignlab train --config FILE --output-dir RUNS --run-id ID --quiet``
in a child process, so a heavy step never stalls a page and chat keeps answering. The queue names the
run (``--run-id``) and follows that run directory once the worker has created it, through
:mod:`alignlab.rundir` (metrics read from byte offsets, the status).

Stop sends SIGINT once: the CLI catches it, asks the run to stop at the next step, saves the adapter
and samples, and marks the run ``stopped``. The queue lives in the server process, so a reloaded
page re-attaches to the job in progress; past runs are read from the runs directory. A job that resumes a
stopped, failed or killed run (the Runs tab's Resume) runs ``python -m alignlab train --resume RUN_DIR``.

The machine is shared: at most :data:`MAX_QUEUED` jobs wait at once, and with auth on each job
remembers who submitted it (its ``owner``, also written into the run's config), so a user stops or cancels only
their own jobs. In workshop mode every job must have an owner, and the instructor (with auth alone, the admin
account) may stop or cancel any job (:func:`alignlab.workshop.may_control`). A job that resumes a run is the run
owner's. :meth:`JobQueue.close` (the app stopping) stops the training jobs as Stop does and waits for them.
With ``max_jobs`` above 1 (a GPU, see :mod:`alignlab.job_slots`) that many worker threads each take the next
waiting job.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from alignlab import rundir
from alignlab.config import RunConfig, check_owner
from alignlab.errors import AlignLabError
from alignlab.tracking import check_tracker
from alignlab.ui.gradio.cpu import worker_environment
from alignlab.workshop import may_control

# queued -> starting (worker loading) -> running (run directory exists) -> finished|stopped|failed;
# a queued job can be cancelled.
ACTIVE_STATES = ("starting", "running")
POLL_S = 0.2
MAX_QUEUED = 8  # jobs waiting their turn (the one training not counted)


class RunFollower:
    """Tails one run directory: every metric row so far (read incrementally) and its status."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.rows: list[dict] = []
        self._offset = 0
        self._lock = threading.Lock()

    def poll(self) -> list[dict]:
        """Read the rows written since the last poll; returns all rows so far."""
        with self._lock:
            new_rows, self._offset = rundir.read_metrics(self.run_dir, self._offset)
            self.rows.extend(new_rows)
            return list(self.rows)

    def status(self) -> dict:
        """The run's status ({} until it is first written)."""
        return rundir.read_status(self.run_dir)


@dataclass
class Job:
    """One queued training request and, once started, its worker process and run directory."""

    number: int
    config: RunConfig
    config_path: Path
    log_path: Path
    submitted: float = field(default_factory=time.time)
    state: str = "queued"
    started: float | None = None
    ended: float | None = None
    run_dir: Path | None = None
    follower: RunFollower | None = None
    error: str | None = None
    stop_requested: bool = False
    process: subprocess.Popen | None = None
    owner: str | None = None  # the signed-in user or workshop participant who submitted it; None without either
    resume: Path | None = None  # the stopped, failed or killed run this job continues (train --resume)

    @property
    def run_id(self) -> str | None:
        return self.run_dir.name if self.run_dir else None

    @property
    def label(self) -> str:
        """What the UI calls the job: its run id once known, else its number, method and model."""
        return self.run_id or f"job {self.number} ({self.config.method} on {self.config.model})"

    @property
    def summary(self) -> str:
        """Method, model, dataset and steps: what the job trains."""
        config = self.config
        steps = f"{config.max_steps} steps" if config.max_steps else f"{config.epochs:g} epoch(s)"
        return f"{config.method} · {config.model} · {Path(config.dataset).name} · {steps}"

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def rows(self) -> list[dict]:
        """Metric rows logged so far (empty until the worker has created the run directory)."""
        return self.follower.poll() if self.follower else []

    def log_tail(self, lines: int = 12) -> str:
        """Last lines of the worker's output, progress-bar redraws collapsed, plus the run's traceback if it failed."""
        text = _read_tail(self.log_path)
        # A progress bar redraws its line with carriage returns: keep what a terminal would show.
        redrawn = [next((part for part in reversed(line.split("\r")) if part.strip()), "") for line in text.split("\n")]
        shown = [line.rstrip() for line in redrawn if line.strip()]
        tail = "\n".join(shown[-lines:])
        error = rundir.read_error(self.run_dir) if self.run_dir else ""
        if error:
            tail += f"\n--- {rundir.ERROR_LOG} ---\n" + "\n".join(error.splitlines()[-lines:])
        return tail


def owned_by(job: Job, user: str | None, instructor: str | None = None) -> bool:
    """True when ``user`` may stop or cancel ``job``: its submitter, the ``instructor``, or anyone for a job
    submitted without an owner."""
    return may_control(job.owner, user, instructor)


def _read_tail(path: Path, max_bytes: int = 32_000) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - max_bytes))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


class JobQueue:
    """Runs submitted jobs one after another in worker processes; thread-safe."""

    def __init__(self, runs_dir: str | Path, jobs_dir: str | Path, max_queued: int = MAX_QUEUED, max_jobs: int = 1,
                 instructor: str | None = None, require_owner: bool = False):
        self.max_queued = max_queued
        self.max_jobs = max_jobs  # jobs trained at once (alignlab.job_slots decides it)
        self.instructor = instructor  # may stop or cancel anyone's job (workshop mode)
        self.require_owner = require_owner  # every job names its owner (workshop mode)
        self.runs_dir = Path(runs_dir).resolve()
        self.jobs_dir = Path(jobs_dir).resolve()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.jobs: list[Job] = []
        self._numbers = itertools.count(1)
        self._wake = threading.Condition()
        self._closed = False
        self._workers = [threading.Thread(target=self._work, name=f"alignlab-job-queue-{slot}", daemon=True)
                         for slot in range(max_jobs)]
        for worker in self._workers:
            worker.start()

    # --- what the UI calls ------------------------------------------------------------------
    def submit(self, config: RunConfig, owner: str | None = None, resume: Path | None = None) -> Job:
        """Queue a validated config (its ``output_dir`` is replaced by the app's runs directory) for ``owner``.

        ``resume``: a run directory of the runs folder to continue from its last checkpoint instead of
        starting a new run (``config`` is then that run's). AlignLabError when :attr:`max_queued` jobs are
        already waiting, or when a job already continues that run.
        """
        config.output_dir = str(self.runs_dir)
        owner = check_owner(owner) or None
        if self.require_owner and not owner:
            raise AlignLabError("name: got no name, expected yours in the box at the top of the page (in a workshop "
                                "every run carries its owner's name)")
        if owner:
            config.owner = owner
        check_tracker(config.report_to)  # now, not when the worker starts: a missing package is said at once
        with self._wake:  # the room checked and taken at once: two visitors cannot both take the last place
            self._check_room()
            if resume is not None and any(job.resume == resume and (job.active or job.state == "queued")
                                          for job in self.jobs):
                raise AlignLabError(f"resume: {resume.name} is already queued to resume or resuming")
            number = next(self._numbers)
            stem = self.jobs_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-job{number}"
            config_path = stem.with_suffix(".json")
            config_path.write_text(json.dumps(config.to_dict(), indent=1))
            job = Job(number, config, config_path, stem.with_suffix(".log"), owner=owner, resume=resume)
            self.jobs.append(job)
            self._wake.notify_all()
        return job

    def current(self, user: str | None = None) -> Job | None:
        """The job being trained, else the next queued one, else the last job that ran; among ``user``'s own jobs
        first when they have any (a workshop participant or signed-in user follows their own run, not the room's)."""
        with self._wake:
            mine = [job for job in self.jobs if user is not None and job.owner == user]
            for jobs in (mine, self.jobs) if mine else (self.jobs,):
                for states in (ACTIVE_STATES, ("queued",)):
                    for job in jobs:
                        if job.state in states:
                            return job
                started = [job for job in jobs if job.started is not None]
                if started:
                    return started[-1]
            return None

    def queued(self) -> list[Job]:
        """Jobs waiting for their turn, oldest first."""
        with self._wake:
            return [job for job in self.jobs if job.state == "queued"]

    def ahead_of(self, job: Job) -> int:
        """How many jobs train or wait before ``job``."""
        with self._wake:
            return sum(1 for other in self.jobs
                       if other.number < job.number and (other.active or other.state == "queued"))

    def stop(self, user: str | None = None) -> Job | None:
        """Stop the active job (SIGINT once: the run saves and ends ``stopped``), ``user``'s own when several train;
        returns it or None.

        ``user`` is the signed-in user or workshop participant (None without either): AlignLabError for a job
        someone else submitted, unless ``user`` is the instructor.
        """
        with self._wake:
            active = [job for job in self.jobs if job.active]
            job = next((job for job in active if user is not None and job.owner == user), active[0] if active else None)
            self._check_control(job, user, "stop")
            return self._stop(job)

    def stop_or_cancel(self, number: int, user: str | None = None) -> Job:
        """Stop job ``number`` if it trains, cancel it if it waits; returns it. AlignLabError when no such job trains
        or waits, or when ``user`` may not (see :meth:`stop`)."""
        with self._wake:
            job = next((job for job in self.jobs if job.number == number and (job.active or job.state == "queued")),
                       None)
            if job is None:
                raise AlignLabError(f"job: no job {number} trains or waits now")
            self._check_control(job, user, "stop" if job.active else "cancel")
            if job.active:
                self._stop(job)
            else:
                self._cancel([job])
            return job

    def cancel_queued(self, user: str | None = None) -> int:
        """Drop the waiting jobs ``user`` submitted (every waiting job without auth); returns how many."""
        with self._wake:
            return self._cancel([job for job in self.jobs if job.state == "queued" and owned_by(job, user)])

    def close(self, wait_s: float | None = 30.0) -> None:
        """Cancel what waits, stop what runs (whoever submitted them, as Stop does: each saves and ends ``stopped``)
        and wait for them to end, up to ``wait_s`` seconds (None: as long as their saves take); a worker still
        running then is killed."""
        with self._wake:
            self._cancel([job for job in self.jobs if job.state == "queued"])
            self._closed = True
            self._wake.notify_all()
            for job in self.jobs:
                if job.active:
                    self._stop(job)
        deadline = None if wait_s is None else time.monotonic() + wait_s
        for worker in self._workers:  # each ends once its job has (a job still starting gets its SIGINT at start)
            if worker is not threading.current_thread():
                worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        with self._wake:
            for job in self.jobs:
                if job.process is not None and job.process.poll() is None:
                    job.process.kill()

    def running_run_dirs(self) -> set[Path]:
        """Run directories a worker is writing now (not to be deleted)."""
        with self._wake:
            return {job.run_dir for job in self.jobs if job.active and job.run_dir is not None}

    # --- internals (called holding the lock) --------------------------------------------------
    def _check_room(self) -> None:
        waiting = sum(1 for job in self.jobs if job.state == "queued")
        if waiting >= self.max_queued:
            raise AlignLabError(f"queue: full, {waiting} jobs are waiting and it holds at most {self.max_queued}; "
                                "try again when one has started")

    def _check_control(self, job: Job | None, user: str | None, verb: str) -> None:
        """AlignLabError when ``user`` may not ``verb`` (stop or cancel) ``job``; in a workshop it names the owner."""
        if job is None or owned_by(job, user, self.instructor):
            return
        if self.instructor is None and not self.require_owner:  # accounts only: who else trains is not shown
            raise AlignLabError(f"job: {job.label} was started by another user; only they can {verb} it")
        role = "instructor" if self.require_owner else "admin"  # workshop mode, or accounts with an admin account
        who = f"{job.owner} or the {role} ({self.instructor})" if self.instructor else job.owner
        named = f"job {job.number} ({job.run_id or f'{job.config.method} on {job.config.model}'})"  # as the queue
        raise AlignLabError(f"job: {named} was started by {job.owner}; only {who} can {verb} it")

    def _stop(self, job: Job | None) -> Job | None:
        if job is None or job.stop_requested:
            return job
        job.stop_requested = True
        if job.process is not None and job.process.poll() is None:
            job.process.send_signal(signal.SIGINT)
        return job

    @staticmethod
    def _cancel(waiting: list[Job]) -> int:
        for job in waiting:
            job.state = "cancelled"
        return len(waiting)

    # --- the worker thread ------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._closed and not any(job.state == "queued" for job in self.jobs):
                    self._wake.wait()
                if self._closed:
                    return
                job = next(job for job in self.jobs if job.state == "queued")
                job.state = "starting"
                job.started = time.time()
            try:
                self._run(job)
            except Exception as error:  # noqa: BLE001 - e.g. its log cannot be written: that job fails, the queue goes on
                with self._wake:
                    job.state, job.error, job.ended = "failed", f"{type(error).__name__}: {error}", time.time()

    def _run(self, job: Job) -> None:
        if job.resume is not None:
            run_id = job.resume.name
            command = [sys.executable, "-m", "alignlab", "train", "--resume", str(job.resume), "--quiet"]
        else:
            run_id = rundir.new_run_id(job.config.method, job.config.run_name)
            command = [sys.executable, "-m", "alignlab", "train", "--config", str(job.config_path),
                       "--output-dir", str(self.runs_dir), "--run-id", run_id, "--quiet"]
        # Unbuffered so the log tail is live; library deprecation chatter kept out of the visible log.
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore::FutureWarning",
                       **worker_environment()}
        with open(job.log_path, "w", encoding="utf-8") as log:
            log.write("$ " + " ".join(command) + "\n")
            log.flush()
            # A session of its own: Ctrl-C in the app's terminal reaches the server, which stops the
            # worker through close().
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment,
                                       start_new_session=True)  # the CLI stops on SIGINT even if it was ignored
        with self._wake:
            job.process = process
            if job.stop_requested:
                process.send_signal(signal.SIGINT)
        while process.poll() is None:
            self._attach(job, run_id)
            time.sleep(POLL_S)
        self._attach(job, run_id)
        self._finish(job, process.returncode)

    def _attach(self, job: Job, run_id: str) -> None:
        """Follow the job's run once the worker has created its directory (the one ``--run-id`` named), or, when
        it resumes a run, once the worker has taken the run over (dropped the rows it logs again; its status
        then names the worker's pid)."""
        run_dir = self.runs_dir / run_id
        taken_over = job.resume is None or rundir.read_status(run_dir).get("pid") == job.process.pid
        if job.run_dir is None and rundir.is_run_dir(run_dir) and taken_over:
            with self._wake:
                job.run_dir, job.follower, job.state = run_dir, RunFollower(run_dir), "running"

    def _finish(self, job: Job, returncode: int) -> None:
        status = job.follower.status() if job.follower else {}
        state = status.get("state")
        if state not in ("finished", "stopped", "failed"):  # the worker ended before the run could say
            state = "stopped" if job.stop_requested else "failed"
        error = status.get("error")
        if state == "failed" and not error:
            lines = [line for line in _read_tail(job.log_path).splitlines() if line.strip()]
            reported = [line for line in lines if line.startswith("error:")]
            error = (reported or lines or [f"worker exited with code {returncode}"])[-1].removeprefix("error: ")
        with self._wake:
            job.state, job.error, job.ended = state, error, time.time()
            if job.follower:
                job.follower.poll()
