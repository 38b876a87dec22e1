"""The reference model policy: how every part of the lab gets "the model before alignment".

Chat, the probe, training and the evaluation all compare an aligned model with its reference, and
they must agree on what the reference is and on how to read it safely from several threads:

- With a LoRA adapter the reference is the same weights with the adapter switched off
  (``PeftModel.disable_adapter()``), so no second copy is held (DESIGN rule 7; PERL, Sidahmed et al. 2024).
- Without an adapter, or when the aligned model is being trained right now (a chat during training
  must not switch the live model's adapter off), it is a frozen copy of the base model, loaded once
  and placed on the aligned model's device (:func:`frozen_reference`).
- Switching an adapter off is guarded by one lock per model (:func:`lock_for`): :func:`reference_of`
  and a chat's token steps hold it, and :func:`guard_adapter_switch` makes the trainer's own
  ``disable_adapter()`` hold it too, so nothing reads the reference weights as the aligned model.
"""

from __future__ import annotations

import contextlib
import threading
import weakref

from alignlab import devices
from alignlab.models import load_model

# One lock per model object, so nothing reads the aligned model while another thread has its LoRA
# adapter switched off for a reference step (two chats on the same model, a probe during training).
_MODEL_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_MODEL_LOCKS_GUARD = threading.Lock()


def is_adapter_model(model) -> bool:
    """True for a peft model whose adapter can be switched off to give the reference."""
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def lock_for(model) -> threading.RLock:
    """The lock shared by every reader of ``model`` and by :func:`reference_of` (made on first use)."""
    with _MODEL_LOCKS_GUARD:
        return _MODEL_LOCKS.setdefault(model, threading.RLock())


def guard_adapter_switch(model) -> None:
    """Make ``model.disable_adapter()`` hold :func:`lock_for` ``(model)`` while the adapter is off.

    TRL's trainers switch a LoRA policy's adapter off for every reference forward pass. A chat
    reading the live model from another thread takes the same lock per token, so with this guard
    it waits for the reference pass instead of reading the reference weights as the aligned model.
    """
    if not is_adapter_model(model) or getattr(model, "_alignlab_guarded", False):
        return
    unguarded, lock = model.disable_adapter, lock_for(model)

    @contextlib.contextmanager
    def disable_adapter():
        with lock, unguarded():
            yield

    model.disable_adapter = disable_adapter
    model._alignlab_guarded = True


def frozen_reference(model_name: str, like=None, trust_remote_code: bool = False):
    """A frozen copy of the base model ``model_name`` in eval mode, on the device and in the dtype of ``like`` (if
    given: the model it is the reference of, see :func:`alignlab.devices.like`)."""
    placement = devices.like(like) if like is not None else None
    return load_model(model_name, trust_remote_code=trust_remote_code, placement=placement).eval()


@contextlib.contextmanager
def reference_of(model, config):
    """Context manager yielding the reference model for ``model`` (trained from ``config.model``).

    With LoRA it holds :func:`lock_for` ``(model)`` while the adapter is off, so a chat reading the
    aligned model meanwhile (a probe during training, say) waits instead of seeing the reference.
    Without LoRA it loads a frozen copy for the duration of the block.
    """
    if is_adapter_model(model):
        with lock_for(model), model.disable_adapter():
            yield model
        return
    yield frozen_reference(config.model, model, config.trust_remote_code)
