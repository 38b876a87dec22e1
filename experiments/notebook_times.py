"""How long each tutorial notebook takes, top to bottom, in quick or full mode.

    python -m experiments.notebook_times            # full mode: the default model, as a workshop runs it
    python -m experiments.notebook_times --quick    # quick mode: what CI runs
    python -m experiments.notebook_times --only 01_quickstart --docs docs

Each notebook is executed with nbclient in a fresh kernel (``QUICK`` injected after its
``parameters`` cell, papermill's way), in a scratch folder so its runs do not mix with yours. The
executed copies are kept there; the table (seconds per notebook, the slowest cell, errors) goes to
``<docs>/notebook-times-<mode>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def timed_run(path: Path, quick: bool, work: Path, timeout: int) -> dict:
    """Execute one notebook, returning wall seconds, per-cell seconds and any error."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(path, as_version=4)
    index = next(i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", []))
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(f"QUICK = {quick}", metadata={"tags": ["injected"]}))
    folder = work / path.stem
    shutil.rmtree(folder, ignore_errors=True)  # count only this execution's runs
    folder.mkdir(parents=True, exist_ok=True)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=True,
                            resources={"metadata": {"path": str(folder)}})
    started, error = time.time(), None
    try:
        client.execute()
    except CellExecutionError as exc:
        error = str(exc).strip().splitlines()[-1][:200]
    wall = time.time() - started
    nbformat.write(notebook, folder / path.name)
    cells = []
    for cell in notebook.cells:
        timing = cell.metadata.get("execution", {})
        if cell.cell_type == "code" and "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            from datetime import datetime

            begin = datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
            lines = [line for line in cell.source.splitlines()
                     if line.strip() and not line.startswith(("from ", "import "))]
            cells.append({"source": (lines or [cell.source])[0][:60],
                          "seconds": round((end - begin).total_seconds(), 1)})
    runs = sorted((folder / "runs").glob("*/status.json")) if (folder / "runs").exists() else []
    states = [json.loads(p.read_text())["state"] for p in runs]
    return {"notebook": path.stem, "seconds": round(wall, 1), "error": error, "cells": cells, "run_states": states}


def markdown(results: dict) -> str:
    """The table of one mode's timings."""
    lines = [f"# Notebook times, {results['mode']} mode", "",
             f"Rerun: `{results['command']}`", "",
             f"Machine: {results['machine']}; OMP_NUM_THREADS={results['omp_num_threads']}.", "",
             "| notebook | minutes | slowest cell | runs | error |", "|---|---:|---|---|---|"]
    for row in results["notebooks"]:
        slow = max(row["cells"], key=lambda c: c["seconds"], default={"source": "", "seconds": 0})
        states = ", ".join(f"{row['run_states'].count(s)} {s}" for s in sorted(set(row["run_states"])))
        lines.append(f"| {row['notebook']} | {row['seconds'] / 60:.1f} | `{slow['source']}` ({slow['seconds']:.0f} s) "
                     f"| {states or '-'} | {row['error'] or ''} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="quick mode (tiny model, 2 steps) instead of full")
    parser.add_argument("--only", nargs="*", help="notebook names (stems) to run; default all")
    parser.add_argument("--work", default="runs/notebook-times", help="scratch folder for executed copies and runs")
    parser.add_argument("--docs", default="docs", help="where the table goes")
    parser.add_argument("--timeout", type=int, default=7200, help="seconds per cell")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    paths = [p for p in sorted(NOTEBOOKS.glob("*.ipynb")) if not args.only or p.stem in args.only]
    results = {"mode": mode,
               "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, this process pinned to "
               f"{len(os.sched_getaffinity(0))}",
               "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "notebooks": [],
               "command": "python -m experiments.notebook_times "
               + " ".join(argv if argv is not None else sys.argv[1:])}
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    for path in paths:
        row = timed_run(path, args.quick, Path(args.work) / mode, args.timeout)
        results["notebooks"].append(row)
        print(f"{row['notebook']}: {row['seconds']:.0f} s"
              f"{'  ERROR ' + row['error'] if row['error'] else ''}", flush=True)
        (docs / f"notebook-times-{mode}.json").write_text(json.dumps(results, indent=1))
        (docs / f"notebook-times-{mode}.md").write_text(markdown(results))
    return 1 if any(row["error"] for row in results["notebooks"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
