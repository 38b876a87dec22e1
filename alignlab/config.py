"""RunConfig: everything that defines one training run, validated on creation.

Common settings are dataclass fields whose ``metadata`` carries help text and bounds;
method-specific knobs (β, loss type, clip ranges, ...) live in the method's MethodSpec and
arrive here in ``method_args``. :func:`common_knobs` turns the fields into :class:`Knob`
objects so the CLI, both UIs and validation share one declaration.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignlab.data import resolve_dataset
from alignlab.data_readers import is_dataset_object
from alignlab.devices import ATTENTION, DTYPES
from alignlab.errors import AlignLabError
from alignlab.methods import get_method, method_names
from alignlab.methods.base import METHOD_SETTINGS, Knob
from alignlab.models import DEFAULT_MODEL, offered_models
from alignlab.rewards import DEFAULT_INSTRUCTION, DEFAULT_OPPOSITE, reward_names
from alignlab.rundir import CONFIG, MAX_RUN_NAME, RUNS_WHERE, check_run_id, default_runs_dir, read_config
from alignlab.task import builtin_names
from alignlab.tracking import TRACKERS, report_to_value

DEFAULT_DATASET = "positive-reviews"


def _meta(help: str, group: str = "more", **declaration: Any) -> dict:
    """A field's Knob declaration: help text, form group (essential, lora or more), kind, bounds, suggestions."""
    return {"help": help, "group": group, **declaration}


