"""The one device and dtype policy (alignlab/devices.py): its decisions for each kind of device, decided from
facts passed in (no GPU needed), its refusals, the trainer flags that follow it, and that every load goes
through it (the source has no other model load or move; a bf16 run loads every model in bf16)."""

import ast
from pathlib import Path

import pytest

from alignlab import devices
from alignlab.config import RunConfig
from alignlab.devices import DeviceFacts, Placement, placement
from alignlab.errors import AlignLabError

H100 = DeviceFacts("cuda", bf16=True, bitsandbytes=True, name="NVIDIA H100")
T4 = DeviceFacts("cuda", bf16=False, bitsandbytes=True, index=1, name="Tesla T4")
MPS = DeviceFacts("mps", name="Apple MPS")
CPU = DeviceFacts()
ENGINE = Path(devices.__file__).parent

# (facts, --dtype, training) -> (device, weights, trainer autocast): the policy table of the module docstring
TABLE = [
    (H100, "auto", True, ("cuda:0", "bf16", "bf16")),
    (H100, "auto", False, ("cuda:0", "bf16", "no")),
    (H100, "fp32", True, ("cuda:0", "fp32", "no")),
    (H100, "fp16", True, ("cuda:0", "fp32", "fp16")),
    (T4, "auto", True, ("cuda:1", "fp32", "fp16")),  # fp32 master weights, fp16 autocast with loss scaling
    (T4, "auto", False, ("cuda:1", "fp16", "no")),  # reading (eval, chat, judge): fp16 weights
    (T4, "fp32", True, ("cuda:1", "fp32", "no")),
    (MPS, "auto", True, ("mps", "fp32", "no")),  # MPS is not forced to the CPU
    (MPS, "bf16", False, ("mps", "bf16", "no")),
    (CPU, "auto", True, ("cpu", "fp32", "no")),
    (CPU, "auto", False, ("cpu", "fp32", "no")),
    (CPU, "bf16", True, ("cpu", "bf16", "bf16")),
]


@pytest.mark.parametrize(("facts", "dtype", "training", "expected"), TABLE)
def test_the_policy_table(facts, dtype, training, expected):
    chosen = placement(dtype, training=training, facts=facts)
    assert (chosen.device, chosen.dtype, chosen.mixed_precision) == expected
    assert chosen.training is training


@pytest.mark.parametrize(("facts", "dtype", "expected"), [
    (H100, "auto", {"bf16": True, "fp16": False, "use_cpu": False}),
    (T4, "auto", {"bf16": False, "fp16": True, "use_cpu": False}),
    (MPS, "auto", {"bf16": False, "fp16": False, "use_cpu": False}),
    (CPU, "auto", {"bf16": False, "fp16": False, "use_cpu": True}),
])
def test_trainer_arguments_follow_the_policy(monkeypatch, tmp_path, facts, dtype, expected):
    from alignlab.training import trl_arguments

    monkeypatch.setattr(DeviceFacts, "detect", classmethod(lambda cls: facts))
    config = RunConfig(method="dpo", model="tiny-random", dtype=dtype, gradient_checkpointing=True)
    arguments = trl_arguments(config, tmp_path)
    assert {key: arguments[key] for key in expected} == expected
    assert arguments["activation_checkpointing"] is True  # transformers 5's name: no deprecation warning


@pytest.mark.parametrize(("call", "match"), [
    (lambda: placement("bf16", facts=T4), "dtype: got 'bf16'.*Tesla T4.*no native bf16"),
    (lambda: placement("fp16", training=True, facts=CPU), "dtype: got 'fp16'.*needs a CUDA GPU"),
    (lambda: placement("fp16", training=True, facts=MPS), "dtype: got 'fp16'.*needs a CUDA GPU"),
    (lambda: placement("fp8", facts=CPU), "dtype: got 'fp8', expected one of auto, bf16, fp16, fp32"),
    (lambda: placement(load_in_4bit=True, training=True, facts=CPU), "load_in_4bit.*CUDA GPU and bitsandbytes"),
    (lambda: placement(load_in_4bit=True, training=True, facts=DeviceFacts("cuda", name="A10")),
     "load_in_4bit.*bitsandbytes"),
    (lambda: placement(attn_implementation="flash_attention_2", facts=CPU), "attn_implementation.*flash-attn"),
])
def test_choices_the_machine_cannot_run_are_refused_in_one_line(call, match):
    with pytest.raises(AlignLabError, match=match) as error:
        call()
    assert "\n" not in str(error.value)


