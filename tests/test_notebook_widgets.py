"""The JupyterLab widgets without a browser: forms from specs, refusals, live updates, stop, chat."""

import json
import queue
import time
from pathlib import Path

import ipywidgets as widgets
import pytest
from conftest import threads_ended, wait_for

from alignlab.config import common_knobs
from alignlab.errors import AlignLabError
from alignlab.generation import SamplingSettings
from alignlab.methods import get_method, method_names
from alignlab.methods.base import KNOB_GROUPS
from alignlab.panels import FRONTIER
from alignlab.rewards import reward_names
from alignlab.rundir import list_runs
from alignlab.ui.notebook import Chat, Lab, RunForm, RunsView, knob_widget, sweep, waiting
from alignlab.ui.notebook.runs import short_id
from alignlab.ui.notebook.sweeps import grid


@pytest.mark.parametrize("method", method_names())
def test_form_is_generated_from_the_method_spec(method):
    spec = get_method(method)
    form = RunForm(method)
    assert set(form.inputs) == {knob.name for knob in (*common_knobs(), *spec.knobs)}
    for knob in spec.knobs:
        widget = form.inputs[knob.name]
        assert widget.value == knob.default
        if knob.log_scale:
            assert isinstance(widget, widgets.FloatLogSlider)
        if knob.kind == "choice":
            assert isinstance(widget, widgets.Dropdown) and tuple(widget.options) == tuple(knob.choices)
        if knob.kind == "bool":
            assert isinstance(widget, widgets.Checkbox)
    config = form.config()
    assert config is not None and config.method == method and form.error.value == ""
    assert config.method_args == spec.defaults()


def test_switching_method_swaps_its_knobs():
    form = RunForm("dpo", loss_type="hinge", beta=0.3)
    assert form.inputs["loss_type"].value == "hinge"
    form.method.value = "kto"
    assert "loss_type" not in form.inputs and "desirable_weight" in form.inputs
    assert form.config().method == "kto" and form.inputs["beta"].value == pytest.approx(0.3)
    form.method.value = "online-dpo"  # its loss_type has no hinge: the preset gives way to the default
    assert form.inputs["loss_type"].value == "sigmoid" and form.config().method == "online-dpo"


def test_knob_widgets_follow_the_declaration():
    knobs = {knob.name: knob for knob in common_knobs()}
    assert isinstance(knob_widget(knobs["learning_rate"]), widgets.FloatLogSlider)
    assert isinstance(knob_widget(knobs["lora_dropout"]), widgets.FloatSlider)  # bounded 0..0.9
    assert isinstance(knob_widget(knobs["max_steps"]), widgets.IntText)  # 0..100000: a box, not a slider
    assert isinstance(knob_widget(knobs["lora_target_modules"]), widgets.Text)
    reward = knob_widget(knobs["reward"])  # pick a source or type reward-model:<run>, judge:<model>
    assert isinstance(reward, widgets.Combobox) and set(reward_names()) <= set(reward.options)
    beta = get_method("dpo").knob("beta")
    slider = knob_widget(beta, 0.5)
    assert slider.value == pytest.approx(0.5) and 10 ** slider.min > 0  # β > 0: the slider cannot reach 0
    box = knob_widget(get_method("dpo").knob("precompute_ref_log_probs"))
    assert isinstance(box, widgets.Checkbox) and box.layout.width == "auto"  # its whole name, not "precompute_r…"


@pytest.mark.parametrize("method", method_names())
def test_every_knob_gets_the_input_its_declaration_names(method):
    widget_of = {"checkbox": widgets.Checkbox, "dropdown": widgets.Dropdown, "picker": widgets.Combobox,
                 "text": widgets.Text, "slider": (widgets.IntSlider, widgets.FloatSlider),
                 "log-slider": widgets.FloatLogSlider, "number": (widgets.IntText, widgets.FloatText)}
    for knob in (*common_knobs(), *get_method(method).knobs):  # the Gradio form reads the same control
        widget = knob_widget(knob)
        assert isinstance(widget, widget_of[knob.control]), knob.name
        if knob.control == "picker":
            assert list(widget.options) == list(knob.suggestions())


