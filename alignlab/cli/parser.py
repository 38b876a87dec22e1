"""The ``alignlab`` command's argument parser: every command, its flags and their help.

Training flags are generated from the knob declarations (RunConfig fields and every method's knobs, see
:func:`flag_help`), so a new knob appears here without touching this file. The ``export`` and ``push`` parsers are
:mod:`alignlab.cli.share`'s.
"""

from __future__ import annotations

import argparse
import dataclasses

from alignlab.cli.share import add_share_parsers
from alignlab.config import common_knobs
from alignlab.devices import DTYPES
from alignlab.export import EXPORT_FORMATS
from alignlab.generation import READING_TEMPERATURE, READING_TOP_P
from alignlab.job_slots import JOB_GIB
from alignlab.methods import method_names, registry
from alignlab.presets import PRESETS, preset_names
from alignlab.rundir import RUNS_WHERE, default_runs_dir

RUNS_DEFAULT = f"(default %(default)s: {RUNS_WHERE})"  # the help of every --output-dir but train's
DEFAULT_SAMPLES = 2  # alignlab.evaluate.DEFAULT_SAMPLES, without importing torch for --help
REPEATABLE = ("report_to",)  # train flags that may be given more than once (--report-to a --report-to b), values joined


def knob_declarations() -> dict[str, list[tuple[str, object]]]:
    """Every knob name -> its declarations as ``(owner, Knob)``: ``""`` for a run setting, else each method
    that declares a knob of that name (β is GRPO's as well as DPO's, with other bounds and default)."""

    declarations: dict[str, list[tuple[str, object]]] = {knob.name: [("", knob)] for knob in common_knobs()}
    for name, spec in registry().items():
        for knob in spec.knobs:
            declarations.setdefault(knob.name, []).append((name, knob))
        for setting, default in spec.run_defaults.items():  # a method's own default (config.method_default)
            lab = declarations[setting][0][1]
            declarations[setting].append((name, dataclasses.replace(lab, default=default)))
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
    per_method = "; ".join(f"{', '.join(method or 'the others' for method in methods)}: {expected}, default {default}"
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
    presets = " ".join(f"{preset.name}: {preset.description}" for preset in PRESETS.values())
    parser.add_argument("--preset", choices=preset_names(), help="Start from a named run; flags override it. "
                        + presets.replace("%", "%%"))  # argparse formats help with %
    for name, declarations in knob_declarations().items():
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



def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``alignlab`` command; each ``--output-dir`` defaults to the one runs folder
    (:func:`alignlab.rundir.default_runs_dir`)."""
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
    evaluate.add_argument("--temperature", type=float, default=READING_TEMPERATURE,
                          help=f"Sampling temperature (default {READING_TEMPERATURE}, the lab's reading setting, as "
                          "the end-of-run samples; 1 with --top-p 1 samples the whole distribution, as the probe).")
    evaluate.add_argument("--top-p", type=float, default=READING_TOP_P,
                          help=f"Nucleus sampling (default {READING_TOP_P}).")
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
    return parser


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


def installed_version() -> str:
    """The version of the installed alignlab distribution (its metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("alignlab")
    except PackageNotFoundError:
        return "(not installed: no package metadata)"
