"""The Learn tab: one card per method, generated from its MethodSpec, so a workshop can run from the app.

Each card says what the method optimises (its summary), which paper it comes from, what data it needs,
whether it keeps a reference model, and what every knob does (the knob's own help text and range).
A card covers the settings every method shares, and a last one shows the worked examples of drift
(:mod:`alignlab.worked_examples`): shipped runs drawn with the drift panel and verdict a live run gets.
"""

from __future__ import annotations

import gradio as gr

from alignlab.data_formats import FORMATS
from alignlab.measured import measured_text
from alignlab.methods import Knob, MethodSpec, registry
from alignlab.panels import DRIFT_PANEL
from alignlab.ui.figures import frontier_figure, panel_figure
from alignlab.ui.gradio.forms import form_knobs
from alignlab.worked_examples import WorkedExample, worked_examples

EXAMPLES_INTRO = """\
Real runs, shipped with the lab so a room can see them without waiting: each is drawn with the drift panel a live
run gets (length and the reference's perplexity of the samples against the reference's own, and the share that
followed the instruction), its verdict, and its path on the reward-vs-KL plot. The command under each title makes
the run again.
"""

INTRO = """\
**How to read the lab.** Every method starts from a *reference* model (the base model before training)
and moves a *policy* toward answers people (or a reward) prefer. Two numbers tell the story:
the **reward** the policy's answers get, and the **KL divergence** from the reference — how far it drifted.
A good run buys reward with little drift: on the *reward vs KL* plot, up and to the left is better.
**β** sets the price of drift (higher β = stay closer to the reference); **clipping** (a gradient-norm cap,
or PPO-style ratio clipping where a method has it) limits how far one update can move the model.
"""


def _range(knob: Knob) -> str:
    return knob.expected() + f"; default `{knob.default!r}`"


def knob_rows(knobs: tuple[Knob, ...] | list[Knob]) -> str:
    """A Markdown table: knob, what it does, accepted values and default."""
    if not knobs:
        return "_No method-specific knobs: the shared settings below are all it needs._\n"
    lines = ["| knob | what it does | values |", "|---|---|---|"]
    for knob in knobs:
        lines.append(f"| `{knob.name}` | {knob.help.replace('|', '/')} | {_range(knob).replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def method_card(spec: MethodSpec) -> str:
    """Markdown for one method; its measured figures come from the benchmark's file (:mod:`alignlab.measured`),
    followed by the method's lesson in words."""
    measured = " ".join(filter(None, [measured_text(spec.name), spec.lesson[:1].upper() + spec.lesson[1:] + "."
                                      if spec.lesson else ""]))
    reference = ("keeps a frozen **reference** model (with LoRA: the same weights, adapter off)"
                 if spec.uses_reference else "needs **no reference** model")
    output = "a reward model (a scorer, not a chatbot)" if spec.model_kind == "sequence-classifier" else "a text model"
    columns = ", ".join(FORMATS.get(spec.data_format, ()))
    own = ", ".join(f"{name.replace('_', ' ')} {value:g}" for name, value in spec.run_defaults.items())
    return (f"{spec.summary}\n\n"
            f"- **Name:** `{spec.name}` (CLI: `alignlab train --method {spec.name}`)\n"
            f"- **Paper:** {spec.paper}\n- **Data:** {spec.data_format} ({columns})\n"
            f"- **Trains:** {output}; {reference}\n"
            + (f"- **Its own defaults:** {own}, where the other methods take the lab's\n" if own else "")
            + (f"- **Measured at the defaults:** {measured}\n" if measured else "")
            + f"\n{knob_rows(spec.knobs)}")


def example_text(example: WorkedExample) -> str:
    """Markdown for one worked example: its command, what its probes show, its verdict, the lesson and the machine."""
    said = example.verdict()
    mark = "" if said is None else ("**Alarm:** " if said.alarm else "**Steady:** ") + said.text
    return "\n\n".join(filter(None, [f"#### {example.title}", f"`{example.command}`", example.summary(), mark,
                                       example.lesson, f"_Ran on {example.machine}._"]))


def create_worked_examples() -> None:
    """The worked examples of drift, each its words and two plots (drift panel, reward vs KL)."""
    gr.Markdown(EXAMPLES_INTRO)
    for example in worked_examples():
        runs = {example.name: list(example.rows)}
        gr.Markdown(example_text(example), elem_classes=["lab-card"], elem_id=f"example-{example.name}")
        with gr.Row():
            gr.Plot(panel_figure(DRIFT_PANEL, runs, overlay=False), show_label=False)
            gr.Plot(frontier_figure(runs), show_label=False)


def create_learn_tab() -> None:
    """Build the Learn tab: an intro and one card per registered method."""
    gr.Markdown(INTRO, elem_id="learn-intro")
    for name, spec in registry().items():
        with gr.Accordion(f"{spec.title}", open=name == "dpo", elem_id=f"learn-{name}"):
            gr.Markdown(method_card(spec), elem_classes=["lab-card"])
    with gr.Accordion("Settings every method shares", open=False, elem_id="learn-common"):
        gr.Markdown(knob_rows(form_knobs()), elem_classes=["lab-card"])
    if worked_examples():
        with gr.Accordion("Worked examples: drift while it happens", open=False, elem_id="learn-examples"):
            create_worked_examples()
