"""The one device and dtype policy: where every model alignlab loads goes, and in what precision.

Every model load asks :func:`placement` (through :func:`alignlab.models.load_model` and
:func:`alignlab.models.load_trained`): the policy being trained, its reference, PPO's value model, a
reward model, the judge, and the models that ``eval``, chat, ``make-prefs``, ``annotate`` and
``export --merged`` read (``eval``, ``data annotate`` and ``data make-prefs`` take ``--dtype``, the chat's
:class:`~alignlab.chat.ChatPair` a ``dtype``). The trainer's precision flags come from the same answer
(:meth:`Placement.trainer_flags`), and nothing else calls ``.to(device)`` on a model (:func:`move`).

``--dtype auto`` decides from the machine (:class:`DeviceFacts`):

==============================  ===================  =============================================
device                          weights              trainer
==============================  ===================  =============================================
CUDA GPU with bf16 (A100, H100,  bf16                 ``bf16=True``
RTX 30xx and later)
CUDA GPU without bf16 (T4,       fp16 to read;        ``fp16=True``: fp16 autocast with loss scaling
V100)                            fp32 to train        (fp32 master weights, gradients unscaled)
Apple MPS                       fp32, on ``mps``     on ``mps`` (not forced to the CPU)
CPU                             fp32                 ``use_cpu=True``
==============================  ===================  =============================================

``bf16`` and ``fp32`` may be asked for anywhere bf16 runs (a bf16-capable GPU, MPS or the CPU); ``fp16``
trains only on a CUDA GPU. ``load_in_4bit`` (QLoRA, Dettmers et al. 2023, arXiv:2305.14314) loads the
frozen base in 4-bit NF4 and needs CUDA and the ``bitsandbytes`` package; elsewhere it is refused in one line.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

from alignlab.errors import AlignLabError

DTYPES = ("auto", "bf16", "fp16", "fp32")  # what --dtype takes
ATTENTION = ("auto", "eager", "sdpa", "flash_attention_2")  # --attn-implementation (auto: transformers' default)
TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


@dataclass(frozen=True)
class DeviceFacts:
    """What the policy needs to know about a machine; :meth:`detect` reads this one, tests pass their own."""

    kind: str = "cpu"  # cuda, mps or cpu
    bf16: bool = True  # the device computes in bf16 natively (False on T4/V100)
    bitsandbytes: bool = False  # the bitsandbytes package is installed
    index: int = 0  # this process's GPU (LOCAL_RANK under accelerate launch / torchrun)
    name: str = "CPU"  # what the device is, in words

    @classmethod
    def detect(cls) -> DeviceFacts:
        """The facts of this machine and process."""
        import torch

        has_bnb = importlib.util.find_spec("bitsandbytes") is not None
        if torch.cuda.is_available():
            index = int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
            try:  # emulated bf16 (T4, V100) is slow: only native support counts
                bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
            except TypeError:
                bf16 = torch.cuda.is_bf16_supported()
            return cls("cuda", bf16, has_bnb, index, torch.cuda.get_device_name(index))
        if torch.backends.mps.is_available():
            return cls("mps", True, False, 0, "Apple MPS")
        return cls("cpu", True, False, 0, "CPU")


@dataclass(frozen=True)
class Placement:
    """The policy's answer for one load: device, weight dtype, the trainer's mixed precision, attention, 4-bit."""

    device: str  # "cuda:0", "mps" or "cpu"
    dtype: str  # the weights' dtype: bf16, fp16 or fp32
    mixed_precision: str = "no"  # the trainer's autocast: bf16, fp16 (with loss scaling) or no
    attn_implementation: str | None = None  # None: transformers' default
    load_in_4bit: bool = False
    training: bool = False  # a trainer places the model (and takes trainer_flags); else it is moved on load

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, TORCH_DTYPES[self.dtype])

    def load_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for a model's ``from_pretrained``: dtype, attention and 4-bit quantisation."""
        kwargs: dict[str, Any] = {"dtype": self.torch_dtype}
        if self.attn_implementation:
            kwargs["attn_implementation"] = self.attn_implementation
        if self.load_in_4bit:
            from transformers import BitsAndBytesConfig

            compute = "bf16" if self.mixed_precision == "bf16" else "fp16"
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=Placement(self.device, compute).torch_dtype)
            kwargs["device_map"] = {"": self.device}  # bitsandbytes quantises as it places
        return kwargs

    def trainer_flags(self) -> dict[str, bool]:
        """The TRL/transformers TrainingArguments that follow this placement."""
        return {"bf16": self.mixed_precision == "bf16", "fp16": self.mixed_precision == "fp16",
                "use_cpu": self.device == "cpu"}


