"""The run form: one widget per knob, generated from the declarations, never written per method.

:func:`knob_widget` maps a :class:`~alignlab.methods.base.Knob` to an ipywidget by its declared
``control`` (log slider, slider, number box, dropdown, checkbox, a combobox of the knob's suggestions, or
text: the same declaration the Gradio form reads). :class:`RunForm` shows the method picker, the method's
own knobs and the common run settings (:func:`alignlab.config.common_knobs`) by ``group``: the essential
ones open, LoRA and the rest folded. It checks every edit with ``Knob.coerce`` and shows the reason next
to the form instead of raising.
"""

from __future__ import annotations

import html
import math
from typing import Any

import ipywidgets as widgets

from alignlab.config import LAB_DEFAULTS, RunConfig, common_knobs, method_default
from alignlab.errors import AlignLabError
from alignlab.methods import get_method, method_names
from alignlab.methods.base import KNOB_GROUPS, Knob
from alignlab.presets import PRESETS, get_preset
from alignlab.rundir import default_runs_dir, list_runs

LOG_SPAN = 3  # decades either side of the default when a log-scale knob has no usable bound
FIELD_WIDTH = "340px"
STYLE = {"description_width": "150px"}


def knob_widget(knob: Knob, value: Any = None) -> widgets.ValueWidget:
    """An input widget for ``knob``, starting at ``value`` (the knob's default when None)."""
    value = knob.default if value is None else value
    common = dict(description=knob.name, tooltip=knob.help, style=STYLE,
                  layout=widgets.Layout(width=FIELD_WIDTH))  # one Layout each: a refused field gets a red border
    control = knob.control
    if control == "picker":  # a list to pick from, or type a path, reward-model:<run>, judge:<model>, ...
        return widgets.Combobox(options=list(knob.suggestions()), value=str(value), ensure_option=False,
                                placeholder="pick or type", **common)
    if control == "checkbox":  # its name sits right of the box: as wide as the name, never "precompute_ref_log_p…"
        common["layout"] = widgets.Layout(width="auto", min_width=FIELD_WIDTH)
        return widgets.Checkbox(value=bool(value), indent=True, **common)
    if control == "dropdown":
        return widgets.Dropdown(options=list(knob.choices), value=value, **common)
    if control == "text":
        return widgets.Text(value=str(value), **common)
    if control == "log-slider":
        low = math.log10(knob.min) if knob.min else math.log10(knob.default) - LOG_SPAN
        high = math.log10(knob.max) if knob.max else math.log10(knob.default) + LOG_SPAN
        if knob.min_exclusive and knob.min is not None and knob.min > 0:
            low += 0.1
        return widgets.FloatLogSlider(value=value, base=10, min=low, max=high, step=0.05, readout_format=".3g",
                                      continuous_update=False, **common)
    if knob.kind == "int":
        if control == "slider":
            return widgets.IntSlider(value=value, min=int(knob.min), max=int(knob.max), continuous_update=False,
                                     **common)
        return widgets.IntText(value=value, **common)
    if control == "slider":
        return widgets.FloatSlider(value=value, min=knob.min, max=knob.max, step=(knob.max - knob.min) / 100,
                                   readout_format=".3g", continuous_update=False, **common)
    return widgets.FloatText(value=value, **common)


