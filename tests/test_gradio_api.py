"""The Gradio app through its API (gradio_client) against a launched server, plus its guards.

One module-wide app and one real tiny-random DPO run trained by a worker process: start it, read its
curves while it trains, stop it (the run saves), then list, chat with, export and delete it.
"""

from __future__ import annotations

import inspect
import json
import re

import gradio as gr
import pytest
from conftest import wait_for
from gradio_client import Client
from gradio_client.exceptions import AppError, AuthenticationError

from alignlab.config import RunConfig, common_knobs
from alignlab.errors import AlignLabError
from alignlab.generation import SamplingSettings
from alignlab.methods import get_method, method_names, registry
from alignlab.panels import FRONTIER, merged_panels
from alignlab.ui.gradio.app import create_app
from alignlab.ui.gradio.components.plot_grid import create_plot_grid
from alignlab.ui.gradio.components.runs import comparison_figures, comparison_slots
from alignlab.ui.gradio.forms import APP_OWNED, config_from_form, form_knobs, knob_input, method_input_name
from alignlab.ui.gradio.server import parse_auth, serve
from alignlab.ui.gradio.uploads import MAX_BYTES, UploadStore

pytestmark = pytest.mark.timeout(300)
QUICK = dict(model="tiny-random", batch_size=2, max_length=64, max_completion_length=16, probe_every=0)



@pytest.fixture(scope="module")
def app(served_app, tmp_path_factory):
    return served_app(tmp_path_factory.mktemp("app") / "runs")


@pytest.fixture(scope="module")
def client(app):
    return Client(app[1], verbose=False)


@pytest.fixture(scope="module")
def stopped_run(app, client):
    """A tiny-random DPO run started through the API, followed until it logged steps, then stopped."""
    demo, _ = app
    message = client.predict(method="dpo", max_steps=500, api_name="/start_run", **QUICK)
    assert message.startswith("Queued job")
    status = wait_for(lambda: (s := client.predict(api_name="/job_status"))["state"] == "running" and s, 120)
    assert status["run_id"] and status["method"] == "dpo"
    second = client.predict(method="kto", api_name="/start_run", **QUICK)
    assert "behind 1 other job" in second  # one job at a time: the second waits in the visible queue
    assert client.predict(api_name="/job_status")["queued"] == 1
    assert client.predict(api_name="/cancel_queued") == "Cancelled 1 queued job(s)."
    status = wait_for(lambda: len((s := client.predict(api_name="/job_status"))["rows"]) >= 2 and s, 180)
    client.predict(api_name="/stop_run")
    final = wait_for(lambda: (s := client.predict(api_name="/job_status"))["state"] not in ("starting", "running")
                     and s, 180)
    return {"live": status, "final": final, "run_dir": demo.services.runs_dir / status["run_id"]}


def test_start_read_curves_stop(stopped_run):
    live = stopped_run["live"]
    steps = [row["step"] for row in live["rows"]]
    assert steps == sorted(steps) and steps[0] >= 1
    assert all(isinstance(row.get("loss"), float) for row in live["rows"])
    final = stopped_run["final"]
    assert final["state"] == "stopped" and final["error"] is None
    assert 2 <= final["step"] < 500  # stopped early, after the rows we saw
    status = json.loads((stopped_run["run_dir"] / "status.json").read_text())
    assert status["state"] == "stopped"
    assert (stopped_run["run_dir"] / "model" / "adapter_config.json").exists()


def test_the_queue_names_the_run_it_follows(app, stopped_run):
    """The worker is told the run id (``--run-id``): the queue never guesses which new folder is its run."""
    run_dir = stopped_run["run_dir"].resolve()
    job = next(job for job in app[0].services.jobs.jobs if job.run_id == run_dir.name)
    command = job.log_path.read_text().splitlines()[0]
    assert f"--run-id {run_dir.name} " in command and job.run_dir.resolve() == run_dir


def test_the_form_is_generated_from_every_method_and_the_common_knobs(client):
    names = {p["parameter_name"] for p in client.view_api(return_format="dict")["named_endpoints"]["/start_run"]
             ["parameters"]}
    expected = {"method", "model", "dataset"} | {k.name for k in common_knobs() if k.name not in APP_OWNED}
    expected |= {method_input_name(name, knob.name) for name, spec in registry().items() for knob in spec.knobs}
    assert names == expected