def _refuse(field: str, value: str, facts: DeviceFacts, expected: str) -> AlignLabError:
    return AlignLabError(f"{field}: got {value!r}, but this machine's device is {facts.name} ({facts.kind}); "
                         f"{expected}")


def placement(dtype: str = "auto", *, training: bool = False, attn_implementation: str = "auto",
              load_in_4bit: bool = False, facts: DeviceFacts | None = None) -> Placement:
    """Where a model goes and in what precision (see the module's table).

    ``training``: the load is trained (its trainer takes :meth:`Placement.trainer_flags`; with fp16, weights
    that train stay fp32 under fp16 autocast). ``facts`` default to this machine's (:meth:`DeviceFacts.detect`).
    AlignLabError in one line for a choice this machine cannot run.

    >>> chosen = placement("auto", training=True, facts=DeviceFacts("cuda", bf16=False, name="Tesla T4"))
    >>> chosen.device, chosen.dtype, chosen.mixed_precision
    ('cuda:0', 'fp32', 'fp16')
    """
    if dtype not in DTYPES:
        raise AlignLabError(f"dtype: got {dtype!r}, expected one of {', '.join(DTYPES)}")
    if attn_implementation not in ATTENTION:
        raise AlignLabError(f"attn_implementation: got {attn_implementation!r}, expected one of {', '.join(ATTENTION)}")
    facts = facts or DeviceFacts.detect()
    cuda = facts.kind == "cuda"
    if dtype == "auto":
        dtype = ("bf16" if facts.bf16 else "fp16") if cuda else "fp32"
    if dtype == "bf16" and not facts.bf16:
        raise _refuse("dtype", "bf16", facts, "it has no native bf16: use fp16 (or auto) or fp32")
    if dtype == "fp16" and training and not cuda:
        raise _refuse("dtype", "fp16", facts, "fp16 training (with loss scaling) needs a CUDA GPU: use bf16 or fp32")
    if attn_implementation == "flash_attention_2" and not (cuda and importlib.util.find_spec("flash_attn")):
        raise _refuse("attn_implementation", attn_implementation, facts,
                      "it needs a CUDA GPU and the flash-attn package: use sdpa or auto")
    if load_in_4bit and not (cuda and facts.bitsandbytes):
        raise _refuse("load_in_4bit", "True", facts, "4-bit QLoRA needs a CUDA GPU and bitsandbytes "
                      "(pip install 'alignlab[qlora]'): turn load_in_4bit off")
    mixed = dtype if training and dtype != "fp32" else "no"
    weights = "fp32" if training and dtype == "fp16" else dtype  # fp16 autocast keeps fp32 master weights
    device = f"cuda:{facts.index}" if cuda else facts.kind
    return Placement(device, weights, mixed, None if attn_implementation == "auto" else attn_implementation,
                     load_in_4bit, training)


def of_run(config, training: bool = True, facts: DeviceFacts | None = None) -> Placement:
    """The placement of a run's models (:class:`~alignlab.config.RunConfig`'s dtype, attention and 4-bit fields):
    the trained model, PPO's value model and a frozen reference take the same one."""
    return placement(config.dtype, training=training, attn_implementation=config.attn_implementation,
                     load_in_4bit=config.load_in_4bit and training, facts=facts)


def like(model) -> Placement:
    """The placement of an already loaded ``model``: its device and dtype (for a frozen copy beside it)."""
    attention = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return Placement(str(next(model.parameters()).device), dtype_name(model.dtype), attn_implementation=attention)


def dtype_name(dtype) -> str:
    """bf16, fp16 or fp32 for a torch dtype or its name (``torch.bfloat16``, ``"float16"``); fp32 for any other."""
    names = {value: key for key, value in TORCH_DTYPES.items()}
    return names.get(str(dtype).removeprefix("torch."), "fp32")


def on_cpu(dtype: str) -> Placement:
    """``dtype`` weights on the CPU, whatever the machine has (``export --merged`` keeps the base's dtype)."""
    return Placement("cpu", dtype)


def move(model, device: str):
    """``model`` on ``device`` (a 4-bit model stays where bitsandbytes placed it); returns the model."""
    if getattr(model, "is_loaded_in_4bit", False) or str(next(model.parameters()).device) == device:
        return model
    return model.to(device)
