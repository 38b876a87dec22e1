"""What changed in a run, for the app: sampled once per run in a background thread of the server, then kept.

Reading a run's what-changed rows (:func:`alignlab.changes.run_changes`) loads its model and samples both
models on three held-out prompts: seconds on a CPU. The Train tab asks every second once a job has ended,
so the work goes to one background thread and each run is sampled once; the tab shows a note until the
rows are ready. The worker process has ended by then, so sampling takes no core from training.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from alignlab.changes import run_changes
from alignlab.rundir import model_dir


class ChangesService:
    """Each run's what-changed rows, as a Future: sampled on first ask, one run at a time, and kept."""

    def __init__(self):
        self._futures: dict[Path, tuple[int | None, Future]] = {}  # run dir -> (its model's version, rows)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alignlab-changes")

    def rows(self, run_dir: str | Path) -> Future:
        """The Future of ``run_dir``'s rows (a list of dicts, see :mod:`alignlab.changes`); its exception says why
        there are none (an AlignLabError when the run saved no model). Sampling starts on the first call, and again
        once the run has saved another model (it was resumed)."""
        key = Path(run_dir).resolve()
        version = _model_version(key)
        with self._lock:
            if key not in self._futures or self._futures[key][0] != version:
                self._futures[key] = (version, self._pool.submit(run_changes, key))
            return self._futures[key][1]

    def forget_run(self, run_dir: str | Path) -> None:
        """Drop a run's rows (after it was deleted)."""
        with self._lock:
            self._futures.pop(Path(run_dir).resolve(), None)


def _model_version(run_dir: Path) -> int | None:
    """When the run's model folder was last put in place (a new save replaces the folder), None without one."""
    try:
        return model_dir(run_dir).stat().st_mtime_ns
    except OSError:
        return None
