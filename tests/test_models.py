"""Model resolution: the default model offline, tiny-random, clear errors, LoRA reference."""

import json

import pytest

from alignlab.errors import AlignLabError
from alignlab.models import default_model_path, load_model, lora_config, resolve_model, tiny_model_path


def test_default_model_is_a_clean_plain_checkpoint():
    folder = default_model_path()
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30
    assert "quantization_config" not in config
    assert (folder / "model.safetensors").exists()


def test_tiny_random_shares_the_real_tokenizer():
    from transformers import AutoTokenizer

    tiny = AutoTokenizer.from_pretrained(tiny_model_path())
    real = AutoTokenizer.from_pretrained(default_model_path())
    text = "I went in with low expectations and"
    assert tiny(text)["input_ids"] == real(text)["input_ids"]
    assert tiny.chat_template == real.chat_template
    assert "tests" in (tiny_model_path() / "SOURCE.txt").read_text()


def test_missing_model_fails_fast_offline():
    with pytest.raises(AlignLabError, match="offline"):
        resolve_model("someone/not-in-the-cache")


def test_lora_reference_is_the_adapter_disabled_model():
    import torch
    from peft import get_peft_model

    from alignlab.config import RunConfig
    from alignlab.reference import reference_of

    base = load_model("tiny-random")
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        expected = base(ids).logits.clone()
    model = get_peft_model(base, lora_config(r=4))
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter)  # make the adapter change the output
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits, expected)
        with reference_of(model, RunConfig(model="tiny-random")) as reference:
            assert torch.allclose(reference(ids).logits, expected, atol=1e-5)


def test_the_checkpointing_rename_warning_is_silenced_only_inside_the_lab_s_calls():
    """In a process of its own (pytest sets warning filters of its own): importing alignlab changes no warning
    filter; inside quiet_checkpointing_rename (the lab's adapter loads and training) the rename warning is not
    shown, other FutureWarnings are, and when the block ends the filters are as they were, so the user's own
    read of the old name outside it shows the rename warning."""
    import subprocess
    import sys

    code = ("import warnings\n"
            "before = list(warnings.filters)\n"
            "import alignlab\n"
            "assert warnings.filters == before, 'import alignlab changed the warning filters'\n"
            "import torch, transformers, trl, peft, datasets  # these install filters of their own on import\n"
            "before = list(warnings.filters)\n"
            "import alignlab.training, alignlab.chat, alignlab.models, alignlab.methods._ppo_trainer\n"
            "assert warnings.filters == before, 'an engine module changed the warning filters'\n"
            "from peft import get_peft_model\n"
            "from alignlab.models import load_model, lora_config, quiet_checkpointing_rename\n"
            "model = load_model('tiny-random')\n"
            "with quiet_checkpointing_rename(), quiet_checkpointing_rename():\n"
            "    model.is_gradient_checkpointing  # transformers' old name, as TRL (and PEFT before 0.22) read it\n"
            "    get_peft_model(model, lora_config(r=4))\n"
            "    warnings.warn('another FutureWarning', FutureWarning, stacklevel=1)\n"
            "assert warnings.filters == before, 'the block left a filter behind'\n"
            "print('OUTSIDE', file=__import__('sys').stderr, flush=True)\n"
            "model.is_gradient_checkpointing  # the user's own read of the old name\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    inside, outside = result.stderr.split("OUTSIDE")
    assert "another FutureWarning" in inside and "gradient_checkpointing" not in inside
    assert "`is_gradient_checkpointing` is deprecated" in outside


@pytest.mark.slow
@pytest.mark.ci
def test_dpo_two_steps_on_the_default_model(tmp_path):
    """The real default model trains through the whole path (kept in CI: one small real run)."""
    from alignlab.config import RunConfig
    from alignlab.runner import start

    handle = start(RunConfig(method="dpo", max_steps=2, batch_size=2, max_length=64, max_completion_length=16,
                             output_dir=str(tmp_path)))
    assert handle.wait(900) == "finished", handle.error
    losses = [e["metrics"]["loss"] for e in handle.history if "loss" in e["metrics"]]
    assert len(losses) == 2 and all(0 < loss < 5 for loss in losses)
    assert (handle.run_dir / "samples.jsonl").read_text().strip()


def test_two_processes_building_the_tiny_model_at_once_both_get_it(tmp_path):
    """The two ranks of ``accelerate launch`` on a fresh cache both ask for the model: one builds it under a lock,
    the other waits and then loads the built folder (they used to rename one .partial folder onto the other)."""
    import subprocess
    import sys

    from alignlab.models import DEFAULT_MODEL, default_model_path

    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / DEFAULT_MODEL).symlink_to(default_model_path())  # its tokenizer, without a rebuild
    code = "from alignlab.models import tiny_model_path; print(tiny_model_path())"
    env = {**__import__("os").environ, "ALIGNLAB_CACHE": str(cache)}
    builders = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(builder.wait(timeout=300), *builder.communicate()) for builder in builders]
    target = cache / "models" / "tiny-random"
    assert [(code, out.strip()) for code, out, _ in results] == [(0, str(target))] * 2, results
    assert (target / "config.json").exists() and not list((cache / "models").glob("*.partial"))
