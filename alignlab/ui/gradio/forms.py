"""Knob -> Gradio input: the Train form is generated from the knob declarations, never written by hand.

``common_knobs()`` (RunConfig fields) and each method's ``MethodSpec.knobs`` carry the type, range,
default and help text; :func:`knob_input` turns one into a component. The values come back by knob
name and :func:`config_from_form` hands them to ``RunConfig.from_dict``, which validates them.
"""

from __future__ import annotations

import math
from typing import Any

import gradio as gr

from alignlab.config import RunConfig, common_knobs
from alignlab.errors import AlignLabError
from alignlab.methods import Knob, registry
from alignlab.rewards import reward_names

# Common fields the app sets itself (model and dataset have their own pickers; the runs folder and
# remote-code permission come from how the app was launched).
APP_OWNED = ("model", "dataset", "output_dir", "trust_remote_code")
# Common knobs shown open; LoRA knobs get their own section; the rest go under "More settings".
MAIN_KNOBS = ("max_steps", "learning_rate", "batch_size", "reward", "probe_every", "seed", "run_name")
# Defaults the app changes for a better first run: the probe draws the Reward, KL and frontier plots.
APP_DEFAULTS = {"probe_every": 10}
# String knobs with a known list of values.
KNOWN_VALUES = {"reward": reward_names}
SLIDER_SPAN = 10.0


def form_knobs() -> tuple[Knob, ...]:
    """The common knobs the Train form shows."""
    return tuple(knob for knob in common_knobs() if knob.name not in APP_OWNED)


def knob_section(knob: Knob) -> str:
    """``main``, ``lora`` or ``more``: where a common knob sits in the form."""
    if knob.name in MAIN_KNOBS:
        return "main"
    return "lora" if knob.name.startswith("lora") else "more"


def method_input_name(method: str, knob: str) -> str:
    """Keyword under which a method knob's value reaches the Start handler (and the API)."""
    return f"{method.replace('-', '_')}__{knob}"


def label_of(knob: Knob) -> str:
    return knob.name.replace("_", " ")


def knob_input(knob: Knob, value: Any = None, **kwargs: Any) -> gr.Component:
    """A component for ``knob``: checkbox, dropdown, slider (short float ranges), number or textbox."""
    value = knob.default if value is None else value
    shows_range = knob.kind in ("choice", "bool", "str") or _slider(knob)
    info = knob.help if shows_range else f"{knob.help} ({knob.expected()})"
    common = dict(label=label_of(knob), info=info, elem_id=f"knob-{kwargs.pop('elem_suffix', knob.name)}", **kwargs)
    if knob.kind == "bool":
        return gr.Checkbox(value=bool(value), **common)
    if knob.kind == "choice":
        return gr.Dropdown(choices=list(knob.choices), value=value, **common)
    if knob.kind == "str":
        if knob.name in KNOWN_VALUES:
            return gr.Dropdown(choices=KNOWN_VALUES[knob.name](), value=value, allow_custom_value=True, **common)
        return gr.Textbox(value=value, max_lines=1, **common)
    if _slider(knob):
        return gr.Slider(minimum=knob.min, maximum=knob.max, value=value, step=(knob.max - knob.min) / 100, **common)
    # No minimum/maximum on numbers: Gradio's own bounds error does not name the field; RunConfig's does.
    if knob.kind == "int":
        return gr.Number(value=value, precision=0, step=1, **common)
    return gr.Number(value=value, step=_step(value), **common)


def _slider(knob: Knob) -> bool:
    """Floats on a short, linear, bounded range (clip ranges, smoothing, dropout) get a slider."""
    bounded = knob.min is not None and knob.max is not None
    return knob.kind == "float" and bounded and not knob.log_scale and knob.max - knob.min <= SLIDER_SPAN


def _step(value: float) -> float:
    """Arrow-key step for a float input: a tenth of the default's order of magnitude."""
    if not value:
        return 0.01
    return 10 ** (math.floor(math.log10(abs(value))) - 1)


def _given(knob: Knob, value: Any) -> Any:
    """The value, or AlignLabError when a field was left empty (RunConfig would quietly use the default)."""
    if value is None:
        raise AlignLabError(f"{knob.name}: left empty, expected {knob.expected()}")
    return value


def config_from_form(method: str, model: str, dataset: str, values: dict[str, Any], runs_dir: str,
                     trust_remote_code: bool) -> RunConfig:
    """A validated RunConfig from the form's values (common knobs by name, method knobs by
    :func:`method_input_name`); raises AlignLabError naming a bad field."""
    spec = registry().get(method)
    common = {knob.name: _given(knob, values[knob.name]) for knob in form_knobs() if knob.name in values}
    method_args = {}
    if spec is not None:
        for knob in spec.knobs:
            key = method_input_name(method, knob.name)
            if key in values:
                method_args[knob.name] = _given(knob, values[key])
    return RunConfig.from_dict({**common, "method": method, "model": model, "dataset": dataset,
                                "output_dir": runs_dir, "trust_remote_code": trust_remote_code,
                                "method_args": method_args})
