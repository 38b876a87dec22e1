"""Start to the first curve point: what a class waits for after pressing Start.

    python -m bench.first_point                      # default DPO run, cold cache then warm cache
    python -m bench.first_point --method rloo --threads 2

Each trial launches ``alignlab train`` in a fresh process (the CLI, as a user starts it) and polls its run
directory: the seconds from launch to the first row of the metrics file (the step-0 probe, or the first
step when the probe is off), and every phase the status named meanwhile (:meth:`alignlab.runner.RunHandle
.set_phase`) with when it was first seen. The run is stopped once the first point is there.

``cold``: a fresh ``ALIGNLAB_CACHE`` holding only the converted models (no cached reference log-probs, no cached
step-0 probe), as on a machine that never trained; ``warm``: the same cache again, as on a second run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from alignlab import rundir
from alignlab.models import cache_dir


def trial(method: str, cache: Path, threads: int, runs: Path, extra: list[str], limit_s: float) -> dict:
    """One launch of ``alignlab train`` until its first metrics row (or ``limit_s``)."""
    run_id = f"first-point-{method}-{int(time.time() * 1000)}"
    env = {**os.environ, "ALIGNLAB_CACHE": str(cache), "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "alignlab", "train", "--method", method, "--output-dir", str(runs),
               "--run-id", run_id, "--quiet", *extra]
    begin = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run_dir, phases, first = runs / run_id, {}, None
    try:
        while time.monotonic() - begin < limit_s and process.poll() is None:
            status = rundir.read_status(run_dir) if run_dir.is_dir() else {}
            if status.get("phase") and status["phase"] not in phases:
                phases[status["phase"]] = round(time.monotonic() - begin, 1)
            rows = rundir.read_metrics(run_dir, 0)[0] if (run_dir / rundir.METRICS).exists() else []
            if rows:
                first = round(time.monotonic() - begin, 1)
                break
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # a stop, as Ctrl-C: the run saves and ends
            try:
                process.wait(120)
            except subprocess.TimeoutExpired:
                process.kill()
    error = None if first is not None else (process.stderr.read()[-400:] if process.stderr else "no first point")
    return {"method": method, "threads": threads, "first_point_s": first, "phases_s": phases, "error": error}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="dpo")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=float, default=900, help="seconds to wait for a first point")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args, extra = parser.parse_known_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        cache, runs = Path(folder) / "cache", Path(folder) / "runs"
        cache.mkdir()
        (cache / "models").symlink_to(cache_dir() / "models")  # the converted models only: nothing cached
        for kind in ("cold", "warm"):
            result = {"cache": kind, **trial(args.method, cache, args.threads, runs, extra, args.limit)}
            results.append(result)
            print(json.dumps(result), flush=True)
        shutil.rmtree(runs, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps({"machine_load_avg": os.getloadavg(), "results": results}, indent=1) + "\n")
    return 0 if all(r["first_point_s"] is not None for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
