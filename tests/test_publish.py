"""Sharing results: the model card a run writes (its model-index read back by huggingface_hub, its framework
versions), `alignlab export` (adapter and merged) loading in a fresh offline process, the base named by hub id, the
merged base's dtype kept, exported files readable by others, and `alignlab push` failing in one line without a hub."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from huggingface_hub import ModelCard, metadata_load

from alignlab import rundir
from alignlab.base_model import base_of
from alignlab.config import RunConfig
from alignlab.evaluate import compare_run
from alignlab.methods import get_method
from alignlab.model_card import card_text
from alignlab.models import DEFAULT_MODEL, GGUF_WHEEL, HUB_ID, cache_dir, tiny_model_path
from alignlab.publish import export_run
from alignlab.runner import start

HUB_TEST_ID = "alignlab-tests/tiny-random"  # a hub id that exists only in the test's own Hugging Face cache
TINY = dict(method="dpo", beta=0.2, max_steps=2, batch_size=2, max_length=64, max_completion_length=8)


def train(output_dir: Path, model: str) -> Path:
    handle = start(RunConfig.from_dict({**TINY, "model": model, "output_dir": str(output_dir)}), background=False)
    assert handle.state == "finished", handle.error
    return handle.run_dir


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory) -> Path:
    """A Hugging Face hub cache holding the tiny-random model as the hub model HUB_TEST_ID, laid out as the hub
    client lays out a download (models--OWNER--NAME/snapshots/COMMIT, refs/main naming the commit)."""
    cache = tmp_path_factory.mktemp("hf-hub-cache")
    repo = cache / ("models--" + HUB_TEST_ID.replace("/", "--"))
    commit = "0" * 40
    shutil.copytree(tiny_model_path(), repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return cache


@pytest.fixture(scope="module")
def runs(tmp_path_factory, hub_cache) -> dict[str, Path]:
    """Two 2-step DPO runs: one on tiny-random, one on the same weights loaded by hub id from a user's cache."""
    import huggingface_hub.constants

    output_dir = tmp_path_factory.mktemp("runs")
    patch = pytest.MonkeyPatch()
    patch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache))  # this process's hub cache
    try:
        return {"tiny": train(output_dir, "tiny-random"), "hub": train(output_dir, HUB_TEST_ID)}
    finally:
        patch.undo()


@pytest.fixture(scope="module")
def exports(runs, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("exports")
    return {"adapter": export_run(runs["tiny"], folder / "adapter"),
            "merged": export_run(runs["tiny"], folder / "merged", merged=True),
            "hub": export_run(runs["hub"], folder / "hub-adapter")}


FRESH_PROCESS = """
import json, sys, torch
from peft import AutoPeftModelForCausalLM
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

adapter, merged, hub = sys.argv[1:4]
tokenizer = AutoTokenizer.from_pretrained(adapter)
ids = tokenizer("The second half drags, but", return_tensors="pt").input_ids
logits = lambda model: model(ids).logits
with torch.no_grad():
    peft_model = AutoPeftModelForCausalLM.from_pretrained(adapter).eval()
    aligned = logits(peft_model)
    with peft_model.disable_adapter():
        base = logits(peft_model)
    adapter_pipe = pipeline("text-generation", model=adapter)
    merged_model = AutoModelForCausalLM.from_pretrained(merged).eval()
    merged_pipe = pipeline("text-generation", model=merged)
    hub_model = AutoPeftModelForCausalLM.from_pretrained(hub).eval()
    report = {
        "peft_class": type(peft_model).__name__,
        "adapter_moves_the_base": not torch.allclose(aligned, base),
        "pipeline_has_the_adapter": torch.allclose(logits(adapter_pipe.model), aligned, atol=1e-5),
        "pipeline_text": adapter_pipe("Hello", max_new_tokens=4, do_sample=False)[0]["generated_text"],
        "merged_class": type(merged_model).__name__,
        "merged_equals_adapter": torch.allclose(logits(merged_model), aligned, atol=1e-4),
        "merged_pipeline_text": merged_pipe("Hello", max_new_tokens=4, do_sample=False)[0]["generated_text"],
        "hub_base": hub_model.peft_config["default"].base_model_name_or_path,
        "hub_class": type(hub_model).__name__,
    }
print(json.dumps(report))
"""


def test_exports_load_in_a_fresh_offline_process(exports, hub_cache, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub_cache)}
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(exports["adapter"]), str(exports["merged"]),
                             str(exports["hub"])], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["peft_class"] == "PeftModelForCausalLM" and report["adapter_moves_the_base"]
    assert report["pipeline_has_the_adapter"] and report["pipeline_text"].startswith("Hello")
    assert report["merged_class"] == "LlamaForCausalLM" and report["merged_equals_adapter"]
    assert report["merged_pipeline_text"].startswith("Hello")
    assert report["hub_base"] == HUB_TEST_ID and report["hub_class"] == "PeftModelForCausalLM"