def _short(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for one-line errors."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


DEFAULT_BATCH_SIZE = 8  # examples per optimizer step where the method declares no default of its own
DEFAULT_LEARNING_RATE = 1e-3  # LoRA's rate on the default model, where the method declares no default of its own
# the lab's defaults of the run settings a method may give its own default of (``METHOD_SETTINGS``, in its order)
LAB_DEFAULTS = dict(zip(METHOD_SETTINGS, (DEFAULT_BATCH_SIZE, DEFAULT_LEARNING_RATE), strict=True))
MAX_OWNER = 64  # characters of a run owner's (a participant's) name
NOT_KNOBS = ("method", "method_args", "owner")  # fields no form or flag sets: the method is picked first, the owner
# is set by the app


def check_owner(name: Any, field: str = "owner") -> str:
    """A person's name as a run's owner: stripped, at most :data:`MAX_OWNER` printable characters ("" or None: no
    owner); AlignLabError naming ``field`` for anything else.

    >>> check_owner("  ada "), check_owner(None)
    ('ada', '')
    """
    if name is None:
        return ""
    text = name.strip() if isinstance(name, str) else None
    if text is None or len(text) > MAX_OWNER or not text.isprintable():
        raise AlignLabError(f"{field}: got {_short(name)}, expected a name of at most {MAX_OWNER} printable characters")
    return text


MAX_CONFIG_BYTES = 1 << 20  # a run config file is a few hundred bytes; one over 1 MiB is refused unread


def _load_yaml(text: str, path: Path) -> Any:
    """``yaml.safe_load`` that refuses aliases (``*name``) as it meets them: a run config needs none, and nested
    aliases ("billion laughs") build a value that expands exponentially once anything prints or walks it."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise AlignLabError(f"config: {path} line {event.start_mark.line + 1} uses the YAML alias "
                                    f"*{event.anchor[:40]}, expected plain values (a run config takes no aliases)")
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):
            seen = set()  # a key given twice would silently keep its last value
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    repeated = key in seen
                    seen.add(key)
                except TypeError:  # a list as a key: refused later as not a knob name
                    continue
                if repeated:
                    raise AlignLabError(f"config: {path} line {key_node.start_mark.line + 1} repeats the key "
                                        f"{str(key)[:40]!r}, expected each setting once")
            return super().construct_mapping(node, deep)

    loader = NoAliasLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _unique_keys(pairs: list[tuple[str, Any]], path: Path) -> dict:
    """A JSON object's pairs as a dict; AlignLabError naming the file and a key given twice."""
    values: dict = {}
    for key, value in pairs:
        if key in values:
            raise AlignLabError(f"config: {path} repeats the key {key[:40]!r}, expected each setting once")
        values[key] = value
    return values


@dataclass
class RunConfig:
    """One run: method, model, data and the knobs shared by every method."""

    method: str = field(default="dpo", metadata=_meta("Training method.", kind="choice"))
    model: str = field(default=DEFAULT_MODEL, metadata=_meta("Model name, hub id or local path.", "essential",
                                                             kind="str", suggestions=offered_models))
    dataset: Any = field(
        default=DEFAULT_DATASET, metadata=_meta("Built-in name, HF dataset id, JSONL/CSV/Parquet path, a "
                                                "save_to_disk folder, or votes:<run id> (the blind votes cast on a "
                                                "run); join sources with + to mix them (votes:<run id>+positive-"
                                                "reviews). From Python also a datasets.Dataset or DatasetDict.",
                                                "essential", kind="str", suggestions=builtin_names)
    )
    eval_dataset: str = field(
        default="", metadata=_meta("Held-out prompts for the samples, the probe and eval, never trained on: a dataset "
                                   "like dataset (its prompts are used; positive-reviews means the task's held-out "
                                   "split). Empty: the built-in task's held-out split, or 20% (at most 64) of your "
                                   "dataset's prompts drawn with the seed. Training rows with these prompts are left "
                                   "out.", kind="str")
    )
    reward: str = field(
        default="sentiment",
        metadata=_meta("Reward source for probes, samples and RL: sentiment, length[:N], reward-model:<run>, "
                       "judge[:<model>].", "essential", kind="str", suggestions=reward_names),
    )
    judge_instruction: str = field(
        default=DEFAULT_INSTRUCTION,
        metadata=_meta("What the judge reward asks for (only with reward judge[:<model>] or judge-pairwise).",
                       kind="str"),
    )
    judge_opposite: str = field(
        default=DEFAULT_OPPOSITE,
        metadata=_meta("The judge's contrast: what a bad response is asked to be (only with reward judge[:<model>]; "
                       "several separated by ';' are averaged; empty: the request alone).", kind="str"),
    )
    max_steps: int = field(
        default=12, metadata=_meta("Optimizer steps (0 = run `epochs` instead).", "essential", min=0, max=100000))
    epochs: float = field(
        default=1.0, metadata=_meta("Passes over the data when max_steps is 0.", min=0, min_exclusive=True, max=1000))
    learning_rate: float | None = field(
        default=None, metadata=_meta("Learning rate (LoRA adapters take a higher rate than full fine-tuning; try 1e-4 "
                                     "without LoRA); unset, the method's default (the lab's 1e-3 unless the method "
                                     "declares its own).", "essential", kind="float", min=0, min_exclusive=True,
                                     max=1.0, log_scale=True, form_default=DEFAULT_LEARNING_RATE)
    )
    lr_schedule: str = field(
        default="constant",
        metadata=_meta("Learning-rate schedule: constant keeps the full rate to the end, so a short run is not spent "
                       "at a decaying rate; linear and cosine decay to 0 by the last step; constant_with_warmup ramps "
                       "up over warmup_steps first.",
                       kind="choice", choices=("constant", "constant_with_warmup", "linear", "cosine")),
    )
    warmup_steps: int = field(default=0, metadata=_meta("Steps of linear warm-up at the start (the first of them "
                                                        "runs at rate 0).", min=0, max=100000))
    batch_size: int | None = field(
        default=None, metadata=_meta("Examples per optimizer step (per device); unset, the method's default (the "
                                     "lab's 8 unless the method declares its own).", "essential", kind="int", min=1,
                                     max=4096, form_default=DEFAULT_BATCH_SIZE))
    grad_accum: int = field(default=1, metadata=_meta("Gradient accumulation steps.", min=1, max=1024))
    max_length: int = field(
        default=112, metadata=_meta("Max tokens of prompt + completion (the built-in task's chat prompt is ~52).",
                                    min=8, max=32768))
    max_completion_length: int = field(
        default=48, metadata=_meta("Max new tokens when the lab generates (samples, probe, RL); two sentences "
                                   "of review fit in 48.", min=1, max=8192)
    )
    max_grad_norm: float = field(
        default=1.0, metadata=_meta("Gradient-norm clipping (0 disables).", min=0, max=1000)
    )
    lora: bool = field(default=True, metadata=_meta("Train a LoRA adapter instead of all weights (PERL).", "lora"))
    lora_r: int = field(default=16, metadata=_meta("LoRA rank.", "lora", min=1, max=1024))
    lora_alpha: int = field(default=32, metadata=_meta("LoRA scaling alpha.", "lora", min=1, max=4096))
    lora_dropout: float = field(default=0.0, metadata=_meta("LoRA dropout.", "lora", min=0, max=0.9))
    lora_target_modules: str = field(
        default="all-linear", metadata=_meta("Comma-separated module names, or all-linear.", "lora", kind="str")
    )
    load_in_4bit: bool = field(
        default=False, metadata=_meta("QLoRA: load the frozen base in 4-bit NF4 under the LoRA adapter (needs a CUDA "
                                      "GPU and bitsandbytes).", "lora"))
    dtype: str = field(
        default="auto",
        metadata=_meta("Precision of the weights and the trainer: auto = bf16 on a GPU with bf16, fp16 with loss "
                       "scaling on one without (T4, V100), fp32 on the CPU (see alignlab.devices).",
                       kind="choice", choices=DTYPES))
    gradient_checkpointing: bool = field(
        default=False, metadata=_meta("Recompute activations in the backward pass: less GPU memory, about a third "
                                      "more time per step."))
    attn_implementation: str = field(
        default="auto", metadata=_meta("Attention kernel: auto (transformers' default, sdpa), eager, sdpa, or "
                                       "flash_attention_2 (CUDA and the flash-attn package).",
                                       kind="choice", choices=ATTENTION))
    seed: int = field(
        default=42, metadata=_meta("Random seed (data order, init, sampling).", "essential", min=0, max=2**31 - 1))
    probe_every: int = field(
        default=6,
        metadata=_meta("Reward/KL probe every N steps, plus at the start and the end (0 = off).", "essential",
                       min=0, max=100000),
    )
    save_every: int = field(
        default=10,
        metadata=_meta("Save a checkpoint (weights, optimizer and schedule) every N steps, so a stopped, failed or "
                       "killed run can be resumed (train --resume); 0 = only when the run is stopped.",
                       min=0, max=100000),
    )
    keep_checkpoints: int = field(
        default=2, metadata=_meta("How many of the newest checkpoints a run keeps (removed when it finishes).",
                                  min=1, max=100))
    report_to: str = field(
        default="none",
        metadata=_meta("Experiment trackers that also get the trainer's logs and the probe's reward and KL: "
                       "tensorboard (event files in the run's logs/ folder), trackio, wandb or mlflow, several "
                       "comma-separated (or the flag repeated); each one's package must be installed (tensorboard and "
                       "trackio: pip install 'alignlab[track]').", kind="str",
                       suggestions=lambda: tuple(TRACKERS)),
    )
    output_dir: str = field(default_factory=lambda: str(default_runs_dir()), metadata=_meta(
        f"Folder that holds run directories (default: {RUNS_WHERE}).", kind="str"))
    run_name: str = field(default="", metadata=_meta("Optional label added to the run id: letters, digits, "
                                                              "'_', '.' or '-', at most 64 characters.", "essential",
                                                              kind="str"))
    trust_remote_code: bool = field(default=False, metadata=_meta("Allow model code from the model's own repo."))
    owner: str = field(default="", metadata=_meta("Who started the run (the app sets it: the signed-in account, or in "
                                                  "workshop mode the participant's name); shown in run labels and on "
                                                  "the class leaderboard. Not a knob: no flag or form field.",
                                                  kind="str"))
    method_args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.validate()

    def _values(self) -> tuple:
        """Every field's value as it is now (a copy of method_args): what :meth:`revalidate` compares."""
        return tuple(dict(value) if isinstance(value, dict) else value
                     for value in (getattr(self, f.name) for f in dataclasses.fields(self)))

    def revalidate(self) -> RunConfig:
        """:meth:`validate` again only if a field (or a method knob) changed since the config was last checked: a
        run's start (:func:`alignlab.runner.start`) checks a config once, however long ago it was made. Returns it."""
        if getattr(self, "_checked", None) != self._values():
            self.validate()
        return self

    def validate(self) -> RunConfig:
        """Check and coerce every field and method knob; AlignLabError naming the first bad one.

        Runs on creation; a run's start calls :meth:`revalidate`, so a config changed after it was made is checked
        as well. Returns the config.
        """
        if not isinstance(self.method, str) or self.method not in method_names():
            raise AlignLabError(f"method: got {_short(self.method)}, expected one of {', '.join(method_names())}")
        for name in LAB_DEFAULTS:  # unset: the method's own default, else the lab's
            if getattr(self, name) is None:
                setattr(self, name, method_default(self.method, name))
        if isinstance(self.report_to, (list, tuple)):  # a YAML list or a repeated flag, as transformers takes it
            self.report_to = report_to_value(self.report_to)
        for knob in common_knobs():
            value = getattr(self, knob.name)
            if not is_dataset_object(value):  # a datasets.Dataset stays one (resolve_dataset takes its train split)
                setattr(self, knob.name, knob.coerce(value))
        self.owner = check_owner(self.owner)
        self.report_to = report_to_value(self.report_to)  # "tensorboard,trackio" or "none"; unknown names refused
        if self.run_name:  # a label that goes into the run directory's name: never a path
            check_run_id(self.run_name, "run_name", MAX_RUN_NAME)
        if not self.output_dir.strip() or "\x00" in self.output_dir:  # whether it can be written: checked at start
            raise AlignLabError(f"output_dir: got {_short(self.output_dir)}, expected a folder path")
        if self.load_in_4bit and not self.lora:
            raise AlignLabError("load_in_4bit: got True with lora False, expected lora on (4-bit weights are frozen: "
                                "QLoRA trains a LoRA adapter over them)")
        self.dataset = resolve_dataset(self.dataset, self.output_dir)  # votes:<run id> -> its file in output_dir
        if self.eval_dataset.strip():
            try:
                self.eval_dataset = resolve_dataset(self.eval_dataset.strip(), self.output_dir)
            except AlignLabError as error:
                raise AlignLabError(f"eval_dataset: {str(error).removeprefix('dataset: ')}") from None
        if self.max_completion_length >= self.max_length:
            raise AlignLabError(
                f"max_completion_length: got {self.max_completion_length}, expected less than max_length "
                f"({self.max_length}) so the prompt has room"
            )
        spec = get_method(self.method)
        known = {knob.name: knob for knob in spec.knobs}
        args = dict(spec.defaults())
        if not isinstance(self.method_args, dict):
            raise AlignLabError(f"method_args: got a {type(self.method_args).__name__} ({_short(self.method_args)}), "
                                "expected a mapping of knob names to values")
        for name, value in dict(self.method_args).items():
            if not isinstance(name, str):
                raise AlignLabError(f"method_args: got the key {_short(name)}, expected knob names")
            if name not in known:
                expected = ", ".join(known) or "none"
                raise AlignLabError(f"{name}: not a knob of method {self.method!r} (its knobs: {expected})")
            args[name] = known[name].coerce(value)
        self.method_args = args
        if spec.validate is not None:
            spec.validate(self)
        self._checked = self._values()
        return self

    @property
    def spec(self):
        return get_method(self.method)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Build from a flat dict: common fields by name, anything else is a method knob."""
        if not isinstance(values, dict):
            raise AlignLabError(f"config: got a {type(values).__name__}, expected a mapping of knob names to values")
        for key in values:
            if not isinstance(key, str):
                raise AlignLabError(f"config: got the key {_short(key)}, expected knob names")
        values = {k.replace("-", "_"): v for k, v in values.items() if v is not None}
        names = {f.name for f in dataclasses.fields(cls)}
        common = {k: v for k, v in values.items() if k in names and k != "method_args"}
        method_args = values.get("method_args") or {}
        if not isinstance(method_args, dict):
            raise AlignLabError(f"method_args: got a {type(method_args).__name__} ({_short(method_args)}), "
                                "expected a mapping of knob names to values")
        method_args = dict(method_args)
        method_args.update({k: v for k, v in values.items() if k not in names})
        return cls(**common, method_args=method_args)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> RunConfig:
        """Load a YAML or JSON config; ``overrides`` (e.g. CLI flags) win over the file."""
        if not isinstance(path, (str, Path)) or "\x00" in str(path):
            raise AlignLabError(f"config: got {_short(path)}, expected a file path")
        path = Path(path)
        if not path.is_file():
            raise AlignLabError(f"config: file {str(path)!r} not found")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise AlignLabError(f"config: {path} is {path.stat().st_size:,} bytes, expected a run config of at most "
                                f"{MAX_CONFIG_BYTES:,} bytes")
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise AlignLabError(f"config: {path} is not UTF-8 text (a binary file?), expected YAML or JSON") from None
        except OSError as error:
            raise AlignLabError(f"config: cannot read {path} ({error.strerror or error})") from None
        try:
            if path.suffix == ".json":
                values = json.loads(text, object_pairs_hook=lambda pairs: _unique_keys(pairs, path))
            else:
                values = _load_yaml(text, path)
        except AlignLabError:
            raise
        except Exception as error:  # noqa: BLE001 - report any parse error as bad input
            reason = " ".join(str(error).split())  # YAML's messages span lines; the CLI shows one
            raise AlignLabError(f"config: {path} is not valid YAML/JSON ({reason})") from None
        if not isinstance(values, dict):
            raise AlignLabError(f"config: {path} holds a {type(values).__name__}, expected a mapping of knob names "
                                "to values")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """Common fields and method knobs in one mapping (what a form shows)."""
        values = self.to_dict()
        values.update(values.pop("method_args"))
        return values


def config_of(run_dir: str | Path) -> RunConfig:
    """The RunConfig a run was started with, read from its run directory (fields it no longer has are ignored)."""
    names = {f.name for f in dataclasses.fields(RunConfig)}
    values = read_config(run_dir)
    try:
        return RunConfig(**{k: v for k, v in values.items() if k in names})
    except AlignLabError as error:
        raise AlignLabError(f"run: {Path(run_dir).name}/{CONFIG} holds a config that is not valid: {error}") from None


def method_default(method: str, name: str) -> Any:
    """The value of run setting ``name`` (one of :data:`LAB_DEFAULTS`) that a run of ``method`` gets when it sets
    none: the method's own (:attr:`~alignlab.methods.base.MethodSpec.run_defaults`), else the lab's.

    >>> method_default("dpo", "batch_size"), method_default("online-dpo", "batch_size")
    (8, 16)
    >>> method_default("dpo", "learning_rate"), method_default("simpo", "learning_rate")
    (0.001, 0.0003)
    """
    return get_method(method).run_defaults.get(name, LAB_DEFAULTS[name])


@functools.cache
def common_knobs() -> tuple[Knob, ...]:
    """The RunConfig fields as Knobs (:data:`NOT_KNOBS` excluded: the method is the form's first choice, the owner
    is set by the app). ``output_dir``'s default is :func:`~alignlab.rundir.default_runs_dir` at the first call."""
    knobs = []
    for f in dataclasses.fields(RunConfig):
        if f.name in NOT_KNOBS:
            continue
        meta = dict(f.metadata)
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # the runs folder's, now
        default = meta.pop("form_default", default)  # what a form shows where the method may set its own
        kind = meta.pop("kind", None) or {bool: "bool", int: "int", float: "float"}.get(type(default), "str")
        knobs.append(Knob(f.name, default, meta.pop("help"), kind=kind, **meta))
    return tuple(knobs)
