"""``python -m bench.eval_runs``: keep the figures of evaluated runs, so the Learn cards can quote them.

The alignment benchmark (``python -m bench.alignment``) trains and evaluates in one process. Runs trained with
``alignlab train`` and evaluated with ``alignlab eval`` are measured the same way (100 held-out prompts x 2
samples, paired by prompt and seed) and add what the benchmark does not record: the share of completions that
followed the instruction, reference → aligned. This command copies each run's figures out of its run directory
(config, status, ``eval.json``, the last probe) into ``bench/eval_runs.json``, keyed by run id, with the machine
it ran on and the thread count it was given; ``python -m bench.learn_figures`` then reads them beside the
benchmark's results.

    alignlab train --method kto --seed 42 --run-id kto-42 && alignlab eval runs/kto-42 --no-fluency
    python -m bench.eval_runs runs/kto-42 --threads 1 --note "load 2-3 from other jobs"
    python -m bench.learn_figures
    python -m bench.eval_runs --table          # the kept runs as a Markdown table (docs/alignment.md quotes it)
    python -m bench.eval_runs --by-setting     # each setting's seeds together: mean gain ± s.e. over seeds
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL_RUNS = ROOT / "bench" / "eval_runs.json"


def _number(value):
    """A figure as JSON can hold it: NaN (a figure not measured, such as perplexity under --no-fluency) is None."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _figures(value):
    return {name: _figures(item) for name, item in value.items()} if isinstance(value, dict) else _number(value)


def run_record(run_dir: str | Path, threads: int, machine: str, note: str = "") -> dict:
    """One evaluated run's figures, in the shape :func:`bench.learn_figures.run_figures` reads.

    Raises ValueError when the run did not finish or has no evaluation.
    """
    from alignlab import rundir
    from alignlab.config import config_of
    from alignlab.drift import probe_rows
    from alignlab.measured import VISIBLE_GAIN, VISIBLE_SE
    from alignlab.metrics import PROBE_FOLLOW, PROBE_KL, se_key

    config = config_of(run_dir).flat()  # the method's knobs beside the shared settings, as the benchmark keeps them
    status = rundir.read_status(run_dir)
    evaluation = rundir.read_eval(run_dir)
    if status.get("state") != "finished":
        raise ValueError(f"{run_dir}: the run is {status.get('state')!r}, not finished")
    if evaluation is None:
        raise ValueError(f"{run_dir}: no evaluation; run `alignlab eval {run_dir}` first")
    probe = (probe_rows(rundir.read_metrics(run_dir)[0]) or [{}])[-1]
    kept = ("reward", "prompts", "gain", "gain_se", "win_rate", "aligned_fluency", "reference_fluency",
            "reference_follow", "aligned_follow", "follow_change", "follow_change_se")
    final = {name: _figures(evaluation.get(name)) for name in kept}
    final["kl"] = probe.get(PROBE_KL)
    final["kl_se"] = probe.get(se_key(PROBE_KL))
    final["probe_follow"] = probe.get(PROBE_FOLLOW)
    visible = final["gain"] >= VISIBLE_GAIN and final["gain_se"] <= VISIBLE_SE
    run_id = rundir.read_config(run_dir)["run_id"]
    started = None
    if status.get("updated") is not None and status.get("elapsed_s") is not None:  # when training started, UTC
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(status["updated"] - status["elapsed_s"]))
    return {"run_id": run_id, "started": started, "method": config["method"], "config": config, "state": "finished",
            "seed": config["seed"], "threads": threads, "cache": "not recorded", "steps": config.get("max_steps"),
            "train_s": status.get("elapsed_s"),
            "visible": {"step": config.get("max_steps"), "seconds": status.get("elapsed_s"), "at_end": True}
            if visible else None, "final": final, "machine": machine, "note": note}


def setting(run: dict) -> str:
    """The run's method and what it set away from today's defaults (method knobs and the run settings
    :func:`bench.learn_figures.changed_knobs` compares), e.g. ``dpo {"loss_type": "ipo"}``."""
    from alignlab.methods import get_method
    from bench.learn_figures import changed_knobs

    changed = changed_knobs(run, get_method(run["method"]).defaults())
    return run["method"] + (f" {json.dumps(changed)}" if changed else "")


def table(kept: dict) -> str:
    """The kept runs as Markdown: one row per run, with the faithful-alignment reading of each
    (:func:`alignlab.measured.faithful_problems`)."""
    from alignlab.measured import faithful_problems

    lines = ["| setting | seed | gain ± paired s.e. | win-rate | KL (nats) | followed: ref → aligned (change ± s.e.) "
             "| faithful | train s (threads) |", "|---|---:|---|---:|---:|---|---|---:|"]
    for run in kept["runs"]:
        final = run["final"]
        problems = faithful_problems(final)
        faithful = "–" if problems is None else ("yes" if not problems else "no: " + ", ".join(problems))
        followed = ("–" if final.get("aligned_follow") is None else
                    f"{final['reference_follow']:.1%} → {final['aligned_follow']:.1%} "
                    f"({final['follow_change'] * 100:+.0f} ± {final['follow_change_se'] * 100:.0f})")
        kl = "–" if final.get("kl") is None else f"{final['kl']:.1f}"
        lines.append(f"| {setting(run)} | {run['seed']} | {final['gain']:+.3f} ± {final['gain_se']:.3f} | "
                     f"{final['win_rate']:.0%} | {kl} | {followed} | {faithful} | {run['train_s']:.0f} "
                     f"({run['threads']}) |")
    return "\n".join(lines)


