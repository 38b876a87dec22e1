"""The ``alignlab export`` and ``alignlab push`` commands (see :mod:`alignlab.publish`).

``alignlab export RUN --to DIR [--merged]`` writes the run's model with its card to a new folder;
``alignlab push RUN REPO_ID [--private] [--merged]`` uploads the same to a Hugging Face hub repository.
:mod:`alignlab.cli.parser` adds these parsers and :func:`alignlab.cli.main` hands the parsed arguments here.
"""

from __future__ import annotations

import argparse

from alignlab.publish import export_run, push_run
from alignlab.rundir import RUNS_WHERE, default_runs_dir, find

SHARE_COMMANDS = ("export", "push")


def add_share_parsers(subparsers) -> None:
    """Add the ``export`` and ``push`` subcommands to the CLI's subparsers."""
    export = subparsers.add_parser("export", help="Copy a run's model to a folder with a model card, its base named "
                                   "by hub id (--merged: full weights that load without peft).")
    push = subparsers.add_parser("push", help="Upload a run's model with its model card to a Hugging Face hub "
                                 "repository (needs a token: hf auth login).")
    for parser in (export, push):
        parser.add_argument("run", help="A run directory, or the id of a run in --output-dir.")
        if parser is push:
            parser.add_argument("repo_id", help="The hub repository: NAME (under your account) or OWNER/NAME; made "
                                "if it does not exist.")
            parser.add_argument("--private", action="store_true", help="Make the repository private (when it is "
                                "made here).")
        else:
            parser.add_argument("--to", required=True, metavar="DIR", help="A new (or empty) folder to write.")
        parser.add_argument("--merged", action="store_true", help="Merge the LoRA adapter into its base model and "
                            "save full weights and the tokenizer, instead of the adapter.")
        parser.add_argument("--output-dir", default=str(default_runs_dir()), help="Folder of runs a run id is looked "
                            f"up in (default %(default)s: {RUNS_WHERE}).")


def run_share_command(args: argparse.Namespace) -> int:
    """Run a parsed ``export`` or ``push`` command; errors are AlignLabError (the CLI prints them in one line)."""
    run_dir = find(args.run, args.output_dir)
    if args.command == "export":
        folder = export_run(run_dir, args.to, merged=args.merged)
        print(f"exported {run_dir.name} ({'merged' if args.merged else 'as trained'}) to {folder}")
    else:
        print(f"pushed {run_dir.name} to {push_run(run_dir, args.repo_id, private=args.private, merged=args.merged)}")
    return 0
