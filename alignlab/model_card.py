"""The model card of a run's model: what it is, how it was trained, how it did, how to load it.

PEFT and TRL write a boilerplate README.md into a saved model folder. A run replaces it with a card made
from the run directory, so the folder says what it holds wherever it is copied or pushed:

- YAML front matter in the Hugging Face / TRL conventions: ``base_model`` (the hub id, see
  :mod:`alignlab.base_model`), ``library_name`` (peft for an adapter, transformers for full weights),
  ``tags`` (alignlab, trl, the method, lora), ``datasets`` (hub datasets only), ``license`` when known, and the
  ``model-index`` of the results the hub reads (gain, win-rate, KL, with task and reward: :mod:`alignlab.model_index`);
- the method with its summary and paper (from its MethodSpec, as the Learn cards show them);
- the data, and the held-out prompts the run recorded (:mod:`alignlab.held_out`): which, how many, never trained on;
- the knobs: the method's with their help text, then every setting as a YAML block ``alignlab train
  --config`` reads back;
- results: the final logged metrics, the final reward-vs-KL point of the probe, reference vs aligned on
  the held-out samples, and the gain of the last ``alignlab eval`` when there is one;
- how to load it: AutoPeftModel / PeftModel on an explicit base / a transformers pipeline.
- the versions of the frameworks it was made with (alignlab, TRL, transformers, PEFT, torch, ...).

:func:`write_card` writes it; the run writes it when it saves its model and again once its samples are
in, ``alignlab eval`` refreshes it, and an export writes one for what it exports.
"""

from __future__ import annotations

import re
from pathlib import Path

from alignlab import rundir
from alignlab.base_model import BaseModel, base_of, trained_from
from alignlab.data import VOTES_PREFIX, dataset_parts
from alignlab.errors import AlignLabError
from alignlab.follow import OPENING_CHECK
from alignlab.generation import READING_TEMPERATURE, READING_TOP_P
from alignlab.held_out import held_out_of_run
from alignlab.methods import registry
from alignlab.methods.base import summary_keys
from alignlab.metrics import HEADLINE_LABELS, PROBE_FOLLOW, se_key
from alignlab.model_index import eval_results, versions_section
from alignlab.panels import final_point
from alignlab.task import BUILTIN_TASK, task_instruction

KINDS = ("adapter", "merged", "model")  # a LoRA adapter; the adapter merged into its base; a fully trained model
FOLLOWED = HEADLINE_LABELS["follow"]  # "instruction followed"
LEFT_OUT = ("run_id", "output_dir")  # settings that name this machine's folders, not the training
_HUB_DATASET = re.compile(r"[\w.-]+/[\w.-]+")
_ARXIV = re.compile(r"arXiv:(\d{4}\.\d{4,5})")


def hub_datasets(dataset: str) -> list[str]:
    """The Hugging Face hub dataset ids among the sources a run's ``dataset`` mixes (for the front matter).

    >>> hub_datasets("Anthropic/hh-rlhf:test+positive-reviews")
    ['Anthropic/hh-rlhf']
    """
    names = []
    for part in dataset_parts(dataset):
        name = part.partition(":")[0]
        if (part != BUILTIN_TASK and not part.startswith(VOTES_PREFIX) and not Path(part).expanduser().exists()
                and _HUB_DATASET.fullmatch(name) and Path(name).suffix.lower() not in (".jsonl", ".json", ".csv",
                                                                                      ".parquet")):
            names.append(name)
    return names


def _describe_dataset(dataset: str) -> str:
    described = []
    for part in dataset_parts(dataset):
        if part == BUILTIN_TASK:
            described.append(f"alignlab's built-in task `{BUILTIN_TASK}` (controlled sentiment generation: review "
                             "openings of mixed tone, preference pairs sampled from the base model and scored by "
                             "VADER; it ships with alignlab)")
        elif part.startswith(VOTES_PREFIX) or rundir.VOTES in Path(part).parts:
            described.append(f"blind votes cast in alignlab's chats (`{part}`)")
        elif hub_datasets(part):
            described.append(f"the hub dataset [{part}](https://huggingface.co/datasets/{hub_datasets(part)[0]})")
        else:
            described.append(f"a local file, `{Path(part).name}`")
    return "; mixed with ".join(described)