@pytest.mark.parametrize("method", method_names())
def test_knob_inputs_follow_the_declarations(method):
    widget_of = {"checkbox": gr.Checkbox, "dropdown": gr.Dropdown, "picker": gr.Dropdown, "text": gr.Textbox,
                 "slider": gr.Slider, "log-slider": gr.Number, "number": gr.Number}  # Gradio has no log slider
    for knob in (*form_knobs(), *get_method(method).knobs):
        component = knob_input(knob, render=False)
        assert isinstance(component, widget_of[knob.control]), knob.name
        assert component.value == knob.default and knob.help in component.info
        if knob.kind == "choice":
            assert [value for _, value in component.choices] == list(knob.choices)
        if knob.control == "picker":  # the declared suggestions, and typed values too
            assert [value for _, value in component.choices] == list(knob.suggestions())
            assert component.allow_custom_value
    values = {knob.name: knob.default for knob in form_knobs()}
    values.update({method_input_name(method, knob.name): knob.default for knob in get_method(method).knobs})
    config = config_from_form(method, "tiny-random", "positive-reviews", values, "runs", False)
    assert config.method_args == get_method(method).defaults()


def test_comparing_runs_of_two_methods_overlays_their_logged_panels():
    dpo = {"run_id": "a", "method": "dpo", "history": [
        {"step": 0, "probe/reward": 0.1, "probe/kl": 0.0},
        {"step": 1, "loss": 0.69, "rewards/margins": 0.01, "rewards/chosen": 0.02, "rewards/rejected": 0.01}]}
    kto = {"run_id": "b", "method": "kto", "history": [{"step": 1, "loss": 0.5, "kl": 0.2}]}
    figures = comparison_figures([dpo, kto], ["a", "b"])
    titles = [figure.layout.title.text for figure in figures]
    assert titles[0] == "Loss" and titles[-1] == "Reward vs KL from reference"
    assert "Preference accuracy" not in titles  # no run logged rewards/accuracies
    loss = figures[0]
    assert sorted(trace.name for trace in loss.data) == ["a", "b"]  # one line per run
    assert [trace.name for trace in figures[-1].data] == ["a"]  # only a has probe points


@pytest.fixture(scope="module")
def built_app(tmp_path_factory):
    """The app's page, built and not served (its layout, components and their starting values)."""
    demo = create_app(tmp_path_factory.mktemp("built") / "runs")
    yield demo
    demo.services.jobs.close()


def test_comparing_runs_of_every_method_keeps_every_panel_and_the_frontier(built_app):
    every_key = {"step": 1, **{key: 0.5 for panel in merged_panels(method_names()) for key in panel.keys}}
    runs = [{"run_id": name, "method": name, "history": [every_key]} for name in method_names()]
    figures = comparison_figures(runs, method_names())
    assert len(figures) == len(merged_panels(method_names())) + 1 and figures[-1].layout.title.text == FRONTIER
    slots = [block for block in built_app.blocks.values()
             if str(getattr(block, "elem_id", "")).startswith("runs-plot-")]
    assert len(slots) == comparison_slots() == len(figures)  # sized from the panel policy
    with gr.Blocks():
        grid = create_plot_grid(comparison_slots(), "test")
    shown = [update for update in grid.updates(figures)[len(grid.rows):] if update["visible"]]
    assert [update["value"] for update in shown] == figures  # the frontier keeps its slot, last
    with pytest.raises(ValueError, match="plot slots"):  # never a figure silently dropped
        grid.updates(figures + figures[:1])


def test_the_dataset_preview_opens_with_the_built_in_rows(built_app):
    from alignlab.data import load_rows
    from alignlab.task import BUILTIN_TASK

    table = next(block for block in built_app.blocks.values() if getattr(block, "elem_id", None) == "train-preview")
    rows = load_rows(BUILTIN_TASK, get_method("dpo").data_format, "dpo")
    assert table.value["headers"] == ["prompt", "chosen", "rejected"]
    assert 0 < len(table.value["data"]) <= len(rows) and table.value["data"][0][0].startswith("[{'role': 'user'")


def test_each_job_state_has_its_own_colour():
    from alignlab.ui.gradio.style import CSS

    rules = re.findall(r"([^{}]+)\{([^{}]*)\}", CSS)

    def colour(state: str) -> str | None:
        """The colour a browser gives ``.lab-state`` in ``.lab-progress.<state>``: of the rules that set one,
        the most specific, the later of equals."""
        chosen = None
        for selectors, body in rules:
            value = re.search(r"(?<![-\w])color:\s*([^;]+)", body)
            for selector in (part.strip() for part in selectors.split(",")):
                matches = value and selector in (".lab-state", f".lab-progress.{state} .lab-state")
                if matches and (chosen is None or selector.count(".") >= chosen[0]):
                    chosen = (selector.count("."), value.group(1).strip())
        return chosen and chosen[1]

    colours = {state: colour(state) for state in ("running", "finished", "stopped", "failed")}
    assert None not in colours.values() and len(set(colours.values())) == 4, colours