def test_the_form_places_run_settings_by_their_declared_group():
    form = RunForm("dpo")
    for group, box in form.sections.items():
        assert [widget.description for widget in box.children] == [k.name for k in common_knobs() if k.group == group]
    assert form.sections["essential"] in form.children  # open
    assert form.folded.titles == (KNOB_GROUPS["lora"], KNOB_GROUPS["more"])  # folded
    assert list(form.folded.children) == [form.sections["lora"], form.sections["more"]]
    assert {"model", "reward", "max_steps", "probe_every"} <= {
        w.description for w in form.sections["essential"].children}


def test_chat_sliders_start_at_the_lab_sampling_defaults():
    from alignlab.ui.format import chat_settings

    assert Chat().settings() == chat_settings() == SamplingSettings(max_new_tokens=96)  # the app's chat starts here
    assert Chat(temperature=0.2, seed=3).settings() == chat_settings(temperature=0.2, seed=3)
    with pytest.raises(TypeError):
        Chat(temprature=0.2)


def test_presets_fill_the_form_and_unknown_names_are_refused():
    lab = Lab(method="dpo", beta=0.5, max_steps=7, model="tiny-random")
    assert lab.form.inputs["beta"].value == pytest.approx(0.5)
    assert lab.form.config().max_steps == 7
    with pytest.raises(AlignLabError, match="bogus"):
        Lab(bogus=1)


def test_the_tiny_random_model_is_offered_only_in_development_or_when_named(tmp_path, monkeypatch):
    from alignlab.models import DEV_ENV

    monkeypatch.delenv(DEV_ENV)  # a class, not the tests
    lab = Lab(output_dir=str(tmp_path))
    assert "tiny-random" not in lab.form.inputs["model"].options
    assert [value for _, value in lab.chat_with.options] == ["smollm2-135m-instruct"]
    named = Lab(model="tiny-random", output_dir=str(tmp_path))  # a quick trial names it: still there
    assert [value for _, value in named.chat_with.options] == ["tiny-random", "smollm2-135m-instruct"]


def test_bad_values_are_refused_in_the_form_with_the_reason(tmp_path):
    form = RunForm("dpo", output_dir=str(tmp_path))
    form.set(max_steps=-3)
    assert form.config() is None
    assert "max_steps: got -3, expected an integer &gt;= 0" in form.error.value
    assert form.inputs["max_steps"].layout.border  # the bad field is marked
    form.set(max_steps=3, max_completion_length=90, max_length=64)
    assert form.config() is None and "max_completion_length" in form.error.value
    form.set(max_length=96)
    assert form.config() is not None and form.error.value == ""


def test_start_refuses_bad_input_without_creating_a_run(tmp_path):
    lab = Lab(method="dpo", model="tiny-random", dataset=str(tmp_path / "missing.jsonl"), output_dir=str(tmp_path))
    assert lab.start() is None
    assert "dataset" in lab.form.error.value and "missing.jsonl" in lab.form.error.value
    assert list(tmp_path.iterdir()) == [] and lab.run is None and not lab.start_button.disabled


def test_figure_widget_opens_with_its_data_and_layout(monkeypatch):
    import ipywidgets.widgets.widget as widget_module
    import plotly.graph_objects as go

    from alignlab.ui.notebook.figure_widget import FigureWidget

    opened = []
    create_comm = widget_module.comm.create_comm
    monkeypatch.setattr(widget_module.comm, "create_comm", lambda **args: opened.append(args) or create_comm(**args))
    figure = FigureWidget(go.Figure(go.Scatter(x=[1, 2], y=[3, 4]), layout={"title": "t"}))
    state = opened[-1]["data"]["state"]  # the browser's first message: data and layout already in it
    assert state["_widget_data"][0]["y"] == [3, 4] and state["_widget_layout"]["title"]["text"] == "t"
    figure.add_scatter(x=[1], y=[1])
    assert len(figure.data) == 2 and len(opened) == 1