def _cpu(machine: str) -> str:
    """The CPU's name out of a run's machine text ("AMD EPYC, 2 CPUs, torch ...": "AMD EPYC")."""
    return machine.split(",")[0]


def by_setting(kept: dict) -> str:
    """The kept runs grouped by setting (:func:`setting`), CPU and thread count, one Markdown row per group: how
    many seeds, the mean gain ± its standard error over the seeds (sample standard deviation / √n; "–" for one
    seed), the lowest seed's gain, the KL's mean and range, each seed's change in instruction-following, and whether
    every seed is visible (gain >= :data:`alignlab.measured.VISIBLE_GAIN` with its paired s.e. <=
    :data:`alignlab.measured.VISIBLE_SE`).

    A seed drawn on another CPU or at another thread count is a different draw (the arithmetic differs), so such
    runs make their own rows. A seed run twice in one group counts once, its latest run.
    """
    from alignlab.measured import VISIBLE_GAIN, VISIBLE_SE
    from alignlab.stats import mean_se

    groups: dict[tuple, dict] = {}
    for run in kept["runs"]:
        groups.setdefault((setting(run), _cpu(run["machine"]), run["threads"]), {})[run["seed"]] = run
    lines = ["| setting | CPU (threads) | seeds | gain, mean ± s.e. over seeds | lowest gain | KL, mean (range) "
             "| followed, change per seed | visible at every seed |", "|---|---|---|---|---:|---|---|---|"]
    for (name, cpu, threads), seeds in groups.items():
        finals = [run["final"] for run in seeds.values()]
        gains = [final["gain"] for final in finals]
        mean, se = mean_se(gains)
        spread = f"{mean:+.3f} ± {se:.3f}" if len(gains) > 1 else f"{mean:+.3f} ± –"
        kls = [final["kl"] for final in finals if final.get("kl") is not None]
        kl = ("–" if not kls else f"{kls[0]:.1f}" if len(kls) == 1 else
              f"{sum(kls) / len(kls):.1f} ({min(kls):.1f}-{max(kls):.1f})")
        follow = ", ".join("–" if final.get("follow_change") is None else f"{final['follow_change'] * 100:+.0f}"
                           for final in finals)
        visible = all(final["gain"] >= VISIBLE_GAIN and final["gain_se"] <= VISIBLE_SE for final in finals)
        lines.append(f"| {name} | {cpu} ({threads}) | {', '.join(str(seed) for seed in seeds)} | {spread} | "
                     f"{min(gains):+.3f} | {kl} | {follow} | {'yes' if visible else 'no'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from bench.__main__ import machine_text

    parser = argparse.ArgumentParser(prog="python -m bench.eval_runs", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="run directories trained and evaluated (alignlab eval) to keep")
    parser.add_argument("--threads", type=int, help="the torch threads the runs were given (required with runs)")
    parser.add_argument("--table", action="store_true", help="print the kept runs as a Markdown table")
    parser.add_argument("--by-setting", action="store_true",
                        help="print each setting's seeds together: mean gain ± s.e. over seeds, per CPU and threads")
    parser.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    parser.add_argument("--out", type=Path, default=EVAL_RUNS, help="the file the figures are kept in")
    args = parser.parse_args(argv)
    if args.runs and args.threads is None:
        parser.error("--threads is required with runs: how many threads they were given")
    if not args.runs:
        if not (args.table or args.by_setting):
            parser.error("name the runs to keep, or --table / --by-setting to print those kept")
        kept = json.loads(args.out.read_text(encoding="utf-8"))
        print("\n\n".join(show(kept) for wanted, show in ((args.table, table), (args.by_setting, by_setting))
                           if wanted))
        return 0
    machine = machine_text()
    kept = json.loads(args.out.read_text(encoding="utf-8")) if args.out.exists() else {"runs": []}
    for run_dir in args.runs:
        record = run_record(run_dir, args.threads, machine, args.note)
        kept["runs"] = [run for run in kept["runs"] if run["run_id"] != record["run_id"]] + [record]
        final = record["final"]
        print(f"{record['run_id']}: gain {final['gain']:+.3f} ± {final['gain_se']:.3f}, KL {final['kl']}, "
              f"followed {final.get('reference_follow')} → {final.get('aligned_follow')}")
    args.out.write_text(json.dumps(kept, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(kept['runs'])} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
