"""Runs over several processes (``accelerate launch``): where the weights live, and how the processes sample.

Data parallelism (DDP; DeepSpeed ZeRO stages 1 and 2) keeps a whole copy of the weights in every process, so
process 0 can sample on its own (the probe, the end-of-run samples) while the others wait for it. Sharded
parameters do not allow that:

- **FSDP** (Zhao et al. 2023, "PyTorch FSDP: Experiences on Scaling Fully Sharded Data Parallel") splits every
  parameter across the processes and gathers a layer's weights from all of them when that layer computes;
- **ZeRO-3** (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion Parameter Models",
  stage P_os+g+p) does the same with DeepSpeed's hooks.

A gather is a collective operation: every process must run the same forward passes, or all of them wait
forever. So under sharding every process samples, on the same prompts, with ``synced_gpus`` (a process whose
sequences have ended keeps stepping until every process's have), and only process 0 writes what came out.
The weights the layers' own hooks never gather (FSDP's outermost unit: embeddings, final norm, head) are
gathered around the sampling by :meth:`Sampling.whole_parameters`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from alignlab.errors import AlignLabWarning

REPLICATED = "replicated"  # one process, DDP, ZeRO-1/2: every process holds the whole model
FSDP1 = "fsdp1"  # torch's FullyShardedDataParallel wrapper
FSDP2 = "fsdp2"  # torch's fully_shard (FSDPModule)
ZERO3 = "zero3"  # DeepSpeed ZeRO stage 3
SHARDED = (FSDP1, FSDP2, ZERO3)


def parameter_layout(accelerator: Any) -> str:
    """Where an ``accelerate.Accelerator``'s model keeps its weights: :data:`REPLICATED`, :data:`FSDP1`,
    :data:`FSDP2` or :data:`ZERO3` (read from ``accelerator.state``)."""
    from accelerate.utils import DistributedType

    state = accelerator.state
    if state.distributed_type == DistributedType.FSDP:
        return FSDP2 if getattr(state.fsdp_plugin, "fsdp_version", 1) == 2 else FSDP1
    if state.distributed_type == DistributedType.DEEPSPEED and getattr(state.deepspeed_plugin, "zero_stage", 0) == 3:
        return ZERO3
    return REPLICATED


@dataclass
class Sampling:
    """How the processes of a run sample: ``layout`` (see :func:`parameter_layout`) and ``wrapped_model``, a
    callable giving the trainer's outermost model when sampling starts (FSDP wraps it when training starts)."""

    layout: str = REPLICATED
    wrapped_model: Callable[[], Any] | None = None

    @property
    def together(self) -> bool:
        """Whether every process must join the sampling (sharded parameters), not process 0 alone."""
        return self.layout in SHARDED

    def joins(self, is_main_process: bool) -> bool:
        """Whether this process samples: the main one always, every one when the parameters are sharded."""
        return is_main_process or self.together

    @contextlib.contextmanager
    def whole_parameters(self) -> Iterator[None]:
        """While sampling: the outermost FSDP unit's weights gathered in full in every process (each layer's
        own unit gathers itself in its forward pass). ZeRO-3's hooks gather every layer, with synced_gpus."""
        if self.layout == FSDP1:
            from torch.distributed.fsdp import FullyShardedDataParallel

            with FullyShardedDataParallel.summon_full_params(self.wrapped_model(), recurse=False, writeback=False):
                yield
        elif self.layout == FSDP2:
            from torch.distributed.fsdp import FSDPModule

            root = self.wrapped_model()
            if not isinstance(root, FSDPModule):
                yield
                return
            # FSDP2 picks its root at the first forward pass through it, and a layer's forward run before that
            # fails ("requires running forward through the root module first"): sampling before any training
            # step (the probe at step 0) does so. torch has no public call for it; this is what that pass does.
            root._get_fsdp_state()._lazy_init()
            root.unshard()
            try:
                yield
            finally:
                root.reshard()
        else:
            yield

    def agree(self, value: Any) -> Any:
        """``value`` as the main process has it, in every process that samples together (a decision that
        differs between processes, such as a cache hit, would leave some of them waiting forever)."""
        if not self.together:
            return value
        from accelerate.utils import broadcast_object_list

        holder = [value]
        broadcast_object_list(holder, from_process=0)
        return holder[0]


def warn_if_not_sharded(accelerator: Any, layout: str) -> None:
    """Warn when ``accelerate launch`` was asked for FSDP or DeepSpeed but the weights are whole in every process:
    accelerate runs an FSDP config on CPU-only machines as plain data parallelism (DDP), saying nothing."""
    import os

    from accelerate.utils import DistributedType

    asked = [name for name, flag in (("FSDP", "ACCELERATE_USE_FSDP"), ("DeepSpeed", "ACCELERATE_USE_DEEPSPEED"))
             if os.environ.get(flag, "false").lower() == "true"]
    if asked and layout == REPLICATED and accelerator.state.distributed_type not in (DistributedType.FSDP,
                                                                                     DistributedType.DEEPSPEED):
        warnings.warn(f"accelerate was asked for {asked[0]} but runs {accelerator.state.distributed_type.value} "
                      "(every process holds the whole model): accelerate shards weights on GPUs only",
                      AlignLabWarning, stacklevel=2)


def sampling_of(trainer: Any) -> Sampling:
    """The :class:`Sampling` of a transformers/TRL trainer (its accelerator says where the weights live)."""
    layout = parameter_layout(trainer.accelerator)
    warn_if_not_sharded(trainer.accelerator, layout)
    return Sampling(layout, lambda: trainer.model_wrapped)


def batch_layout(args: Any) -> dict[str, int]:
    """``world_size`` (processes training together) and ``global_batch_size`` (examples per optimizer step:
    per-device batch x gradient accumulation x processes) of a run's TrainingArguments."""
    world = int(getattr(args, "world_size", 1) or 1)
    return {"world_size": world,
            "global_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps * world}