def test_live_points_draw_what_the_whole_history_draws():
    from alignlab.ui.notebook import LiveFigures
    from alignlab.ui.notebook.grid import grid_figure

    probe = lambda step: {"probe/reward": step / 5, "probe/kl": step / 50,  # noqa: E731
                          "probe/reward_se": step / 100, "probe/kl_se": step / 500}
    events = [{"step": step, "time": None, "metrics": {"loss": 1 / step, "rewards/margins": step / 10,
                                                       **(probe(step) if step % 10 == 0 else {})}}
              for step in range(1, 41)]
    live = LiveFigures(["dpo"])
    for start in range(0, 40, 8):  # as a run logs them, a few at a time
        live.add(events[start:start + 8], "run")
    whole = grid_figure(live.panels, live.rows)

    def look(figure) -> set[tuple]:
        return {(tuple(t.meta), t.name, t.mode, t.line.color, t.hovertemplate, t.fillcolor, t.showlegend,
                 tuple(t.x), tuple(t.y), tuple(t.error_y.array or ())) for t in figure.data}

    assert look(live.figure) == look(whole)
    assert live.line("Loss", "loss").mode == "lines"  # markers went once the curve grew long
    assert live.line(FRONTIER, FRONTIER).mode == "lines+markers+text" and len(live.line(FRONTIER, FRONTIER).x) == 4
    assert len(live.line(FRONTIER, FRONTIER).error_y.array) == 4
    band = live.line("Reward", "probe/reward_se")  # the ±1.96·se band under probe/reward
    assert band is not None and band.fill == "toself" and len(band.x) == 2 * 4
    assert [a.text for a in live.figure.layout.annotations] == [a.text for a in whole.layout.annotations]


def test_live_axes_start_padded_around_a_first_point_then_follow_and_a_kl_below_zero_is_noted():
    from alignlab.ui.figures import KL_HOVER, KL_NOTE
    from alignlab.ui.notebook import LiveFigures
    from alignlab.ui.notebook.grid import grid_figure

    live = LiveFigures(["dpo"])
    frontier = [panel.title for panel in live.panels].index(FRONTIER) + 1  # its subplot's axis number
    live.add([{"step": 0, "time": None, "metrics": {"probe/reward": 0.41, "probe/kl": 0.0}}], "run")
    assert live.figure.layout[f"xaxis{frontier}"].range == (-0.05, 0.05)  # not plotly's −1…1 around one point
    live.add([{"step": 2, "time": None, "metrics": {"probe/reward": 0.3, "probe/kl": -0.004}},
              {"step": 4, "time": None, "metrics": {"probe/reward": 0.5, "probe/kl": 0.02}}], "run")
    axis = live.figure.layout[f"xaxis{frontier}"]
    assert axis.autorange is True and axis.range is None and axis.zeroline  # it follows the points now
    assert list(live.line(FRONTIER, FRONTIER).hovertext) == ["", KL_HOVER, ""]
    assert list(live.line("KL from reference", "probe/kl").hovertext) == ["", KL_HOVER, ""]
    assert [note.text for note in live.figure.layout.annotations].count(KL_NOTE) == 2  # the KL panel and frontier
    whole = grid_figure(live.panels, live.rows)
    assert [note.text for note in live.figure.layout.annotations] == [note.text for note in whole.layout.annotations]
    assert list(live.line(FRONTIER, FRONTIER).marker.color) == [0, 2, 4]


