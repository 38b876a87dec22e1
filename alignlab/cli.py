"""The ``alignlab`` command line: train, runs, votes, report, eval, data make-prefs, models fetch, app, export and push
(:mod:`alignlab.share_cli`).

Training flags are generated from the knob declarations (RunConfig fields and every method's
knobs), so a new knob appears here without touching this file. ``--config run.yaml`` loads a
file; flags given on the command line win. Works under ``accelerate launch`` (one run directory,
written by the main process).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence

from alignlab.config import RunConfig, common_knobs
from alignlab.data import load_rows
from alignlab.devices import DTYPES
from alignlab.errors import AlignLabError
from alignlab.evaluate import compare_run
from alignlab.export import EXPORT_FORMATS, export_metrics
from alignlab.job_slots import JOB_GIB
from alignlab.make_prefs import card_path, check_output, check_settings, make_prefs, write_card
from alignlab.methods import method_names, registry
from alignlab.methods.base import headline_of, summary_keys
from alignlab.metrics import HEADLINE_LABELS
from alignlab.models import resolve_model
from alignlab.presets import PRESETS, get_preset, preset_names
from alignlab.rundir import RUNS_WHERE, UNREADABLE, default_runs_dir, list_runs
from alignlab.runner import launched_processes, resume, start, train_distributed
from alignlab.share_cli import SHARE_COMMANDS, add_share_parsers, run_share_command
from alignlab.signals import noted_signals

STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")  # each stops a run trained here cleanly (see _signals_stop_the_run)
RUNS_DEFAULT = f"(default %(default)s: {RUNS_WHERE})"  # the help of every --output-dir but train's
DEFAULT_SAMPLES = 2  # alignlab.evaluate.DEFAULT_SAMPLES, without importing torch for --help
REPEATABLE = ("report_to",)  # train flags that may be given more than once (--report-to a --report-to b), values joined


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


def _add_dtype(parser, loads: str) -> None:
    """The ``--dtype`` of a command that reads models: what the device policy (alignlab.devices) loads ``loads`` in."""
    parser.add_argument("--dtype", choices=DTYPES, default="auto", help=f"Precision {loads} load in (default auto: "
                        "bf16 on a GPU with bf16, fp16 on one without, fp32 on the CPU).")


def _add_train_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="Train one run and save it under --output-dir.")
    parser.add_argument("--method", choices=method_names(), help="Training method (default dpo).")
    parser.add_argument("--config", help="YAML/JSON file of knob values; flags override it.")
    parser.add_argument("--preset", choices=preset_names(), help="Start from a named run; flags override it. "
                        + " ".join(f"{preset.name}: {preset.description}" for preset in PRESETS.values()))
    for name, declarations in _declarations().items():
        kind = declarations[0][1].kind
        metavar = {"float": "F", "int": "N", "bool": "BOOL", "choice": "CHOICE", "str": "TEXT"}[kind]
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=None, metavar=metavar,
                            action="append" if name in REPEATABLE else "store",
                            help=flag_help(declarations).replace("%", "%%"))
    parser.add_argument("--run-id", metavar="ID", help="Name of the run directory under --output-dir: letters, digits, "
                        "'_', '.', '-' (default: time-method-label-random). Refused if that directory exists.")
    parser.add_argument("--resume", metavar="RUN_DIR", help="Continue a stopped, failed or killed run (its directory, "
                        "or its id under --output-dir) from its last checkpoint, with the config it started with.")
    parser.add_argument("--quiet", action="store_true", help="No progress bar.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alignlab", description="A lab for aligning language models.")
    parser.add_argument("--version", action="version", version=f"alignlab {installed_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    runs_dir = default_runs_dir()  # one runs folder for every command, the app and the notebook
    _add_train_parser(subparsers)
    runs = subparsers.add_parser("runs", help="List runs: id, method, state, steps, last loss, reward, KL and "
                                                "instruction followed (the probe's).")
    runs.add_argument("--output-dir", default=str(runs_dir), help=f"Folder of runs {RUNS_DEFAULT}.")
    runs.add_argument("--export", choices=EXPORT_FORMATS, help="Instead of the list, write every run's metric rows "
                      "as one table (run_id, method, step, then the metrics) for pandas.")
    runs.add_argument("--out", metavar="FILE", help="Where --export writes (default runs.csv or runs.parquet).")
    votes = subparsers.add_parser("votes", help="Blind votes cast in the chats: the people's win-rate of aligned over "
                                  "reference (95%% Wilson interval), ties, both bad, and agreement with the reward; "
                                  "then each AI annotator's (data annotate) and its agreement with people.")
    votes.add_argument("name", nargs="?", help="A run id (its votes file); default: every votes file.")
    votes.add_argument("--output-dir", default=str(runs_dir), help=f"Folder of runs {RUNS_DEFAULT}.")
    report = subparsers.add_parser("report", help="One self-contained HTML file of runs that opens offline: curves, "
                                   "reward-vs-KL frontier, config, eval, samples side by side, votes and win-rate.")
    report.add_argument("runs", nargs="+", metavar="RUN", help="A run directory, or a run id under --output-dir.")
    report.add_argument("--out", default="report.html", metavar="FILE", help="Where to write it (default report.html; "
                        "refused inside a run folder, and where a file exists without --force).")
    report.add_argument("--output-dir", default=str(runs_dir), help=f"Folder the run ids are looked up in "
                        f"{RUNS_DEFAULT}.")
    report.add_argument("--force", action="store_true", help="Replace --out if it exists (never a file of a run).")
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
    prefs.add_argument("--prefill-opening", action="store_true",
                       help="Sample each answer to a prompt that asks for a given opening (the built-in task's) with "
                       "that opening already written, so chosen and rejected both begin with it and differ in "
                       "sentiment only.")
    prefs.add_argument("--output", required=True, help="Where to write the JSONL pairs (and a .card.md next to it).")
    prefs.add_argument("--force", action="store_true", help="Replace --output if it exists (never the --dataset).")
    _add_dtype(prefs, "the model")
    annotate = data_sub.add_parser("annotate", help="An AI annotator votes like people: on held-out prompts, the run's "
                                   "aligned model and its reference answer alike, a reward source picks the better "
                                   "(a judge asked in both orders) and the vote joins the run's votes file as "
                                   "ai:<reward> (OAIF, Guo et al. 2024).")
    annotate.add_argument("run", metavar="RUN", help="A run id under --output-dir, or a run directory.")
    annotate.add_argument("--reward", help="The annotator: a reward source (default: the run's own); a pairwise judge "
                          "(judge[:MODEL]) is asked in both orders, a tie when they disagree; a pointwise "
                          "reward once.")
    annotate.add_argument("--prompts", type=int, default=0, metavar="N",
                          help="How many held-out prompts, drawn with --seed (default 0: all).")
    annotate.add_argument("--seed", type=int, default=0, help="Sampling seed, shared by both models (as in the chat), "
                          "and the draw of the prompts.")
    annotate.add_argument("--output-dir", default=str(runs_dir), help=f"Folder the run id is looked up in "
                          f"{RUNS_DEFAULT}.")
    annotate.add_argument("--quiet", action="store_true", help="No progress bar.")
    _add_dtype(annotate, "the run's model and its reference")
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
    _add_dtype(evaluate, "the run's model and its reference")
    models = subparsers.add_parser("models", help="Model tools.")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    fetch = models_sub.add_parser("fetch", help="Build/locate a model now so later runs start offline.")
    fetch.add_argument("name", nargs="?", default="smollm2-135m-instruct")
    app = subparsers.add_parser("app", help="Start the Gradio app.")
    app.add_argument("--host", default="127.0.0.1", help="Interface to serve on; 0.0.0.0 opens the app to the "
                     "network (use --auth).")
    app.add_argument("--port", type=int, default=7860, help="Port to serve on (default 7860).")
    app.add_argument("--share", action="store_true", help="Also serve through a public gradio.live link (use --auth).")
    app.add_argument("--auth", action="append", metavar="USER:PASSWORD", help="An account required to open the app; "
                     "repeat for several users (each stops and cancels only their own jobs, and deletes or resumes "
                     "only their own runs).")
    app.add_argument("--output-dir", default=str(runs_dir), help=f"Folder of runs the app trains into and lists "
                     f"{RUNS_DEFAULT}.")
    app.add_argument("--trust-remote-code", action="store_true", help="Allow models whose code comes from their Hub "
                     "repository (runs that code on this machine).")
    app.add_argument("--workshop", action="store_true", help="Workshop mode: each participant names their page "
                     "(with --auth: their account), runs carry the name, a Class tab ranks everyone's runs.")
    app.add_argument("--instructor", metavar="NAME", help="Workshop mode: the name (or --auth account) that may stop, "
                     "cancel, delete or resume anyone's jobs and runs and sets the leaderboard's KL budget; with "
                     "--auth alone: the admin account, which may do the same.")
    app.add_argument("--kl-budget", type=float, metavar="X", help="Workshop mode: the leaderboard's KL budget to start "
                     "with (runs whose final KL is above it do not count; default no limit).")
    app.add_argument("--max-jobs", type=int, default=1, metavar="N", help="Jobs trained at once (default 1); above 1 "
                     "needs a CUDA GPU and is capped by its free memory at --job-gib each.")
    app.add_argument("--job-gib", type=float, default=JOB_GIB, metavar="GIB", help="GPU memory taken per job when "
                     f"--max-jobs is capped (default {JOB_GIB:g}).")
    add_share_parsers(subparsers)
    args = parser.parse_args(attach_dashed_values(list(sys.argv[1:] if argv is None else argv)))
    try:
        if args.command == "train":
            return _train(args, whole_process=argv is None)
        if args.command == "runs":
            return _runs(args)
        if args.command == "votes":
            return _votes(args)
        if args.command == "report":
            return _report(args)
        if args.command == "data":
            return _annotate(args) if args.data_command == "annotate" else _make_prefs(args)
        if args.command == "eval":
            return _eval(args)
        if args.command == "models":
            print(resolve_model(args.name))
            return 0
        if args.command in SHARE_COMMANDS:
            return run_share_command(args)
        if args.command == "app":
            try:
                from alignlab.ui.gradio import launch
            except ImportError as error:
                raise AlignLabError(
                    f"app: the Gradio app needs the 'app' extra (pip install 'alignlab[app]'): {error}") from error
            launch(host=args.host, port=args.port, share=args.share, auth=args.auth, runs_dir=args.output_dir,
                   trust_remote_code=args.trust_remote_code, workshop=args.workshop, instructor=args.instructor,
                   kl_budget=args.kl_budget, max_jobs=args.max_jobs, job_gib=args.job_gib)
            return 0
    except AlignLabError as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - a user sees one line, never a traceback
        if os.environ.get("ALIGNLAB_TRACEBACK"):
            raise
        print(f"error: {_one_line(error, with_type=not isinstance(error, OSError))} (set ALIGNLAB_TRACEBACK=1 for the "
              "traceback)", file=sys.stderr)
        return 1
    return 0


def attach_dashed_values(argv: list[str]) -> list[str]:
    """``--flag -1e-4`` as ``--flag=-1e-4``: argparse takes a value that starts with ``-`` and is not a plain
    negative number (``-1e-4``, ``-inf``, ``-nan``) for an option and answers with its whole usage; attached, the
    value reaches the knob's validation, whose one-line error names the field and what it expects.

    >>> attach_dashed_values(["train", "--learning-rate", "-1e-4", "--seed", "-inf", "--quiet"])
    ['train', '--learning-rate=-1e-4', '--seed=-inf', '--quiet']
    """
    joined: list[str] = []
    for token in argv:
        previous = joined[-1] if joined else ""
        if token.startswith("-") and previous.startswith("--") and "=" not in previous and _is_number(token):
            joined[-1] = f"{previous}={token}"
        else:
            joined.append(token)
    return joined


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _one_line(error: BaseException, with_type: bool = False) -> str:
    """An error as one line: its message with line breaks folded (and its type, for an unexpected one)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}" if with_type else text