def test_exported_adapter_names_its_base_by_hub_id_and_leaves_the_pickle_behind(runs, exports):
    def base(folder: Path) -> str:
        return json.loads((folder / rundir.ADAPTER_CONFIG).read_text())["base_model_name_or_path"]

    assert base(exports["hub"]) == HUB_TEST_ID
    assert base(rundir.model_dir(runs["hub"])).endswith(os.sep.join(("snapshots", "0" * 40)))  # the run's own copy
    assert base(exports["adapter"]) == str(tiny_model_path())  # no hub id: its local folder, as the card says
    assert (rundir.model_dir(runs["tiny"]) / rundir.TRAINING_ARGS).exists()
    assert not any((folder / rundir.TRAINING_ARGS).exists() for folder in exports.values())
    assert not (exports["merged"] / rundir.ADAPTER_CONFIG).exists()


def test_a_run_writes_a_real_model_card(runs):
    card = rundir.model_dir(runs["tiny"]) / rundir.MODEL_CARD
    meta, text = metadata_load(card), card.read_text()
    assert meta["library_name"] == "peft" and {"alignlab", "trl", "dpo", "lora"} <= set(meta["tags"])
    assert "base_model" not in meta  # tiny-random has no hub id ...
    assert "is not on the Hugging Face hub" in text  # ... and the card says so
    assert "More Information Needed" not in text  # not PEFT's boilerplate
    assert get_method("dpo").summary in text and "https://arxiv.org/abs/2305.18290" in text
    assert "| `beta` | `0.2` |" in text and "max_steps: 2" in text
    assert "Trained 2 steps of 2; the run finished." in text
    assert "| `probe/reward` |" in text and "Reward vs KL from the reference**, final point (step 2)" in text
    assert "**Held-out samples**" in text and "AutoPeftModelForCausalLM.from_pretrained(" in text
    assert "No `alignlab eval` of this run yet" in text
    assert "## Framework versions" in text
    for name in ("alignlab", "trl", "transformers", "peft", "torch"):
        assert f"- {name}: {metadata.version(name)}\n" in text


def results_of(card_path: Path) -> dict:
    """The card's model-index as huggingface_hub reads it: metric type -> EvalResult."""
    card = ModelCard.load(card_path)  # a local file: no network
    return {result.metric_type: result for result in card.data.eval_results or []}