def test_live_figure_shows_only_the_panels_rows_fill_and_lays_them_out_again_as_more_arrive():
    from alignlab.ui.notebook import LiveFigures
    from alignlab.ui.notebook.grid import ROW_HEIGHT

    live = LiveFigures(["dpo"])
    titles = [panel.title for panel in live.panels]
    layout = live.figure.layout

    def shown() -> list[str]:
        return [title for index, title in enumerate(titles) if layout.annotations[index].visible is not False]

    assert shown() == titles and len(titles) > 4  # before the first row: every panel, to fill
    live.add([{"step": 1, "time": None, "metrics": {"loss": 0.69}}], "run")
    assert shown() == ["Loss", FRONTIER] and layout.height == ROW_HEIGHT + 40  # one row, not a wall of empties
    loss, frontier = titles.index("Loss") + 1, titles.index(FRONTIER) + 1
    assert layout[f"xaxis{'' if loss == 1 else loss}"].domain == (0.0, 0.46)
    assert layout[f"xaxis{frontier}"].domain == (0.54, 1.0) and layout[f"yaxis{frontier}"].domain == (0.0, 1.0)
    hidden = [index + 1 for index, title in enumerate(titles) if title not in ("Loss", FRONTIER)]
    assert all(layout[f"xaxis{'' if i == 1 else i}"].visible is False for i in hidden)
    live.add([{"step": 2, "time": None, "metrics": {"loss": 0.6, "probe/reward": 0.3, "probe/kl": 0.1}}], "run")
    assert {"Reward", "KL from reference"} <= set(shown()) and layout.height == 2 * ROW_HEIGHT + 40
    live.redraw()  # the whole-history figure keeps the same panels
    assert [t for i, t in enumerate(titles) if live.figure.layout.annotations[i].visible is not False] == live.shown


def test_a_live_figure_sets_the_autorange_only_of_axes_its_lines_use():
    """plotly.js holds no axis that no trace uses once a figure has data; an update setting such an axis's
    autorange throws in the browser ("Error setting state: … '_inputDomain'", eight of them after a quickstart run
    whose probe at step 0 came before any training row). The probe-first order, as a run logs it."""
    import re

    from alignlab.ui.notebook import LiveFigures

    live = LiveFigures(["dpo"])
    sent = []  # (axes named with an autorange, axes the traces use) for each layout change sent to the browser

    def record(layout: dict | None) -> None:
        named = {key.split(".")[0] for key in layout or {} if re.fullmatch(r"[xy]axis\d*\.autorange", key)}
        sent.append((named, {f"{axis[0]}axis{axis[1:]}" for trace in live.figure.data
                             for axis in (trace.xaxis, trace.yaxis)}))

    send_update, send_relayout = live.figure._send_update_msg, live.figure._send_relayout_msg
    live.figure._send_update_msg = lambda **message: record(message.get("relayout_data")) or send_update(**message)
    live.figure._send_relayout_msg = lambda layout, *rest: record(layout) or send_relayout(layout, *rest)
    live.add([{"step": 0, "time": None, "metrics": {"probe/reward": 0.04, "probe/kl": 0.0, "probe/reward_se": 0.05,
                                                     "probe/kl_se": 0.001}}], "run")
    live.add([{"step": 1, "time": None, "metrics": {"loss": 0.69, "rewards/margins": 0.0, "rewards/accuracies": 0.0,
                                                     "rewards/chosen": 0.0, "rewards/rejected": 0.0}},
              {"step": 2, "time": None, "metrics": {"loss": 0.7, "rewards/margins": -0.01, "rewards/accuracies": 0.0,
                                                     "rewards/chosen": -0.003, "rewards/rejected": 0.01,
                                                     "probe/reward": 0.0, "probe/kl": -0.01}}], "run")
    assert any(named for named, _ in sent)  # axes were fitted as lines arrived
    assert all(named <= used for named, used in sent), [named - used for named, used in sent if named - used]
    loss = live.figure.layout.xaxis  # the Loss panel fitted once its own line arrived
    assert loss.autorange is True and loss.tickmode == "linear"