def _held_out(run_dir: Path) -> str:
    """What the card says of the run's held-out prompts (see :mod:`alignlab.held_out`)."""
    try:
        held_out = held_out_of_run(run_dir)
    except AlignLabError as error:
        return f"**Held-out prompts**: none known ({error}); the figures below may come from prompts it trained on."
    return (f"**Held-out prompts**: {held_out.describe()}. The samples, the probe and `alignlab eval` below are "
            "measured on them.")


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _front_matter(run_dir: Path, config: dict, base: BaseModel, kind: str, text_model: bool) -> str:
    from huggingface_hub import ModelCardData

    tags = ["alignlab", "trl", str(config.get("method"))] + (["lora"] if config.get("lora", True) else [])
    datasets = hub_datasets(str(config.get("dataset", "")))
    results = eval_results(run_dir, config, datasets) if text_model else []  # the model-index (alignlab.model_index)
    data = ModelCardData(base_model=base.hub_id, library_name="peft" if kind == "adapter" else "transformers",
                         license=base.license, tags=tags, datasets=datasets or None,
                         pipeline_tag="text-generation" if text_model else "text-classification",
                         model_name=run_dir.name if results else None, eval_results=results or None)
    return f"---\n{data.to_yaml()}\n---\n"


def _settings(config: dict, spec) -> str:
    import yaml

    lines = []
    if spec is not None and spec.knobs:
        lines += ["| knob | value | what it does |", "|---|---|---|"]
        args = config.get("method_args") or {}
        lines += [f"| `{knob.name}` | `{args.get(knob.name, knob.default)}` | {knob.help.replace('|', '/')} |"
                  for knob in spec.knobs]
        lines.append("")
    flat = {k: v for k, v in config.items() if k not in LEFT_OUT and k != "method_args"}
    flat.update(config.get("method_args") or {})
    lines += ["Every setting (save as `run.yaml` and run `alignlab train --config run.yaml` to train it again):", "",
              "```yaml", yaml.safe_dump(flat, sort_keys=False, allow_unicode=True).rstrip(), "```"]
    return "\n".join(lines)


def _sampled_at(evaluation: dict) -> str:
    """", temperature T, top-p P" for an evaluation sampled at other than the lab's reading setting ("" otherwise,
    and for one recorded before evaluations kept their setting)."""
    setting = (evaluation.get("temperature", READING_TEMPERATURE), evaluation.get("top_p", READING_TOP_P))
    if setting == (READING_TEMPERATURE, READING_TOP_P):
        return ""
    return f", temperature {setting[0]:g}, top-p {setting[1]:g}"


def _results(run_dir: Path, config: dict, state: str | None) -> str:
    rows, _ = rundir.read_metrics(run_dir)
    status = rundir.read_status(run_dir)
    final_keys = summary_keys(config.get("method"))  # the final values it lists, when the run logged them
    last: dict = {}
    for row in rows:
        last.update({k: (row["step"], v) for k, v in row.items() if v is not None and k in final_keys})
    steps = rows[-1]["step"] if rows else 0
    total = status.get("total_steps")
    lines = [f"Trained {steps} step{'s' * (steps != 1)}{f' of {total}' if total else ''}; the run "
             f"{state or status.get('state') or 'has no status'}."]
    if last:
        lines += ["", "| metric (last logged) | value | step |", "|---|---|---|"]
        lines += [f"| `{key}` | {_number(last[key][1])} | {last[key][0]} |" for key in final_keys if key in last]
    point = final_point(rows)
    if point is not None:
        def se(field: str) -> str:
            return f" ± {1.96 * point[field + '_se']:.3g}" if point.get(field + "_se") is not None else ""

        lines += ["", f"**Reward vs KL from the reference**, final point (step {point['step']}): reward "
                  f"{point['reward']:+.3f}{se('reward')} at KL {point['kl']:.3g}{se('kl')} nats (reward source "
                  f"`{config.get('reward')}`; ± is a 95% interval over the probe's prompts)."]
    follow = _probe_follow(rows)
    if follow:
        lines += ["", follow]
    samples = rundir.samples_summary(run_dir)
    if samples is not None:
        followed = (f" {FOLLOWED.capitalize()}: {samples['reference_follow']:.0%} for the reference, "
                    f"{samples['aligned_follow']:.0%} aligned (of {samples['checked']} checked)."
                    if samples.get("checked") else "")
        lines += ["", f"**Held-out samples** ({samples['samples']} prompts, one sample each, same seed): mean reward "
                  f"{samples['reference']:+.3f} for the reference, {samples['aligned']:+.3f} aligned "
                  f"({samples['aligned'] - samples['reference']:+.3f}).{followed}"]
    evaluation = rundir.read_eval(run_dir)
    if evaluation is not None:
        lines += ["", f"**Evaluation** (`alignlab eval`, {evaluation.get('prompts')} held-out prompts × "
                  f"{evaluation.get('samples_per_prompt')} samples, reward `{evaluation.get('reward')}`, seed "
                  f"{evaluation.get('seed')}{_sampled_at(evaluation)}): gain {evaluation['gain']:+.3f} ± "
                  f"{evaluation['gain_se']:.3f} (paired "
                  f"s.e.) over the reference; wins on {evaluation.get('win_rate', 0):.0%} of prompts "
                  f"[95% CI {evaluation.get('win_low', 0):.0%}-{evaluation.get('win_high', 0):.0%}]."
                  + _eval_follow(evaluation)]
    else:
        lines += ["", f"No `alignlab eval` of this run yet (`alignlab eval {run_dir.name}` gives the reward gain with "
                  "its paired standard error and the win-rate)."]
    return "\n".join(lines)


