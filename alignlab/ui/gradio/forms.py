"""Knob -> Gradio input: the Train form is generated from the knob declarations, never written by hand.

``common_knobs()`` (RunConfig fields) and each method's ``MethodSpec.knobs`` carry the type, range,
default, help text and how a form shows them (``Knob.group``, ``Knob.suggestions``, ``Knob.control``, the
same declaration the notebook form reads); :func:`knob_input` turns one into a component. The values come back by knob
name and :func:`config_from_form` hands them to ``RunConfig.from_dict``, which validates them.
"""

from __future__ import annotations

import math
from typing import Any

import gradio as gr

from alignlab.config import RunConfig, common_knobs
from alignlab.errors import AlignLabError
from alignlab.methods import Knob, registry
from alignlab.presets import get_preset

# Common fields the app sets itself (model and dataset have their own pickers; the runs folder and
# remote-code permission come from how the app was launched; no path from a browser names an eval dataset, so the
# app's runs hold out the task's split or a seeded share of their dataset).
APP_OWNED = ("model", "dataset", "eval_dataset", "output_dir", "trust_remote_code")


def _bounds_error(field: str, payload: Any, minimum: float | None, maximum: float | None,
                  whole: bool) -> gr.Error:
    """The error of an input whose value Gradio refused, naming the field (Gradio's own names none)."""
    limits = [f">= {minimum:g}" if minimum is not None else "", f"<= {maximum:g}" if maximum is not None else ""]
    expected = " and ".join(limit for limit in limits if limit)
    return gr.Error(f"{field}: got {payload!r}, expected {'an integer' if whole else 'a number'}"
                    f"{' ' + expected if expected else ''}")


def field_named(component: gr.Slider | gr.Number, field: str = "") -> gr.Slider | gr.Number:
    """``component`` (a Slider or a Number) with its refusal of a value (out of its range, or infinite in a
    whole-number box) naming ``field`` (default its label): Gradio's own ("Value 5 is greater than maximum value
    0.9.") names none. Wraps the instance's preprocess; a subclass would make Gradio write a .pyi stub beside this
    file."""
    field = field or str(component.label)
    preprocess = component.preprocess

    def checked(payload: Any) -> Any:
        try:
            return preprocess(payload)
        except (gr.Error, TypeError, ValueError, OverflowError):
            raise _bounds_error(field, payload, component.minimum, component.maximum,
                                component.precision == 0) from None

    component.preprocess = checked
    return component


def form_knobs() -> tuple[Knob, ...]:
    """The common knobs the Train form shows."""
    return tuple(knob for knob in common_knobs() if knob.name not in APP_OWNED)


def suggested(name: str) -> list[str]:
    """The values the common knob ``name`` offers in a picker (its declared suggestions)."""
    return list(next(knob for knob in common_knobs() if knob.name == name).suggestions())


def method_input_name(method: str, knob: str) -> str:
    """Keyword under which a method knob's value reaches the Start handler (and the API)."""
    return f"{method.replace('-', '_')}__{knob}"


def label_of(knob: Knob) -> str:
    return knob.name.replace("_", " ")


def knob_input(knob: Knob, value: Any = None, **kwargs: Any) -> gr.Component:
    """A component for ``knob`` by its declared ``control``: checkbox, dropdown (a picker's also takes typed
    values), textbox, slider, or a number box (log-scale numbers too: Gradio has no log slider)."""
    value = knob.default if value is None else value
    control = knob.control
    info = f"{knob.help} ({knob.expected()})" if control in ("number", "log-slider") else knob.help
    common = dict(label=label_of(knob), info=info, elem_id=f"knob-{kwargs.pop('elem_suffix', knob.name)}", **kwargs)
    if control == "checkbox":
        return gr.Checkbox(value=bool(value), **common)
    if control == "dropdown":
        return gr.Dropdown(choices=list(knob.choices), value=value, **common)
    if control == "picker":
        return gr.Dropdown(choices=list(knob.suggestions()), value=value, allow_custom_value=True, **common)
    if control == "text":
        return gr.Textbox(value=value, max_lines=1, **common)
    if control == "slider":
        step = 1 if knob.kind == "int" else (knob.max - knob.min) / 100
        return field_named(gr.Slider(minimum=knob.min, maximum=knob.max, value=value, step=step, **common), knob.name)
    # No minimum/maximum on numbers: RunConfig's error says what is expected (an exclusive bound too).
    if knob.kind == "int":
        return field_named(gr.Number(value=value, precision=0, step=1, **common), knob.name)
    return field_named(gr.Number(value=value, step=_step(value), **common), knob.name)


def _step(value: float) -> float:
    """Arrow-key step for a float input: a tenth of the default's order of magnitude."""
    if not value:
        return 0.01
    return 10 ** (math.floor(math.log10(abs(value))) - 1)


def preset_form_values(name: str) -> dict[str, Any]:
    """The Train form's values for preset ``name`` (:mod:`alignlab.presets`), keyed as the Start handler takes
    them: method, model, dataset, the run settings the form shows, and the preset method's knobs under
    :func:`method_input_name`. The run name is left as it is."""
    return form_values(get_preset(name).values())


def form_values(values: dict[str, Any]) -> dict[str, Any]:
    """Flat run settings (``RunConfig.flat()``, or a preset's values) keyed as the Start handler takes them: method,
    model, dataset, the common knobs the form shows that ``values`` holds, and the method's knobs under
    :func:`method_input_name` (a knob ``values`` lacks at its default).

    >>> form = form_values(RunConfig(method="kto", model="tiny-random", max_steps=3).flat())
    >>> form["method"], form["max_steps"], form["kto__beta"], "output_dir" in form
    ('kto', 3, 0.1, False)
    """
    method = values["method"]
    form = {"method": method, "model": values["model"], "dataset": values["dataset"]}
    form.update({knob.name: values[knob.name] for knob in form_knobs() if knob.name in values})
    form.update({method_input_name(method, knob.name): values.get(knob.name, knob.default)
                 for knob in registry()[method].knobs})
    return form


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