def test_sweep_grid_is_every_combination_validated_up_front():
    configs, labels = grid("dpo", beta=[0.1, 0.5], loss_type=["sigmoid", "ipo"], max_steps=5, model="tiny-random")
    assert labels == ["beta=0.1, loss_type=sigmoid", "beta=0.1, loss_type=ipo",
                      "beta=0.5, loss_type=sigmoid", "beta=0.5, loss_type=ipo"]
    assert [(c.method_args["beta"], c.method_args["loss_type"], c.max_steps) for c in configs] == [
        (0.1, "sigmoid", 5), (0.1, "ipo", 5), (0.5, "sigmoid", 5), (0.5, "ipo", 5)]
    assert configs[1].run_name == "beta-0.1_loss_type-ipo"  # a safe label, as it shows in the run id
    with pytest.raises(AlignLabError, match="beta: got -1"):
        grid("dpo", beta=[0.1, -1])


# --- one real tiny-random run through the Lab, shared by the tests below ---------------------------
STEPS_BEFORE_STOP = 3


@pytest.fixture(scope="module")
def live_run(tmp_path_factory, request):
    """Start a 50-step run from the Lab, see its first points reach the figure, chat, then press Stop."""
    pairs = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    pairs.write_text("".join(f'{{"prompt": "Review {i}: the film", "chosen": " was wonderful.", "rejected": '
                             '" was awful."}\n' for i in range(12)))
    output_dir = tmp_path_factory.mktemp("runs")
    lab = Lab(method="dpo", model="tiny-random", dataset=str(pairs), max_steps=50, batch_size=2, max_length=48,
              max_completion_length=8, probe_every=2, output_dir=str(output_dir))
    lab.start_button.click()
    handle = lab.run
    assert handle is not None, lab.form.error.value
    arrived: set[int] = set()  # logged steps whose point is in the Loss figure
    deadline = time.time() + 120
    while len(arrived) < STEPS_BEFORE_STOP and time.time() < deadline and not handle.done:
        loss = lab.live.line("Loss", "loss")
        shown = set(loss.x) if loss is not None else set()
        for event in handle.history:
            if event["step"] in shown and event["step"] not in arrived and "loss" in event["metrics"]:
                arrived.add(event["step"])
        time.sleep(0.005)
    chat = Chat(handle, max_new_tokens=4)
    reply_during_training = chat.send("I went in with low expectations and")
    state_during_chat = handle.state
    lab.stop_button.click()
    handle.wait(120)
    wait_for(lambda: threads_ended(f"progress-{handle.run_id}", f"figures-{handle.run_id}"), 30,
             what="the progress bar and the figures drawing the run's end")
    return dict(lab=lab, handle=handle, arrived=arrived, chat=chat, reply=reply_during_training,
                state_during_chat=state_during_chat, output_dir=output_dir)


def test_live_points_reach_the_figure_while_the_run_trains(live_run):
    """How fast they arrive is a benchmark figure (``python -m bench``, overhead section), not asserted here."""
    arrived, lab = live_run["arrived"], live_run["lab"]
    assert len(arrived) >= STEPS_BEFORE_STOP, arrived
    steps = [event["step"] for event in live_run["handle"].history if "loss" in event["metrics"]]
    assert list(lab.live.line("Loss", "loss").x) == steps  # redrawn whole when the run ended
    margins = lab.live.line("Reward margin", "rewards/margins")
    assert len(margins.x) >= STEPS_BEFORE_STOP and all(isinstance(y, float) for y in margins.y)
    frontier = lab.live.line(FRONTIER, FRONTIER)  # the probe ran at step 0 and every 2 steps
    assert frontier is not None and frontier.customdata[0] == 0 and frontier.x[0] == pytest.approx(0.0, abs=1e-3)


def test_stop_button_stops_the_run_and_the_form_is_ready_again(live_run):
    lab, handle = live_run["lab"], live_run["handle"]
    assert handle.state == "stopped"
    assert STEPS_BEFORE_STOP <= handle.status["step"] < 50
    assert lab.progress.bar.bar_style == "warning" and "stopped at step" in lab.progress.text.value
    assert not lab.start_button.disabled and lab.stop_button.disabled
    assert (handle.run_dir / "model").exists()