def test_chat_sliders_start_at_the_lab_sampling_defaults_with_room_for_two_sentences(built_app):
    from alignlab.ui.format import CHAT_MAX_NEW_TOKENS, chat_settings

    start = chat_settings()  # the notebook's chat starts there too
    assert start == SamplingSettings(max_new_tokens=CHAT_MAX_NEW_TOKENS) and CHAT_MAX_NEW_TOKENS > 48
    values = {block.elem_id: block.value for block in built_app.blocks.values()
              if getattr(block, "elem_id", None) in ("chat-max-new-tokens", "chat-temperature", "chat-top-p",
                                                     "chat-seed")}
    assert values == {"chat-max-new-tokens": start.max_new_tokens, "chat-temperature": start.temperature,
                      "chat-top-p": start.top_p, "chat-seed": start.seed}


def test_the_queued_message_under_start_is_replaced_when_its_job_ends(tmp_path):
    from alignlab.ui.gradio.components.job_view import end_message
    from alignlab.ui.gradio.jobs import Job

    job = Job(1, RunConfig(model="tiny-random", max_steps=12), tmp_path / "config.json", tmp_path / "log",
              state="running", run_dir=tmp_path / "20250101-120000-dpo-ab12")
    assert end_message(job, {"job": 1, "state": "starting"}) is None  # still training: "Queued job 1…" stays
    job.state = "finished"
    text = end_message(job, {"job": 1, "state": "running"})
    assert text.startswith("Job 1 (20250101-120000-dpo-ab12) finished") and "Queued" not in text
    assert end_message(job, {"job": 1, "state": "finished"}) is None  # said once, then left alone
    assert end_message(job, {}) is None  # a freshly opened page keeps its empty line
    job.state = "stopped"
    assert "stopped" in end_message(job, {"job": 1, "state": "running"})
    assert end_message(None, {"job": 1, "state": "running"}) is None


def test_the_train_tab_shows_the_drift_panel_with_its_verdict_and_explains_a_dpo_run(tmp_path, built_app):
    from alignlab.panels import DRIFT
    from alignlab.ui.gradio.components.job_view import job_explainer, job_figures
    from alignlab.ui.gradio.jobs import Job

    rows = [{"step": 0, "probe/reward": 0.05, "probe/kl": 0.0, "probe/follow": 0.31, "probe/follow_se": 0.08,
             "probe/length_ratio": 1.0, "probe/ref_ppl_ratio": 1.0},
            {"step": 1, "loss": 0.6931, "rewards/chosen": 0.0, "rewards/rejected": 0.0, "rewards/margins": 0.0,
             "rewards/accuracies": 0.0},
            {"step": 12, "loss": 0.41, "rewards/chosen": -0.3, "rewards/rejected": -1.2, "rewards/margins": 0.9,
             "rewards/accuracies": 1.0, "probe/reward": 0.92, "probe/kl": 27.1, "probe/follow": 0.0,
             "probe/follow_se": 0.0, "probe/length_ratio": 0.7, "probe/ref_ppl_ratio": 1.4}]
    plain_dpo = RunConfig.from_dict({"model": "tiny-random", "max_steps": 12, "sft_weight": 0.0})  # as the rows are
    job = Job(1, plain_dpo, tmp_path / "config.json", tmp_path / "log", state="finished",
              run_dir=tmp_path / "20250101-120000-dpo-ab12")
    drift = next(figure for figure in job_figures(job, rows) if figure.layout.title.text.startswith(DRIFT))
    assert "Trading the instruction for reward: instruction followed fell from 31% to 0%" in \
        drift.layout.title.text.replace("<br>", " ")
    explained = job_explainer(job, rows)
    assert "Loss at 0.693 (ln 2)" in explained and "chosen -0.300, rejected -1.200" in explained
    assert "This run does it: chosen +0.000 → -0.300 while the margin grew +0.000 → +0.900" in explained
    assert job_explainer(Job(2, RunConfig(model="tiny-random", method="sft"), tmp_path / "c", tmp_path / "l"),
                         rows) == ""  # not a DPO-family run
    explainer = next(block for block in built_app.blocks.values()
                     if getattr(block, "elem_id", None) == "train-explainer")  # beside the Train tab's panels
    tick = next(function for function in built_app.fns.values() if explainer in function.outputs)
    assert len(tick.fn({}, None)) == len(tick.outputs)  # the 1 s timer fills it with the panels


def test_the_app_and_the_notebook_show_the_same_pace_and_eta_of_a_run(tmp_path):
    from alignlab.ui.gradio.components.job_view import progress_html
    from alignlab.ui.gradio.jobs import Job
    from alignlab.ui.notebook.progress import status_text

    rows = [{"step": 1, "time": 130.0, "loss": 0.7}, {"step": 2, "loss": 0.65}, {"step": 4, "time": 136.0, "loss": 0.6}]
    job = Job(1, RunConfig(model="tiny-random", max_steps=12), tmp_path / "config.json", tmp_path / "log",
              state="running")
    status = {"state": "running", "step": 4, "total_steps": 12, "elapsed_s": 60.0, "eta_s": 120.0, "error": None}
    assert "2.00 s/step · ETA 16 s" in progress_html(job, rows)
    assert "2.00 s/step · ETA 16 s" in status_text(status, rows) and "1 min 00 s elapsed" in status_text(status, rows)


