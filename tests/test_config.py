"""RunConfig and knob validation: bad values give one clear AlignLabError naming the field."""

import pytest

from alignlab.config import RunConfig, common_knobs
from alignlab.errors import AlignLabError
from alignlab.methods import get_method, method_names


@pytest.mark.parametrize(
    "values, field",
    [
        ({"method": "dpo", "beta": 0}, "beta"),
        ({"method": "dpo", "beta": -1}, "beta"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"max_steps": -3}, "max_steps"),
        ({"method": "nope"}, "method"),
        ({"method": "dpo", "loss_type": "bogus"}, "loss_type"),
        ({"method": "sft", "beta": 0.1}, "beta"),  # SFT has no β
        ({"batch_size": 1.5}, "batch_size"),
        ({"lora": "maybe"}, "lora"),
        ({"max_length": 32, "max_completion_length": 32}, "max_completion_length"),
    ],
)
def test_bad_values_name_the_field(values, field):
    with pytest.raises(AlignLabError) as error:
        RunConfig.from_dict(values)
    assert str(error.value).startswith(field + ":")


def test_method_knobs_get_defaults_and_coercion():
    config = RunConfig.from_dict({"method": "dpo", "beta": "0.25", "loss_type": "ipo", "max_steps": "7"})
    assert config.method_args["beta"] == 0.25
    assert config.method_args["loss_type"] == "ipo"
    assert config.max_steps == 7
    assert config.flat()["beta"] == 0.25


def test_dpo_offers_every_trl_loss_type():
    import dataclasses
    import re

    from trl import DPOConfig

    help_text = next(f for f in dataclasses.fields(DPOConfig) if f.name == "loss_type").metadata["help"]
    documented = re.findall(r"`'(\w+)'`", help_text.split("If multiple")[0])
    assert set(get_method("dpo").knob("loss_type").choices) == set(documented)


def test_dpo_mixes_the_chosen_answers_likelihood_into_trl_loss_as_sft_weight_asks(tmp_path):
    """sft_weight > 0: TRL's DPOConfig gets the preference loss plus its ``sft`` term at that weight; 0 (or the
    ``sft`` loss itself) leaves one loss. Built as the trainer builds it, from the run's config."""
    from trl import DPOConfig

    from alignlab.training import trl_arguments

    def trl_config(**knobs):
        config = RunConfig.from_dict({"method": "dpo", "output_dir": str(tmp_path), **knobs})
        return DPOConfig(**trl_arguments(config, tmp_path / "run"))

    mixed = trl_config(sft_weight=2.5, loss_type="ipo")
    assert (mixed.loss_type, mixed.loss_weights) == (["ipo", "sft"], [1.0, 2.5])
    assert trl_config(sft_weight=0).loss_type == ["sigmoid"] and trl_config(sft_weight=0).loss_weights is None
    assert trl_config(loss_type="sft").loss_type == ["sft"]
    default = get_method("dpo").defaults()["sft_weight"]
    assert default > 0 and trl_config().loss_weights == [1.0, default]


def test_every_method_declares_format_and_paper():
    for name in method_names():
        spec = get_method(name)
        assert spec.data_format in ("preference", "unpaired", "sft", "prompt")
        assert spec.paper and spec.summary


def test_config_file_and_flags_agree(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("method: dpo\nbeta: 0.3\nmax_steps: 5\nloss_type: hinge\n")
    config = RunConfig.from_file(path, max_steps=9)
    assert (config.method_args["beta"], config.max_steps, config.method_args["loss_type"]) == (0.3, 9, "hinge")
    path.write_text("- not a mapping\n")
    with pytest.raises(AlignLabError, match="config"):
        RunConfig.from_file(path)


def test_a_method_may_declare_its_own_default_batch_size_and_learning_rate():
    """Online DPO declares 16 completions a step (8 pairs), SimPO and PPO a learning rate of 3e-4; a run that sets
    neither gets them, one that sets them keeps its own, and the others get the lab's 8 and 1e-3. The config a run
    writes holds the numbers, and --help lists them."""
    from alignlab.cli.parser import flag_help, knob_declarations
    from alignlab.config import DEFAULT_BATCH_SIZE, DEFAULT_LEARNING_RATE, method_default

    assert RunConfig(method="online-dpo").batch_size == method_default("online-dpo", "batch_size") == 16
    assert RunConfig.from_dict({"method": "online-dpo", "batch_size": None}).batch_size == 16
    assert RunConfig(method="online-dpo", batch_size=8).batch_size == 8
    assert RunConfig().batch_size == RunConfig(method="rloo").batch_size == DEFAULT_BATCH_SIZE == 8
    assert RunConfig(method="online-dpo").flat()["batch_size"] == 16
    assert RunConfig(method="simpo").learning_rate == 3e-4 and RunConfig(method="simpo").batch_size == 8
    assert RunConfig(method="ppo").learning_rate == 3e-4
    assert RunConfig(method="simpo", learning_rate=1e-3).learning_rate == 1e-3
    assert RunConfig().learning_rate == RunConfig(method="online-dpo").learning_rate == DEFAULT_LEARNING_RATE
    assert RunConfig(method="simpo").flat()["learning_rate"] == 3e-4
    for name, lab in (("batch_size", 8), ("learning_rate", 1e-3)):  # what a form shows first
        assert next(k for k in common_knobs() if k.name == name).default == lab
    assert "simpo, ppo: a number > 0 and <= 1.0, default 0.0003" in flag_help(knob_declarations()["learning_rate"])
    said = flag_help(knob_declarations()["batch_size"])
    assert "online-dpo: an integer >= 1 and <= 4096, default 16" in said and "the others:" in said


def test_common_knobs_cover_the_fields():
    names = {knob.name for knob in common_knobs()}
    assert {"learning_rate", "max_steps", "max_grad_norm", "lora_r", "seed"} <= names
