"""Presets: named starting points for a run, declared once for the CLI, the notebook Lab and the Gradio app.

A preset sets a few run settings and method knobs; every other value stays at its declared default (the
lab's defaults, see :mod:`alignlab.config`). ``alignlab train --preset classroom``, ``Lab(preset="classroom")``
(or the Lab's preset picker) and the Gradio Train tab's preset picker all read :data:`PRESETS`.

``classroom`` is the short but real run for a lesson: DPO on the default model, stopped at the step where
its effect was measured to be visible. The figures in its description come from ``docs/alignment.md``
(``python -m bench.alignment``): at the lab's defaults DPO's held-out reward gain was not visible at
step 3 and was visible (+0.38 ± 0.04 VADER) from step 6.

How long a preset takes depends on the machine and on what else runs on it, so no title promises a time: the
description quotes what was measured where, and :meth:`Preset.time_estimate` says what the runs that finished
in this runs folder took (:func:`alignlab.eta.runs_pace`), as an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alignlab.config import RunConfig
from alignlab.errors import AlignLabError
from alignlab.eta import runs_pace
from alignlab.models import DEFAULT_MODEL

# Where a run is saved, its label and the permission to run a model's own code are the user's, not a preset's:
# picking a preset in a form leaves them as they are.
NOT_SET_BY_PRESETS = ("output_dir", "run_name", "trust_remote_code", "owner")


@dataclass(frozen=True)
class Preset:
    """A named run: ``settings`` (RunConfig fields and method knobs by name) over the declared defaults.

    ``title`` is what a picker shows; ``description`` says what the run does and what it costs.
    """

    name: str
    title: str
    description: str
    settings: dict[str, Any] = field(default_factory=dict)

    def config(self, **overrides: Any) -> RunConfig:
        """The validated RunConfig of this preset; ``overrides`` (flags, form values) win over its settings."""
        return RunConfig.from_dict({**self.settings, **{k: v for k, v in overrides.items() if v is not None}})

    def time_estimate(self, runs: list[dict]) -> str:
        """A line estimating this preset's wall time on this machine from the finished runs of its model in
        ``runs`` (run summaries newest first, :func:`alignlab.rundir.list_runs`; :func:`alignlab.eta.runs_pace`),
        or saying there is none yet.

        >>> PRESETS["classroom"].time_estimate([])
        'No smollm2-135m-instruct run has finished in this runs folder yet: no estimate of its time here.'
        """
        config = self.config()
        pace, count = runs_pace(runs, config.model)
        seconds = None if pace is None else pace.seconds(config.max_steps)
        if seconds is None:
            return f"No {config.model} run has finished in this runs folder yet: no estimate of its time here."
        minutes = f"about {round(seconds / 60)} min" if seconds >= 90 else f"about {round(seconds)} s"
        return (f"Estimate for this machine: {minutes} ({round(pace.startup_s)} s to start, then "
                f"{round(pace.step_s, 1)} s a step: the median of the last {count} finished {config.model} run"
                f"{'' if count == 1 else 's'} here). A busier machine takes longer.")

    def values(self) -> dict[str, Any]:
        """Every value a form shows for this preset (its settings, the defaults for the rest, its method's knobs
        included), less :data:`NOT_SET_BY_PRESETS`.

        >>> values = PRESETS["classroom"].values()
        >>> values["method"], values["max_steps"], values["probe_every"], values["beta"], "output_dir" in values
        ('dpo', 6, 3, 0.5, False)
        """
        return {k: v for k, v in self.config().flat().items() if k not in NOT_SET_BY_PRESETS}


CLASSROOM = Preset(
    name="classroom",
    title="Classroom: DPO on the default model, 6 steps",
    description=(
        "DPO on the default model (SmolLM2-135M-Instruct, LoRA r 16) for 6 steps, probed at steps 0, 3 and 6; "
        "everything else at the lab's defaults (lr 1e-3 constant, batch 8, β 0.5 with the chosen answers' likelihood "
        "at weight 0.5). Just long enough to show the effect: at these defaults its held-out reward gain at step 6 "
        "was +0.40 ± 0.04 VADER at seed 42 and +0.31 ± 0.05 at seed 7, at 5.7 and 2.4 nats of KL, the requested "
        "opening kept: 35.5% of the reference's reviews begin with it, 52.5% and 33.5% of the aligned model's "
        "(docs/alignment.md). How long it takes depends on the machine and on what else runs on it. Measured on an "
        "otherwise idle 2-core CPU at the previous defaults: step 6 in 178 s from a cold start and 110 s with the "
        "reference cache warm (2 threads), 294 s on 1 thread (the Gradio app trains on half the cores); the probe "
        "at step 3 adds about 20 s. A machine shared by a class takes longer."
    ),
    settings={"method": "dpo", "model": DEFAULT_MODEL, "max_steps": 6, "probe_every": 3},
)

PRESETS: dict[str, Preset] = {preset.name: preset for preset in (CLASSROOM,)}


def preset_names() -> list[str]:
    """Names of every preset, for pickers and the CLI's ``--preset`` choices."""
    return list(PRESETS)


def get_preset(name: str) -> Preset:
    """The preset called ``name``; AlignLabError naming the choices otherwise.

    >>> get_preset("classroom").settings["max_steps"]
    6
    """
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise AlignLabError(f"preset: got {name!r}, expected one of {', '.join(PRESETS)}") from None
