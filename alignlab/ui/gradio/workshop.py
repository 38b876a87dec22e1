"""Workshop mode's server-side state (``alignlab app --workshop``): who each page is, the KL budget, queue ETAs.

A participant types a name once (remembered by their browser); the page's session is then that person
(:meth:`Workshop.set_name`), and every job it queues is theirs. With ``--auth`` the signed-in account is the
name and cannot be changed. The instructor (``--instructor NAME``) may stop or cancel anyone's job, delete or
resume anyone's run, and is the only one who sets the KL budget of the leaderboard (:mod:`alignlab.workshop`).

Who is the instructor: with ``--auth``, whoever signs in as the account ``--instructor`` names (the login checks
the password). Without ``--auth``, the instructor's name is the one name a page cannot take on its word: it
needs the instructor key too, a random key the app prints in its terminal at start (:func:`new_key`), typed
beside the name. Other names are taken on trust, as names in a room are: anyone can type any participant's
name. Where that matters, give each participant an account (``--auth``).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict

from alignlab.config import check_owner
from alignlab.errors import AlignLabError
from alignlab.eta import Pace, measured_pace, pace, recent_pace, schedule
from alignlab.ui.gradio.jobs import JobQueue
from alignlab.workshop import check_budget

KEY_BYTES = 6  # of randomness in the instructor key (8 characters as printed)
KEEP_SESSIONS = 5_000  # named browser sessions remembered (the oldest forgotten beyond)
RUNS_TTL_S = 2.0  # how long a listing of the runs folder is shared by every page's refresh


def new_key() -> str:
    """A fresh instructor key: short enough to type from the terminal, too random to guess."""
    return secrets.token_urlsafe(KEY_BYTES)


class Workshop:
    """Workshop settings and the names of the pages' sessions; thread-safe.

    ``instructor``: the instructor's name (None: no instructor, the budget stays as set at start).
    ``key``: what a page must give to take the instructor's name; None where the login proves it (``--auth``).
    """

    def __init__(self, instructor: str | None = None, kl_budget: float | None = None, key: str | None = None):
        self.instructor = check_owner(instructor, "instructor") or None
        self.key = key or None
        self._kl_budget = check_budget(kl_budget)
        self._names: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._runs: tuple[float, list[dict]] = (0.0, [])

    # --- who is who -------------------------------------------------------------------------------
    def set_name(self, session: str, name: str, key: str = "") -> str:
        """Remember that the page of ``session`` is ``name`` (stripped; "" forgets it); AlignLabError for a name that
        is not one (see :func:`alignlab.config.check_owner`), and for the instructor's name (in any case) without
        the instructor ``key``."""
        name = check_owner(name, "name")
        if self.instructor and name.casefold() == self.instructor.casefold() and not self.key_matches(key):
            raise AlignLabError(f"name: {name!r} is the instructor's; taking it needs the instructor key, printed in "
                                "the terminal that started the app" + (" (the one given is wrong)" if key else ""))
        with self._lock:
            self._names.pop(session, None)
            if name:
                self._names[session] = name
                while len(self._names) > KEEP_SESSIONS:
                    self._names.popitem(last=False)
        return name

    def name_of(self, session: str | None) -> str | None:
        """The name the page of ``session`` gave, or None."""
        with self._lock:
            return self._names.get(session or "")

    def key_matches(self, key: str | None) -> bool:
        """True when ``key`` is the instructor key (compared in constant time)."""
        return bool(self.key and key) and secrets.compare_digest(key.strip().encode(), self.key.encode())

    def is_instructor(self, user: str | None) -> bool:
        """True when ``user`` (an account, or a page's name taken with the key) is the instructor."""
        return self.instructor is not None and user == self.instructor

    # --- the KL budget ------------------------------------------------------------------------------
    @property
    def kl_budget(self) -> float | None:
        with self._lock:
            return self._kl_budget

    def set_kl_budget(self, value, user: str | None) -> float | None:
        """Set the leaderboard's KL budget (None: no limit); AlignLabError unless ``user`` is the instructor."""
        if not self.is_instructor(user):
            who = f"the instructor ({self.instructor})" if self.instructor else "the instructor (alignlab app " \
                "--instructor NAME)"
            raise AlignLabError(f"kl_budget: only {who} can change it")
        budget = check_budget(value)
        with self._lock:
            self._kl_budget = budget
        return budget

    # --- the runs, shared by every page's refresh -----------------------------------------------------
    def runs(self, list_runs) -> list[dict]:
        """``list_runs()``, read again at most every :data:`RUNS_TTL_S` seconds whoever asks."""
        with self._lock:
            read_at, runs = self._runs
            if time.monotonic() - read_at > RUNS_TTL_S:
                runs = list_runs()
                self._runs = (time.monotonic(), runs)
            return runs


def job_times(queue: JobQueue) -> dict[int, tuple | None]:
    """``job number -> (starts in, done in)`` seconds for each waiting and training job (starts in 0 for those
    training), or None where it cannot be told yet (:mod:`alignlab.eta`: nothing of that model ended here)."""
    jobs = list(queue.jobs)
    paces: dict[str, list[Pace]] = {}
    for job in jobs:
        if job.state in ("finished", "stopped") and job.started and job.ended:
            measured = measured_pace(job.rows(), job.ended - job.started)
            if measured is not None:
                paces.setdefault(job.config.model, []).append(measured)
    estimate = {model: recent_pace(found) for model, found in paces.items()}
    times: dict[int, tuple | None] = {}
    busy = []
    now = time.time()
    for job in (job for job in jobs if job.active):
        total = job.config.max_steps or None
        left = pace(job.rows(), total)[1]
        if left is None and job.config.model in estimate:  # still loading, or too few steps to time
            whole = estimate[job.config.model].seconds(total)
            left = None if whole is None else max(0.0, whole - (now - (job.started or now)))
        busy.append(left)
        times[job.number] = None if left is None else (0.0, left)
    waiting = [job for job in jobs if job.state == "queued"]
    seconds = [estimate[job.config.model].seconds(job.config.max_steps) if job.config.model in estimate else None
               for job in waiting]
    for job, when in zip(waiting, schedule(busy, seconds, queue.max_jobs), strict=True):
        times[job.number] = when
    return times