def _probe_follow(rows: list[dict]) -> str:
    """The card's line on the probe's last instruction-following share ("" where the probe never measured it)."""
    last = next((row for row in reversed(rows) if row.get(PROBE_FOLLOW) is not None), None)
    if last is None:
        return ""
    first = next(row for row in rows if row.get(PROBE_FOLLOW) is not None)
    error = last.get(se_key(PROBE_FOLLOW))
    interval = f" ± {1.96 * error:.0%}" if isinstance(error, (int, float)) else ""
    return (f"**{FOLLOWED.capitalize()}** (the probe's completions that did what their prompt asked; for the built-in "
            f"task, {OPENING_CHECK}): {last[PROBE_FOLLOW]:.0%}{interval} at step {last['step']}, "
            f"{first[PROBE_FOLLOW]:.0%} at step {first['step']}.")


def _eval_follow(evaluation: dict) -> str:
    """The evaluation's instruction-following figures, as a sentence ("" where it has none)."""
    aligned, reference = evaluation.get("aligned_follow"), evaluation.get("reference_follow")
    if not isinstance(aligned, (int, float)) or not isinstance(reference, (int, float)):
        return ""
    change, error = evaluation.get("follow_change"), evaluation.get("follow_change_se")
    paired = (f", {change * 100:+.0f} ± {error * 100:.0f} points (paired s.e.)"
              if isinstance(change, (int, float)) and isinstance(error, (int, float)) else "")
    return (f" {FOLLOWED.capitalize()}: {aligned:.0%} aligned vs {reference:.0%} for the reference{paired}, of "
            f"{evaluation.get('follow_checked')} samples each.")


def _loading(base: BaseModel, kind: str, location: str, text_model: bool, builtin: bool) -> str:
    head = "CausalLM" if text_model else "SequenceClassification"
    task = "text-generation" if text_model else "text-classification"
    prompt = task_instruction("The second half drags, but") if builtin else "Write a short movie review."
    use = (f'print(pipe([{{"role": "user", "content": {prompt!r}}}], max_new_tokens=48)[0]["generated_text"][-1]'
           '["content"])') if text_model else 'print(pipe("A wonderful, moving film."))'
    if kind != "adapter":
        what = "the adapter merged into its base: full weights" if kind == "merged" else "full weights"
        return (f"This folder holds {what}, and the tokenizer; it needs no peft.\n\n```python\n"
                f"from transformers import AutoModelFor{head}, AutoTokenizer, pipeline\n\n"
                f'model = AutoModelFor{head}.from_pretrained("{location}")\n'
                f'tokenizer = AutoTokenizer.from_pretrained("{location}")\n'
                f'pipe = pipeline("{task}", model="{location}")\n{use}\n```')
    where = (f"`{base.reference}` (the Hugging Face hub, or your cache offline)" if base.hub_id else
             f"the local folder `{base.reference}`")
    text = (f"This folder holds a LoRA adapter and the tokenizer. `adapter_config.json` names its base, {where}.\n\n"
            f"```python\nfrom peft import AutoPeftModelFor{head}\nfrom transformers import AutoTokenizer, pipeline\n\n"
            f'model = AutoPeftModelFor{head}.from_pretrained("{location}")  # the base, then the adapter on it\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{location}")\n'
            f'pipe = pipeline("{task}", model="{location}")  # transformers puts the adapter on its base too\n'
            f"{use}\n```\n\n"
            "On a base you load yourself:\n\n```python\nfrom peft import PeftModel\n"
            f"from transformers import AutoModelFor{head}\n\n"
            f'base = AutoModelFor{head}.from_pretrained("{base.reference}")\n')
    if base.rebuild:
        text += f"# or, offline, the exact weights it was trained on:\n{base.rebuild}\n"
    return text + f'model = PeftModel.from_pretrained(base, "{location}")\n```'


