"""``python -m bench.alignment``: time to visible alignment, and what each method reaches at its defaults.

For each (method, threads, seed) a fresh child process trains one run at the lab's defaults from
Start (model already cached; the reference log-prob and step-0 probe caches empty, or filled with
``--warm``) at the lab's defaults, probe included, and snapshots the LoRA adapter every ``--every`` steps, timing
each snapshot by the wall clock since Start with the snapshot writes themselves subtracted. After
training it evaluates snapshots with :func:`alignlab.evaluate.compare_models` (held-out prompts, paired
by prompt and seed): the *time to visible alignment* is the wall time of the first snapshot whose
reward gain over the reference is >= ``--gain`` with paired standard error <= ``--max-se``. The final
model gets the full evaluation (gain, win-rate with Wilson interval, fluency, KL from the probe).

    python -m bench.alignment                                  # DPO at 1 and 2 threads
    python -m bench.alignment --methods dpo kto orpo --threads 2 --seeds 42 7
    python -m bench.alignment --quick                          # tiny-random, checks the script itself

Writes ``bench/alignment.json`` (every figure) and ``bench/ALIGNMENT.md`` (the tables).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

GOAL_SECONDS = 180.0


def child(method: str, model: str, seed: int, every: int, output_dir: str, gain: float, max_se: float,
          prompts: int, samples: int, overrides: dict, cache: str, final: bool) -> dict:
    """Train one run with adapter snapshots, then evaluate snapshots until one shows the effect.

    ``cache``: the folder of the reference log-prob and step-0 probe cache (empty for a cold start).
    ``final``: also evaluate the final model in full (fluency, KL).
    """
    import torch

    import alignlab.reference_cache as reference_cache

    reference_cache.cache_dir = lambda: Path(cache)

    from alignlab import RunConfig, rundir, start
    from alignlab.evaluate import compare_models
    from alignlab.models import load_model, load_tokenizer
    from alignlab.task import BUILTIN_TASK

    config = RunConfig.from_dict({"method": method, "model": model, "seed": seed, "output_dir": output_dir,
                                  **overrides})
    was_cached = any(Path(cache).glob("*/*.json"))
    snapshots: list[dict] = []
    saving = {"seconds": 0.0}
    started = time.time()
    handle = start(config)

    def snapshot(event):
        step = event["step"]
        if every <= 0 or "loss" not in event["metrics"] or step % every or any(s["step"] == step for s in snapshots):
            return
        at = time.time() - started - saving["seconds"]
        begin = time.time()
        folder = rundir.snapshot_dir(handle.run_dir, step)
        handle.model.save_pretrained(str(folder))
        saving["seconds"] += time.time() - begin
        snapshots.append({"step": step, "seconds": round(at, 1), "folder": str(folder)})

    handle.subscribe(snapshot, replay=False)
    handle.wait()
    trained_s = time.time() - started - saving["seconds"]
    result = {"method": method, "seed": seed, "threads": torch.get_num_threads(), "state": handle.state,
              "error": handle.error, "run_dir": str(handle.run_dir), "train_s": round(trained_s, 1),
              "steps": handle.status["step"], "config": config.flat(), "snapshots": snapshots,
              "cache": "warm" if was_cached else "cold"}
    if handle.state != "finished":
        return result
    from peft import PeftModel

    tokenizer = load_tokenizer(model)
    base = load_model(model)
    eval_prompts = handle.held_out.prompts[:prompts]
    if config.dataset == BUILTIN_TASK and len(eval_prompts) < prompts:
        raise SystemExit(f"only {len(eval_prompts)} held-out prompts, asked for {prompts}")
    peft_model = None
    started_eval = time.time()
    for shot in snapshots:
        if peft_model is None:
            peft_model = PeftModel.from_pretrained(base, shot["folder"], adapter_name="default")
        else:
            peft_model.load_adapter(shot["folder"], adapter_name="default", is_trainable=False)  # replaces the weights
        comparison = compare_models(peft_model, tokenizer, config, eval_prompts, handle.run_id,
                                    samples_per_prompt=samples, with_fluency=False)
        shot.update(gain=comparison.gain, gain_se=comparison.gain_se, win_rate=comparison.win_rate)
        if comparison.gain >= gain and comparison.gain_se <= max_se:
            result["visible"] = {"step": shot["step"], "seconds": shot["seconds"]}
            break
    if final:
        result["final"], _ = _final(handle.run_dir, config, tokenizer, eval_prompts, samples)
        f = result["final"]
        if not snapshots and f["gain"] >= gain and f["gain_se"] <= max_se:  # --every 0: only the end is known
            result["visible"] = {"step": result["steps"], "seconds": result["train_s"], "at_end": True}
    result["eval_s"] = round(time.time() - started_eval, 1)
    return result


def _final(run_dir, config, tokenizer, prompts, samples):
    from alignlab.evaluate import compare_models
    from alignlab.models import load_trained
    from alignlab.probe import measure
    from alignlab.reference import reference_of
    from alignlab.rewards import reward_for

    model, _ = load_trained(run_dir)
    comparison = compare_models(model, tokenizer, config, prompts, Path(run_dir).name,
                                samples_per_prompt=samples)
    probe = measure(model, lambda: reference_of(model, config), tokenizer, prompts[:32], reward_for(config),
                    config.max_completion_length, config.seed)
    return {**comparison.as_dict(), "kl": round(probe.kl, 3), "kl_se": round(probe.kl_se, 3)}, model


def run_child(args, method: str, threads: int, seed: int, cache: Path, final: bool) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="false")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    state = "warm" if any(cache.glob("*/*.json")) else "cold"
    log = work / f"{method}-t{threads}-s{seed}-{state}.log"
    kwargs = dict(method=method, model=args.model, seed=seed, every=args.every, output_dir=str(work / "runs"),
                  gain=args.gain, max_se=args.max_se, prompts=args.prompts, samples=args.samples,
                  overrides=json.loads(args.overrides), cache=str(cache), final=final)
    print(f"[{time.strftime('%H:%M:%S')}] {method}, {threads} thread(s), seed {seed}, {state} cache ...", end=" ",
          flush=True)
    begin = time.time()
    with open(log, "w") as err:
        done = subprocess.run([sys.executable, "-m", "bench.alignment", "--child", json.dumps(kwargs)], env=env,
                              stdout=subprocess.PIPE, stderr=err, text=True)
    line = next((out for out in done.stdout.splitlines() if out.startswith("ALIGNMENT_RESULT ")), None)
    result = json.loads(line.split(" ", 1)[1]) if line else {"method": method, "seed": seed, "state": "failed",
                                                             "error": f"see {log}"}
    result.update(threads=threads, log=str(log))
    visible = result.get("visible")
    print(f"{result.get('state')} in {time.time() - begin:.0f} s; visible: "
          + (f"at {visible['seconds']} s (step {visible['step']})" if visible else "no"), flush=True)
    return result


def markdown(results: dict) -> str:
    """The two tables: time to visible alignment, and the final model of every run."""
    s = results["settings"]
    lines = [
        "# Time to visible alignment",
        "",
        f"Rerun: `{results['command']}` ({results['minutes']} min). Machine: {results['machine']}. "
        f"Finished {results['finished']}.",
        "",
        f"Visible = held-out reward gain over the reference >= {s['gain']} VADER with paired s.e. <= {s['max_se']} "
        f"({s['prompts']} held-out prompts x {s['samples']} samples, paired by prompt and seed, temperature 0.7, "
        f"top-p 0.9). Time = wall clock from Start (model cached, the lab's defaults, probe included) to the first "
        f"adapter snapshot (every {s['every']} steps) that is visible, snapshot writes excluded; evaluation time "
        "not included. Cache cold = the reference log-probs and the step-0 probe computed in the run; warm = "
        "read from the cache an earlier run of the same model and data filled.",
        "",
        "| method | threads | seed | cache | time to visible (s) | at step | goal ≤ 180 s | gain ± s.e. there | "
        "trained steps | train s |",
        "|---|---:|---:|---|---:|---:|---|---|---:|---:|",
    ]
    for r in results["runs"]:
        v = r.get("visible")
        goal = "" if r["method"] != "dpo" or (v and v.get("at_end")) else (
            "met" if v and v["seconds"] <= GOAL_SECONDS else "**not met**")  # final-only runs do not time it
        shot = next((x for x in r.get("snapshots", []) if v and x["step"] == v["step"]), None)
        there = f"{shot['gain']:+.3f} ± {shot['gain_se']:.3f}" if shot else "-"
        when = (f"≤ {v['seconds']} (end)" if v.get("at_end") else v["seconds"]) if v else "not reached"
        if v and v.get("at_end"):
            there = f"{r['final']['gain']:+.3f} ± {r['final']['gain_se']:.3f}"
        lines.append(f"| {r['method']} | {r['threads']} | {r['seed']} | {r.get('cache', '-')} | "
                     f"{when} | {v['step'] if v else '-'} | {goal} | {there} | "
                     f"{r.get('steps', '-')} | {r.get('train_s', '-')} |")
    lines += ["", "## The final model of each run", "",
              "| method | threads | seed | gain ± paired s.e. | win-rate [95% CI] | KL (nats) | distinct words "
              "(aligned / ref) | words | ref. perplexity | train s |",
              "|---|---:|---:|---:|---|---:|---|---|---|---:|"]
    for r in results["runs"]:
        f = r.get("final")
        if not f and r.get("state") == "finished":
            continue
        if not f:
            lines.append(f"| {r['method']} | {r['threads']} | {r['seed']} | {r.get('state')}: {r.get('error')} |"
                         " | | | | | |")
            continue
        a, b = f["aligned_fluency"], f["reference_fluency"]
        lines.append(
            f"| {r['method']} | {r['threads']} | {r['seed']} | {f['gain']:+.3f} ± {f['gain_se']:.3f} | "
            f"{f['win_rate']:.0%} [{f['win_low']:.0%}, {f['win_high']:.0%}] | {f['kl']:.2f} ± {f['kl_se']:.2f} | "
            f"{a['distinct']:.2f} / {b['distinct']:.2f} | {a['words']:.1f} / {b['words']:.1f} | "
            f"{a['perplexity']:.1f} / {b['perplexity']:.1f} | {r['train_s']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alignment", description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--methods", nargs="*", default=["dpo"])
    parser.add_argument("--threads", type=int, nargs="*", default=[2, 1])
    parser.add_argument("--seeds", type=int, nargs="*", default=[42])
    parser.add_argument("--model", default=None, help="default smollm2-135m-instruct (tiny-random with --quick)")
    parser.add_argument("--every", type=int, default=3,
                        help="snapshot every N steps (0: none; the final model alone says whether the run is visible)")
    parser.add_argument("--warm", action="store_true",
                        help="also rerun each (method, seed) on the reference/probe cache its first run filled")
    parser.add_argument("--gain", type=float, default=0.3)
    parser.add_argument("--max-se", type=float, default=0.05)
    parser.add_argument("--prompts", type=int, default=100, help="held-out prompts per evaluation (>= 64)")
    parser.add_argument("--samples", type=int, default=2, help="samples per prompt per evaluation")
    parser.add_argument("--overrides", default="{}", help="JSON of knob values to use instead of the defaults")
    parser.add_argument("--no-final", action="store_true", help="skip the full evaluation of the final models")
    parser.add_argument("--quick", action="store_true", help="tiny-random, 2 steps (checks the script runs)")
    parser.add_argument("--out", default="bench")
    parser.add_argument("--work", default="runs/bench-alignment")
    args = parser.parse_args(argv)
    if args.child:
        result = child(**json.loads(args.child))
        print("ALIGNMENT_RESULT " + json.dumps(result), flush=True)
        return 0
    if args.quick:
        args.model = args.model or "tiny-random"
        overrides = {"max_steps": 2, "batch_size": 2, "max_length": 64, "max_completion_length": 8}
        args.overrides = json.dumps({**overrides, **json.loads(args.overrides)})
        args.every, args.prompts, args.samples = 1, 4, 1
    args.model = args.model or "smollm2-135m-instruct"
    from bench.__main__ import machine_text

    machine = machine_text()
    begin = time.time()
    runs = []
    for method in args.methods:
        for seed in args.seeds:
            for index, threads in enumerate(args.threads):
                cold = Path(args.work) / "cache" / f"{method}-s{seed}-t{threads}"
                runs.append(run_child(args, method, threads, seed, cold, final=index == 0 and not args.no_final))
            if args.warm:  # again at the first thread count, on the cache its cold run filled
                warm = Path(args.work) / "cache" / f"{method}-s{seed}-t{args.threads[0]}"
                runs.append(run_child(args, method, args.threads[0], seed, warm, final=False))
    command = "python -m bench.alignment " + " ".join(argv if argv is not None else sys.argv[1:])
    results = {"command": command.strip(), "machine": machine, "minutes": round((time.time() - begin) / 60, 1),
               "finished": time.strftime("%Y-%m-%d %H:%M"), "load_avg": os.getloadavg(),
               "settings": {k: v for k, v in vars(args).items() if k not in ("child", "out", "work")}, "runs": runs}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "alignment-quick" if args.quick else "alignment"
    (out / f"{name}.json").write_text(json.dumps(results, indent=1))
    (out / f"{name.upper().replace('-', '_')}.md").write_text(markdown(results))
    print(f"wrote {out / (name + '.json')}")
    return 0 if all(r.get("state") == "finished" for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