def test_bad_values_are_refused_before_anything_is_queued(app, client, stopped_run):
    runs_before = sorted(p.name for p in app[0].services.runs_dir.iterdir())
    with pytest.raises(AppError, match="beta"):
        client.predict(method="dpo", dpo__beta=-1.0, api_name="/start_run", **QUICK)
    with pytest.raises(AppError, match="learning_rate: left empty"):
        client.predict(method="dpo", learning_rate=None, api_name="/start_run", **QUICK)
    with pytest.raises(AppError, match="choices|dataset"):
        client.predict(method="dpo", dataset="../../etc/passwd", api_name="/start_run", **QUICK)
    with pytest.raises(AppError, match="not offered"):  # a reward model must be one of this app's runs, not a path
        client.predict(method="dpo", reward="reward-model:/tmp", api_name="/start_run", **QUICK)
    assert sorted(p.name for p in app[0].services.runs_dir.iterdir()) == runs_before
    assert client.predict(api_name="/job_status")["queued"] == 0


def test_a_slider_or_number_out_of_range_is_refused_naming_its_field(client):
    """Gradio's own refusal ("Value 5.0 is greater than maximum value 0.9.") names no field; the app's does."""
    with pytest.raises(AppError, match=re.escape("lora_dropout: got 5.0, expected a number >= 0 and <= 0.9")):
        client.predict(method="dpo", lora_dropout=5.0, api_name="/start_run", **QUICK)
    with pytest.raises(AppError, match=re.escape("seed: got -1, expected an integer >= 0")):
        client.predict("A film.", "base:tiny-random", "continue", 10, 1.0, 1.0, -1, api_name="/chat")
    with pytest.raises(AppError, match=re.escape("max new tokens: got 999, expected a number >= 1 and <= 256")):
        client.predict("A film.", "base:tiny-random", "continue", 999, 1.0, 1.0, 3, api_name="/chat")
    assert client.predict(api_name="/job_status")["queued"] == 0


def test_runs_list_shows_the_stopped_run(client, stopped_run):
    table, compare, chosen = client.predict(api_name="/list_runs")
    run_id = stopped_run["run_dir"].name
    row = next(r for r in table["data"] if r[0] == run_id)
    assert row[1:4] == ["dpo", "tiny-random", "stopped"] and row[4] >= 2
    assert chosen["value"] == run_id  # newest run opened first
    # Both pickers name the run by what it is (method, β, steps; no probe in this run, so no reward), value its id.
    expected = (f"dpo · β 0.5 · {row[4]} steps — {run_id} (stopped)", run_id)
    assert expected in [tuple(choice) for choice in chosen["choices"]]
    assert expected in [tuple(choice) for choice in compare["choices"]]


def test_what_changed_after_the_run_three_held_out_prompts_side_by_side(app, client, stopped_run):
    from alignlab.ui.gradio.components.changes import changes_view

    run_id = stopped_run["run_dir"].name
    rows = client.predict(run_id, api_name="/what_changed")
    assert len(rows) == 3 and len({row["prompt"] for row in rows}) == 3
    assert all(isinstance(row["reference_reward"], float) and isinstance(row["aligned_reward"], float) for row in rows)
    job = next(job for job in app[0].services.jobs.jobs if job.run_id == run_id)
    key, note, table = changes_view(app[0].services, job)  # what the Train tab's timer shows once the job ended
    assert key == (run_id, "ready") and note.startswith(f"**What changed** in `{run_id}`: 3 held-out prompts")
    assert table["visible"] and [row[0] for row in table["value"]["data"]] == [row["prompt"] for row in rows]
    with pytest.raises(AppError, match="no run"):
        client.predict("no-such-run", api_name="/what_changed")


def test_picking_the_classroom_preset_fills_the_train_form(client):
    from alignlab.models import DEFAULT_MODEL

    note, method, model, dataset, check, *_ = client.predict("classroom", api_name="/apply_preset")
    assert "178 s" in note and (method, model, dataset) == ("dpo", DEFAULT_MODEL, "positive-reviews")
    assert "no estimate of its time here" in note  # no default-model run has finished in this folder
    assert check.startswith("✓")


def test_an_app_restart_lists_past_runs(stopped_run):
    demo = create_app(stopped_run["run_dir"].parent)  # a new server over the same runs folder
    _, url, _ = serve(demo, port=None, block=False)
    try:
        table, *_ = Client(url, verbose=False).predict(api_name="/list_runs")
        assert [stopped_run["run_dir"].name, "stopped"] == [table["data"][0][0], table["data"][0][3]]
    finally:
        demo.services.jobs.close()
        demo.close()