def _eval(args) -> int:
    """``alignlab eval``: a run directory (or run id) must exist and read; --samples >= 1."""
    from alignlab.rundir import find

    if args.samples < 1:
        raise AlignLabError(f"samples: got {args.samples}, expected an integer >= 1")
    if args.seed < 0:
        raise AlignLabError(f"seed: got {args.seed}, expected an integer >= 0")
    run_dir = find(args.run_dir)
    if args.json:
        _check_writable(args.json, "json")
    result = compare_run(run_dir, reward=args.reward, samples_per_prompt=args.samples, seed=args.seed,
                         with_fluency=not args.no_fluency, dtype=args.dtype)
    print(result.report())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result.as_dict(), out, indent=1)
    return 0


def _check_writable(path: str, flag: str) -> None:
    """AlignLabError naming ``--flag`` unless ``path`` can be written (checked before the long part of a command)."""
    try:
        target = os.path.abspath(path)
        if os.path.isdir(target):
            raise AlignLabError(f"{flag}: {path!r} is a folder, expected a file path")
        existed = os.path.exists(target)
        with open(target, "a", encoding="utf-8"):  # opened for writing, not changed
            pass
        if not existed:
            os.remove(target)
    except (OSError, ValueError) as error:
        raise AlignLabError(f"{flag}: cannot write {path!r} ({getattr(error, 'strerror', None) or error})") from None


