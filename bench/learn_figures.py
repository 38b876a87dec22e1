"""``python -m bench.learn_figures``: the figures the Learn cards show, from the alignment benchmark's results.

Reads ``bench/alignment.json`` (``python -m bench.alignment``) and the evaluated runs kept in
``bench/eval_runs.json`` (``python -m bench.eval_runs``: runs trained with ``alignlab train`` and evaluated with
``alignlab eval``, which add the share that followed the instruction), and writes ``alignlab/measured.json``
(:mod:`alignlab.measured`): for each method, its runs at the method's current defaults (a run labelled with the
method's name alone whose knobs equal today's defaults) and its runs with other settings (labelled with the knobs
that differ from today's defaults, else with the benchmark's own label, such as another trainer's), each with its
final model's held-out figures and when its gain became visible. Runs the benchmark excluded are left out. Rerun it
after the benchmark, or after a method's defaults change (a run at old defaults then counts as a variant).

    python -m bench.learn_figures [--results bench/alignment.json] [--runs bench/eval_runs.json]
                                  [--out alignlab/measured.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "alignment.json"
EVAL_RUNS = ROOT / "bench" / "eval_runs.json"
FOLLOW_FIELDS = ("reference_follow", "aligned_follow", "follow_change", "follow_change_se")
# The built-in task's pairs were rebuilt on this day (make-prefs --prefill-opening, docs/alignment.md "Faithful
# alignment"): a run of a method that learns from them (not one that only samples their prompts) finished before it
# trained on the previous pairs, so it is not a run at today's defaults.
PAIRS_REBUILT = "2026-12-06"
# From this day the engine samples on packed bf16 weights (alignlab/packed_decoder.py): a benchmark run of a method
# that learns from its own samples (a prompt-only dataset) finished before it drew them on the fp32 forward, so it
# is not a run at today's defaults either.
PACKED_SAMPLING = "2026-12-07"
# From these times (UTC) RLOO, GRPO and online DPO score each prompt of a group once (alignlab/shared_prompt.py): the
# same log-probs up to rounding, but a trajectory that learns from its own samples diverges from the full pass's at
# the first rounded difference, so an evaluated run that started training before is a run of the code before.
SHARED_PROMPT_SCORING = {"rloo": "2026-12-07 20:37:21", "grpo": "2026-12-07 20:37:21",
                         "online-dpo": "2026-12-07 20:59:51"}


def run_figures(run: dict) -> dict:
    """The figures of one benchmark run that a Learn card may show."""
    final = run.get("final") or {}
    figures = {"seed": run["seed"], "threads": run["threads"], "cache": run.get("cache", "cold"),
               "steps": run.get("steps"), "train_s": run.get("train_s"), "visible": run.get("visible")}
    if final:
        figures.update(gain=final["gain"], gain_se=final["gain_se"], win_rate=final.get("win_rate"),
                       kl=final.get("kl"), perplexity=(final.get("aligned_fluency") or {}).get("perplexity"),
                       reference_perplexity=(final.get("reference_fluency") or {}).get("perplexity"))
        figures.update({name: final[name] for name in FOLLOW_FIELDS if final.get(name) is not None})
    if run.get("machine"):  # an evaluated run names its own machine (the benchmark's runs share the file's)
        figures["machine"] = run["machine"] + (f"; {run['note']}" if run.get("note") else "")
    return figures


RUN_SETTINGS = ("model", "reward", "max_steps", "batch_size", "learning_rate", "max_completion_length")  # and knobs


def changed_knobs(run: dict, defaults: dict) -> dict:
    """The method knobs, and the run settings of ``RUN_SETTINGS``, whose value in the run's config differs from
    today's default (a run on another model, or with another reward or batch size, is not a run at the defaults)."""
    import dataclasses

    from alignlab.config import LAB_DEFAULTS, RunConfig, method_default

    config = run.get("config") or {}
    common = {f.name: f.default for f in dataclasses.fields(RunConfig) if f.name in RUN_SETTINGS}
    for name in LAB_DEFAULTS:  # the method's own, if it has one
        common[name] = method_default(config.get("method") or "dpo", name)
    return {name: config[name] for name, default in {**common, **defaults}.items()
            if name in config and config[name] != default}


