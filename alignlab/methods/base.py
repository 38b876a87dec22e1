"""Knobs and MethodSpecs: the single declaration every front end is generated from.

A :class:`Knob` is one tunable value (β, clip range, loss type, ...) with its type, range,
default and help text. A :class:`MethodSpec` says which TRL config and trainer a method wraps,
the dataset format it needs, its knobs and the metric keys its plots show. The CLI flags,
the notebook form, the Gradio form and validation are all generated from these objects.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from alignlab.errors import AlignLabError
from alignlab.metrics import headline, headline_keys

KNOB_KINDS = ("float", "int", "bool", "choice", "str")
# Where a form shows a run setting, with the section's title: essential settings open, the rest folded.
KNOB_GROUPS = {"essential": "Training", "lora": "LoRA (train a small adapter, not all weights)",
               "more": "More settings"}
SLIDER_SPAN = 100  # a bounded, linear number gets a slider when max - min is at most this (else a number box)


METHOD_SETTINGS = ("batch_size", "learning_rate")  # the run settings a method may give its own default


@dataclass(frozen=True)
class Knob:
    """One tunable value of a run, declared once.

    ``kind`` is one of ``KNOB_KINDS``; ``min``/``max`` bound numeric knobs and ``min_exclusive``
    makes the lower bound strict (β > 0); ``choices`` are a ``choice`` knob's values; ``log_scale``
    marks numbers that span orders of magnitude (no linear slider). The value goes to the TRL config
    field ``target`` (default: ``name``) when the method's TRL config has that field; otherwise only
    the method's own hooks read it from ``RunConfig.method_args``.

    How the forms show it is declared here too: ``group`` (a key of ``KNOB_GROUPS``) places a run
    setting in the essential, LoRA or "more" section (a method's own knobs show with their method);
    ``suggestions`` lists the values a string knob's picker offers (other values may still be typed);
    :attr:`control` says which kind of input both forms draw.
    """

    name: str
    default: Any
    help: str
    kind: str = "float"
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    choices: tuple = ()
    log_scale: bool = False
    target: str | None = None
    group: str = "essential"
    suggestions: Callable[[], Sequence[str]] | None = None

    def __post_init__(self):
        if self.kind not in KNOB_KINDS:
            raise ValueError(f"Knob {self.name}: kind must be one of {KNOB_KINDS}")
        if self.group not in KNOB_GROUPS:
            raise ValueError(f"Knob {self.name}: group must be one of {tuple(KNOB_GROUPS)}")

    @property
    def control(self) -> str:
        """The input both forms draw: ``checkbox``, ``dropdown`` (choices), ``picker`` (a string with
        suggestions), ``text``, ``log-slider`` (a log-scale number above 0), ``slider`` (a linear range of
        at most ``SLIDER_SPAN`` whose lower bound is allowed) or ``number``."""
        if self.kind == "str":
            return "picker" if self.suggestions is not None else "text"
        if self.kind in ("bool", "choice"):
            return "checkbox" if self.kind == "bool" else "dropdown"
        if self.log_scale and self.kind == "float" and ((self.min or 0) > 0 or self.default > 0):
            return "log-slider"
        bounded = self.min is not None and self.max is not None and self.max - self.min <= SLIDER_SPAN
        return "slider" if bounded and not self.log_scale and not self.min_exclusive else "number"

    @property
    def trl_field(self) -> str:
        """The TRL config field this knob's value is passed to."""
        return self.target or self.name

    def expected(self) -> str:
        """Human-readable description of the accepted values."""
        if self.kind == "choice":
            return "one of " + ", ".join(map(str, self.choices))
        if self.kind == "bool":
            return "true or false"
        if self.kind == "str":
            return "a string"
        low = "" if self.min is None else (f"> {self.min}" if self.min_exclusive else f">= {self.min}")
        high = "" if self.max is None else f"<= {self.max}"
        bounds = " and ".join(b for b in (low, high) if b)
        noun = "an integer" if self.kind == "int" else "a number"
        return f"{noun} {bounds}".strip()

    def coerce(self, value: Any) -> Any:
        """Return ``value`` converted to the knob's type, or raise AlignLabError naming the knob."""
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."  # one line, even for a huge value
        bad = AlignLabError(f"{self.name}: got {shown}, expected {self.expected()}")
        if self.kind == "bool":
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise bad
            if isinstance(value, (bool, int)):
                return bool(value)
            raise bad
        if self.kind == "str":
            if value is None or isinstance(value, (dict, list)):
                raise bad
            return str(value)
        if self.kind == "choice":
            if value not in self.choices:
                raise bad
            return value
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond any float
            raise bad from None
        if isinstance(value, bool) or not math.isfinite(number):  # bools, NaN and ±inf (1e400) are not numbers here
            raise bad
        if self.kind == "int":
            if number != int(number):
                raise bad
            number = int(number)
        if self.min is not None and (number < self.min or (self.min_exclusive and number <= self.min)):
            raise bad
        if self.max is not None and number > self.max:
            raise bad
        return number


def beta_knob(default: float = 0.1, help: str | None = None) -> Knob:
    """The β knob shared by most methods: strength of the pull toward the reference model."""
    return Knob(
        "beta",
        default,
        help or "β: strength of the pull toward the reference model (higher = stay closer).",
        min=0.0,
        min_exclusive=True,
        max=100.0,
        log_scale=True,
    )


PANEL_KINDS = ("curve", "frontier", "drift")


@dataclass(frozen=True)
class Panel:
    """A plot panel: a title, the metric keys drawn on it, and its kind.

    A ``curve`` panel draws each key's value against the step (what a method's own panels are); the
    ``frontier`` panel draws reward against KL from the reference, one line per run, keyed by its one key
    (:data:`alignlab.panels.FRONTIER_PANEL`); the ``drift`` panel draws its keys as curves and says in words
    whether the run is drifting (:data:`alignlab.panels.DRIFT_PANEL`, :func:`alignlab.drift.verdict`).
    """

    title: str
    keys: tuple[str, ...]
    kind: str = "curve"

    def __post_init__(self):
        if self.kind not in PANEL_KINDS:
            raise ValueError(f"Panel {self.title}: kind must be one of {PANEL_KINDS}")


@dataclass(frozen=True)
class MethodSpec:
    """A training method: which TRL classes it wraps, what data it needs, what a user can tune.

    Everything generic code needs to know about a method is a field or a hook here, so the trainer,
    the models, the UIs and the experiments never test a method's name.

    ``data_format`` is one of ``preference`` (prompt, chosen, rejected), ``unpaired``
    (prompt, completion, label), ``sft`` (prompt, completion) or ``prompt`` (prompt only).
    ``config_class`` / ``trainer_class`` are zero-argument loaders (:func:`trl_class`) so importing
    alignlab does not import every TRL trainer. ``trainer_kwargs`` builds extra trainer arguments
    (reward functions, value models, ...) from the :class:`~alignlab.training.RunContext`.
    ``trl_overrides`` computes TRL config values that depend on the run (PPO counts episodes, not
    steps; a trainer's own name for the completion length). ``validate`` rejects settings that cannot
    work (a batch that does not hold whole groups of generations) when the RunConfig is created,
    before anything is written. ``kl_knob`` names the knob that sets the pull toward the reference
    (β, PPO's ``kl_coef``), the one a reward-vs-KL frontier sweeps. ``tiny_settings`` are the knob
    values that make a two-step trial on ``tiny-random`` work (the registry-wide test trains every
    method with them). ``order`` places the method in pickers and lists (the RLHF pipeline's order).
    ``lesson`` says in words (no figures) what the benchmark teaches about the method, for its Learn card, beside
    the figures the benchmark measured (:mod:`alignlab.measured`, written by ``python -m bench.learn_figures``).
    ``resumable`` says whether a stopped, failed or killed run can continue from its last checkpoint (TRL's
    Trainer restores weights, optimizer, scheduler and data position); False for a trainer with a loop of its own
    that does not.
    ``reward_key`` and ``kl_key`` name the metric keys under which the method's trainer logs the reward
    source's score of the samples it trains on and its KL from the reference (an online method's; None for a
    method that logs neither): a run without the probe shows them as its reward and KL
    (:meth:`headline`, :func:`alignlab.metrics.headline`); the registry-wide test checks that a run logs them.
    ``run_defaults`` holds the method's own defaults of the run settings in :data:`METHOD_SETTINGS` where they
    differ from the lab's (:data:`alignlab.config.LAB_DEFAULTS`): a run that sets none gets them, ``--help`` lists
    them, and the forms show them when the method is picked (online DPO's batch of 16 completions, SimPO's lower
    learning rate).
    """

    name: str
    title: str
    summary: str
    paper: str
    data_format: str
    config_class: Callable[[], type]
    trainer_class: Callable[[], type]
    knobs: tuple[Knob, ...] = ()
    panels: tuple[Panel, ...] = ()
    model_kind: str = "causal-lm"  # or "sequence-classifier" (reward model)
    uses_reference: bool = True
    trl_defaults: dict = field(default_factory=dict)
    trainer_kwargs: Callable[[Any], dict] | None = None
    trl_overrides: Callable[[Any], dict] | None = None
    validate: Callable[[Any], None] | None = None
    kl_knob: str | None = None
    tiny_settings: dict = field(default_factory=dict)
    order: int = 100
    lesson: str = ""
    resumable: bool = True
    reward_key: str | None = None
    kl_key: str | None = None
    run_defaults: dict = field(default_factory=dict)

    def __post_init__(self):
        if set(self.run_defaults) - set(METHOD_SETTINGS):
            raise ValueError(f"MethodSpec {self.name}: run_defaults may set only {', '.join(METHOD_SETTINGS)}")
        if self.kl_knob is not None and self.kl_knob not in {knob.name for knob in self.knobs}:
            raise ValueError(f"MethodSpec {self.name}: kl_knob {self.kl_knob!r} is not one of its knobs")

    def knob(self, name: str) -> Knob:
        for knob in self.knobs:
            if knob.name == name:
                return knob
        raise KeyError(name)

    def defaults(self) -> dict[str, Any]:
        return {knob.name: knob.default for knob in self.knobs}

    def summary_keys(self) -> tuple[str, ...]:
        """The metric keys a run's summary lists (the CLI's final line, the model card's table): the loss, the
        keys of this method's own panels, then its headline keys (:func:`alignlab.metrics.headline_keys`)."""
        heads = headline_keys(self.reward_key, self.kl_key).values()
        keys = ["loss", *(key for panel in self.panels for key in panel.keys), *(key for keys in heads for key in keys)]
        return tuple(dict.fromkeys(keys))

    def headline(self, row: dict[str, Any]) -> dict[str, Any]:
        """The run's headline metrics in ``row`` (:func:`alignlab.metrics.headline`): the probe's, else this
        method's own ``reward_key`` and ``kl_key``."""
        return headline(row, self.reward_key, self.kl_key)


_REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method to the registry (called once at the bottom of each method module)."""
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"method {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def registry() -> dict[str, MethodSpec]:
    """Every registered method by name, in ``order`` (then by name)."""
    return dict(sorted(_REGISTRY.items(), key=lambda item: (item[1].order, item[0])))


def headline_of(method: str | None, row: dict[str, Any]) -> dict[str, Any]:
    """The headline metrics in ``row`` of a run of ``method`` (:meth:`MethodSpec.headline`); only the probe's for
    a method this alignlab does not know (or None).

    >>> headline_of("ppo", {"objective/scores": 0.4, "objective/kl": 1.5})
    {'reward': 0.4, 'kl': 1.5, 'follow': None}
    """
    spec = _REGISTRY.get(method or "")
    return spec.headline(row) if spec is not None else headline(row)


def summary_keys(method: str | None) -> tuple[str, ...]:
    """The metric keys a summary of a run of ``method`` lists (:meth:`MethodSpec.summary_keys`); the loss and the
    probe's headline keys for a method this alignlab does not know.

    >>> summary_keys("ppo")[-5:]
    ('probe/reward', 'objective/scores', 'probe/kl', 'objective/kl', 'probe/follow')
    """
    spec = _REGISTRY.get(method or "")
    return spec.summary_keys() if spec is not None else ("loss", *(keys[0] for keys in headline_keys().values()))


def _import_quietly(module_name: str):
    """Import an experimental TRL module without TRL's notice: its environment switch is set for the import only
    and put back as it was after it (the process's environment is left as the user set it)."""
    before = os.environ.get("TRL_EXPERIMENTAL_SILENCE")
    os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
    try:
        return importlib.import_module(module_name)
    finally:
        if before is None:
            del os.environ["TRL_EXPERIMENTAL_SILENCE"]
        else:
            os.environ["TRL_EXPERIMENTAL_SILENCE"] = before


def trl_class(path: str, wrap: Callable[[type], type] | None = None) -> Callable[[], type]:
    """A zero-argument loader of the class at dotted ``path`` (``"trl.DPOConfig"``), imported on first call.

    ``wrap`` adapts the class once it is imported (a subclass with a cache or a stop hook); the
    result is kept, so every call returns the same class. Experimental TRL modules are imported
    without TRL's warning: the project pins the TRL version whose experimental API it uses.
    """
    module_name, _, class_name = path.rpartition(".")
    loaded: list[type] = []

    def load() -> type:
        if not loaded:
            cls = getattr(_import_quietly(module_name) if ".experimental." in path
                          else importlib.import_module(module_name), class_name)
            loaded.append(wrap(cls) if wrap else cls)
        return loaded[0]

    load.__qualname__ = load.__name__ = f"load_{class_name}"
    load.__doc__ = f"{path}{' (adapted by ' + wrap.__name__ + ')' if wrap else ''}"
    return load