def _train(args, whole_process: bool = False) -> int:
    """``alignlab train``; ``whole_process``: this process is the command (not a caller of :func:`main`), so
    signals stay handled after the run, until it exits (see :func:`_signals_stop_the_run`)."""
    runs_dir = args.output_dir or default_runs_dir()
    if args.resume:  # the run's own config: a flag that would change it is refused
        given = [k for k, v in vars(args).items() if v is not None and k not in ("command", "quiet", "resume",
                                                                                  "output_dir")]
        if given:
            raise AlignLabError(f"resume: a resumed run keeps the config it started with; drop "
                                f"{', '.join('--' + k.replace('_', '-') for k in given)}")
    else:
        values = {k: v for k, v in vars(args).items()
                  if k not in ("command", "config", "preset", "quiet", "run_id", "resume") and v is not None}
        if args.preset and args.config:
            raise AlignLabError("preset: --preset and --config both give the run's settings; use one of them "
                                "(flags override either)")
        if args.preset:
            config = get_preset(args.preset).config(**values)
        else:
            config = RunConfig.from_file(args.config, **values) if args.config else RunConfig.from_dict(values)
    processes, rank = launched_processes()
    if processes > 1:  # every process trains; process 0 alone writes the run directory (see train_distributed)
        handle = train_distributed(None if args.resume else config, args.run_id, args.resume, runs_dir)
        if handle.error:  # only process 0 writes the run directory: each process says why it failed
            print(f"process {rank}: run {handle.run_id} {handle.state}: {handle.error}", file=sys.stderr)
            if os.environ.get("ALIGNLAB_TRACEBACK") and getattr(handle, "details", ""):
                print(handle.details, file=sys.stderr)
        return 0 if handle.state == "finished" else 1
    with _signals_stop_the_run(restore=not whole_process) as signals:
        handle = resume(args.resume, runs_dir) if args.resume else start(config, run_id=args.run_id)
        _follow(handle, quiet=args.quiet, signals=signals)
    status = handle.status
    print(f"\nrun {handle.run_id}: {status['state']} after {status['step']} steps in {status['elapsed_s']:.0f}s")
    if handle.error:
        print(f"error: {handle.error}", file=sys.stderr)
    last = {}
    for event in handle.history:
        last.update(event["metrics"])
    shown = [k for k in summary_keys(handle.config.method) if last.get(k) is not None]
    if shown:
        print("final: " + "  ".join(f"{k}={last[k]:.4g}" for k in shown))
    print(f"saved to {handle.run_dir}")
    return 0 if handle.state in ("finished", "stopped") else 1