def test_chat_streams_both_sides_with_rewards_and_keeps_turns(client, stopped_run, monkeypatch):
    from alignlab.ui.gradio.components import chat as chat_component
    monkeypatch.setattr(chat_component, "STREAM_EVERY_S", 0.0)  # every token is sent: a fast decoder ends in 0.1 s
    run_choice = "run:" + stopped_run["run_dir"].name
    picker = client.predict(api_name="/chat_models")
    labels = {value: label for label, value in picker["choices"]}
    assert labels[run_choice].startswith("dpo · β 0.5 · ") and labels[run_choice].endswith(" (stopped)")
    job = client.submit("Tell me about the film.", run_choice, "chat", 12, 0.8, 0.95, 7, api_name="/chat")
    reference, aligned, reference_reward, aligned_reward, _, notice = job.result()
    assert notice == ""  # a short message in a short conversation: nothing to say about the chat's limits
    assert len(job.outputs()) > 3  # streamed: loading, then a reply per token, then the final one
    assert reference[-1]["role"] == aligned[-1]["role"] == "assistant"
    assert reference_reward.startswith("reward (sentiment)") and aligned_reward.startswith("reward (sentiment)")
    second = client.predict("And the acting?", run_choice, "chat", 6, 0.8, 0.95, 7, reference, aligned,
                            api_name="/chat")
    assert [m["role"] for m in second[0]] == ["user", "assistant"] * 2


def test_base_model_chat_gives_the_same_answer_in_both_columns(client):
    reference, aligned, *_ = client.predict("I went in with low expectations and", "base:tiny-random", "continue",
                                            10, 1.0, 1.0, 3, api_name="/chat")
    assert reference[-1]["content"] == aligned[-1]["content"] and reference[-1]["content"]


def test_an_empty_message_gets_a_gentle_notice_not_an_error(client, capfd):
    from alignlab.ui.gradio.components.chat import EMPTY_NOTICE
    for text in ("", "   \n "):
        reference, aligned, _, _, handed_back, notice = client.predict(text, "base:tiny-random", "chat", 4, 1.0, 1.0,
                                                                       3, api_name="/chat")
        unchanged = {"__type__": "update"}  # the columns are left as they were
        assert notice == EMPTY_NOTICE and reference == aligned == unchanged and handed_back == ""
    assert "Traceback" not in capfd.readouterr().err  # a user mistake prints nothing in the server terminal


