"""Reward gain vs KL on the built-in task: the DPO paper's Figure 2, measured with error bars.

Rafailov et al. 2023 (Sec. 6.1, Fig. 2) compare methods on IMDb controlled sentiment generation by the
reward each reaches against its KL from the reference, and report that DPO's frontier dominates PPO's.
Here: the ``positive-reviews`` task (VADER sentiment as the ground-truth reward), each method at the lab's
defaults with only its KL knob swept (β for DPO and RLOO, ``kl_coef`` for PPO), over several training
seeds; beside them DPO without its likelihood term (``dpo-alpha0``), the loss the paper measured. Every
final model is measured the way ``bench.alignment`` measures one: the held-out reward gain over the
reference, paired by prompt and sampling seed (100 prompts × 2 samples, as ``alignlab eval`` does), and
the probe's KL on 32 held-out prompts. A point is the mean over seeds; its error bar is the standard error
over seeds (which contains the evaluation noise) and, with a single seed, the evaluation's paired standard
error.

Runs already measured at the same settings are reused, not retrained: pass them with ``--reuse``
(``bench/eval_runs.json``, the runs trained with ``alignlab train`` and measured with ``alignlab eval``;
``bench/alignment.json``; an earlier ``docs/frontier.json``). A seed measured twice counts once, its latest
run; ``--machine`` keeps the runs of one CPU, since a seed drawn on another CPU is a different draw. Each
point also says how the instruction fared (the change in the share of completions that begin with the
requested opening, where the run's evaluation measured it). Writes ``frontier.json``, ``frontier.md`` and
``frontier.png`` to ``--out`` (docs/ by default) after every run, so a stopped sweep keeps what it has.

    python -m experiments.frontier --reuse bench/eval_runs.json --machine "AMD EPYC"   # the full sweep
    python -m experiments.frontier --quick --methods dpo                             # tiny-random: checks it
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from argparse import Namespace
from dataclasses import dataclass, field, replace
from pathlib import Path

from alignlab.config import RunConfig
from alignlab.methods import get_method

# β / kl_coef per method: each method's default (DPO β 0.5, RLOO β 0.05, PPO kl_coef 0.03, online DPO β 0.1) and
# pulls beside it, so the points overlap in KL (about 5-15 nats) where the methods can be compared.
GRID = {"dpo": (0.1, 0.5, 1.0), "dpo-alpha0": (0.5,), "rloo": (0.02, 0.05), "ppo": (0.02, 0.03, 0.05),
        "online-dpo": (0.1,)}
SEEDS = (42, 7, 1)
# Lines of the grid that are a method with other knobs fixed: label -> (method, knobs), and what the label means.
VARIANTS = {"dpo-alpha0": ("dpo", {"sft_weight": 0.0})}
VARIANT_MEANING = {"dpo-alpha0": "DPO without the likelihood term (`sft_weight` 0): the DPO paper's loss"}
# Settings that name, own, checkpoint or log a run but leave its training as it is (runs from before the
# checkpoint, tracker and workshop-owner settings existed are reused).
NOT_TRAINING = {"seed", "output_dir", "run_name", "save_every", "keep_checkpoints", "report_to", "owner"}


def line(label: str) -> tuple[str, dict]:
    """The method a grid line trains and the knobs it fixes (:data:`VARIANTS`; a plain method fixes none)."""
    return VARIANTS.get(label, (label, {}))


def kl_knob(method: str) -> str:
    """The knob that sets a grid line's pull toward the reference (its method spec's ``kl_knob``: β, PPO's
    kl_coef)."""
    knob = get_method(line(method)[0]).kl_knob
    if knob is None:
        raise SystemExit(f"method {method!r} has no knob for the KL strength; it cannot be swept on a frontier")
    return knob


@dataclass
class Sweep:
    """What to train: methods, their knob values and seeds, on one model, measured on ``prompts`` x ``samples``."""

    grid: dict[str, tuple[float, ...]] = field(default_factory=lambda: dict(GRID))
    seeds: tuple[int, ...] = SEEDS
    model: str = "smollm2-135m-instruct"
    prompts: int = 100
    samples: int = 2
    overrides: dict = field(default_factory=dict)  # knobs changed for every run (the quick mode's tiny settings)
    work: str = "runs/frontier"
    machine: str = ""  # reuse only runs whose machine text contains this ("AMD EPYC"); "" reuses any

    def config(self, label: str, value: float, seed: int) -> dict:
        """The flat config a run of grid line ``label`` at (value, seed) trains with."""
        method, fixed = line(label)
        return RunConfig.from_dict({"method": method, "model": self.model, "seed": seed, **self.overrides, **fixed,
                                    kl_knob(label): value}).flat()


QUICK = Sweep(grid={"dpo": (0.1, 1.0), "rloo": (0.1, 1.0), "ppo": (0.1, 1.0)}, seeds=(42,), model="tiny-random",
              prompts=4, samples=1, work="runs/frontier-quick",
              overrides={"max_steps": 2, "batch_size": 2, "max_length": 64, "max_completion_length": 8})


def same_method(label: str | None, method: str) -> bool:
    """Whether a ``bench.alignment`` record's method label is ``method``: the method alone, or the method with its
    KL knob set (``ppo {"kl_coef": 0.01}``, how the bench labels a run with ``--overrides``). Any other label (another
    loss, another trainer) is another method.

    >>> same_method("ppo", "ppo"), same_method('ppo {"kl_coef": 0.01}', "ppo"), same_method("ppo (TRL 1.12)", "ppo")
    (True, True, False)
    """
    if label == method:
        return True
    if not label or not label.startswith(method + " {"):
        return False
    try:
        overrides = json.loads(label[len(method) + 1:])
    except ValueError:
        return False
    return isinstance(overrides, dict) and set(overrides) <= {kl_knob(method)}


def matches(run: dict, sweep: Sweep, method: str, value: float, seed: int) -> bool:
    """Whether a measured run (a ``bench.alignment`` or ``bench.eval_runs`` record) trained at exactly this point
    of the sweep, on the sweep's machine."""
    if not run.get("final") or run.get("state") != "finished" or not same_method(run.get("method"), line(method)[0]):
        return False
    if sweep.machine and sweep.machine not in (run.get("machine") or ""):
        return False
    wanted, got = sweep.config(method, value, seed), run.get("config", {})
    return all(got.get(key) == wanted[key] for key in wanted if key not in NOT_TRAINING) and got.get("seed") == seed