def card_text(run_dir: str | Path, folder: str | Path | None = None, kind: str | None = None,
              base: BaseModel | None = None, location: str | None = None, state: str | None = None) -> str:
    """The model card of the run's model as Markdown with YAML front matter.

    ``folder`` holds the model as the run saved it (default: the run's model folder; the folder being saved,
    while it is). ``kind`` is one of :data:`KINDS` (default: ``adapter`` when ``folder`` holds one, else
    ``model``); ``base`` defaults to what ``folder`` records (:func:`alignlab.base_model.base_of`);
    ``location`` is the folder or hub repo the loading code names (default: the run's model folder);
    ``state`` stands for the run's state while it is still being written (default: its status).
    """
    run_dir = Path(run_dir)
    config = rundir.read_config(run_dir)
    folder = Path(folder or rundir.model_dir(run_dir))
    kind = kind or ("adapter" if (folder / rundir.ADAPTER_CONFIG).is_file() else "model")
    base = base or base_of(str(config.get("model")), trained_from(folder))
    spec = registry().get(str(config.get("method")))
    text_model = spec is None or spec.model_kind == "causal-lm"
    title = spec.title if spec is not None else str(config.get("method"))
    what = {"adapter": "A LoRA adapter for", "merged": "A LoRA adapter, merged into", "model": "A fine-tune of"}[kind]
    base_name = f"[{base.hub_id}](https://huggingface.co/{base.hub_id})" if base.hub_id else f"`{base.reference}`"
    paper = _ARXIV.sub(r"[arXiv:\1](https://arxiv.org/abs/\1)", spec.paper) if spec is not None else "unknown"
    sections = [
        _front_matter(run_dir, config, base, kind, text_model),
        f"# {run_dir.name}\n\n{what} {base_name}, trained with {title} by alignlab (a lab for aligning "
        "language models, over TRL and PEFT).",
        f"## Base model\n\n{base.origin}" + ("" if base.license else " License: not recorded."),
        f"## Method\n\n**{title}** (`{config.get('method')}`): "
        + (f"{spec.summary}\n\nPaper: {paper}." if spec is not None else "not a method this alignlab knows."),
        f"## Data\n\n{_describe_dataset(str(config.get('dataset', '')))}.\n\n{_held_out(run_dir)}",
        f"## Settings\n\n{_settings(config, spec)}",
        f"## Results\n\n{_results(run_dir, config, state)}",
        "## How to load\n\n" + _loading(base, kind, location or str(rundir.model_dir(run_dir)), text_model,
                                         config.get("dataset") == BUILTIN_TASK),
        f"## Framework versions\n\n{versions_section()}",
        "## Limitations\n\nA short run of a lab for exploring alignment methods: the figures above come from its own "
        "held-out prompts (never trained on) and reward source, not from a benchmark.",
    ]
    return "\n\n".join(section.rstrip() for section in sections) + "\n"


def write_card(run_dir: str | Path, folder: str | Path | None = None, **options) -> Path:
    """Write the run's model card (:func:`card_text`, ``folder`` and ``options`` passed on) into ``folder``
    (default: the run's model folder); returns its path. AlignLabError in one line if it cannot be written."""
    path = Path(folder or rundir.model_dir(run_dir)) / rundir.MODEL_CARD
    text = card_text(run_dir, folder, **options)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise AlignLabError(f"model card: cannot write {str(path)!r} ({error.strerror or error})") from None
    return path