def test_chat_answers_during_training_with_both_columns_and_rewards(live_run):
    reply, chat = live_run["reply"], live_run["chat"]
    assert live_run["state_during_chat"] == "running"
    assert reply is not None and reply.done
    assert reply.reference_reward is not None and reply.aligned_reward is not None
    assert "Reference" in chat.reference_column.value and "reward (sentiment)" in chat.aligned_column.value
    assert "I went in with low expectations and" in chat.aligned_column.value


def test_chat_starts_in_the_mode_the_run_trained_in_and_says_why(tmp_path):
    run = tmp_path / "20250101-120000-dpo-ab12"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"method": "dpo", "dataset": "positive-reviews"}))
    chat = Chat(str(run))  # nothing loads before the first message
    assert chat.mode.value == "chat" and "chat-formatted review requests" in chat.mode_note.value
    chat.bind("tiny-random")
    assert chat.mode.value == "chat" and "base model" in chat.mode_note.value


def test_chat_after_training_is_multi_turn_and_clears(live_run):
    chat = Chat(str(live_run["handle"].run_dir), max_new_tokens=3)
    chat.send("The film")
    chat.send("The ending")
    assert [turn["message"] for turn in chat.turns] == ["The film", "The ending"]
    assert all(turn["aligned_reward"] is not None for turn in chat.turns)
    assert "The ending" in chat.reference_column.value and len(chat.histories[1]) == 4
    chat.clear()
    assert chat.turns == [] and "The film" not in chat.aligned_column.value
    assert chat.send("   ") is None and "empty message" in chat.status.value


def test_finished_run_shows_in_the_runs_and_chat_tabs(live_run):
    lab, handle = live_run["lab"], live_run["handle"]
    assert handle.run_id in lab.runs.picker.value  # the Runs tab selects the run that just ended
    assert lab.runs.figure is not None and "stopped" in lab.runs.table.value
    view = RunsView(live_run["output_dir"], selected=[handle])
    lines = {tuple(trace.meta) for trace in view.figure.data}
    assert {(FRONTIER, short_id(handle.run_id), FRONTIER), ("Loss", short_id(handle.run_id), "loss")} <= lines
    assert any(value is handle for _, value in lab.chat_with.options)
    label = next(label for label, value in lab.chat_with.options if value is handle)
    # Pickers name the run by method, β, steps and its final probe reward (probe_every=2), then its id.
    run = next(run for run in list_runs(live_run["output_dir"]) if run["run_id"] == handle.run_id)
    probed = [row["probe/reward"] for row in run["history"] if row.get("probe/reward") is not None]
    beta = handle.config.method_args["beta"]  # the run's own (the default)
    described = f"dpo · β {beta:g} · {run['steps']} steps · reward {probed[-1]:+.2f} — {handle.run_id}"
    assert label == f"this run: {described} (stopped)" and lab.chat.run is handle
    assert (f"{described} (stopped)", handle.run_id) in lab.runs.picker.options


def test_what_changed_shows_under_the_curves_once_the_run_ended(live_run):
    lab = live_run["lab"]
    assert lab.wait(120) == "stopped"  # returns once what changed is shown
    shown = lab.changes.value
    assert "What changed" in shown and "not cherry-picked" in shown and "reward: sentiment" in shown
    assert shown.count("<tr>") == 1 + 3  # header and three held-out prompts
    assert lab.changes in lab.tabs.children[0].children
    assert "(stopped)" in lab.chat.title.value and "training now" not in lab.chat.title.value