def test_the_message_box_is_no_streaming_output_and_a_message_sent_while_streaming_is_kept(app):
    from alignlab.ui.gradio.components.chat import BUSY_NOTICE, READY_NOTICE
    demo, _ = app
    ids = {block.elem_id: block._id for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    chat = next(dep for dep in demo.config["dependencies"] if dep.get("api_name") == "chat")
    assert ids["chat-message"] not in chat["outputs"]  # typing goes on while the answer streams
    assert ids["chat-pending"] in chat["inputs"]  # the message taken from the box once, at Send
    writers = [demo.fns[dep["id"]] for dep in demo.config["dependencies"] if ids["chat-message"] in dep["outputs"]
               and dep["id"] != chat["id"]]
    take = next(fn for fn in writers if fn.name == "take")
    assert not any(inspect.isgeneratorfunction(fn.fn) for fn in writers)  # written at Send and at the end
    box, pending, notice, _, _, taken = take.fn("Second question", True)  # Send or Enter while an answer streams
    assert isinstance(box, type(gr.skip())) and pending == "" and notice == BUSY_NOTICE  # kept in the box, said so
    assert taken is False
    box, pending, notice, busy, send, taken = take.fn("First question", False)
    assert box == "" and pending == "First question" and busy is True and send["interactive"] is False and taken
    # Enter just as an answer ends: the chat step after the refusing take is no longer pending and runs; it sends
    # nothing and leaves the page (no "type a message first" notice), and the end says "done" once.
    answer = demo.fns[chat["id"]].fn("", "base:tiny-random", "chat", 4, 1.0, 1.0, 3, [], [], [], [], False, False)
    assert all(isinstance(update, type(gr.skip())) for update in list(answer)[0])
    done = next(fn for fn in writers if fn.name == "done")
    box, pending, busy, send, _ = done.fn("Too long", "typed meanwhile")  # a message not sent comes back, nothing lost
    assert box == "Too long\ntyped meanwhile" and busy is False and send["interactive"] is True
    box, _, busy, send, notice = done.fn("", "typed meanwhile", BUSY_NOTICE)  # answered: the typed text stays
    assert isinstance(box, type(gr.skip())) and busy is False and notice == READY_NOTICE
    assert done.fn("", "typed meanwhile", READY_NOTICE)[-1] == READY_NOTICE  # two chains ending say it once


def test_export_adapter_and_merged_model(app, client, stopped_run):
    run_id = stopped_run["run_dir"].name
    client.predict(api_name="/list_runs")  # the session's run pickers learn the run ids
    assert "Exported" in client.predict(run_id, "adapter", api_name="/export_run")
    assert "Exported" in client.predict(run_id, "merged", api_name="/export_run")
    exports = app[0].services.exports_dir
    assert (exports / f"{run_id}-adapter" / "adapter_config.json").exists()
    merged = exports / f"{run_id}-merged"
    assert (merged / "model.safetensors").exists() and not (merged / "adapter_config.json").exists()


def test_delete_run_last(app, client, stopped_run):
    run_id = stopped_run["run_dir"].name
    client.predict(api_name="/list_runs")
    table, *_ = client.predict(run_id, api_name="/delete_run")
    assert run_id not in [row[0] for row in table["data"]]
    assert not stopped_run["run_dir"].exists()


def test_auth_is_required_when_set(tmp_path):
    demo = create_app(tmp_path / "runs")
    _, url, _ = serve(demo, port=None, auth="ada:lovelace", block=False)
    try:
        with pytest.raises(AuthenticationError):
            Client(url, verbose=False)
        assert Client(url, auth=("ada", "lovelace"), verbose=False).predict(api_name="/job_status")["state"] is None
    finally:
        demo.services.jobs.close()
        demo.close()
    assert parse_auth(None) is None
    with pytest.raises(AlignLabError, match="auth"):
        parse_auth("no-colon")


def test_serving_names_the_share_flag_not_gradios_launch_argument(tmp_path, capsys, monkeypatch):
    demo = create_app(tmp_path / "runs")
    served = []  # what ``alignlab app`` waits in until a signal (tests/test_app_shutdown.py sends them for real)
    monkeypatch.setattr("alignlab.ui.gradio.server.serve_until_signalled", served.append)
    try:
        serve(demo, port=None, block=True)
    finally:
        demo.services.jobs.close()
        demo.close()
    out = capsys.readouterr().out
    assert served == [demo]  # serving blocks in the signal wait, after the lines below
    assert "Running on local URL:  http://127.0.0.1:" in out
    assert "alignlab app --share" in out and "share=True" not in out


def test_uploads_are_checked_and_renamed_by_the_server(tmp_path, pairs_file):
    store = UploadStore(tmp_path / "uploads")
    name = store.add(pairs_file, "my pairs!.jsonl")
    assert name.startswith("my-pairs-") and name.endswith(".jsonl") and store.path(name).read_text()
    bad = tmp_path / "x.py"
    bad.write_text("print('hi')")
    with pytest.raises(AlignLabError, match="expected .jsonl"):
        store.add(bad, "x.py")
    big = tmp_path / "big.csv"
    with open(big, "wb") as handle:
        handle.truncate(MAX_BYTES + 1)
    with pytest.raises(AlignLabError, match="at most 20 MB"):
        store.add(big, "big.csv")
    for unknown in ("../pairs.jsonl", str(pairs_file), "nope.jsonl"):
        with pytest.raises(AlignLabError, match="no uploaded dataset"):
            store.path(unknown)


def test_a_json_upload_is_taken_by_the_button_and_the_store_and_loads(tmp_path, pairs_file, built_app):
    from alignlab.data import load_rows
    from alignlab.ui.gradio.uploads import MAX_ROWS

    button = next(block for block in built_app.blocks.values() if getattr(block, "elem_id", None) == "train-upload")
    assert ".json" in button.file_types and ".json" in button.label  # as the README says
    rows = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    as_json = tmp_path / "pairs.json"
    as_json.write_text(json.dumps({"data": rows}))
    store = UploadStore(tmp_path / "uploads")
    name = store.add(as_json, "pairs.json")
    assert name.endswith(".json") and name in store.names()
    assert len(load_rows(str(store.path(name)), get_method("dpo").data_format, "dpo")) == len(rows)
    many = tmp_path / "many.json"
    many.write_text(json.dumps([{}] * (MAX_ROWS + 1)))
    with pytest.raises(AlignLabError, match="rows"):
        store.add(many, "many.json")


def test_chat_tab_offers_held_out_review_requests_and_says_why_it_chats(tmp_path):
    from alignlab.task import task_instruction, task_openings
    from alignlab.ui.gradio.components.chat import default_mode

    run = tmp_path / "runs" / "20250101-120000-dpo-ab12"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"method": "dpo", "dataset": "positive-reviews"}))
    mode, why = default_mode("run:" + run.name, tmp_path / "runs")
    assert mode == "chat" and "chat-formatted review requests" in why  # the built-in task trains in chat mode
    assert default_mode("run:no-such-run", tmp_path / "runs")[0] == "chat"
    demo = create_app(tmp_path / "runs")
    try:
        blocks = list(demo.blocks.values())
        examples = next(block for block in blocks if isinstance(block, gr.Dataset))
        held_out = [task_instruction(opening) for opening in task_openings("eval")[:4]]
        assert [sample[0] for sample in examples.samples] == held_out and all(isinstance(s, str) for s in held_out)
        radio = next(block for block in blocks if getattr(block, "elem_id", None) == "chat-mode")
        assert radio.value == "chat" and radio.info  # the line that says why the mode starts as it does
    finally:
        demo.services.jobs.close()