@contextlib.contextmanager
def _signals_stop_the_run(restore: bool = True) -> Iterator[list[str]]:
    """While a run trains here: SIGINT (Ctrl-C, once or again and again), SIGTERM and SIGHUP are noted, by
    name, in the list yielded, for :func:`_follow` to stop the run at the next step; it then saves what it
    has and ends ``stopped``. The handlers are installed whatever this process inherited (a shell starts a
    background job with SIGINT ignored) and never raise, so a signal can neither interrupt the save nor print
    a traceback. The previous handlers come back afterwards, with ``restore``; else (the process ends after the
    run) these signals are ignored from then on: the run is saved, and a Ctrl-C more must not turn the exit into
    a traceback (Python sets its own handlers back to the default while it shuts down; an ignored signal stays
    ignored)."""
    with noted_signals(STOP_SIGNALS, restore=restore) as received:
        yield received


def _follow(handle, quiet: bool, signals: list[str]) -> None:
    """Progress bar until the run ends; a signal named in ``signals`` (see :func:`_signals_stop_the_run`)
    stops the run cleanly at the next step (it still saves)."""
    from tqdm import tqdm

    bar = None if quiet else tqdm(total=None, desc=handle.run_id, unit="step", dynamic_ncols=True)

    def on_event(event):
        if bar is None:
            return
        if handle.total_steps and bar.total != handle.total_steps:
            bar.total = handle.total_steps
        bar.n = event["step"]
        metrics = event["metrics"]
        headline = headline_of(handle.config.method, metrics)  # the reward, KL and instruction followed, when logged
        shown = {"loss": metrics.get("loss"), "rewards/margins": metrics.get("rewards/margins"),  # DPO: between probes
                 **{HEADLINE_LABELS[field]: value for field, value in headline.items()}}
        bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items() if v is not None}, refresh=True)

    unsubscribe = handle.subscribe(on_event)
    noted = 0
    try:
        while not handle.done:
            handle.wait(0.1)
            if len(signals) > noted:  # said once for the first signal, once for any more
                if not noted:
                    _say(f"\n{signals[0]}: stopping at the next step, then saving what the run has so far...")
                if len(signals) > 1 and noted <= 1:
                    _say(f"\n{signals[-1]}: already stopping; the run is saving what it has, wait for it")
                noted = len(signals)
                handle.stop()
        handle.wait()  # the training thread ends too: exiting while it frees tensors would abort the process
    finally:
        unsubscribe()
        if bar is not None:
            bar.close()