def reusable(files: list[Path]) -> list[dict]:
    """Every finished, fully evaluated run record in ``files`` (bench/alignment.json, bench/eval_runs.json or
    frontier.json form), each once (by its run directory, or its run id and machine)."""
    runs, seen = [], set()
    for path in files:
        if path.is_file():
            for run in json.loads(path.read_text()).get("runs", []):
                key = (run.get("run_dir") or (run.get("run_id") and f"{run['run_id']} on {run.get('machine')}")
                       or json.dumps(run.get("config"), sort_keys=True))
                if run.get("final") and key not in seen:  # a run reused into a frontier.json is listed again
                    seen.add(key)
                    runs.append(run)
    return runs


def measure(sweep: Sweep, method: str, value: float, seed: int, threads: int) -> dict:
    """Train and evaluate one run in its own process (``bench.alignment``'s child), cold caches of its own."""
    from bench.__main__ import machine_text
    from bench.alignment import run_child

    work = Path(sweep.work) / f"{method}-{kl_knob(method).replace('_', '')}{value:g}-s{seed}"
    trained, fixed = line(method)
    args = Namespace(work=str(work), model=sweep.model, every=0, gain=0.3, max_se=0.05, prompts=sweep.prompts,
                     samples=sweep.samples, overrides=json.dumps({**sweep.overrides, **fixed, kl_knob(method): value}))
    return run_child(args, trained, threads, seed, work / "cache", final=True) | {"machine": machine_text(),
                                                                                 "threads": threads}