def test_the_card_model_index_carries_the_probes_kl_and_reward(runs):
    card_path = rundir.model_dir(runs["tiny"]) / rundir.MODEL_CARD
    results = results_of(card_path)
    rows, _ = rundir.read_metrics(runs["tiny"])
    last = [row for row in rows if "probe/kl" in row][-1]
    assert set(results) == {"kl", "reward"}  # no eval yet: the probe's final point only
    assert results["kl"].metric_value == pytest.approx(last["probe/kl"], abs=1e-4)
    assert results["reward"].metric_value == pytest.approx(last["probe/reward"], abs=1e-4)
    for result in results.values():
        assert (result.task_type, result.dataset_split, result.metric_config) == ("text-generation", "held-out",
                                                                                  "sentiment")
        assert result.task_name.startswith("Controlled sentiment generation (positive-reviews")
        assert result.dataset_type == "positive-reviews"
    assert ModelCard.load(card_path).data.model_name == runs["tiny"].name


def test_export_cards_name_the_hub_base_and_the_merged_library(exports):
    hub = metadata_load(exports["hub"] / rundir.MODEL_CARD)
    assert hub["base_model"] == HUB_TEST_ID and hub["library_name"] == "peft"
    text = (exports["hub"] / rundir.MODEL_CARD).read_text()
    assert f'AutoPeftModelForCausalLM.from_pretrained("{exports["hub"]}")' in text
    merged = metadata_load(exports["merged"] / rundir.MODEL_CARD)
    assert merged["library_name"] == "transformers" and "dpo" in merged["tags"]


def test_an_eval_is_kept_and_shown_on_the_card(runs, hub_cache, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache))  # the run's base is there
    result = compare_run(runs["hub"], samples_per_prompt=1, with_fluency=False)
    assert rundir.read_eval(runs["hub"])["gain"] == result.gain
    text = (rundir.model_dir(runs["hub"]) / rundir.MODEL_CARD).read_text()
    assert f"gain {result.gain:+.3f} ± {result.gain_se:.3f} (paired s.e.)" in text
    results = results_of(rundir.model_dir(runs["hub"]) / rundir.MODEL_CARD)  # the hub's reading of the model-index
    assert set(results) == {"reward_gain", "win_rate", "kl", "reward"}
    assert results["reward_gain"].metric_value == pytest.approx(result.gain, abs=1e-4)
    assert results["win_rate"].metric_value == pytest.approx(result.win_rate, abs=1e-4)
    assert results["reward_gain"].metric_config == results["win_rate"].metric_config == result.reward
    assert result.reward in results["reward_gain"].metric_name and "paired s.e." in results["reward_gain"].metric_name


def test_the_default_model_is_named_by_its_hub_id_and_its_gguf_origin(runs):
    built = base_of(DEFAULT_MODEL, str(cache_dir() / "models" / DEFAULT_MODEL))
    assert (built.hub_id, built.reference, built.license) == (HUB_ID, HUB_ID, "apache-2.0")
    assert "dequantised from the Q4_1 GGUF" in built.origin and GGUF_WHEEL in built.origin
    snapshot = f"/cache/models--{HUB_ID.replace('/', '--')}/snapshots/abc"
    assert "as published" in base_of(DEFAULT_MODEL, snapshot).origin and not base_of(DEFAULT_MODEL, snapshot).rebuild
    text = card_text(runs["tiny"], base=built)
    assert front_matter(text)["base_model"] == HUB_ID and "dequantised from the Q4_1 GGUF" in text
    assert "resolve_model('smollm2-135m-instruct')" in text  # the exact base, offline


def front_matter(text: str) -> dict:
    import yaml

    return yaml.safe_load(text.split("---\n")[1])