def _say(text: str) -> None:
    """A line on stderr, unless stderr is gone (the terminal that sent SIGHUP has closed)."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def installed_version() -> str:
    """The version of the installed alignlab distribution (its metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("alignlab")
    except PackageNotFoundError:
        return "(not installed: no package metadata)"


def _runs(args) -> int:
    if args.out and not args.export:
        raise AlignLabError("out: --out names the file --export writes; add --export csv or --export parquet")
    if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
        raise AlignLabError(f"output_dir: {args.output_dir!r} is a file, not a folder of runs")
    if args.export:
        path, rows, runs = export_metrics(args.output_dir, args.export, args.out)
        print(f"{rows} metric rows of {runs} runs -> {path}")
        return 0
    rows = list_runs(args.output_dir)
    if not rows:
        print(f"no runs in {args.output_dir}/")
        return 0

    def fmt(value):
        return "-" if value is None else f"{value:.4g}"

    def percent(value):
        return "-" if value is None else f"{value:.0%}"

    print(f"{'run id':<40} {'method':<10} {'state':<10} {'steps':>5} {'loss':>9} {'reward':>9} {'KL':>9} "
          f"{'followed':>8}")  # followed: the share of the probe's completions that followed the instruction
    for run in rows:
        line = (f"{run['run_id']:<40} {run['method'] or '-':<10} {run['state'] or '-':<10} {run['steps']:>5} "
                f"{fmt(run['loss']):>9} {fmt(run['reward']):>9} {fmt(run['kl']):>9} {percent(run['follow']):>8}")
        if run["state"] == UNREADABLE:  # which file, and why; the other runs list as usual
            line += f"  {run['error']}"
        print(line)
    return 0


def _votes(args) -> int:
    """``alignlab votes [NAME]``: each votes file's lines (:func:`alignlab.votes.run_summary`): people's tally with the
    reward's figure from the run's samples when the run is still there, then each AI annotator's."""
    from alignlab.rundir import is_run_dir, votes_names
    from alignlab.votes import reward_figure, run_summary

    names = [args.name] if args.name else votes_names(args.output_dir)
    if not names:
        print(f"no votes in {args.output_dir}/ (vote in the chats with Blind vote on)")
    for name in names:
        run_dir = os.path.join(args.output_dir, name)
        lines, problems = run_summary(args.output_dir, name, reward_figure(run_dir) if is_run_dir(run_dir) else None)
        print(f"{name}:")
        for line in lines:
            print(f"  {line}")
        for problem in problems:
            print(f"  skipped {problem}")
    return 0


def _report(args) -> int:
    """``alignlab report RUN [RUN ...] --out FILE``: every run must exist before anything is written; the report is
    built by :mod:`alignlab.ui.report` (plotly draws it: a UI package, imported only here)."""
    from alignlab.rundir import find

    run_dirs = [find(run, args.output_dir) for run in args.runs]
    try:
        from alignlab.ui.report import check_out, write_report
    except ImportError as error:
        raise AlignLabError(f"report: the report's plots need plotly (pip install 'alignlab[app]'): {error}") from error
    check_out(args.out, args.force)  # before the report is built
    path = write_report(run_dirs, args.out, force=args.force)
    print(f"report of {len(run_dirs)} run{'' if len(run_dirs) == 1 else 's'} -> {path}")
    return 0


def _annotate(args) -> int:
    """``alignlab data annotate RUN``: :func:`alignlab.annotate.annotate_run` with a progress bar on the sampling."""
    from tqdm import tqdm

    from alignlab.annotate import annotate_run

    started = time.time()
    bars = []  # the bar opens once the run, the prompts and the reward are checked and the models loaded

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc="sampling", unit="prompt", dynamic_ncols=True))
        bars[0].n = done
        bars[0].refresh()

    try:
        result = annotate_run(args.run, reward=args.reward, prompts=args.prompts, seed=args.seed,
                              runs_dir=args.output_dir, progress=None if args.quiet else progress, dtype=args.dtype)
    finally:
        for bar in bars:
            bar.close()
    counted = result.tally
    print(f"{result.voter} voted on {len(result.votes)} prompts of {result.run_id} in {time.time() - started:.1f} s "
          f"-> {result.path}")
    print(f"  aligned {counted.wins}, reference {counted.losses}, tie {counted.ties}", end="")
    agreeing, judged = result.orders_agreeing
    print(f"; judged in both orders: the two chose the same answer in {agreeing} of {judged}, "
          f"{judged - agreeing} tied by their disagreement" if judged else
          "; pointwise reward: one judgement each, the order cannot matter")
    print(f"  people and AI side by side: alignlab votes {result.run_id} --output-dir {args.output_dir}")
    return 0


def _make_prefs(args) -> int:
    from tqdm import tqdm

    # Every number and the output are checked before the prompts are read, the model loaded or anything sampled.
    check_settings(samples=args.samples, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                   top_p=args.top_p, seed=args.seed, min_gap=args.min_gap, limit=args.limit)
    check_output(args.output, args.dataset, args.force)
    prompts = [row["prompt"] for row in load_rows(args.dataset, "prompt")]
    if args.limit:
        prompts = prompts[: args.limit]
    bar = tqdm(total=len(prompts), desc="sampling", unit="prompt")

    def progress(done, total):
        bar.n = done
        bar.refresh()

    report = make_prefs(args.model, prompts, args.output, samples_per_prompt=args.samples, reward=args.reward,
                        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                        seed=args.seed, min_gap=args.min_gap, progress=progress, source=args.dataset, force=args.force,
                        dtype=args.dtype, prefill_opening=args.prefill_opening)
    bar.close()
    card = card_path(args.output)
    write_card(report, card, "alignlab " + " ".join(sys.argv[1:]))
    print(f"{report.pairs} pairs from {report.prompts} prompts -> {args.output} (card: {card})")
    print(f"base reward mean {report.reward_mean:+.3f}, deciles {report.reward_deciles}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
