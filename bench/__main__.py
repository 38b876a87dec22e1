"""``python -m bench``: measure alignlab against bare TRL and against the machine, write JSON and a table.

    python -m bench                                # every section on the default model (about 45 min on 1 CPU core)
    python -m bench --quick                        # tiny-random, 3 steps: checks the benchmark itself runs
    python -m bench --sections overhead chat --reps 3 --threads 2
    python -m bench.sampling                       # the sampling section alone (bench/sampling.py)

Sections (see ``bench/RESULTS.md`` for what each measures): overhead, efficiency, chat, perl, probe, methods,
sampling.
Each case is a fresh child process; compared cases alternate (A B A B) and are summarised by medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from bench.report import markdown
from bench.summary import summarise

VARIANTS = ("fp32", "precompute-ref", "bf16-autocast", "torch-compile")
MAY_FAIL = {"torch-compile"}  # variants TRL may not support: their failure is reported, not fatal
SECTIONS = ("overhead", "efficiency", "chat", "perl", "probe", "methods", "sampling")


class Bench:
    """Runs cases in child processes and keeps every raw result."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(args.work)
        self.logs = self.work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.raw: dict[str, list] = {}
        self.count = 0

    def case(self, section: str, label: str, name: str, threads: int | None = None, **kwargs) -> dict:
        """Run ``bench.cases.<name>(**kwargs)`` in a child; record and return its result."""
        self.count += 1
        env = dict(os.environ, OMP_NUM_THREADS=str(threads or self.args.threads), TOKENIZERS_PARALLELISM="false")
        log = self.logs / f"{self.count:03d}-{section}-{label}.log"
        started = time.time()
        print(f"[{time.strftime('%H:%M:%S')}] {section}: {label} ...", end=" ", flush=True)
        with open(log, "w") as err:
            done = subprocess.run([sys.executable, "-m", "bench.child", name, json.dumps(kwargs)], env=env,
                                  stdout=subprocess.PIPE, stderr=err, text=True)
        line = next((out for out in done.stdout.splitlines() if out.startswith("BENCH_RESULT ")), None)
        result = json.loads(line[len("BENCH_RESULT "):]) if line else {"state": "failed", "error": f"see {log}"}
        result.update(label=label, case=name, exit_code=done.returncode, log=str(log))
        print(f"{result.get('state', 'ok')} in {time.time() - started:.0f} s", flush=True)
        self.raw.setdefault(section, []).append(result)
        return result

    def run_dir(self, section: str) -> str:
        return str(self.work / "runs" / section)


def overhead(bench: Bench, model: str, model_path: str) -> None:
    """Same DPO config through bare TRL, alignlab's runner, and the runner with a live subscriber."""
    same = dict(method="dpo", model=model, output_dir=bench.run_dir("overhead"),
                method_args={"precompute_ref_log_probs": False})  # TRL's default, as in the bare script
    for _rep in range(bench.args.reps):
        for label, name, kwargs in (
            ("bare-trl", "dpo_bare", dict(model_path=model_path, output_dir=bench.run_dir("bare"))),
            ("alignlab", "alignlab_run", same),
            ("alignlab+subscriber", "alignlab_run", dict(same, subscriber=True)),
            ("alignlab+notebook-figure", "alignlab_run", dict(same, subscriber="notebook-figure")),
        ):
            bench.case("overhead", label, name, steps=bench.args.steps, **kwargs)


def efficiency(bench: Bench, model: str, model_path: str) -> None:
    """Matmul peak, the model's shape, and DPO step variants TRL and PyTorch offer."""
    bench.case("efficiency", "model-shape", "model_shape", model=model)
    bench.case("efficiency", "matmul-peak", "matmul_peak")
    bench.case("efficiency", "padding", "padding_utilisation", model=model)
    variants = [("fp32", {}), ("precompute-ref", {"precompute_ref_log_probs": True}), ("bf16-autocast", {"bf16": True}),
                ("torch-compile", {"torch_compile": True})]
    for label, extra in [v for v in variants if v[0] in bench.args.variants]:  # bf16 without hardware support is slow
        steps = min(bench.args.steps, 4) if "bf16" in extra else bench.args.steps
        bench.case("efficiency", label, "dpo_bare", model_path=model_path, steps=steps,
                   output_dir=bench.run_dir("efficiency"), extra=extra)
    for threads in bench.args.thread_variants:
        bench.case("efficiency", f"threads-{threads}", "dpo_bare", threads=threads, model_path=model_path,
                   steps=bench.args.steps, output_dir=bench.run_dir("efficiency"))
        bench.case("efficiency", f"matmul-peak-threads-{threads}", "matmul_peak", threads=threads)
    bench.case("efficiency", "matmul-peak", "matmul_peak")