def test_the_drift_panel_and_the_metric_explainer_fill_from_the_runs_own_numbers(live_run):
    import html
    import re

    from alignlab.drift import verdict
    from alignlab.metrics import PROBE_KL, PROBE_LENGTH_RATIO, PROBE_REF_PPL_RATIO
    from alignlab.panels import DRIFT, rows_from_events
    from alignlab.ui.notebook.grid import verdict_name

    live, handle = live_run["lab"].live, live_run["handle"]
    rows = rows_from_events(handle.history)
    probes = [row for row in rows if PROBE_KL in row]
    assert len(probes) >= 2 and probes[0]["step"] == 0  # step 0, then every 2 steps
    for key in (PROBE_LENGTH_RATIO, PROBE_REF_PPL_RATIO):
        line = live.line(DRIFT, key)
        assert list(line.x) == [row["step"] for row in probes] and line.y[0] == 1.0  # step 0 is the reference
    index = [panel.title for panel in live.panels].index(DRIFT)
    note = next(note for note in live.figure.layout.annotations if note.name == verdict_name(index))
    words = html.unescape(re.sub(r"<[^>]+>", "", note.text.replace("<br>", " ")))
    assert words == verdict(rows).text  # the run's own verdict, in its panel
    said = live.explainer.value
    last = [row for row in rows if "rewards/chosen" in row][-1]
    plain = not live_run["handle"].config.method_args.get("sft_weight")  # else DPO + the chosen likelihood (default)
    loss_title = "Loss at 0.693 (ln 2)" if plain else "Loss: DPO plus the chosen answer&#x27;s likelihood"  # escaped
    assert "What these curves mean" in said and loss_title in said
    assert f"step {last['step']}: chosen {last['rewards/chosen']:+.3f}" in said  # the run's numbers
    assert live.explainer in live.children and live.explainer.layout.display is None


# --- waiting in a cell: widget events handled meanwhile, an interrupt stops the runs cleanly ---------------
TINY_RUN = dict(model="tiny-random", max_steps=50, batch_size=2, max_length=48, max_completion_length=8,
                probe_every=0)


@pytest.fixture
def pairs(tmp_path) -> str:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(f'{{"prompt": "Review {i}: the film", "chosen": " was wonderful.", "rejected": '
                            '" was awful."}\n' for i in range(12)))
    return str(path)


def interrupt_when(monkeypatch, condition) -> list[float]:
    """Stand in for the wait's widget-event hook: record each call, and raise KeyboardInterrupt (as the
    kernel's interrupt would) on the first call where ``condition()`` holds."""
    calls: list[float] = []

    def process_ui_events(seconds: float = waiting.POLL_S) -> None:
        calls.append(seconds)
        if condition():
            raise KeyboardInterrupt
        time.sleep(seconds)

    monkeypatch.setattr(waiting, "process_ui_events", process_ui_events)
    return calls


def test_outside_a_kernel_waiting_just_sleeps():
    assert waiting.widget_kernel() is None
    started = time.monotonic()
    assert waiting.wait_until(lambda: False, timeout=0.12) is False
    assert time.monotonic() - started >= 0.1  # it waited out the timeout
    assert waiting.wait_until(lambda: True) is True


def test_interrupting_lab_wait_stops_the_run_and_saves_it(tmp_path, pairs, monkeypatch):
    lab = Lab(method="dpo", dataset=pairs, output_dir=str(tmp_path), **TINY_RUN)
    handle = lab.start()
    assert handle is not None, lab.form.error.value
    calls = interrupt_when(monkeypatch, lambda: bool(handle.history))
    with pytest.raises(KeyboardInterrupt, match=f"run {handle.run_id} stopped at step"):
        lab.wait()
    assert calls  # widget events were handled while the cell waited
    assert handle.done and handle.state == "stopped" and 1 <= handle.status["step"] < 50
    assert json.loads((handle.run_dir / "status.json").read_text())["state"] == "stopped"
    assert (handle.run_dir / "model").exists()  # the adapter trained so far is saved
    assert lab.stop_button.disabled


def test_interrupting_a_sweep_stops_the_run_in_progress_and_skips_the_rest(tmp_path, pairs, monkeypatch):
    output_dir = tmp_path / "runs"
    calls = interrupt_when(monkeypatch, lambda: any(run["steps"] for run in list_runs(output_dir)))
    with pytest.raises(KeyboardInterrupt, match="stopped at step .*; 1 more not started"):
        sweep("dpo", beta=[0.1, 0.5], show=False, dataset=pairs, output_dir=str(output_dir), **TINY_RUN)
    assert calls
    runs = list_runs(output_dir)
    assert len(runs) == 1 and runs[0]["state"] == "stopped" and 1 <= runs[0]["steps"] < 50
    assert (Path(runs[0]["path"]) / "model").exists()