def latest(runs: list[dict], sweep: Sweep, method: str, value: float, seed: int) -> dict | None:
    """The run measured last at this point and seed (by when it started training, where recorded), or None."""
    found = [run for run in runs if matches(run, sweep, method, value, seed)]
    return max(found, key=lambda run: run.get("started") or "", default=None)


def points(runs: list[dict], sweep: Sweep) -> list[dict]:
    """One point per (method, value): the mean gain and KL over the seeds measured, with their errors, and the
    mean change in instruction-following where every seed's evaluation measured it."""
    out = []
    for method, values in sweep.grid.items():
        for value in values:
            chosen = [latest(runs, sweep, method, value, seed) for seed in sweep.seeds]
            finals = [run["final"] | {"seed": run["seed"], "machine": run.get("machine"),
                                      "threads": run.get("threads")} for run in chosen if run]
            if not finals:
                continue
            gain, gain_se, gain_eval_se = spread([f["gain"] for f in finals], [f["gain_se"] for f in finals])
            kl, kl_se, _ = spread([f["kl"] for f in finals], [f["kl_se"] for f in finals])
            follow = follow_se = None
            if all(f.get("follow_change") is not None for f in finals):
                follow, follow_se, _ = spread([f["follow_change"] for f in finals],
                                              [f["follow_change_se"] for f in finals])
            keys = ("seed", "gain", "gain_se", "kl", "win_rate", "prompts", "reference_follow", "aligned_follow",
                    "follow_change", "machine", "threads")
            out.append({"method": method, "knob": kl_knob(method), "value": value, "seeds": [f["seed"] for f in finals],
                        "gain": gain, "gain_se": gain_se, "gain_eval_se": gain_eval_se, "kl": kl, "kl_se": kl_se,
                        "follow_change": follow, "follow_change_se": follow_se,
                        "win_rate": sum(f["win_rate"] for f in finals) / len(finals),
                        "per_seed": [{k: f.get(k) for k in keys} for f in finals]})
    return out


def spread(values: list[float], ses: list[float]) -> tuple[float, float, float]:
    """Mean over seeds; its standard error over seeds (the evaluation's own error with one seed); and the
    evaluation-only error of the mean (sqrt of the summed squared errors over n)."""
    n = len(values)
    mean = sum(values) / n
    eval_se = math.sqrt(sum(se * se for se in ses)) / n
    if n < 2:
        return mean, eval_se, eval_se
    seed_se = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)
    return mean, seed_se, eval_se


def plot(frontier: list[dict], sweep: Sweep, path: Path) -> None:
    """Two panels against KL, one line per method through its knob values, ±1 s.e. error bars and each seed as a
    faint dot: the reward gain (left) and the change in instruction-following (right, where it was measured)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"dpo": "tab:blue", "dpo-alpha0": "tab:cyan", "ppo": "tab:red", "rloo": "tab:green",
               "grpo": "tab:purple", "online-dpo": "tab:orange"}
    figure, (gain_axes, follow_axes) = plt.subplots(1, 2, figsize=(12, 4.8))
    panels = ((gain_axes, "gain", "gain_se", 1.0), (follow_axes, "follow_change", "follow_change_se", 100.0))
    for method in sweep.grid:
        mine = sorted((p for p in frontier if p["method"] == method), key=lambda p: p["kl"])
        colour = colours.get(method)
        for axes, key, se_key, scale in panels:
            shown = [p for p in mine if p[key] is not None]
            if not shown:
                continue
            axes.errorbar([p["kl"] for p in shown], [p[key] * scale for p in shown], xerr=[p["kl_se"] for p in shown],
                          yerr=[p[se_key] * scale for p in shown], color=colour, marker="o", capsize=3, label=method)
            for p in shown:
                axes.scatter([s["kl"] for s in p["per_seed"]], [s[key] * scale for s in p["per_seed"]],
                             color=colour, alpha=0.3, s=14)
                symbol = "β" if p["knob"] == "beta" else p["knob"]
                axes.annotate(f"{symbol}={p['value']:g}", (p["kl"], p[key] * scale), textcoords="offset points",
                              xytext=(5, 5), fontsize=7, color=colour)
    for axes in (gain_axes, follow_axes):
        axes.axhline(0.0, color="grey", linewidth=0.8)
        axes.set_xlabel("KL(π || π_ref) per completion, nats (probe, 32 held-out prompts)  →")
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=8)
    gain_axes.set_ylabel("reward gain over the reference (VADER)  ↑ better")
    gain_axes.set_title(f"positive-reviews, {sweep.model}: mean over seeds ± 1 s.e.", fontsize=10)
    follow_axes.set_ylabel("instruction followed, aligned − reference (points)")
    follow_axes.set_title("the requested opening kept: 0 = as often as the reference", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)


def _where(frontier: list[dict]) -> str:
    """The machines and thread counts the points' runs used, e.g. "AMD EPYC, 2 CPUs, ... at 1 thread (15 runs)"."""
    counts: dict[str, int] = {}
    for point in frontier:
        for seed in point["per_seed"]:
            threads = seed.get("threads")
            where = f"{seed.get('machine') or 'machine not recorded'}" + (
                f" at {threads} thread{'s' if threads != 1 else ''}" if threads else "")
            counts[where] = counts.get(where, 0) + 1
    return "; ".join(f"{where} ({count} run{'s' if count != 1 else ''})" for where, count in counts.items())


