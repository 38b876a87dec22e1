"""The shipped launch configs: accelerate's DDP/FSDP/ZeRO files and the TRL command line of the built-in DPO run."""

import os
import re
import shlex
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parent.parent
ACCELERATE = ROOT / "configs" / "accelerate"
TRL_DPO = ROOT / "configs" / "trl" / "dpo.yaml"


def launch_args(*argv):
    """``accelerate launch`` arguments after accelerate merged the config file into them (what it launches with)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    args = launch_command_parser().parse_args([*argv, "train.py"])
    return _validate_launch_command(args)[0]


@pytest.mark.parametrize("name, mode, zero_stage", [("ddp", "multi_gpu", None), ("fsdp", "use_fsdp", None),
                                                     ("zero2", "use_deepspeed", 2), ("zero3", "use_deepspeed", 3)])
def test_accelerate_config_loads_and_launches_as_meant(name, mode, zero_stage):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    path = ACCELERATE / f"{name}.yaml"
    config = load_config_from_file(str(path))  # refuses unknown top-level keys
    known = vars(launch_command_parser().parse_args(["train.py"]))
    for section in (config.fsdp_config, config.deepspeed_config):
        unknown = sorted(key for key in section or {} if key not in known)
        assert not unknown, f"{path.name}: not accelerate launch settings: {unknown}"
    args = launch_args("--config_file", str(path), "--num_processes", "4")
    modes = {m: bool(getattr(args, m)) for m in ("multi_gpu", "use_fsdp", "use_deepspeed")}
    assert modes == {m: m == mode for m in modes}
    assert args.num_processes == 4  # the command line wins over the file
    if zero_stage is not None:
        assert int(args.zero_stage) == zero_stage
        assert not any("gradient_accumulation" in key for key in config.deepspeed_config)  # the run's, not the file's


def test_fsdp_config_builds_an_fsdp2_plugin():
    from accelerate import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env

    args = launch_args("--config_file", str(ACCELERATE / "fsdp.yaml"), "--num_processes", "2")
    env = {k: v for k, v in prepare_multi_gpu_env(args).items() if k.startswith(("FSDP_", "ACCELERATE_"))}
    with mock.patch.dict(os.environ, env):  # what each launched process reads
        plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert "FULL_STATE_DICT" in str(plugin.state_dict_type)


def trl_dpo_command() -> list[str]:
    """The ``trl dpo ...`` line of the README, as argv after ``trl dpo``."""
    readme = (ROOT / "README.md").read_text()
    (line,) = [m.group(1) for m in re.finditer(r"^trl dpo (.+?)\s*(?:#.*)?$", readme, re.MULTILINE)]
    return shlex.split(line)


def test_readme_trl_dpo_command_parses_with_the_installed_trl(tmp_path, monkeypatch):
    import torch
    from trl.scripts.dpo import make_parser
    from trl.scripts.utils import get_dataset

    monkeypatch.chdir(ROOT)  # the command is run from the repository root
    argv = trl_dpo_command()
    assert argv[argv.index("--config") + 1] == str(TRL_DPO.relative_to(ROOT))
    argv[argv.index("--output_dir") + 1] = str(tmp_path / "out")
    if not torch.cuda.is_available():  # TRL's configs default to bf16, which needs a GPU: the README says so
        assert "--bf16 false" in (ROOT / "README.md").read_text()
        argv += ["--bf16", "false"]
    script, training, model, data, remaining = make_parser().parse_args_and_config(argv, return_remaining_strings=True)
    assert not remaining, f"flags TRL does not know: {remaining}"
    assert (training.beta, training.loss_type, training.loss_weights, training.max_length) == (
        0.5, ["sigmoid", "sft"], [1.0, 0.5], 112)  # alignlab's DPO defaults (β, sft_weight)
    assert model.use_peft and (model.lora_r, model.lora_alpha, model.lora_target_modules) == (16, 32, "all-linear")
    pairs = get_dataset(data)["train"]  # the shipped file, read locally
    shipped = (ROOT / "assets" / "positive-reviews" / "prefs.jsonl").read_text().splitlines()
    assert pairs.column_names == ["prompt", "chosen", "rejected"] and len(pairs) == len(shipped)
    assert {m["role"] for m in pairs[0]["prompt"]} == {"user"} and pairs[0]["chosen"][0]["role"] == "assistant"


def test_readme_trl_dpo_command_trains_on_the_shipped_pairs(tmp_path):
    """The README's ``trl dpo`` line really trains (2 steps, tiny-random saved as a folder, bf16 off on CPU)."""
    import json
    import subprocess
    import sys

    import torch

    from alignlab.models import load_model, load_tokenizer

    model_dir = tmp_path / "tiny"
    load_model("tiny-random").save_pretrained(model_dir)
    load_tokenizer("tiny-random").save_pretrained(model_dir)
    argv = trl_dpo_command()
    argv[argv.index("--output_dir") + 1] = str(tmp_path / "out")
    argv += ["--model_name_or_path", str(model_dir), "--max_steps", "2", "--per_device_train_batch_size", "2"]
    if not torch.cuda.is_available():
        argv += ["--bf16", "false"]
    result = subprocess.run([sys.executable, "-m", "trl.cli.main", "dpo", *argv], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((tmp_path / "out" / "checkpoint-2" / "trainer_state.json").read_text())
    assert [row["step"] for row in state["log_history"] if "loss" in row] == [1, 2]
    assert (tmp_path / "out" / "adapter_config.json").exists()  # LoRA, as the file asks
