"""What each ``alignlab`` command does with its parsed arguments (:mod:`alignlab.cli.parser` parses them).

Each handler checks what it can before the long part of its command (loading a model, training, sampling) and
returns the exit status; an AlignLabError it raises becomes one line on stderr (:func:`alignlab.cli.main`).
"""

from __future__ import annotations

import json
import os
import sys
import time

from alignlab.cli.watch import follow, signals_stop_the_run
from alignlab.config import RunConfig
from alignlab.data import load_rows
from alignlab.errors import AlignLabError
from alignlab.evaluate import compare_run
from alignlab.export import export_metrics
from alignlab.make_prefs import card_path, check_output, check_settings, make_prefs, write_dataset_card
from alignlab.methods.base import summary_keys
from alignlab.models import resolve_model
from alignlab.presets import get_preset
from alignlab.rundir import UNREADABLE, default_runs_dir, list_runs
from alignlab.runner import launched_processes, resume, start, train_distributed


def eval_command(args) -> int:
    """``alignlab eval``: a run directory (or run id) must exist and read; --samples >= 1."""
    from alignlab.rundir import find

    if args.samples < 1:
        raise AlignLabError(f"samples: got {args.samples}, expected an integer >= 1")
    if args.seed < 0:
        raise AlignLabError(f"seed: got {args.seed}, expected an integer >= 0")
    sampling = check_settings(temperature=args.temperature, top_p=args.top_p)
    run_dir = find(args.run_dir)
    if args.json:
        _check_writable(args.json, "json")
    result = compare_run(run_dir, reward=args.reward, samples_per_prompt=args.samples, seed=args.seed,
                         with_fluency=not args.no_fluency, dtype=args.dtype, **sampling)
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


def train_command(args, whole_process: bool = False) -> int:
    """``alignlab train``; ``whole_process``: this process is the command (not a caller of
    :func:`alignlab.cli.main`), so signals stay handled after the run, until it exits (see
    :func:`alignlab.cli.watch.signals_stop_the_run`)."""
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
    with signals_stop_the_run(restore=not whole_process) as signals:
        handle = resume(args.resume, runs_dir) if args.resume else start(config, run_id=args.run_id)
        follow(handle, quiet=args.quiet, signals=signals)
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


def runs_command(args) -> int:
    """``alignlab runs``: the runs of ``--output-dir`` as a table, or with ``--export`` every run's metric rows in one
    file."""
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


def votes_command(args) -> int:
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


def report_command(args) -> int:
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


def annotate_command(args) -> int:
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


def make_prefs_command(args) -> int:
    """``alignlab data make-prefs``: preference pairs sampled from a model (:func:`alignlab.make_prefs.make_prefs`)
    with a progress bar, and their card beside them."""
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
    write_dataset_card(report, card, "alignlab " + " ".join(sys.argv[1:]))
    print(f"{report.pairs} pairs from {report.prompts} prompts -> {args.output} (card: {card})")
    print(f"base reward mean {report.reward_mean:+.3f}, deciles {report.reward_deciles}")
    return 0


def models_command(args) -> int:
    """``alignlab models fetch [NAME]``: build or locate the model now, so later runs start offline; prints its
    path."""
    print(resolve_model(args.name))
    return 0


def app_command(args) -> int:
    """``alignlab app``: serve the Gradio app (:mod:`alignlab.ui.gradio`, imported only here) until interrupted."""
    try:
        from alignlab.ui.gradio import launch
    except ImportError as error:
        raise AlignLabError(
            f"app: the Gradio app needs the 'app' extra (pip install 'alignlab[app]'): {error}") from error
    launch(host=args.host, port=args.port, share=args.share, auth=args.auth, runs_dir=args.output_dir,
           trust_remote_code=args.trust_remote_code, workshop=args.workshop, instructor=args.instructor,
           kl_budget=args.kl_budget, max_jobs=args.max_jobs, job_gib=args.job_gib)
    return 0