def test_learn_cards_say_what_a_method_measured_at_its_defaults():
    from alignlab.measured import load_measured, measured_text
    from alignlab.ui.gradio.components.learn import method_card

    measured = {name: measured_text(name) for name in registry() if measured_text(name)}
    assert {"dpo", "ppo"} <= set(measured) and set(measured) == set(load_measured()["methods"])
    for name, text in measured.items():
        assert f"**Measured at the defaults:** {text}" in method_card(get_method(name))
    kto = load_measured()["methods"]["kto"]["defaults"][0]  # the file's figures, as the card prints them
    assert f"{kto['gain']:+.2f} ± {kto['gain_se']:.2f}" in measured["kto"]
    # DPO's defaults changed after the benchmark ran: the runs at the old ones show as other settings, the evaluated
    # runs at today's (bench/eval_runs.json) as the defaults', with the instruction-following reading of each
    dpo = load_measured()["methods"]["dpo"]["defaults"]
    assert dpo and all(run.get("aligned_follow") is not None for run in dpo)
    assert f"instruction followed {dpo[0]['reference_follow']:.0%} → {dpo[0]['aligned_follow']:.0%}" in measured["dpo"]
    assert "Faithful (visible at KL ≤ 10 nats" in measured["dpo"]
    assert 'dpo {"beta": 0.1}' in measured["dpo"]
    assert "Use RLOO or GRPO for a live CPU demo" in method_card(get_method("ppo"))  # the lesson follows the figures
    # nothing claimed where nothing was measured
    assert "Measured at the defaults" not in method_card(get_method("sft"))


def finished_run(runs_dir, run_id: str, state: str = "finished"):
    """A run directory as a DPO run on tiny-random leaves it (config, status, a saved model folder), untrained."""
    from alignlab import rundir

    run_dir = rundir.create(runs_dir / run_id, {"run_id": run_id, **RunConfig(model="tiny-random").to_dict()})
    rundir.write_status(run_dir, {"run_id": run_id, "state": state, "step": 2})
    rundir.model_dir(run_dir).mkdir()
    return run_dir


def test_the_chat_tab_opens_on_the_newest_finished_run_and_keeps_a_pick_until_another_finishes(tmp_path):
    runs = tmp_path / "runs"
    finished_run(runs, "20250101-120000-dpo-aaaa")
    demo = create_app(runs)
    _, url, _ = serve(demo, port=None, block=False)
    try:
        client = Client(url, verbose=False)
        assert client.predict(api_name="/chat_models")["value"] == "run:20250101-120000-dpo-aaaa"  # not the base model
        base = "base:smollm2-135m-instruct"
        assert client.predict(base, api_name="/chat_models")["value"] == base  # picked by hand: kept
        finished_run(runs, "20250101-130000-dpo-bbbb", state="stopped")  # stopped, not finished: no move
        assert client.predict(base, api_name="/chat_models")["value"] == base
        finished_run(runs, "20250101-140000-dpo-cccc")  # a run finished since: the tab opens on it
        assert client.predict(base, api_name="/chat_models")["value"] == "run:20250101-140000-dpo-cccc"
        assert Client(url, verbose=False).predict(api_name="/chat_models")["value"] == "run:20250101-140000-dpo-cccc"
    finally:
        demo.services.jobs.close()
        demo.close()


def test_examples_are_labelled_by_their_opening_and_tiny_random_is_offered_only_in_development(monkeypatch,
                                                                                                built_app):
    from alignlab.models import DEV_ENV
    from alignlab.task import task_openings
    from alignlab.ui.gradio.components.train import model_choices

    examples = next(block for block in built_app.blocks.values() if isinstance(block, gr.Dataset))
    assert examples.sample_labels == [f"“{opening} …”" for opening in task_openings("eval")[:4]]
    assert len(set(examples.sample_labels)) == 4  # four requests, told apart by their openings
    assert "tiny-random" in [value for _, value in model_choices()]  # the tests run with ALIGNLAB_DEV=1
    monkeypatch.delenv(DEV_ENV)  # a class
    assert [value for _, value in model_choices()] == ["smollm2-135m-instruct"]
    assert [value for _, value in built_app.services.chat.choices([])] == ["base:smollm2-135m-instruct"]
    with pytest.raises(AlignLabError, match="expected a base model or a run"):
        built_app.services.chat.pair("base:tiny-random", "chat")


