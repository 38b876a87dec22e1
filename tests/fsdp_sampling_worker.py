"""One process of the FSDP2 sampling test (tests/test_sharded_sampling.py), started by torchrun on CPU (gloo).

Every process samples from the tiny-random model with a LoRA adapter, first with whole weights, then with the
weights split by torch's ``fully_shard`` (one unit per decoder layer and one outermost), all processes together
as :mod:`alignlab.distributed` has them; the main process writes both, and the probe's figures, to argv[1].
"""

import contextlib
import json
import sys

import torch
import torch.distributed as dist
from peft import get_peft_model
from torch.distributed.fsdp import fully_shard

from alignlab.distributed import FSDP2, Sampling
from alignlab.generation import SamplingSettings, sample
from alignlab.models import load_model, load_tokenizer, lora_config
from alignlab.probe import measure

PROMPTS = ["The film opens with", "I went in with low expectations and", "Honestly, the lead actor"]


@contextlib.contextmanager
def reference(model):
    """The reference as the lab has it with LoRA: the same model, adapter off."""
    with model.disable_adapter():
        yield model


def probe(model, tokenizer, synced_gpus=False):
    def reward(prompts, texts):
        return [float(len(text)) for text in texts]

    result = measure(model, lambda: reference(model), tokenizer, PROMPTS, reward, max_new_tokens=6, seed=3,
                     synced_gpus=synced_gpus)
    return [round(result.kl, 4), [s["completion"] for s in result.samples]]


def main(output: str) -> None:
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    tokenizer = load_tokenizer("tiny-random")
    model = get_peft_model(load_model("tiny-random"), lora_config(r=4, alpha=8))
    settings = SamplingSettings(max_new_tokens=8, temperature=1.0, top_p=1.0, seed=5)
    # whole weights first, through the same path sharded runs take (every process together), so only the
    # sharding differs between the two
    whole = sample(model, tokenizer, PROMPTS, settings, whole_sentences=False, synced_gpus=True)
    whole_probe = probe(model, tokenizer, synced_gpus=True)
    for layer in model.base_model.model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    sampling = Sampling(FSDP2, lambda: model)
    with sampling.whole_parameters():
        sharded = sample(model, tokenizer, PROMPTS, settings, whole_sentences=False, synced_gpus=sampling.together)
        sharded_probe = probe(model, tokenizer, synced_gpus=True)
    shard = next(p for p in model.parameters() if p.dim() == 2)
    if dist.get_rank() == 0:
        with open(output, "w") as file:
            json.dump({"world_size": dist.get_world_size(), "whole": whole, "sharded": sharded,
                       "whole_probe": whole_probe, "sharded_probe": sharded_probe,
                       "sharded_type": type(shard).__name__}, file)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
