"""Reward vs KL on the built-in task: the DPO paper's Figure 2 in miniature, plus RLOO vs PPO costs.

Rafailov et al. 2023 (Sec. 6.1, Fig. 2) compare methods on IMDb controlled sentiment generation by the
reward each reaches against its KL from the reference. Here: the ``positive-reviews`` task (VADER
sentiment as the ground-truth reward), a sweep of β for DPO, ``kl_coef`` for PPO and β for RLOO, and
alignlab's probe (16 held-out prompts, fixed seed, temperature 1) measuring every run the same way.

Each run is its own ``alignlab train`` process, so its peak memory (max RSS) is measured alone; the
time per step is read from the run's metrics with the probe's own time taken out. Writes
``frontier.png``, ``frontier.md`` and ``frontier.json`` to ``--docs`` (docs/ by default).

    python -m experiments.frontier            # the default model (one to two hours on 2 busy CPUs)
    python -m experiments.frontier --quick    # tiny-random, 2 values x 3 methods: checks the pipeline
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from alignlab import rundir
from alignlab.methods import get_method
from alignlab.plots import frontier_points


def kl_knob(method: str) -> str:
    """The knob that sets ``method``'s pull toward the reference (its spec's ``kl_knob``: β, PPO's kl_coef)."""
    knob = get_method(method).kl_knob
    if knob is None:
        raise SystemExit(f"method {method!r} has no knob for the KL strength; it cannot be swept on a frontier")
    return knob


@dataclass
class Settings:
    """One sweep: the same model, prompts, batch, steps and probe for every run."""

    model: str = "smollm2-135m-instruct"
    values: tuple[float, ...] = (0.03, 0.1, 0.3)  # β / kl_coef grid, shared by every method
    methods: tuple[str, ...] = ("dpo", "ppo", "rloo")
    max_steps: int = 12
    batch_size: int = 8  # pairs for DPO, completions for PPO and RLOO (RLOO: 2 prompts x k=4)
    learning_rate: float = 3e-4
    max_completion_length: int = 32
    probe_every: int = 4
    seed: int = 42
    output_dir: str = "runs/frontier"
    extra: dict = field(default_factory=dict)  # method knobs held fixed (e.g. num_generations)

    def config(self, method: str, value: float) -> dict:
        return {"method": method, "model": self.model, "max_steps": self.max_steps, "batch_size": self.batch_size,
                "learning_rate": self.learning_rate, "max_completion_length": self.max_completion_length,
                "probe_every": self.probe_every, "seed": self.seed, "output_dir": self.output_dir,
                "run_name": f"{kl_knob(method).replace('_', '')}{value:g}", kl_knob(method): value,
                **self.extra.get(method, {})}


QUICK = Settings(model="tiny-random", values=(0.1, 1.0), max_steps=3, batch_size=4, max_completion_length=8,
                 probe_every=1, output_dir="runs/frontier-quick", extra={"rloo": {"num_generations": 2}})


def _child(command: list[str], log: Path) -> tuple[int, float]:
    """Run a child process; returns (exit status, its own peak RSS in MiB)."""
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024  # Linux reports KiB


def seconds_per_step(rows: list[dict]) -> float | None:
    """Wall time per optimizer step, from the first probe's end to the last training log, probes excluded."""
    train = [r for r in rows if r["step"] > 0 and "probe/kl" not in r and "train_runtime" not in r]
    probes = [r for r in rows if "probe/seconds" in r]
    if not train or not probes:
        return None
    start, end = probes[0]["time"], train[-1]["time"]
    probing = sum(p["probe/seconds"] for p in probes[1:] if start < p["time"] <= end)
    return (end - start - probing) / train[-1]["step"]


def final_reward_se(run_dir: Path) -> float | None:
    """Standard error of the last probe's mean reward (its samples' spread over sqrt(n))."""
    samples = rundir.read_probe_samples(run_dir)
    if not samples:
        return None
    rewards = [s["reward"] for s in samples if s["step"] == samples[-1]["step"]]
    mean = sum(rewards) / len(rewards)
    return (sum((r - mean) ** 2 for r in rewards) / (len(rewards) - 1) / len(rewards)) ** 0.5