def markdown(frontier: list[dict], sweep: Sweep, command: str, missing: list[str]) -> str:
    """The table for frontier.md (the reading of it lives in docs/alignment.md, written from these figures)."""
    lines = [
        "# Reward gain vs KL (positive-reviews)", "",
        "Each method at the lab's defaults, only its KL knob changed; every final model evaluated on held-out",
        "prompts (gain over the reference, paired by prompt and sampling seed) and probed for KL on 32 prompts.",
        "A point is the mean over training seeds; ± is the standard error over seeds (it contains the",
        "evaluation's noise), or the evaluation's paired s.e. when only one seed was run. `eval s.e.` is the",
        "evaluation noise alone. \"followed\" is the change in the share of completions that begin with the",
        "requested opening, aligned minus reference, in points (– where an evaluation did not measure it).",
        "How it was made: `experiments/frontier.py`.",
        *[f"`{label}`: {VARIANT_MEANING[label]}." for label in sweep.grid if label in VARIANT_MEANING], "",
        f"Rerun: `{command}`", "",
        "![frontier](frontier.png)", "",
        "| method | knob | seeds | gain ± s.e. | eval s.e. | KL (nats) ± s.e. | followed ± s.e. | win-rate "
        "| per seed (gain, KL, followed) |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for p in frontier:
        seeds = "; ".join(f"s{s['seed']}: {s['gain']:+.3f}, {s['kl']:.1f}"
                          + ("" if s.get("follow_change") is None else f", {s['follow_change'] * 100:+.0f}")
                          for s in p["per_seed"])
        follow = ("–" if p.get("follow_change") is None else
                  f"{p['follow_change'] * 100:+.0f} ± {p['follow_change_se'] * 100:.0f}")
        lines.append(f"| {p['method']} | {p['knob']}={p['value']:g} | {len(p['seeds'])} | {p['gain']:+.3f} ± "
                     f"{p['gain_se']:.3f} | {p['gain_eval_se']:.3f} | {p['kl']:.1f} ± {p['kl_se']:.1f} | {follow} | "
                     f"{p['win_rate']:.0%} | {seeds} |")
    prompts = sorted({s["prompts"] for p in frontier for s in p["per_seed"] if s.get("prompts")})
    unrecorded = sum(1 for p in frontier for s in p["per_seed"] if not s.get("prompts"))
    lines += ["", "Held-out prompts per evaluation: " + (", ".join(map(str, prompts)) or "–")
              + (f" ({unrecorded} evaluation(s) kept before the count was recorded: `alignlab eval`'s default, "
                 "100)" if unrecorded else "") + f"; {sweep.samples} samples each, eval seed 1234.",
              "", f"Where the runs ran: {_where(frontier)}."]
    if missing:
        lines += ["", "Not measured (stopped or failed): " + ", ".join(missing) + "."]
    return "\n".join(lines) + "\n"


def write(docs: Path, runs: list[dict], sweep: Sweep, command: str, missing: list[str]) -> list[dict]:
    """Write frontier.json / .md / .png from every run measured so far; returns the points."""
    frontier = points(runs, sweep)
    runs = [r for r in runs if any(matches(r, sweep, m, v, s) for m, vs in sweep.grid.items() for v in vs
                                   for s in sweep.seeds)]
    (docs / "frontier.json").write_text(json.dumps({"command": command, "sweep": vars(sweep), "points": frontier,
                                                    "runs": runs}, indent=1, default=list))
    (docs / "frontier.md").write_text(markdown(frontier, sweep, command, missing))
    if frontier:
        plot(frontier, sweep, docs / "frontier.png")
    return frontier


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.frontier", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny-random, 2 steps, 4 prompts: checks the pipeline")
    parser.add_argument("--methods", nargs="*",
                        help="a subset of the grid's lines (its methods, and variants such as dpo-alpha0)")
    parser.add_argument("--seeds", type=int, nargs="*", help=f"training seeds (default {' '.join(map(str, SEEDS))})")
    parser.add_argument("--reuse", type=Path, nargs="*", default=[],
                        help="JSON files of runs already measured (bench/alignment.json, docs/frontier.json)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (1: two sweeps share 2 cores)")
    parser.add_argument("--machine", default="",
                        help='reuse only runs whose machine text contains this (e.g. "AMD EPYC"); default: any')
    parser.add_argument("--dry-run", action="store_true", help="only say which runs would be trained")
    parser.add_argument("--no-train", action="store_true",
                        help="write the figures from the reused runs alone, listing the others as not measured")
    parser.add_argument("--out", dest="docs", type=Path,
                        help="where the JSON/MD/PNG go (default docs/, the work dir with --quick)")
    parser.add_argument("--work", help="where runs train (default runs/frontier)")
    args = parser.parse_args(argv)
    sweep = replace(QUICK) if args.quick else Sweep()  # a copy: the options below change it
    if args.methods:
        unknown = set(args.methods) - set(sweep.grid)
        if unknown:
            parser.error(f"--methods: no grid for {', '.join(sorted(unknown))}; the grid has {', '.join(sweep.grid)}")
        sweep.grid = {m: sweep.grid[m] for m in args.methods}
    sweep.seeds = tuple(args.seeds or sweep.seeds)
    sweep.work = args.work or sweep.work
    sweep.machine = args.machine
    docs = args.docs or (Path(sweep.work) if args.quick else Path("docs"))
    docs.mkdir(parents=True, exist_ok=True)
    command = "python -m experiments.frontier " + shlex.join(argv if argv is not None else sys.argv[1:])
    runs = reusable(args.reuse)
    todo = [(m, v, s) for m, values in sweep.grid.items() for v in values for s in sweep.seeds
            if not any(matches(r, sweep, m, v, s) for r in runs)]
    print(f"{len(todo)} run(s) to train, the rest reused: " + ", ".join(f"{m} {v:g} s{s}" for m, v, s in todo),
          flush=True)
    if args.dry_run:
        return 0
    missing = [f"{m} {kl_knob(m)}={v:g} seed {s}" for m, v, s in todo]
    began = time.time()
    for method, value, seed in [] if args.no_train else todo:
        result = measure(sweep, method, value, seed, args.threads)
        runs.append(result)
        if result.get("state") == "finished" and result.get("final"):
            missing.remove(f"{method} {kl_knob(method)}={value:g} seed {seed}")
        write(docs, runs, sweep, command.strip(), missing)
    write(docs, runs, sweep, command.strip(), missing)
    print(f"wrote {docs / 'frontier.md'} ({(time.time() - began) / 60:.1f} min)")
    return 0 if not missing else 1


if __name__ == "__main__":
    sys.exit(main())
