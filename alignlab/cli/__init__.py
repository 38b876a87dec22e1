"""The ``alignlab`` command line: train, runs, votes, report, eval, data make-prefs, data annotate, models fetch, app,
export and push. ``python -m alignlab`` is the same command.

:mod:`~alignlab.cli.parser` builds the parser (training flags generated from the knob declarations),
:mod:`~alignlab.cli.commands` holds what each command does, :mod:`~alignlab.cli.watch` shows a run trained here and
stops it cleanly on a signal, and :mod:`~alignlab.cli.share` holds export and push. ``--config run.yaml`` loads a
file; flags given on the command line win. Works under ``accelerate launch`` (one run directory, written by the
main process).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from alignlab.cli.commands import (
    annotate_command,
    app_command,
    eval_command,
    make_prefs_command,
    models_command,
    report_command,
    runs_command,
    train_command,
    votes_command,
)
from alignlab.cli.parser import attach_dashed_values, build_parser
from alignlab.cli.share import SHARE_COMMANDS, run_share_command
from alignlab.errors import AlignLabError


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``alignlab`` command on ``argv`` (default: this process's arguments) and return its exit status: 0
    done, 1 failed (an unexpected error, in one line unless ``ALIGNLAB_TRACEBACK`` is set), 2 refused (an
    AlignLabError, in one line), 130 interrupted."""
    args = build_parser().parse_args(attach_dashed_values(list(sys.argv[1:] if argv is None else argv)))
    try:
        if args.command == "train":
            return train_command(args, whole_process=argv is None)
        if args.command == "runs":
            return runs_command(args)
        if args.command == "votes":
            return votes_command(args)
        if args.command == "report":
            return report_command(args)
        if args.command == "data":
            return annotate_command(args) if args.data_command == "annotate" else make_prefs_command(args)
        if args.command == "eval":
            return eval_command(args)
        if args.command == "models":
            return models_command(args)
        if args.command in SHARE_COMMANDS:
            return run_share_command(args)
        if args.command == "app":
            return app_command(args)
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


def _one_line(error: BaseException, with_type: bool = False) -> str:
    """An error as one line: its message with line breaks folded (and its type, for an unexpected one)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}" if with_type else text
