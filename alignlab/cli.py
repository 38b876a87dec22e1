"""The ``alignlab`` command line: train, runs, data make-prefs, models fetch, app.

Training flags are generated from the knob declarations (RunConfig fields and every method's
knobs), so a new knob appears here without touching this file. ``--config run.yaml`` loads a
file; flags given on the command line win. Works under ``accelerate launch`` (one run directory,
written by the main process).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from alignlab.config import RunConfig, common_knobs
from alignlab.data import load_rows
from alignlab.errors import AlignLabError
from alignlab.evaluate import compare_run
from alignlab.make_prefs import make_prefs, write_card
from alignlab.methods import method_names, registry
from alignlab.models import resolve_model
from alignlab.rundir import list_runs, new_run_id
from alignlab.runner import start

DEFAULT_SAMPLES = 2  # alignlab.evaluate.DEFAULT_SAMPLES, without importing torch for --help


def _declarations() -> dict[str, list[tuple[str, object]]]:
    """Every knob name -> its declarations as ``(owner, Knob)``: ``""`` for a run setting, else each method
    that declares a knob of that name (β is GRPO's as well as DPO's, with other bounds and default)."""

    declarations: dict[str, list[tuple[str, object]]] = {knob.name: [("", knob)] for knob in common_knobs()}
    for name, spec in registry().items():
        for knob in spec.knobs:
            declarations.setdefault(knob.name, []).append((name, knob))
    return declarations


def flag_help(declarations: list[tuple[str, object]]) -> str:
    """The ``--help`` text of one flag: what it is, what it accepts and its default, per method where the
    methods that share the name declare it differently.

    >>> from alignlab.methods.base import Knob
    >>> flag_help([("dpo", Knob("beta", 0.1, "β.", min=0.0, min_exclusive=True)),
    ...            ("grpo", Knob("beta", 0.0, "β.", min=0.0))])
    'β. [dpo: a number > 0.0, default 0.1; grpo: a number >= 0.0, default 0.0]'
    """
    owners: dict[tuple[str, str], list[str]] = {}  # (accepted values, default) -> methods declaring them so
    for owner, knob in declarations:
        owners.setdefault((knob.expected(), repr(knob.default)), []).append(owner)
    helps = list(dict.fromkeys(knob.help for _, knob in declarations))
    if len(helps) == 1:
        text = helps[0]
    else:  # the same name means something a little different per method: say what for each
        text = " ".join(f"{owner}: {knob.help}" for owner, knob in declarations)
    if len(owners) == 1:
        (expected, default), methods = next(iter(owners.items()))
        used_by = "" if methods == [""] else f"; {', '.join(methods)}"
        return f"{text} [{expected}; default {default}{used_by}]"
    per_method = "; ".join(f"{', '.join(methods)}: {expected}, default {default}"
                           for (expected, default), methods in owners.items())
    return f"{text} [{per_method}]"


def _add_train_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="Train one run and save it under --output-dir.")
    parser.add_argument("--method", choices=method_names(), help="Training method (default dpo).")
    parser.add_argument("--config", help="YAML/JSON file of knob values; flags override it.")
    for name, declarations in _declarations().items():
        kind = declarations[0][1].kind
        metavar = {"float": "F", "int": "N", "bool": "BOOL", "choice": "CHOICE", "str": "TEXT"}[kind]
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=None, metavar=metavar,
                            help=flag_help(declarations).replace("%", "%%"))
    parser.add_argument("--run-id", metavar="ID", help="Name of the run directory under --output-dir: letters, digits, "
                        "'_', '.', '-' (default: time-method-label-random). Refused if that directory exists.")
    parser.add_argument("--quiet", action="store_true", help="No progress bar.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alignlab", description="A lab for aligning language models.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(subparsers)
    runs = subparsers.add_parser("runs", help="List runs: id, method, state, steps, last loss/reward.")
    runs.add_argument("--output-dir", default="runs")
    data = subparsers.add_parser("data", help="Dataset tools.")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    prefs = data_sub.add_parser("make-prefs", help="Sample N completions per prompt and keep best/worst as pairs.")
    prefs.add_argument("--model", default="smollm2-135m-instruct")
    prefs.add_argument("--dataset", default="positive-reviews",
                       help="Prompts: built-in task or a file with a prompt column.")
    prefs.add_argument("--samples", type=int, default=8, help="Completions per prompt (>= 2; more = wider gaps).")
    prefs.add_argument("--reward", default="sentiment")
    prefs.add_argument("--max-new-tokens", type=int, default=48)
    prefs.add_argument("--temperature", type=float, default=0.7)
    prefs.add_argument("--top-p", type=float, default=0.9)
    prefs.add_argument("--min-gap", type=float, default=0.05, help="Keep a pair only if best - worst >= this.")
    prefs.add_argument("--limit", type=int, default=0, help="Use only the first N prompts (0 = all).")
    prefs.add_argument("--seed", type=int, default=0)
    prefs.add_argument("--output", required=True, help="Where to write the JSONL pairs.")
    evaluate = subparsers.add_parser(
        "eval", help="Aligned vs reference on held-out prompts: reward gain ± paired s.e., win-rate, fluency.")
    evaluate.add_argument("run_dir", help="A run directory (runs/<run-id>).")
    evaluate.add_argument("--reward", help="Reward source (default: the run's own).")
    evaluate.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                          help=f"Completions per held-out prompt (default {DEFAULT_SAMPLES}: paired s.e. < 0.05 "
                          "over the built-in task's 100 prompts).")
    evaluate.add_argument("--seed", type=int, default=1234, help="Sampling seed, shared by both models.")
    evaluate.add_argument("--no-fluency", action="store_true", help="Skip the reference-perplexity pass.")
    evaluate.add_argument("--json", metavar="FILE", help="Also write the figures to FILE as JSON.")
    models = subparsers.add_parser("models", help="Model tools.")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    fetch = models_sub.add_parser("fetch", help="Build/locate a model now so later runs start offline.")
    fetch.add_argument("name", nargs="?", default="smollm2-135m-instruct")
    app = subparsers.add_parser("app", help="Start the Gradio app.")
    app.add_argument("--host", default="127.0.0.1")
    app.add_argument("--port", type=int, default=7860)
    app.add_argument("--share", action="store_true")
    app.add_argument("--auth", help="user:password required to open the app.")
    app.add_argument("--output-dir", default="runs")
    app.add_argument("--trust-remote-code", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "runs":
            return _runs(args)
        if args.command == "data":
            return _make_prefs(args)
        if args.command == "eval":
            result = compare_run(args.run_dir, reward=args.reward, samples_per_prompt=args.samples, seed=args.seed,
                                 with_fluency=not args.no_fluency)
            print(result.report())
            if args.json:
                with open(args.json, "w", encoding="utf-8") as out:
                    json.dump(result.as_dict(), out, indent=1)
            return 0
        if args.command == "models":
            print(resolve_model(args.name))
            return 0
        if args.command == "app":
            try:
                from alignlab.ui.gradio import launch
            except ImportError as error:
                raise AlignLabError(
                    f"app: the Gradio app needs the 'app' extra (pip install 'alignlab[app]'): {error}") from error
            launch(host=args.host, port=args.port, share=args.share, auth=args.auth, runs_dir=args.output_dir,
                   trust_remote_code=args.trust_remote_code)
            return 0
    except AlignLabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _distributed() -> tuple[bool, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world > 1, int(os.environ.get("RANK", "0"))


def _train(args) -> int:
    values = {k: v for k, v in vars(args).items()
              if k not in ("command", "config", "quiet", "run_id") and v is not None}
    config = RunConfig.from_file(args.config, **values) if args.config else RunConfig.from_dict(values)
    distributed, rank = _distributed()
    if distributed:
        # Every process trains; rank 0 picks the run id and is the only one that writes the run directory.
        from accelerate import PartialState
        from accelerate.utils import broadcast_object_list

        PartialState()
        holder = [(args.run_id or new_run_id(config.method, config.run_name)) if rank == 0 else None]
        broadcast_object_list(holder, from_process=0)
        handle = start(config, background=False, run_id=holder[0], is_writer=rank == 0)
        return 0 if handle.state == "finished" else 1
    handle = start(config, run_id=args.run_id)
    _follow(handle, quiet=args.quiet)
    status = handle.status
    print(f"\nrun {handle.run_id}: {status['state']} after {status['step']} steps in {status['elapsed_s']:.0f}s")
    if handle.error:
        print(f"error: {handle.error}", file=sys.stderr)
    last = {}
    for event in handle.history:
        last.update(event["metrics"])
    shown = [k for k in ("loss", "rewards/margins", "rewards/accuracies", "reward", "objective/kl", "kl",
                         "probe/reward", "probe/kl", "accuracy") if last.get(k) is not None]
    if shown:
        print("final: " + "  ".join(f"{k}={last[k]:.4g}" for k in shown))
    print(f"saved to {handle.run_dir}")
    return 0 if handle.state in ("finished", "stopped") else 1


def _follow(handle, quiet: bool) -> None:
    """Progress bar until the run ends; Ctrl-C stops the run cleanly (it still saves)."""
    from tqdm import tqdm

    bar = None if quiet else tqdm(total=None, desc=handle.run_id, unit="step", dynamic_ncols=True)

    def on_event(event):
        if bar is None:
            return
        if handle.total_steps and bar.total != handle.total_steps:
            bar.total = handle.total_steps
        bar.n = event["step"]
        metrics = event["metrics"]
        bar.set_postfix({k: f"{metrics[k]:.3g}" for k in ("loss", "rewards/margins", "reward", "probe/reward")
                         if metrics.get(k) is not None}, refresh=True)

    unsubscribe = handle.subscribe(on_event)
    try:
        while not handle.done:
            handle.wait(0.5)
    except KeyboardInterrupt:
        print("\nstopping: saving what the run has so far...", file=sys.stderr)
        handle.stop()
        handle.wait()
    finally:
        unsubscribe()
        if bar is not None:
            bar.close()


def _runs(args) -> int:
    rows = list_runs(args.output_dir)
    if not rows:
        print(f"no runs in {args.output_dir}/")
        return 0

    def fmt(value):
        return "-" if value is None else f"{value:.4g}"

    print(f"{'run id':<40} {'method':<10} {'state':<9} {'steps':>5} {'loss':>9} {'reward':>9}")
    for run in rows:
        print(f"{run['run_id']:<40} {run['method']:<10} {run['state']:<9} {run['steps']:>5} "
              f"{fmt(run['loss']):>9} {fmt(run['reward']):>9}")
    return 0


def _make_prefs(args) -> int:
    from tqdm import tqdm


    prompts = [row["prompt"] for row in load_rows(args.dataset, "prompt")]
    if args.limit:
        prompts = prompts[: args.limit]
    bar = tqdm(total=len(prompts), desc="sampling", unit="prompt")

    def progress(done, total):
        bar.n = done
        bar.refresh()

    report = make_prefs(args.model, prompts, args.output, samples_per_prompt=args.samples, reward=args.reward,
                        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                        seed=args.seed, min_gap=args.min_gap, progress=progress)
    bar.close()
    card = os.path.splitext(args.output)[0] + ".card.md"
    write_card(report, card, "alignlab " + " ".join(sys.argv[1:]))
    print(f"{report.pairs} pairs from {report.prompts} prompts -> {args.output} (card: {card})")
    print(f"base reward mean {report.reward_mean:+.3f}, deciles {report.reward_deciles}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
