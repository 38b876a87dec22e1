"""``python -m bench.worked_examples``: ship real runs' probe curves as the Learn tab's worked examples of drift.

Copies each run's probe rows (step and ``probe/*`` metrics) out of its run folder into
``alignlab/worked_examples.json`` (:mod:`alignlab.worked_examples`), with the ``alignlab train`` command that
makes the run again and the machine it ran on; the examples already in the file that are not named keep their
place. Make the runs first, then name them here:

    alignlab train --method ppo --kl-coef 0.01 --seed 42 --run-id ppo-kl001
    alignlab train --method simpo --seed 42 --run-id simpo-42
    alignlab train --method dpo --seed 42 --run-id dpo-42
    python -m bench.worked_examples ppo-cheap-kl=runs/ppo-kl001 simpo=runs/simpo-42 dpo=runs/dpo-42 \\
        --note "1 thread, other jobs on the machine"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TITLES = {"ppo-cheap-kl": "PPO with a cheap KL penalty (kl_coef 0.01): reward bought with drift",
          "simpo": "Pure SimPO (cpo_alpha 0, lr 1e-3): no reference in the loss",
          "dpo": "DPO at its defaults: the faithful contrast"}
LEFT_OUT = {"run_id", "run_name", "output_dir", "owner", "report_to"}  # where a run went, not how it trained


def train_command(config: dict) -> str:
    """The ``alignlab train`` command of a run's config: its method and every setting that differs from the
    method's defaults (where it was written left out)."""
    from alignlab.config import RunConfig

    defaults = RunConfig(method=config["method"]).flat()
    flags = [f"--method {config['method']}"]
    for name, value in config.items():
        if name in LEFT_OUT or name == "method" or name not in defaults or defaults[name] == value:
            continue
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        flags.append(f"--{name.replace('_', '-')} {json.dumps(shown) if ' ' in shown or not shown else shown}")
    return "alignlab train " + " ".join(flags)


def example(name: str, run_dir: str | Path, machine: str) -> dict:
    """One worked example from a finished run's folder."""
    from alignlab import rundir
    from alignlab.config import config_of
    from alignlab.drift import probe_rows

    if rundir.read_status(run_dir).get("state") != "finished":
        raise ValueError(f"{run_dir}: the run has not finished")
    rows = [{key: value for key, value in row.items() if key == "step" or key.startswith("probe/")}
            for row in probe_rows(rundir.read_metrics(run_dir)[0])]
    if len(rows) < 2:
        raise ValueError(f"{run_dir}: fewer than two probes, no drift to show")
    return {"name": name, "title": TITLES.get(name, name), "command": train_command(config_of(run_dir).flat()),
            "machine": machine, "rows": rows}


def _in_order(examples: list[dict]) -> list[dict]:
    """The examples in :data:`TITLES`' order (the Learn tab's), any other name after them."""
    order = list(TITLES)
    return sorted(examples, key=lambda example: order.index(example["name"]) if example["name"] in order
                  else len(order))


def main(argv: list[str] | None = None) -> int:
    from alignlab.worked_examples import EXAMPLES_FILE
    from bench.__main__ import machine

    parser = argparse.ArgumentParser(prog="python -m bench.worked_examples", description=__doc__.splitlines()[0])
    parser.add_argument("examples", nargs="+", metavar="NAME=RUN_DIR", help="an example's name and its run folder")
    parser.add_argument("--note", default="", help="how the runs were made (threads, what else ran meanwhile)")
    parser.add_argument("--out", type=Path, default=EXAMPLES_FILE, help="the file the Learn tab reads")
    args = parser.parse_args(argv)
    info = machine()
    where = f"{info['cpu']}, {info['cpus']} CPUs, torch {info['torch']}" + (f"; {args.note}" if args.note else "")
    examples = []
    for item in args.examples:
        name, _, run_dir = item.partition("=")
        if not run_dir:
            parser.error(f"{item!r}: expected NAME=RUN_DIR")
        examples.append(example(name, run_dir, where))
        print(f"{name}: {len(examples[-1]['rows'])} probes; {examples[-1]['command']}")
    kept = json.loads(args.out.read_text(encoding="utf-8"))["examples"] if args.out.exists() else []
    named = {example["name"] for example in examples}
    examples = [*(example for example in kept if example["name"] not in named), *examples]
    payload = {"written_by": "python -m bench.worked_examples", "examples": _in_order(examples)}
    args.out.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
