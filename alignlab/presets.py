"""Presets: named starting points for a run, declared once for the CLI, the notebook Lab and the Gradio app.

A preset sets a few run settings and method knobs; every other value stays at its declared default (the
lab's defaults, see :mod:`alignlab.config`). ``alignlab train --preset classroom``, ``Lab(preset="classroom")``
(or the Lab's preset picker) and the Gradio Train tab's preset picker all read :data:`PRESETS`.

``classroom`` is the short but real run for a lesson: DPO on the default model, stopped at the step where
its effect was measured to be visible. The figures in its description come from ``docs/alignment.md``
(``python -m bench.alignment``): at the lab's defaults DPO's held-out reward gain was not visible at
step 3 and was visible (+0.38 ± 0.04 VADER) from step 6.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alignlab.config import RunConfig
from alignlab.errors import AlignLabError
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

    def values(self) -> dict[str, Any]:
        """Every value a form shows for this preset (its settings, the defaults for the rest, its method's knobs
        included), less :data:`NOT_SET_BY_PRESETS`.

        >>> values = PRESETS["classroom"].values()
        >>> values["method"], values["max_steps"], values["probe_every"], values["beta"], "output_dir" in values
        ('dpo', 6, 3, 0.1, False)
        """
        return {k: v for k, v in self.config().flat().items() if k not in NOT_SET_BY_PRESETS}


CLASSROOM = Preset(
    name="classroom",
    title="Classroom: DPO on the default model, about 3 minutes",
    description=(
        "DPO on the default model (SmolLM2-135M-Instruct, LoRA r 16) for 6 steps, probed at steps 0, 3 and 6; "
        "everything else at the lab's defaults (lr 1e-3 constant, batch 8, β 0.1). Just long enough to show the "
        "effect: about 3 minutes on a 2-core CPU, measured (docs/alignment.md). There, DPO at these settings "
        "reached step 6 in 178 s from a cold start and 110 s with the reference cache warm (2 threads), and its "
        "held-out reward gain was visible at step 6 (+0.38 ± 0.04 VADER) but not yet at step 3. The probe at "
        "step 3 adds about 20 s. The Gradio app trains on half the cores: on 2 cores expect about 5 minutes "
        "there (294 s to step 6 on 1 thread)."
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