class RunForm(widgets.VBox):
    """Preset and method pickers + knob form. ``values()`` is the flat dict a RunConfig is built from.

    ``preset`` names a run of :data:`alignlab.presets.PRESETS` (``"classroom"``) to start from: its method
    (unless ``method`` is given) and its values; picking one in the form's preset picker later sets them the
    same way. ``presets`` (knob name -> value) replace the declared defaults (and the preset's values), e.g.
    ``model="tiny-random"``. ``error`` shows why the current values are refused (empty when they are fine).
    """

    def __init__(self, method: str | None = None, preset: str = "", **presets: Any):
        preset_values = get_preset(preset).values() if preset else {}
        method = method or preset_values.pop("method", "dpo")
        preset_values.pop("method", None)
        self.presets = {"output_dir": str(default_runs_dir()), **preset_values, **presets}  # the runs folder now
        self.preset = widgets.Dropdown(options=[("none: your own settings", ""),
                                                *((p.title, p.name) for p in PRESETS.values())],
                                       value=preset, description="preset", style=STYLE,
                                       layout=widgets.Layout(width="520px"))
        self.preset_note = widgets.HTML()  # the preset's description and time estimate, once the form is built
        self.method = widgets.Dropdown(options=[(f"{get_method(n).title}  [{n}]", n) for n in method_names()],
                                       value=get_method(method).name, description="method", style=STYLE,
                                       layout=widgets.Layout(width="520px"))
        self.summary = widgets.HTML()
        self.error = widgets.HTML()
        self.inputs: dict[str, widgets.ValueWidget] = {}
        self.knobs: dict[str, Knob] = {}
        self.method_box = widgets.VBox()
        self._shown: str | None = None  # the method the form was last shown for
        common = common_knobs()
        unknown = set(self.presets) - {k.name for k in common} - {k.name for spec in map(get_method, method_names())
                                                                  for k in spec.knobs}
        if unknown:
            raise AlignLabError(f"{sorted(unknown)[0]}: not a knob of any method nor a run setting")
        for knob in common:
            self._add(knob)
        self.sections = {group: widgets.VBox([self.inputs[k.name] for k in common if k.group == group])
                         for group in KNOB_GROUPS}  # the run settings by declared group
        folded = [group for group in KNOB_GROUPS if group != "essential"]  # LoRA and more settings
        self.folded = widgets.Accordion(children=[self.sections[group] for group in folded],
                                        titles=tuple(KNOB_GROUPS[group] for group in folded), selected_index=None)
        self.method.observe(lambda _: self._show_method(strict=False), names="value")
        self.preset.observe(lambda change: self.apply_preset(change["new"]), names="value")
        self._show_method(strict=True)
        self.preset_note.value = self._preset_text(preset)
        super().__init__([self.preset, self.preset_note, self.method, self.summary, self.method_box,
                          self.sections["essential"], self.folded, self.error])

    def _preset_text(self, name: str) -> str:
        """The preset's description, then its time estimate from the runs of the form's runs folder."""
        if not name:
            return ""
        preset = get_preset(name)
        folder = self.inputs["output_dir"].value
        return (f"<div style='max-width:640px;color:#444'>{html.escape(preset.description)}<br>"
                f"<i>{html.escape(preset.time_estimate(list_runs(folder)))}</i></div>")

    def apply_preset(self, name: str) -> None:
        """Set the form to preset ``name``'s values (its settings, the declared defaults for everything else; the
        runs folder, run name and remote-code permission stay as they are). ``""``: keep the values, drop the note."""
        if self.preset.value != name:
            self.preset.value = name  # the picker's observer applies it
            return
        self.preset_note.value = self._preset_text(name)
        if name:
            self.set(**get_preset(name).values())

    def _add(self, knob: Knob, strict: bool = True) -> widgets.ValueWidget:
        """Widget for ``knob`` at its preset value; a preset another method's knob of that name
        refuses falls back to the default unless ``strict`` (the presets of the first method shown)."""
        value = self.presets.get(knob.name)
        if value is not None:
            try:
                value = knob.coerce(value)
            except AlignLabError:
                if strict:
                    raise
                value = None
        widget = knob_widget(knob, value)
        widget.observe(lambda _: self.check(), names="value")
        self.inputs[knob.name], self.knobs[knob.name] = widget, knob
        return widget

    def _show_method(self, strict: bool) -> None:
        spec = get_method(self.method.value)
        for name in [n for n in self.knobs if n not in {k.name for k in common_knobs()}]:
            del self.inputs[name], self.knobs[name]
        # the batch size and learning rate follow the method's own defaults (online DPO's batch is larger, SimPO's
        # rate lower) unless they were set: given to the form, or changed from the previous method's default
        for name in LAB_DEFAULTS:
            widget = self.inputs[name]
            if (self._shown is None and name not in self.presets) or (
                    self._shown is not None and widget.value == method_default(self._shown, name)):
                widget.value = method_default(spec.name, name)
        self._shown = spec.name
        own = [self._add(knob, strict) for knob in spec.knobs]
        self.method_box.children = own
        self.summary.value = (f"<div style='max-width:640px;color:#444'>{html.escape(spec.summary)}"
                              f"<br><i>{html.escape(spec.paper)}</i></div>")
        self.check()

    def values(self) -> dict[str, Any]:
        """Current form values (raw widget values), with ``method``."""
        return {"method": self.method.value, **{name: widget.value for name, widget in self.inputs.items()}}

    def set(self, **values: Any) -> None:
        """Set form values by knob name (``method`` first, so its knobs exist)."""
        if "method" in values:
            self.method.value = values.pop("method")
        for name, value in values.items():
            if name not in self.inputs:
                raise AlignLabError(f"{name}: not a knob of {self.method.value!r} nor a run setting")
            self.inputs[name].value = value

    def check(self) -> str:
        """Validate every input; show and return the first reason a value is refused ('' if none)."""
        reason = ""
        for name, widget in self.inputs.items():
            try:
                self.knobs[name].coerce(widget.value)
                widget.layout.border = None
            except AlignLabError as error:
                widget.layout.border = "1px solid #d33"
                reason = reason or str(error)
        self.show_error(reason)
        return reason

    def show_error(self, message: str) -> None:
        """Show ``message`` under the form (an empty message clears it)."""
        self.error.value = (f"<div style='color:#b00;font-weight:600'>&#9888; {html.escape(message)}</div>"
                            if message else "")

    def config(self) -> RunConfig | None:
        """The RunConfig of the current values, or None with the reason shown in the form."""
        if self.check():
            return None
        try:
            return RunConfig.from_dict(self.values())
        except AlignLabError as error:
            self.show_error(str(error))
            return None
