"""Sampling with sharded parameters: where the weights live, and FSDP2 sampling on CPU by every process together."""

import json
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from alignlab.distributed import FSDP1, FSDP2, REPLICATED, ZERO3, Sampling, parameter_layout, warn_if_not_sharded
from alignlab.errors import AlignLabWarning

WORKER = Path(__file__).with_name("fsdp_sampling_worker.py")


def accelerator_with(distributed_type, fsdp_plugin=None, zero_stage=None):
    """An accelerator's ``state`` as parameter_layout reads it (DeepSpeed itself is not installed here)."""
    deepspeed = None if zero_stage is None else SimpleNamespace(zero_stage=zero_stage)
    return SimpleNamespace(state=SimpleNamespace(distributed_type=distributed_type, fsdp_plugin=fsdp_plugin,
                                                 deepspeed_plugin=deepspeed))


def test_parameter_layout_picks_who_samples():
    from accelerate import FullyShardedDataParallelPlugin
    from accelerate.utils import DistributedType

    cases = {
        REPLICATED: [accelerator_with(DistributedType.NO), accelerator_with(DistributedType.MULTI_CPU),
                     accelerator_with(DistributedType.MULTI_GPU), accelerator_with(DistributedType.DEEPSPEED,
                                                                                   zero_stage=2)],
        ZERO3: [accelerator_with(DistributedType.DEEPSPEED, zero_stage=3)],
        FSDP1: [accelerator_with(DistributedType.FSDP, FullyShardedDataParallelPlugin(fsdp_version=1))],
        FSDP2: [accelerator_with(DistributedType.FSDP, FullyShardedDataParallelPlugin(fsdp_version=2))],
    }
    for layout, accelerators in cases.items():
        for accelerator in accelerators:
            assert parameter_layout(accelerator) == layout
            sampling = Sampling(layout)
            assert sampling.together == (layout != REPLICATED)
            assert sampling.joins(is_main_process=True) and sampling.joins(False) == sampling.together


def test_an_fsdp_launch_that_accelerate_runs_as_ddp_warns(monkeypatch):
    from accelerate.utils import DistributedType

    ddp_on_cpu = accelerator_with(DistributedType.MULTI_CPU)  # what accelerate makes of fsdp.yaml without GPUs
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.warns(AlignLabWarning, match="asked for FSDP but runs MULTI_CPU"):
        warn_if_not_sharded(ddp_on_cpu, parameter_layout(ddp_on_cpu))
    sharded = accelerator_with(DistributedType.FSDP, SimpleNamespace(fsdp_version=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_not_sharded(sharded, parameter_layout(sharded))  # asked for and got: no warning
        monkeypatch.delenv("ACCELERATE_USE_FSDP")
        warn_if_not_sharded(ddp_on_cpu, parameter_layout(ddp_on_cpu))  # plain DDP, as asked


def test_replicated_sampling_needs_no_gathering():
    sampling = Sampling(REPLICATED, wrapped_model=lambda: pytest.fail("a replicated model is never gathered"))
    with sampling.whole_parameters():
        pass
    assert sampling.agree("main's value") == "main's value"


def test_fsdp2_sampling_on_cpu_matches_whole_weights(tmp_path):
    output = tmp_path / "result.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(WORKER), str(output)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(output.read_text())
    assert found["world_size"] == 2 and found["sharded_type"] == "DTensor"  # the weights really were split
    assert found["sharded"] == found["whole"] and len(found["whole"]) == 3
    assert found["sharded_probe"] == found["whole_probe"]
