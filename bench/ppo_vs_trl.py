"""``python -m bench.ppo_vs_trl``: alignlab's PPO against TRL 1.12's, from two ``bench.alignment`` runs.

Both runs are ``python -m bench.alignment --methods ppo --seeds 42 --threads 1 --every 0`` under
``/usr/bin/time -v``, side by side, each pinned to its own core: one from a checkout of the last commit on
TRL 1.12's experimental PPO trainer, one from this one (alignlab's own trainer, alignlab/methods/_ppo_trainer.py).
This script reads what they wrote (each ``alignment.json``, the run's metric rows, the peak memory in the
``time -v`` log) and writes every figure to ``bench/ppo_vs_trl.json`` and the table to stdout:

    python -m bench.ppo_vs_trl --old /tmp/exp/ppo-old /tmp/exp/ppo-old.log /tmp/exp/old-ppo \\
        --own /tmp/exp/ppo-own /tmp/exp/ppo-own.log .
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

TRACKED = ("objective/scores", "objective/kl", "objective/entropy", "loss/policy_avg", "loss/value_avg",
           "policy/clipfrac_avg")


def peak_rss_mib(time_log: Path) -> float | None:
    """The "Maximum resident set size" that ``/usr/bin/time -v`` reported (the largest process), in MiB."""
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_log.read_text(errors="replace"))
    return round(int(found.group(1)) / 1024, 1) if found else None


def one_side(out: Path, time_log: Path, root: Path) -> dict:
    """The figures of one side: final evaluation, timing, memory and the per-step trajectories."""
    from alignlab import rundir

    results = json.loads((out / "alignment.json").read_text())
    run = results["runs"][0]
    run_dir = Path(run["run_dir"])
    rows, _ = rundir.read_metrics(run_dir if run_dir.is_absolute() else root / run_dir)
    rows = [row for row in rows if "objective/scores" in row]
    final = run.get("final") or {}
    return {
        "command": results["command"], "machine": results["machine"], "finished": results["finished"],
        "load_avg_end": results["load_avg"], "state": run["state"], "steps": run.get("steps"),
        "train_s": run.get("train_s"), "s_per_step": round(run["train_s"] / run["steps"], 1) if run.get("steps")
        else None, "peak_rss_mib": peak_rss_mib(time_log),
        "final": {key: final.get(key) for key in ("gain", "gain_se", "win_rate", "win_low", "win_high", "kl",
                                                    "kl_se")},
        "trajectory": {key: [row.get(key) for row in rows] for key in ("step", *TRACKED)},
    }


def table(sides: dict) -> str:
    """The markdown table of the two sides."""
    lines = ["| trainer | steps | s/step | peak RSS (MiB) | eval gain ± s.e. | win-rate | KL (nats, probe) | "
             "train reward (first → last step) | train KL (last step) |", "|---|---:|---:|---:|---|---|---|---|---:|"]
    for name, side in sides.items():
        f, t = side["final"], side["trajectory"]
        scores = t["objective/scores"]
        lines.append(f"| {name} | {side['steps']} | {side['s_per_step']} | {side['peak_rss_mib']} | "
                     f"{f['gain']:+.3f} ± {f['gain_se']:.3f} | {f['win_rate']:.0%} | {f['kl']:.2f} ± {f['kl_se']:.2f}"
                     f" | {scores[0]:+.3f} → {scores[-1]:+.3f} | {t['objective/kl'][-1]:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ppo_vs_trl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", nargs=3, metavar=("OUT", "TIME_LOG", "ROOT"), required=True,
                        help="TRL 1.12's side: bench.alignment --out folder, its time -v log, the checkout it ran in")
    parser.add_argument("--own", nargs=3, metavar=("OUT", "TIME_LOG", "ROOT"), required=True,
                        help="alignlab's side, the same three")
    parser.add_argument("--write", default="bench/ppo_vs_trl.json")
    args = parser.parse_args(argv)
    sides = {"TRL 1.12 PPOTrainer": one_side(*map(Path, args.old)),
             "alignlab PPOTrainer": one_side(*map(Path, args.own))}
    Path(args.write).write_text(json.dumps(sides, indent=1) + "\n")
    print(table(sides))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
