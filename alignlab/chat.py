"""Reference vs aligned: the two models a lab compares, without two copies when LoRA is on.

With a LoRA adapter the reference is the same weights with the adapter disabled
(``PeftModel.disable_adapter()``); without LoRA it is a frozen copy loaded from the base model.
"""

from __future__ import annotations

import contextlib


def is_adapter_model(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


@contextlib.contextmanager
def reference_of(model, config):
    """Context manager yielding the reference model for ``model`` (trained from ``config.model``)."""
    if is_adapter_model(model):
        with model.disable_adapter():
            yield model
        return
    from alignlab.models import load_model

    reference = load_model(config.model, trust_remote_code=config.trust_remote_code)
    reference.eval()
    yield reference