def chat(bench: Bench, model: str, adapter_run: str) -> None:
    """Pair vs plain generation speed, and resident memory of one model, the pair, and two copies."""
    bench.case("chat", "speed", "chat_speed", run_dir=adapter_run, reps=bench.args.reps + 1)
    for _ in range(bench.args.reps):
        for kind in ("one", "pair", "two_copies"):
            bench.case("chat", f"memory-{kind}", "chat_memory", kind=kind, run_dir=adapter_run, model=model)


def perl(bench: Bench, model: str) -> None:
    """LoRA vs full fine-tuning (reward model, DPO policy); RLOO vs PPO on the same prompts and batch."""
    steps = max(3, bench.args.steps // 2)
    for _ in range(bench.args.reps):
        for method in ("reward", "dpo"):
            for lora in (True, False):
                bench.case("perl", f"{method}-{'lora' if lora else 'full'}", "alignlab_run", method=method,
                           model=model, steps=steps, lora=lora, output_dir=bench.run_dir("perl"))
        for method in ("rloo", "ppo"):
            bench.case("perl", method, "alignlab_run", method=method, model=model, steps=steps,
                       output_dir=bench.run_dir("perl"))


def probe(bench: Bench, model: str) -> None:
    """A run at the lab's defaults (probe on): probe overhead, Start to first point, metric-to-subscriber."""
    steps, every = (4, 2) if bench.args.quick else (30, 10)
    bench.case("probe", "defaults", "alignlab_run", method="dpo", model=model, steps=steps, probe_every=every,
               subscriber=True, output_dir=bench.run_dir("probe"))


def methods(bench: Bench, model: str) -> None:
    """Seconds per step of every registered method at its defaults (LoRA, batch 8, probe off)."""
    from alignlab.methods import method_names

    for method in method_names():
        bench.case("methods", method, "alignlab_run", method=method, model=model, steps=max(3, bench.args.steps // 2),
                   output_dir=bench.run_dir("methods"))


def sampling(bench: Bench, model: str) -> None:
    """Tokens/s of plain ``generate`` and alignlab's engine at batch 1, 2, 8, 32, and the machine's bound."""
    tokens, reps = (64, 3) if bench.args.sampling_full else (16, 1)
    if bench.args.quick:
        tokens = 4
    bench.case("sampling", "speed", "sampling_speed", model=model, tokens=tokens, reps=reps)


def machine() -> dict:
    """What the figures came from."""
    import torch

    flags = (Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n")[0]
             if Path("/proc/cpuinfo").exists() else "")
    model_name = (next((info.split(":", 1)[1].strip() for info in Path("/proc/cpuinfo").read_text().splitlines()
                        if info.startswith("model name")), platform.processor())
                  if Path("/proc/cpuinfo").exists() else "")
    return {"cpu": model_name, "cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
            "avx512_bf16": "avx512_bf16" in flags, "amx": "amx_bf16" in flags, "avx2": "avx2" in flags,
            "torch": torch.__version__, "cuda": torch.cuda.is_available(), "python": platform.python_version(),
            "load_avg_start": os.getloadavg()}


def machine_text() -> str:
    """The machine in one line, as the kept figures name it: "AMD EPYC, 2 CPUs, torch 2.13.0+cpu, CUDA no"."""
    info = machine()
    return f"{info['cpu']}, {info['cpus']} CPUs, torch {info['torch']}, CUDA {'yes' if info['cuda'] else 'no'}"


def provenance(results: dict) -> dict:
    """Where one section's figures came from (a merged file holds sections of several runs)."""
    settings = results["settings"]
    return {"command": results["command"], "finished": results.get("finished"),
            "load_avg": [round(results["machine"]["load_avg_start"][0], 1),
                         round(results["machine"]["load_avg_end"][0], 1)],
            "threads": settings["threads"], "steps": settings["steps"], "reps": settings["reps"]}


def merged(previous: dict, latest: dict) -> dict:
    """``latest`` plus the sections of ``previous`` it did not measure (each keeps its provenance)."""
    for section, raw in previous.get("raw", {}).items():
        if section not in latest["raw"]:
            latest["raw"][section] = raw
            latest["provenance"][section] = previous.get("provenance", {}).get(section) or provenance(previous)
    latest["summary"] = summarise(latest["raw"])
    return latest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny-random, 3 steps, 1 rep (checks the bench runs)")
    parser.add_argument("--sections", nargs="*", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--model", default=None, help="default: smollm2-135m-instruct (tiny-random with --quick)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per timed run (default 8, quick 3)")
    parser.add_argument("--reps", type=int, default=None, help="A/B repetitions (default 2, quick 1)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 0) or 1),
                        help="torch threads per case (default $OMP_NUM_THREADS or 1)")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS,
                        help="efficiency variants of the bare TRL DPO step to time")
    parser.add_argument("--thread-variants", type=int, nargs="*", default=[], help="extra thread counts to try")
    parser.add_argument("--sampling-full", action="store_true",
                        help="sampling section: 64 tokens and 3 reps per batch size (default 16 tokens, 1 rep)")
    parser.add_argument("--out", default="bench", help="where results.json and RESULTS.md go")
    parser.add_argument("--work", default="runs/bench", help="scratch: run directories and child logs")
    parser.add_argument("--keep-other-sections", action="store_true",
                        help="keep the sections of an existing results.json that this run does not measure")
    args = parser.parse_args(argv)
    args.model = args.model or ("tiny-random" if args.quick else "smollm2-135m-instruct")
    args.steps = args.steps or (3 if args.quick else 8)
    args.reps = args.reps or (1 if args.quick else 2)

    from alignlab.models import resolve_model

    model_path = str(resolve_model(args.model))
    bench = Bench(args)
    started = time.time()
    info = machine()
    if "overhead" in args.sections:
        overhead(bench, args.model, model_path)
    if "efficiency" in args.sections:
        efficiency(bench, args.model, model_path)
    if "chat" in args.sections:
        adapter = next((r["run_dir"] for r in bench.raw.get("overhead", []) if r.get("run_dir")), None)
        if adapter is None:
            adapter = bench.case("chat", "adapter", "alignlab_run", method="dpo", model=args.model, steps=2,
                                 output_dir=bench.run_dir("chat"))["run_dir"]
        chat(bench, args.model, adapter)
    if "perl" in args.sections:
        perl(bench, args.model)
    if "probe" in args.sections:
        probe(bench, args.model)
    if "methods" in args.sections:
        methods(bench, args.model)
    if "sampling" in args.sections:
        sampling(bench, args.model)
    info["load_avg_end"] = os.getloadavg()
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    results = {"command": command.strip(), "machine": info, "minutes": round((time.time() - started) / 60, 1),
               "settings": {k: v for k, v in vars(args).items() if k not in ("out", "work")},
               "summary": summarise(bench.raw), "raw": bench.raw, "finished": time.strftime("%Y-%m-%d %H:%M")}
    results["provenance"] = {section: provenance(results) for section in bench.raw}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.keep_other_sections and (out / "results.json").exists():
        results = merged(json.loads((out / "results.json").read_text()), results)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "RESULTS.md").write_text(markdown(results))
    print(f"wrote {out / 'results.json'} and {out / 'RESULTS.md'}")
    failed = [r["label"] for rows in bench.raw.values() for r in rows
              if r.get("state") not in (None, "finished") and r["label"] not in MAY_FAIL]
    if failed:
        print("failed cases: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
