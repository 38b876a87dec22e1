"""What a model card tells the Hugging Face hub in machine-readable form: ``model-index`` results and versions.

The hub, its leaderboards and ``huggingface_hub.ModelCard`` read a card's evaluation results from the
``model-index`` of its YAML front matter. :func:`eval_results` gives a run's, each naming the task (the
run's held-out prompts of its dataset, with what the built-in task asks), the dataset and the reward source
that scored it (the metrics' ``config``):

- ``reward_gain``: the paired reward gain over the reference of the last ``alignlab eval``
  (:mod:`alignlab.evaluate`), and ``win_rate``, the share of held-out prompts the aligned model won;
- ``kl`` and ``reward``: the probe's final point (:mod:`alignlab.probe`), the sequence-level KL from the
  reference in nats and the mean reward at that step.

A run with neither (no eval, no probe) has no ``model-index``. :func:`framework_versions` lists the
versions of the libraries the card's model was made with, as TRL's own cards do.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from alignlab import rundir
from alignlab.data import dataset_parts
from alignlab.panels import final_point
from alignlab.task import BUILTIN_TASK

FRAMEWORKS = ("alignlab", "trl", "transformers", "peft", "torch", "datasets", "huggingface_hub")
TASK_TYPE = "text-generation"
HELD_OUT_SPLIT = "held-out"  # the split the figures come from: the run's held-out prompts, never trained on


def framework_versions() -> dict[str, str]:
    """The installed version of each of :data:`FRAMEWORKS` (``not installed`` for one that is missing)."""
    versions = {}
    for name in FRAMEWORKS:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def versions_section() -> str:
    """The card's "Framework versions" list (Markdown)."""
    return "\n".join(f"- {name}: {number}" for name, number in framework_versions().items())


def _task_name(dataset: str) -> str:
    if dataset == BUILTIN_TASK:
        return f"Controlled sentiment generation ({BUILTIN_TASK}: a short movie review from a given opening)"
    return f"Aligned generation on the held-out prompts of {dataset}"


def _dataset_type(dataset: str, hub_ids: list[str]) -> str:
    """The dataset's hub id where it has one, else the name of the first source it mixes."""
    if hub_ids:
        return hub_ids[0]
    first = (dataset_parts(dataset) or [dataset])[0]
    return Path(first).name or first


def eval_results(run_dir: str | Path, config: dict, hub_ids: list[str]) -> list:
    """The run's figures as ``huggingface_hub.EvalResult`` objects (see the module's list), empty when it has
    none. ``config`` is the run's recorded config; ``hub_ids`` the hub dataset ids among its sources."""
    from huggingface_hub import EvalResult

    dataset = str(config.get("dataset", ""))
    common = {"task_type": TASK_TYPE, "task_name": _task_name(dataset), "dataset_type": _dataset_type(dataset, hub_ids),
              "dataset_name": f"{dataset} (held-out prompts)", "dataset_split": HELD_OUT_SPLIT}
    results = []
    evaluation = rundir.read_eval(run_dir)
    if evaluation is not None:
        reward = str(evaluation.get("reward") or config.get("reward"))
        scored = {**common, "metric_config": reward}
        results.append(EvalResult(**scored, metric_type="reward_gain", metric_value=round(evaluation["gain"], 4),
                                  metric_name=f"Reward gain over the reference ({reward}; paired s.e. "
                                              f"{evaluation['gain_se']:.3g}, {evaluation.get('prompts')} prompts)"))
        if evaluation.get("win_rate") is not None:
            results.append(EvalResult(**scored, metric_type="win_rate",
                                      metric_value=round(float(evaluation["win_rate"]), 4),
                                      metric_name=f"Win-rate over the reference ({reward})"))
    rows, _ = rundir.read_metrics(run_dir)
    point = final_point(rows)
    if point is not None:
        reward = str(config.get("reward"))
        scored = {**common, "metric_config": reward}
        results.append(EvalResult(**scored, metric_type="kl", metric_value=round(point["kl"], 4),
                                  metric_name=f"KL from the reference, nats (probe, step {point['step']})"))
        results.append(EvalResult(**scored, metric_type="reward", metric_value=round(point["reward"], 4),
                                  metric_name=f"Mean reward ({reward}; probe, step {point['step']})"))
    return results