def test_a_click_reaches_its_widget_while_a_cell_waits_in_a_real_kernel(tmp_path):
    """No browser: a kernel runs a cell that waits; a Button click sent meanwhile (the comm message a
    browser sends) is handled during the wait, and a cell queued meanwhile runs after the waiting one."""
    manager = pytest.importorskip("jupyter_client.manager")
    kernel, client = manager.start_new_kernel(kernel_name="python3")
    outputs: list[dict] = []
    try:
        setup = client.execute_interactive(
            "import ipywidgets, time\nfrom alignlab.ui.notebook.waiting import wait_until\nclicks = []\n"
            "button = ipywidgets.Button()\nbutton.on_click(lambda _: clicks.append(time.monotonic()))\n"
            "print(button.model_id)", timeout=120, output_hook=lambda msg: outputs.append(msg))
        assert setup["content"]["status"] == "ok"
        model_id = next(m["content"]["text"].strip() for m in outputs if m["msg_type"] == "stream")
        polled = tmp_path / "polled"  # touched by the wait's first check: the cell waits from then on
        waiting_cell = client.execute(f"import pathlib\npolled = pathlib.Path({str(polled)!r})\n"
                                      "start = time.monotonic()\n"
                                      "clicked = wait_until(lambda: polled.touch() or bool(clicks), 20)\n"
                                      "print('clicked', clicked, 'after', round(time.monotonic() - start, 1))")
        wait_for(polled.exists, 60, every=0.02, what="the cell waiting")
        click = {"method": "custom", "content": {"event": "click"}}
        client.shell_channel.send(client.session.msg("comm_msg", {"comm_id": model_id, "data": click}))
        next_cell = client.execute("print('next cell sees', len(clicks), 'click')")
        printed: list[tuple[str, str]] = []
        idle: set[str] = set()
        deadline = time.monotonic() + 60
        while idle != {waiting_cell, next_cell} and time.monotonic() < deadline:
            try:
                msg = client.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            parent = msg["parent_header"].get("msg_id")
            if msg["msg_type"] == "stream":
                printed.append((parent, msg["content"]["text"].strip()))
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                idle.add(parent)
        assert [parent for parent, _ in printed] == [waiting_cell, next_cell], printed
        assert printed[0][1].split()[1] == "True", printed  # handled during the wait: wait_until saw the click
        assert printed[1][1] == "next cell sees 1 click"
    finally:
        client.stop_channels()
        kernel.shutdown_kernel(now=True)


def test_the_batch_size_follows_the_methods_own_default_unless_the_user_set_it():
    """Online DPO's default batch is 16 completions (8 pairs a step), the lab's is 8: picking the method shows its
    own, a batch the user typed stays through method changes, and a batch given to the form is kept."""
    form = RunForm("dpo")
    assert form.inputs["batch_size"].value == 8
    form.method.value = "online-dpo"
    assert form.inputs["batch_size"].value == 16 and form.config().batch_size == 16
    form.method.value = "rloo"
    assert form.inputs["batch_size"].value == 8  # back to the lab's, as the user never changed it
    form.inputs["batch_size"].value = 12
    form.method.value = "online-dpo"
    assert form.inputs["batch_size"].value == 12  # the user's
    assert RunForm("online-dpo").inputs["batch_size"].value == 16
    assert RunForm("online-dpo", batch_size=4).inputs["batch_size"].value == 4
    simpo = RunForm("simpo")  # SimPO's own learning rate, shown and run
    assert simpo.inputs["learning_rate"].value == pytest.approx(3e-4) and simpo.config().learning_rate == 3e-4
    simpo.method.value = "dpo"
    assert simpo.inputs["learning_rate"].value == pytest.approx(1e-3)