def test_a_reopened_page_shows_the_settings_of_the_job_on_its_card(built_app, pairs_file, tmp_path):
    """After a reload the form holds the settings of the job the progress card follows, says so, and names the
    preset they are; an upload the job trained on is picked again in the Dataset list."""
    from alignlab.presets import get_preset
    from alignlab.ui.gradio.components.train import dataset_choice, job_form
    from alignlab.ui.gradio.jobs import Job

    services = built_app.services
    stored = services.uploads.add(pairs_file, "pairs.jsonl")
    config = RunConfig(method="kto", model="tiny-random", dataset=str(services.uploads.path(stored)), max_steps=7,
                       batch_size=2, run_name="class-demo", method_args={"beta": 0.3})
    job = Job(4, config, tmp_path / "config.json", tmp_path / "log", state="running",
              run_dir=tmp_path / "20261206-190000-kto-ab12")
    values, preset, note = job_form(services, job)
    assert (values["method"], values["model"], values["dataset"]) == ("kto", "tiny-random", f"upload:{stored}")
    assert values["max_steps"] == 7 and values["batch_size"] == 2 and values["kto__beta"] == 0.3
    assert values["run_name"] == "class-demo" and preset is None
    assert note.startswith("**The form shows the settings of 20261206-190000-kto-ab12** (running)")
    assert "dpo__beta" not in values  # another method's knobs keep their own values

    classroom = Job(5, get_preset("classroom").config(), tmp_path / "c.json", tmp_path / "c.log", state="queued")
    values, preset, note = job_form(services, classroom)
    assert preset == "classroom" and values["max_steps"] == 6 and values["dataset"] == "positive-reviews"
    assert f"(queued, preset {get_preset('classroom').title!r})" in note and "job 5 (dpo on" in note

    gone = Job(6, RunConfig(dataset=str(tmp_path / "deleted.jsonl")), tmp_path / "g.json", tmp_path / "g.log")
    values, _, note = job_form(services, gone)
    assert "dataset" not in values and "(deleted.jsonl) is no longer in the Dataset list" in note
    assert dataset_choice(services, "positive-reviews") == "positive-reviews"


def test_a_reloaded_workshop_page_fills_the_form_from_its_participants_own_job(tmp_path):
    """The name the browser remembers picks the job before the page has named itself again: the participant's own
    (the one their card follows), not the room's latest; outside workshop mode no remembered name is read."""
    from alignlab.ui.gradio.components.train import page_job
    from alignlab.ui.gradio.jobs import Job
    from alignlab.ui.gradio.server import workshop_settings

    demo = create_app(tmp_path / "runs", workshop=workshop_settings(True, "carol", None, None))
    try:
        jobs = demo.services.jobs
        for number, owner in ((1, "ada"), (2, "bob")):  # both ended: no worker picks them up
            jobs.jobs.append(Job(number, RunConfig(model="tiny-random", max_steps=number, owner=owner),
                                 tmp_path / f"{number}.json", tmp_path / f"{number}.log", state="finished",
                                 started=float(number), owner=owner))
        assert page_job(demo.services, None, {"name": "ada", "key": ""}).owner == "ada"
        assert page_job(demo.services, "bob", {"name": "ada"}).owner == "bob"  # a signed-in account wins
        assert page_job(demo.services, None, {"name": ""}).owner == "bob"  # no name yet: the room's latest job
        demo.services.workshop = None
        assert page_job(demo.services, None, {"name": "ada"}).owner == "bob"
    finally:
        demo.services.jobs.close()


def test_picking_a_method_shows_its_own_default_batch_size_and_learning_rate_unless_the_user_changed_them(app):
    """The Train form's batch and learning rate follow the method (online DPO's default is 16 completions, SimPO's
    rate 3e-4, the lab's 8 and 1e-3) and keep a value the user typed."""
    demo, _ = app
    on_method = next(fn for fn in demo.fns.values() if fn.name == "on_method")
    *_, shown, batch, rate = on_method.fn("online-dpo", "positive-reviews", "dpo", 8, 1e-3)
    assert batch["value"] == 16 and rate["value"] == 1e-3 and shown == "online-dpo"
    *_, shown, batch, rate = on_method.fn("rloo", "positive-reviews", "online-dpo", 16, 1e-3)
    assert batch["value"] == 8 and shown == "rloo"
    *_, batch, _ = on_method.fn("online-dpo", "positive-reviews", "rloo", 12, 1e-3)
    assert isinstance(batch, type(gr.skip()))  # the user's 12 stays
    *_, rate = on_method.fn("simpo", "positive-reviews", "dpo", 8, 1e-3)
    assert rate["value"] == 3e-4
    *_, rate = on_method.fn("dpo", "positive-reviews", "simpo", 8, 5e-4)
    assert isinstance(rate, type(gr.skip()))  # the user's 5e-4 stays