def learn_figures(results: dict, evaluated: dict | None = None) -> dict:
    """``alignlab/measured.json``'s content from the benchmark's results and the evaluated runs kept beside them."""
    from alignlab.methods import registry

    specs = registry()
    methods: dict[str, dict] = {}
    finished = results.get("finished") or ""
    previous_pairs = bool(finished) and finished < PAIRS_REBUILT  # the benchmark's runs
    fp32_sampling = bool(finished) and finished < PACKED_SAMPLING
    for run, from_benchmark in [(run, True) for run in results.get("runs", [])] + [
            (run, False) for run in (evaluated or {}).get("runs", [])]:
        config = run.get("config") or {}
        name = config.get("method")
        if name not in specs or run.get("state") != "finished":
            continue
        samples_itself = specs[name].data_format == "prompt"
        on_previous_pairs = from_benchmark and previous_pairs and not samples_itself
        on_fp32_samples = from_benchmark and fp32_sampling and samples_itself
        started = (finished or "0") if from_benchmark else (run.get("started") or "")  # unknown: before
        full_pass = name in SHARED_PROMPT_SCORING and started < SHARED_PROMPT_SCORING[name]
        changed = changed_knobs(run, specs[name].defaults())
        entry = methods.setdefault(name, {"defaults": [], "variants": []})
        if run["method"] == name and not changed and not (on_previous_pairs or on_fp32_samples or full_pass):
            entry["defaults"].append(run_figures(run))
        else:  # the method's name with the knobs that differ from today's defaults, else the benchmark's label
            label = f"{name} {json.dumps(changed)}" if changed else run["method"]
            label += " (previous pairs)" if on_previous_pairs else ""
            label += " (fp32 sampling)" if on_fp32_samples else ""
            label += " (full-pass scoring)" if full_pass and not on_fp32_samples else ""
            entry["variants"].append({"label": label, **run_figures(run)})
    first = next(iter(results.get("runs", [])), {})
    settings = results.get("settings", {})
    return {
        "written_by": "python -m bench.learn_figures",
        "source": ("bench/alignment.json (python -m bench.alignment) and bench/eval_runs.json "
                   "(python -m bench.eval_runs)"),
        "machine": results.get("machine", ""),
        "finished": results.get("finished", ""),
        "settings": {"steps": (first.get("config") or {}).get("max_steps"), "reward": (first.get("final") or {}).get(
                         "reward", "sentiment"), "prompts": settings.get("prompts"),
                     "samples_per_prompt": settings.get("samples"), "visible_gain": settings.get("gain"),
                     "visible_se": settings.get("max_se")},
        "methods": methods,
    }


def main(argv: list[str] | None = None) -> int:
    from alignlab.measured import MEASURED_FILE

    parser = argparse.ArgumentParser(prog="python -m bench.learn_figures", description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="the alignment benchmark's results file")
    parser.add_argument("--runs", type=Path, default=EVAL_RUNS, help="the evaluated runs kept by bench.eval_runs")
    parser.add_argument("--out", type=Path, default=MEASURED_FILE, help="the figures file the Learn cards read")
    args = parser.parse_args(argv)
    evaluated = json.loads(args.runs.read_text(encoding="utf-8")) if args.runs.exists() else None
    figures = learn_figures(json.loads(args.results.read_text(encoding="utf-8")), evaluated)
    args.out.write_text(json.dumps(figures, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    counted = {name: (len(entry["defaults"]), len(entry["variants"])) for name, entry in figures["methods"].items()}
    print(f"wrote {args.out}: " + ", ".join(f"{name} {d}+{v}" for name, (d, v) in counted.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
