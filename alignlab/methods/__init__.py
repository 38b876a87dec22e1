"""The method registry: one module per method, each registering a MethodSpec over TRL.

Adding a method means adding one module here and importing it below.
"""

from alignlab.errors import AlignLabError
from alignlab.methods.base import Knob, MethodSpec, Panel, register, registry

from alignlab.methods import sft, reward, dpo, kto, orpo, ppo, rloo, grpo, online_dpo  # noqa: E402,F401  (registration)


def method_names() -> list[str]:
    """Names of every registered method, in registration order."""
    return list(registry())


def get_method(name: str) -> MethodSpec:
    """The MethodSpec called ``name``; AlignLabError naming the choices otherwise."""
    try:
        return registry()[name]
    except KeyError:
        raise AlignLabError(f"method: got {name!r}, expected one of {', '.join(method_names())}") from None


__all__ = ["Knob", "MethodSpec", "Panel", "get_method", "method_names", "register"]