def alignlab_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alignlab", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def test_push_offline_or_without_a_token_says_so_in_one_line(runs, tmp_path):
    quiet = {k: v for k, v in os.environ.items()
             if k not in ("HF_TOKEN", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    offline = alignlab_cli("push", str(runs["tiny"]), "someone/aligned", env={**quiet, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 2 and offline.stdout == ""
    assert offline.stderr.strip().splitlines() == [
        "error: push: the Hugging Face hub is switched off here (HF_HUB_OFFLINE is set); unset it, or "
        "`alignlab export` the run and push the folder from a machine online"]
    no_token = alignlab_cli("push", str(runs["tiny"]), "someone/aligned", env={**quiet, "HF_HOME": str(tmp_path)})
    assert no_token.returncode == 2
    assert no_token.stderr.strip().splitlines() == [
        "error: push: no Hugging Face token; log in with `hf auth login` or set HF_TOKEN (a token with write access)"]


def test_export_refuses_a_taken_folder_and_a_run_without_a_model(runs, tmp_path, capsys):
    from alignlab.cli import main

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    assert main(["export", str(runs["tiny"]), "--to", str(taken)]) == 2
    assert capsys.readouterr().err.strip() == f"error: to: {str(taken)!r} exists and is not an empty folder; choose " \
                                              "a new folder"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["taken"]
    unsaved = tmp_path / "runs" / "unsaved"
    rundir.create(unsaved, {"run_id": "unsaved", "method": "dpo", "model": "tiny-random"})
    assert main(["export", "unsaved", "--output-dir", str(tmp_path / "runs"), "--to", str(tmp_path / "out")]) == 2
    assert "error: run: unsaved has no saved model yet" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_default_model_export_names_the_hub_id_and_loads_on_the_offline_build(tmp_path):
    run_dir = train(tmp_path / "runs", DEFAULT_MODEL)
    folder = export_run(run_dir, tmp_path / "adapter")
    assert json.loads((folder / rundir.ADAPTER_CONFIG).read_text())["base_model_name_or_path"] == HUB_ID
    assert metadata_load(folder / rundir.MODEL_CARD)["base_model"] == HUB_ID
    load = ("import sys\nfrom peft import PeftModel\nfrom transformers import AutoModelForCausalLM\n"
            "from alignlab.models import resolve_model\n"
            "base = AutoModelForCausalLM.from_pretrained(resolve_model('smollm2-135m-instruct'))\n"
            "print(type(PeftModel.from_pretrained(base, sys.argv[1])).__name__)\n")
    result = subprocess.run([sys.executable, "-c", load, str(folder)], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert result.returncode == 0 and result.stdout.split() == ["PeftModelForCausalLM"], result.stderr[-2000:]


def test_exported_files_are_readable_by_other_users_whatever_the_umask(runs, tmp_path):
    previous = os.umask(0o077)  # a private umask: files would be 0600 and folders 0700 without the export's modes
    try:
        folders = [export_run(runs["tiny"], tmp_path / "adapter"), export_run(runs["tiny"], tmp_path / "merged",
                                                                              merged=True)]
    finally:
        os.umask(previous)
    for folder in folders:
        paths = [folder, *folder.rglob("*")]
        assert any(path.name == rundir.MODEL_CARD for path in paths)
        modes = {path.relative_to(folder).as_posix(): path.stat().st_mode & 0o777 for path in paths}
        assert modes == {name: 0o755 if (folder / name).is_dir() else 0o644 for name in modes}, modes


def test_a_merged_export_keeps_the_dtype_of_its_base(tmp_path):
    """A bf16 base, trained in fp32 on the CPU, merges and saves as bf16: the export is the base's size."""
    import torch
    from safetensors import safe_open
    from transformers import AutoConfig

    from alignlab.models import load_model

    base = tmp_path / "bf16-base"
    load_model("tiny-random").to(torch.bfloat16).save_pretrained(base)
    from alignlab.models import load_tokenizer

    load_tokenizer("tiny-random").save_pretrained(base)
    assert str(AutoConfig.from_pretrained(base).dtype) == "torch.bfloat16"
    run_dir = train(tmp_path / "runs", str(base))
    merged = export_run(run_dir, tmp_path / "merged", merged=True)
    assert str(AutoConfig.from_pretrained(merged).dtype) == "torch.bfloat16"
    with safe_open(merged / "model.safetensors", "pt") as weights:
        dtypes = {weights.get_slice(name).get_dtype() for name in weights.keys()}
    assert dtypes == {"BF16"}
