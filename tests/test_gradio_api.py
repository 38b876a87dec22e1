"""The Gradio app through its API (gradio_client) against a launched server, plus its guards.

One module-wide app and one real tiny-random DPO run trained by a worker process: start it, read its
curves while it trains, stop it (the run saves), then list, chat with, export and delete it.
"""

from __future__ import annotations

import json
import time

import gradio as gr
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError, AuthenticationError

from alignlab.config import common_knobs
from alignlab.errors import AlignLabError
from alignlab.methods import get_method, method_names, registry
from alignlab.ui.gradio import create_app, parse_auth, serve
from alignlab.ui.gradio.components.runs import comparison_figures
from alignlab.ui.gradio.forms import APP_OWNED, config_from_form, form_knobs, knob_input, method_input_name
from alignlab.ui.gradio.uploads import MAX_BYTES, UploadStore

pytestmark = pytest.mark.timeout(300)
QUICK = dict(model="tiny-random", batch_size=2, max_length=64, max_completion_length=16, probe_every=0)


def wait_for(condition, timeout: float, every: float = 0.5):
    """Poll ``condition()`` until it returns something truthy; fail after ``timeout`` seconds."""
    end = time.time() + timeout
    while time.time() < end:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("app") / "runs"
    demo = create_app(runs_dir)
    _, url, _ = serve(demo, port=None, block=False)
    yield demo, url
    demo.services.jobs.close()
    demo.close()


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


def test_the_form_is_generated_from_every_method_and_the_common_knobs(client):
    names = {p["parameter_name"] for p in client.view_api(return_format="dict")["named_endpoints"]["/start_run"]
             ["parameters"]}
    expected = {"method", "model", "dataset"} | {k.name for k in common_knobs() if k.name not in APP_OWNED}
    expected |= {method_input_name(name, knob.name) for name, spec in registry().items() for knob in spec.knobs}
    assert names == expected


@pytest.mark.parametrize("method", method_names())
def test_knob_inputs_follow_the_declarations(method):
    widget_of = {"bool": gr.Checkbox, "choice": gr.Dropdown, "str": (gr.Textbox, gr.Dropdown), "int": gr.Number,
                 "float": (gr.Number, gr.Slider)}
    for knob in (*form_knobs(), *get_method(method).knobs):
        component = knob_input(knob, render=False)
        assert isinstance(component, widget_of[knob.kind]), knob.name
        assert component.value == knob.default and knob.help in component.info
        if knob.kind == "choice":
            assert [value for _, value in component.choices] == list(knob.choices)
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


def test_bad_values_are_refused_before_anything_is_queued(app, client, stopped_run):
    runs_before = sorted(p.name for p in app[0].services.runs_dir.iterdir())
    with pytest.raises(AppError, match="beta"):
        client.predict(method="dpo", dpo__beta=-1.0, api_name="/start_run", **QUICK)
    with pytest.raises(AppError, match="learning_rate: left empty"):
        client.predict(method="dpo", learning_rate=None, api_name="/start_run", **QUICK)
    with pytest.raises(AppError, match="choices|dataset"):
        client.predict(method="dpo", dataset="../../etc/passwd", api_name="/start_run", **QUICK)
    with pytest.raises(AppError, match="no run"):  # a reward model must be one of this app's runs, not a path
        client.predict(method="dpo", reward="reward-model:/tmp", api_name="/start_run", **QUICK)
    assert sorted(p.name for p in app[0].services.runs_dir.iterdir()) == runs_before
    assert client.predict(api_name="/job_status")["queued"] == 0


def test_runs_list_shows_the_stopped_run(client, stopped_run):
    table, _, chosen = client.predict(api_name="/list_runs")
    row = next(r for r in table["data"] if r[0] == stopped_run["run_dir"].name)
    assert row[1:4] == ["dpo", "tiny-random", "stopped"] and row[4] >= 2
    assert chosen["value"] == stopped_run["run_dir"].name  # newest run opened first


def test_an_app_restart_lists_past_runs(stopped_run):
    demo = create_app(stopped_run["run_dir"].parent)  # a new server over the same runs folder
    _, url, _ = serve(demo, port=None, block=False)
    try:
        table, *_ = Client(url, verbose=False).predict(api_name="/list_runs")
        assert [stopped_run["run_dir"].name, "stopped"] == [table["data"][0][0], table["data"][0][3]]
    finally:
        demo.services.jobs.close()
        demo.close()


def test_chat_streams_both_sides_with_rewards_and_keeps_turns(client, stopped_run):
    run_choice = "run:" + stopped_run["run_dir"].name
    picker = client.predict(api_name="/chat_models")
    assert run_choice in [value for _, value in picker["choices"]]
    job = client.submit("Tell me about the film.", run_choice, "chat", 12, 0.8, 0.95, 7, api_name="/chat")
    reference, aligned, reference_reward, aligned_reward, _ = job.result()
    assert len(job.outputs()) > 3  # streamed: loading, then a reply per token pair, then the final one
    assert reference[-1]["role"] == aligned[-1]["role"] == "assistant"
    assert reference_reward.startswith("reward (sentiment)") and aligned_reward.startswith("reward (sentiment)")
    second = client.predict("And the acting?", run_choice, "chat", 6, 0.8, 0.95, 7, reference, aligned,
                            api_name="/chat")
    assert [m["role"] for m in second[0]] == ["user", "assistant"] * 2


def test_base_model_chat_gives_the_same_answer_in_both_columns(client):
    reference, aligned, *_ = client.predict("I went in with low expectations and", "base:tiny-random", "continue",
                                            10, 1.0, 1.0, 3, api_name="/chat")
    assert reference[-1]["content"] == aligned[-1]["content"] and reference[-1]["content"]


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


def test_chat_tab_offers_held_out_review_requests_and_says_why_it_chats(tmp_path):
    from alignlab.data import task_instruction, task_openings
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
    from alignlab.ui.gradio.components.learn import method_card

    measured = {name: spec.measured for name, spec in registry().items() if spec.measured}
    assert {"dpo", "ppo"} <= set(measured)
    for name, text in measured.items():
        assert f"**Measured at the defaults:** {text}" in method_card(get_method(name))
    assert "Measured at the defaults" not in method_card(get_method("sft"))  # nothing claimed where nothing was measured