def test_qlora_loads_the_base_in_4_bits_with_the_compute_dtype():
    chosen = placement(load_in_4bit=True, training=True, facts=H100)
    kwargs = chosen.load_kwargs()
    assert kwargs["quantization_config"].load_in_4bit and kwargs["device_map"] == {"": "cuda:0"}
    assert str(kwargs["quantization_config"].bnb_4bit_compute_dtype) == "torch.bfloat16"


def test_4_bit_needs_lora_and_an_unrunnable_choice_is_refused_before_a_run_starts(tiny):
    from alignlab.runner import start

    with pytest.raises(AlignLabError, match="load_in_4bit: got True with lora False"):
        RunConfig(**tiny, lora=False, load_in_4bit=True)
    with pytest.raises(AlignLabError, match="load_in_4bit"):  # this machine has no CUDA
        start(RunConfig(**tiny, load_in_4bit=True), background=False)
    assert not Path(tiny["output_dir"]).exists() or not any(Path(tiny["output_dir"]).iterdir())


def _engine_calls(attribute: str):
    """(file, line, receiver source) of every ``<receiver>.<attribute>(...)`` call in the engine."""
    for path in sorted(ENGINE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == attribute:
                yield path.relative_to(ENGINE).as_posix(), node.lineno, ast.unparse(node.func.value)


def test_no_model_is_loaded_or_moved_outside_the_policy():
    """Only alignlab/models.py calls a model class's from_pretrained (tokenizers and configs may be read anywhere);
    only alignlab/devices.py moves a model with .to(...) (inputs are moved to the model's device)."""
    loads = [(path, line, receiver) for path, line, receiver in _engine_calls("from_pretrained")
             if "Model" in receiver or receiver == "loader"]
    assert loads and {path for path, _, _ in loads} == {"models.py"}, loads
    moves = [(path, line, receiver) for path, line, receiver in _engine_calls("to")
             if any(word in receiver.lower() for word in ("model", "reference", "merged", "policy"))]
    assert [(path, receiver) for path, _, receiver in moves] == [("devices.py", "model")], moves


def test_every_load_of_a_bf16_run_is_bf16(monkeypatch, tiny):
    """A PPO run without LoRA in bf16 (on the CPU): the policy, its value model, the reference and the probe's
    frozen reference all load in bf16, each from_pretrained call with the policy's dtype."""
    import torch
    from transformers import PreTrainedModel

    from alignlab.runner import start

    loads = []
    original = PreTrainedModel.from_pretrained.__func__

    def recording(cls, *args, **kwargs):
        loads.append((cls.__name__, kwargs.get("dtype")))
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(recording))
    config = RunConfig.from_dict({"method": "ppo", **tiny, "lora": False, "dtype": "bf16", "max_steps": 1,
                                  "max_completion_length": 4, "probe_every": 1, "ppo_epochs": 1})
    handle = start(config, background=False)
    assert handle.state == "finished", handle.error
    kinds = [name for name, _ in loads]
    assert "LlamaForSequenceClassification" in kinds and kinds.count("LlamaForCausalLM") >= 2  # policy, probe's ref
    assert {dtype for _, dtype in loads} == {torch.bfloat16}, loads
    assert handle.model.dtype == torch.bfloat16


