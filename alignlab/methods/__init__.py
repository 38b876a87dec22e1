"""The method registry: one module per method, each registering a MethodSpec over TRL.

Adding a method means adding one module to this package that calls :func:`register`: every module
here is imported (discovered) when the package is, so there is no list of methods to keep in step.
Modules whose name starts with ``_`` and :mod:`~alignlab.methods.base` are not methods.
"""

import importlib
import pkgutil

from alignlab.errors import AlignLabError
from alignlab.methods.base import Knob, MethodSpec, Panel, register, registry, trl_class


def _discover() -> None:
    """Import every method module of this package (each registers its spec on import)."""
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base" and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_discover()


def method_names() -> list[str]:
    """Names of every registered method, in the registry's order (the RLHF pipeline's)."""
    return list(registry())


def get_method(name: str) -> MethodSpec:
    """The MethodSpec called ``name``; AlignLabError naming the choices otherwise."""
    try:
        return registry()[name]
    except KeyError:
        raise AlignLabError(f"method: got {name!r}, expected one of {', '.join(method_names())}") from None


def generates_text(name: str) -> bool:
    """True when ``name`` is a registered method whose trained model writes text (one can chat with it)."""
    spec = registry().get(name)
    return spec is not None and spec.model_kind == "causal-lm"


__all__ = ["Knob", "MethodSpec", "Panel", "generates_text", "get_method", "method_names", "register", "registry",
           "trl_class"]