def run_sweep(settings: Settings, work: Path) -> dict:
    """Train every (method, value) run and collect its frontier points, speed and peak memory."""
    work.mkdir(parents=True, exist_ok=True)
    load_only = ("from alignlab.models import load_model, load_tokenizer; "
                 f"load_tokenizer({settings.model!r}); load_model({settings.model!r})")
    _, baseline = _child([sys.executable, "-c", load_only], work / "baseline.log")
    results = {"settings": asdict(settings), "baseline_rss_mib": round(baseline), "runs": [],
               "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    for method in settings.methods:
        for value in settings.values:
            config = settings.config(method, value)
            config_file = work / f"{method}-{config['run_name']}.json"
            config_file.write_text(json.dumps(config))
            started = time.time()
            run_id = rundir.new_run_id(method, config["run_name"])
            code, peak = _child([sys.executable, "-m", "alignlab", "train", "--config", str(config_file),
                                 "--run-id", run_id, "--quiet"], config_file.with_suffix(".log"))
            run_dir = Path(settings.output_dir) / run_id
            rows, _ = rundir.read_metrics(run_dir)
            status = rundir.read_status(run_dir) or {"state": "not started"}
            results["runs"].append({
                "method": method, "knob": kl_knob(method), "value": value, "run_dir": str(run_dir),
                "state": status["state"], "error": status.get("error"), "exit_code": code,
                "wall_s": round(time.time() - started, 1), "seconds_per_step": seconds_per_step(rows),
                "peak_rss_mib": round(peak), "points": frontier_points(rows), "reward_se": final_reward_se(run_dir),
            })
            print(f"{method} {kl_knob(method)}={value:g}: {status['state']}, {results['runs'][-1]['wall_s']}s",
                  flush=True)
    return results


def cost_ratios(results: dict) -> dict | None:
    """PPO / RLOO time per step and peak memory, over runs with the same β index (same model, prompts, batch)."""
    by = {(r["method"], r["value"]): r for r in results["runs"] if r["state"] == "finished"}
    pairs = [(by[("ppo", v)], by[("rloo", v)]) for v in results["settings"]["values"]
             if ("ppo", v) in by and ("rloo", v) in by]
    if not pairs:
        return None
    base = results["baseline_rss_mib"]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return {
        "time_ppo_over_rloo": mean([p["seconds_per_step"] / r["seconds_per_step"] for p, r in pairs]),
        "peak_rss_rloo_over_ppo": mean([r["peak_rss_mib"] / p["peak_rss_mib"] for p, r in pairs]),
        "training_rss_rloo_over_ppo": mean([(r["peak_rss_mib"] - base) / (p["peak_rss_mib"] - base)
                                            for p, r in pairs]),
    }


def plot(results: dict, path: Path) -> None:
    """Reward vs KL: each run's probe trajectory, its final point marked; one colour per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"dpo": "tab:blue", "ppo": "tab:red", "rloo": "tab:green", "grpo": "tab:purple",
               "online-dpo": "tab:orange"}
    markers = "os^Dv"
    values = results["settings"]["values"]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for run in results["runs"]:
        if not run["points"]:
            continue
        kl = [p["kl"] for p in run["points"]]
        reward = [p["reward"] for p in run["points"]]
        colour, marker = colours.get(run["method"]), markers[values.index(run["value"]) % len(markers)]
        axes.plot(kl, reward, color=colour, alpha=0.35, linewidth=1)
        axes.scatter(kl[-1:], reward[-1:], color=colour, marker=marker, s=50, zorder=3,
                     label=f"{run['method']} {run['knob']}={run['value']:g}")
    settings = results["settings"]
    axes.set_xlabel("KL(π || π_ref) per completion, nats (probe)")
    axes.set_ylabel("mean VADER sentiment (probe)")
    axes.set_title(f"positive-reviews, {settings['model']}, {settings['max_steps']} steps, "
                   f"batch {settings['batch_size']}")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncol=3, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)


def markdown(results: dict, command: str) -> str:
    """The table and settings for docs/frontier.md."""
    settings, ratios = results["settings"], cost_ratios(results)
    lines = [
        "# Reward vs KL frontier (positive-reviews)", "",
        "The DPO paper's Figure 2 in miniature: every run probed the same way (16 held-out prompts, one sample each,",
        "fixed seed, temperature 1); reward = mean VADER sentiment, KL = mean summed log π/π_ref of the samples.",
        "Final point of each run below; the picture shows every probe. With 16 samples a probe's mean reward has a",
        "standard error near 0.1: differences smaller than about twice that are noise.", "",
        f"Rerun: `{command}`", "",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items() if k != "extra") +
        (f", fixed knobs {settings['extra']}" if settings["extra"] else "") + ".", "",
        "![frontier](frontier.png)", "",
        "| method | knob | KL (nats) | reward ± s.e. | s/step | steps/s | peak RSS (MiB) | state |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for run in results["runs"]:
        final = run["points"][-1] if run["points"] else {}
        step_s = run["seconds_per_step"]
        lines.append(
            f"| {run['method']} | {run['knob']}={run['value']:g} | {final.get('kl', float('nan')):.2f} | "
            f"{final.get('reward', float('nan')):+.3f} ± {run.get('reward_se') or float('nan'):.3f} | "
            f"{step_s or float('nan'):.1f} | "
            f"{(1 / step_s) if step_s else float('nan'):.3f} | {run['peak_rss_mib']} | {run['state']} |")
    start = next((r["points"][0] for r in results["runs"] if r["points"]), None)
    if start:
        lines += ["", f"Reference (step 0, every run): reward {start['reward']:+.3f}, KL {start['kl']:.2f}."]
    lines += ["", f"Peak RSS of a process that only loads the model and tokenizer: {results['baseline_rss_mib']} MiB. "
              f"OMP_NUM_THREADS={results.get('omp_num_threads')} (1 keeps torch from thrashing on a shared CPU)."]
    if ratios:
        lines += ["", "RLOO vs PPO, same model, prompts and batch (mean over the β grid): PPO takes "
                  f"{ratios['time_ppo_over_rloo']:.2f}x RLOO's time per step; RLOO's peak RSS is "
                  f"{ratios['peak_rss_rloo_over_ppo']:.2f}x PPO's ({ratios['training_rss_rloo_over_ppo']:.2f}x "
                  "above the load-only baseline). Timings are wall clock on a shared 2-core CPU machine."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny-random, 2 values, 3 steps: checks the pipeline")
    parser.add_argument("--steps", type=int, help="optimizer steps per run")
    parser.add_argument("--values", help="comma-separated β / kl_coef grid")
    parser.add_argument("--methods", help="comma-separated methods (default dpo,ppo,rloo; grpo, online-dpo work too)")
    parser.add_argument("--docs", help="where the PNG/MD/JSON go (default docs/, or the output dir with --quick)")
    args = parser.parse_args(argv)
    overrides = {"max_steps": args.steps, "methods": args.methods and tuple(args.methods.split(",")),
                 "values": args.values and tuple(float(v) for v in args.values.split(","))}
    settings = replace(QUICK if args.quick else Settings(), **{k: v for k, v in overrides.items() if v})
    docs = Path(args.docs or (settings.output_dir if args.quick else "docs"))
    docs.mkdir(parents=True, exist_ok=True)
    results = run_sweep(settings, Path(settings.output_dir) / "work")
    (docs / "frontier.json").write_text(json.dumps(results, indent=1))
    plot(results, docs / "frontier.png")
    threads = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if os.environ.get("OMP_NUM_THREADS") else ""
    command = threads + "python -m experiments.frontier " + " ".join(argv if argv is not None else sys.argv[1:])
    (docs / "frontier.md").write_text(markdown(results, command.strip()))
    print(f"wrote {docs / 'frontier.png'} and {docs / 'frontier.md'}")
    return 0 if all(r["state"] == "finished" for r in results["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