def test_reading_loads_follow_the_policy(monkeypatch, tiny):
    """A saved run read back (eval, chat, annotate, a reward model), the judge, make-prefs' model and a frozen
    reference ask the policy, and land where it says."""
    import torch

    from alignlab.models import load_model, load_trained
    from alignlab.reference import frozen_reference
    from alignlab.runner import start

    handle = start(RunConfig(**{**tiny, "max_steps": 1, "probe_every": 0}), background=False)
    assert handle.state == "finished", handle.error
    asked = []
    real = devices.placement

    def recording(*args, **kwargs):
        asked.append(real(*args, **kwargs))
        return asked[-1]

    monkeypatch.setattr(devices, "placement", recording)
    model, _ = load_trained(handle.run_dir)
    judge = load_model("tiny-random")
    assert len(asked) == 2 and all(not chosen.training for chosen in asked)
    assert model.dtype == judge.dtype == torch.float32 and judge.device.type == "cpu"
    reference = frozen_reference("tiny-random", like=judge.to(torch.bfloat16))
    assert reference.dtype == torch.bfloat16 and len(asked) == 2  # the copy follows its model, not a new decision
    attention = reference.config._attn_implementation
    assert devices.like(reference) == Placement("cpu", "bf16", attn_implementation=attention)


@pytest.fixture
def loads(monkeypatch):
    """Every model class from_pretrained call from here on: (class name, dtype asked for)."""
    from transformers import PreTrainedModel

    calls = []
    original = PreTrainedModel.from_pretrained.__func__

    def recording(cls, *args, **kwargs):
        calls.append((cls.__name__, kwargs.get("dtype")))
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(recording))
    return calls


def test_eval_chat_annotate_and_make_prefs_load_in_the_dtype_asked(loads, tiny, tmp_path):
    """--dtype reaches the policy from each reading command: bf16 asked (the CPU runs it), every load is bf16,
    the models sample in bf16, and a dtype this machine cannot run is refused before anything loads."""
    import torch

    from alignlab.annotate import annotate_run
    from alignlab.chat import ChatPair
    from alignlab.evaluate import compare_run
    from alignlab.make_prefs import make_prefs
    from alignlab.runner import start

    handle = start(RunConfig(**{**tiny, "max_steps": 1, "probe_every": 0}), background=False)
    assert handle.state == "finished", handle.error
    loads.clear()
    pair = ChatPair.from_run(handle.run_dir, dtype="bf16")
    base = ChatPair.base_only("tiny-random", dtype="bf16")
    assert pair.model.dtype == pair.reference_model.dtype == base.model.dtype == torch.bfloat16
    compare_run(handle.run_dir, samples_per_prompt=1, with_fluency=False, dtype="bf16")
    annotate_run(handle.run_dir, prompts=1, dtype="bf16")
    report = make_prefs("tiny-random", ["Review 1: the film"], tmp_path / "made.jsonl", samples_per_prompt=2,
                        max_new_tokens=4, min_gap=0.0, dtype="bf16")
    assert report.prompts == 1
    assert len(loads) == 5 and {dtype for _, dtype in loads} == {torch.bfloat16}, loads
    loads.clear()
    with pytest.raises(AlignLabError, match="dtype: got 'fp8'"):
        compare_run(handle.run_dir, dtype="fp8")
    with pytest.raises(AlignLabError, match="dtype: got 'half'"):
        ChatPair.base_only("tiny-random", dtype="half")
    assert loads == []


@pytest.mark.parametrize("command", [["eval", "RUN"], ["data", "annotate", "RUN"],
                                     ["data", "make-prefs", "--output", "x.jsonl"]])
def test_the_reading_commands_offer_dtype(command, capsys):
    from alignlab.cli import main

    with pytest.raises(SystemExit) as exit_code:
        main([*command, "--dtype", "fp8"])
    assert exit_code.value.code == 2
    error = capsys.readouterr().err
    assert "--dtype: invalid choice: 'fp8'" in error and all(name in error for name in devices.DTYPES)
