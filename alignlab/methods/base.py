"""Knobs and MethodSpecs: the single declaration every front end is generated from.

A :class:`Knob` is one tunable value (β, clip range, loss type, ...) with its type, range,
default and help text. A :class:`MethodSpec` says which TRL config and trainer a method wraps,
the dataset format it needs, its knobs and the metric keys its plots show. The CLI flags,
the notebook form, the Gradio form and validation are all generated from these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from alignlab.errors import AlignLabError

KNOB_KINDS = ("float", "int", "bool", "choice", "str")


@dataclass(frozen=True)
class Knob:
    """One tunable value of a run, declared once.

    ``min``/``max`` bound numeric knobs; ``min_exclusive`` makes the lower bound strict
    (β > 0). ``target`` is the TRL config field the value is passed to (defaults to
    ``name``; ``None``-valued ``target=""`` means alignlab consumes it itself).
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

    def __post_init__(self):
        if self.kind not in KNOB_KINDS:
            raise ValueError(f"Knob {self.name}: kind must be one of {KNOB_KINDS}")

    @property
    def trl_field(self) -> str:
        return self.name if self.target is None else self.target

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
        bad = AlignLabError(f"{self.name}: got {value!r}, expected {self.expected()}")
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
        except (TypeError, ValueError):
            raise bad from None
        if isinstance(value, bool) or number != number:  # bools and NaN are not numbers here
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


def beta_knob(default: float = 0.1, help: str | None = None, target: str | None = None) -> Knob:
    """The β knob shared by most methods: strength of the pull toward the reference model."""
    return Knob(
        "beta",
        default,
        help or "β: strength of the pull toward the reference model (higher = stay closer).",
        min=0.0,
        min_exclusive=True,
        max=100.0,
        log_scale=True,
        target=target,
    )


@dataclass(frozen=True)
class Panel:
    """A plot panel a method wants: a title and the metric keys drawn on it."""

    title: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class MethodSpec:
    """A training method: which TRL classes it wraps, what data it needs, what a user can tune.

    ``data_format`` is one of ``preference`` (prompt, chosen, rejected), ``unpaired``
    (prompt, completion, label), ``sft`` (prompt, completion) or ``prompt`` (prompt only).
    ``config_class`` / ``trainer_class`` are zero-argument loaders so importing alignlab does
    not import every TRL trainer. ``trainer_kwargs`` builds extra trainer arguments (reward
    functions, value models, ...) from the run context. ``trl_overrides`` computes TRL config
    values that depend on the run (PPO counts episodes, not steps). ``validate`` rejects settings
    that cannot work (a batch that does not hold whole groups of generations) when the RunConfig
    is created, before anything is written. ``measured`` says what the method reaches at its defaults
    on the built-in task (from ``python -m bench.alignment``), for the Learn text.
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
    measured: str = ""

    def knob(self, name: str) -> Knob:
        for knob in self.knobs:
            if knob.name == name:
                return knob
        raise KeyError(name)

    def defaults(self) -> dict[str, Any]:
        return {knob.name: knob.default for knob in self.knobs}


_REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method to the registry (called once at the bottom of each method module)."""
    _REGISTRY[spec.name] = spec
    return spec


def registry() -> dict[str, MethodSpec]:
    return _REGISTRY
