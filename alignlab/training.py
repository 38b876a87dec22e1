"""One training run, method-agnostic: model + data + MethodSpec -> TRL trainer -> run directory.

``train(run)`` is what the runner's thread executes. It builds the TRL config from the
RunConfig (common fields and the method's knobs), wires the :class:`EventCallback` that turns
every trainer log into a bus event and honours stop requests, trains, saves the adapter or
model, and writes reference-vs-aligned samples on held-out prompts.

It sees the run only as a :class:`~alignlab.run_contract.TrainingRun` (the runner's RunHandle is one) and trains
on what the runner's check loaded (:class:`~alignlab.run_contract.Preflight`: rows, tokenizer, reward source).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from alignlab import devices, rundir
from alignlab.changes import side_by_side
from alignlab.config import RunConfig
from alignlab.data import load_dataset, trained_on
from alignlab.distributed import Sampling, batch_layout, sampling_of
from alignlab.errors import AlignLabError, AlignLabWarning
from alignlab.follow import check_for
from alignlab.metrics import NonFiniteMetric, check_finite, clean_metrics
from alignlab.model_card import write_card
from alignlab.models import load_model, load_tokenizer, lora_config, policy_of, quiet_checkpointing_rename
from alignlab.offline import hub_offline
from alignlab.progress_bars import progress_bars_off
from alignlab.prompt_lengths import rows_that_fit
from alignlab.reference import guard_adapter_switch
from alignlab.rewards import reward_for
from alignlab.rollouts import route_generate
from alignlab.run_contract import TrainingRun
from alignlab.tracking import keep_logs_in_run_dir, tracker_callbacks, trackers_last, trainer_arguments

SAMPLE_PROMPTS = 16  # held-out prompts in the run's reference-vs-aligned samples


@dataclass
class RunContext:
    """What a method's ``trainer_kwargs`` hook may use to build extra trainer arguments.

    ``model`` and ``tokenizer`` are the loaded policy and its tokenizer, ``dataset`` the rows in the
    method's data format (a ``datasets.Dataset``), ``reward`` the run's
    :class:`~alignlab.rewards.RewardSource`, ``follow_check`` the check of whether a completion followed its
    prompt's instruction (:func:`alignlab.follow.check_for` the run's dataset); ``callbacks`` are TrainerCallbacks
    added to the trainer besides the lab's own event callback (the probe); ``sampling`` says which processes
    sample (all of them when the weights are sharded, see :mod:`alignlab.distributed`), known once the trainer is
    built.
    """

    config: RunConfig
    run_dir: Path
    model: Any = None
    tokenizer: Any = None
    dataset: Any = None
    reward: Any = None
    follow_check: Any = None
    callbacks: list = field(default_factory=list)
    sampling: Sampling = field(default_factory=Sampling)


class EventCallback(TrainerCallback):
    """Writes each trainer log to the run's metrics file and publishes it as ``{run_id, step, time, metrics}``
    (:meth:`alignlab.runner.RunHandle.record`: a failed write fails the run), and honours stop requests."""

    def __init__(self, handle: TrainingRun):
        self.handle = handle

    def on_train_begin(self, args, state, control, **kwargs):
        self.handle.training_started(state.max_steps, batch_layout(args))  # processes and examples per step
        self.handle.set_phase(f"step {state.global_step + 1} under way: its rollouts or batch and first update")

    def on_step_begin(self, args, state, control, **kwargs):
        if self.handle.phase is not None:  # a probe or the trainer's start is over: steps from here
            self.handle.set_phase(None)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        metrics = clean_metrics(logs)
        if metrics:  # to the metrics file here, in the training loop (a failed write fails the run), then the bus
            self.handle.record(state.global_step, metrics)
        check_finite(state.global_step, logs)  # NaN/Inf fails the run, once its row (null there) is logged

    def on_step_end(self, args, state, control, **kwargs):
        if self.handle.stop_requested:
            control.should_training_stop = True
            # A stopped run leaves a checkpoint of this very step, so it can resume exactly where it stopped.
            control.should_save = self.handle.config.spec.resumable
        elif control.should_training_stop and control.should_save and state.global_step % args.save_steps:
            control.should_save = False  # the last step of a finished run: its model is saved, nothing to resume
        if state.is_world_process_zero and state.global_step % 5 == 0:
            self.handle.save_status()


def trl_arguments(config: RunConfig, run_dir: Path) -> dict:
    """Keyword arguments for the method's TRL config class.

    The lab's common settings go to the fields the class has (TRL's classes differ: a length field one lacks is left
    out); a field the method itself names (a knob's, its ``trl_defaults``, its ``trl_overrides``) that the class lacks
    raises AlignLabError naming it, so a field TRL renamed or removed is never dropped without a word.
    """
    spec = config.spec
    config_class = spec.config_class()
    field_names = {f.name for f in dataclasses.fields(config_class)}
    values = dict(
        output_dir=str(rundir.checkpoints_dir(run_dir)), max_steps=config.max_steps if config.max_steps > 0 else -1,
        num_train_epochs=config.epochs, learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_schedule, warmup_steps=config.warmup_steps,
        per_device_train_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
        max_grad_norm=config.max_grad_norm, seed=config.seed, data_seed=config.seed, logging_steps=1,
        logging_nan_inf_filter=False,  # a NaN loss is logged as NaN (not as the mean so far) and fails the run
        # Checkpoints every save_every steps (and on a stop, see EventCallback), the last keep_checkpoints kept.
        save_strategy="steps" if config.save_every and spec.resumable else "no", save_steps=config.save_every or 1,
        save_total_limit=config.keep_checkpoints, disable_tqdm=True, dataloader_num_workers=0,
        **devices.of_run(config).trainer_flags(),  # bf16 / fp16 with loss scaling / the CPU: the one device policy
        **trainer_arguments(config.report_to, run_dir),  # report_to: the experiment tracker, if any
    )
    lengths = {"max_length": config.max_length, "max_completion_length": config.max_completion_length,
               "max_prompt_length": config.max_length - config.max_completion_length}
    values.update({k: v for k, v in lengths.items() if k in field_names})
    # transformers 5 renamed gradient_checkpointing (a deprecated alias now) to activation_checkpointing
    values["activation_checkpointing" if "activation_checkpointing" in field_names else "gradient_checkpointing"] = (
        config.gradient_checkpointing)
    overrides = spec.trl_overrides(config) if spec.trl_overrides is not None else {}
    unknown = sorted(({knob.trl_field for knob in spec.knobs} | set(spec.trl_defaults) | set(overrides)) - field_names)
    if unknown:
        raise AlignLabError(f"method {spec.name}: {config_class.__name__} has no field {', '.join(unknown)}, expected "
                            "the TRL field each knob, trl_defaults and trl_overrides name (renamed or removed in this "
                            "TRL version?)")
    values.update(spec.trl_defaults)
    for knob in spec.knobs:
        values[knob.trl_field] = config.method_args[knob.name]
    values.update(overrides)
    if values.get("precompute_ref_log_probs") and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # TRL's DPO trainer writes the precomputed log-probs of an in-memory dataset into a temporary folder of
        # process 0's own and reads them back on every process: the others do not find the file. With several
        # processes the reference is computed with each batch instead (the same values, one more forward pass).
        values["precompute_ref_log_probs"] = False
    return {k: v for k, v in values.items() if k in field_names}


def build_trainer(handle: TrainingRun, context: RunContext):
    """Instantiate the method's TRL trainer for this run."""

    config, spec = handle.config, handle.config.spec
    args = spec.config_class()(**trl_arguments(config, handle.run_dir))
    kwargs = dict(model=context.model, args=args, train_dataset=context.dataset, processing_class=context.tokenizer,
                  callbacks=[EventCallback(handle), *context.callbacks])
    if config.lora:
        kwargs["peft_config"] = lora_config(config.lora_r, config.lora_alpha, config.lora_dropout,
                                            config.lora_target_modules, spec.model_kind)
    with quiet_checkpointing_rename():  # PEFT adds the adapters (PPO's value model too)
        if spec.trainer_kwargs is not None:
            kwargs.update(spec.trainer_kwargs(context))
        with hub_offline():  # TRL's trainers ping the Hub (telemetry) when made: none from an offline lab
            trainer = spec.trainer_class()(**kwargs)
    trainer.remove_callback(PrinterCallback)  # the bus and the CLI's bar report progress instead
    keep_logs_in_run_dir(trainer, handle.run_dir)  # TensorBoard's files outlive the checkpoints
    trackers_last(trainer)  # the probe's last point reaches the trackers before they close their runs
    for callback in context.callbacks:
        if hasattr(callback, "trackers"):  # the probe reports to the trackers too
            callback.trackers = tracker_callbacks(trainer)
    return trainer


def train(handle: TrainingRun) -> None:
    """Train one run to the end (or a stop request) and save its results, the libraries' progress bars off
    meanwhile (see :func:`progress_bars_off`)."""
    with progress_bars_off():
        _train(handle)


def training_data(handle: TrainingRun, tokenizer) -> tuple[Any, Any]:
    """The run's training rows as a ``datasets.Dataset`` (without held-out prompts, and without rows whose prompt
    alone fills max_length) and its reward source: from what the runner's check loaded when it is there, else
    loaded now."""
    config, checked = handle.config, handle.preflight
    if checked is None:
        return (load_dataset(config.dataset, config.spec.data_format, config.method, tokenizer, config.max_length,
                             held_out=handle.held_out.prompts), reward_for(config))
    import datasets

    rows = checked.rows
    if config.spec.data_format != "prompt":
        rows = rows_that_fit(rows, tokenizer, config.max_length)
    return datasets.Dataset.from_list(rows), checked.reward


def _train(handle: TrainingRun) -> None:
    from transformers import set_seed

    config = handle.config
    set_seed(config.seed)  # the LoRA initialisation too: TRL adds the adapter before its Trainer seeds
    spec = config.spec
    checked = handle.preflight
    tokenizer = checked.tokenizer if checked is not None and checked.tokenizer is not None else load_tokenizer(
        config.model, config.trust_remote_code)
    model = load_model(config.model, spec.model_kind, config.trust_remote_code, devices.of_run(config))
    handle.set_phase("building the trainer: tokenizing the data")
    dataset, reward = training_data(handle, tokenizer)
    context = RunContext(config=config, run_dir=handle.run_dir, model=model, tokenizer=tokenizer, dataset=dataset,
                         reward=reward, follow_check=check_for(config.dataset))
    if handle.is_writer:  # what it trains on: the rows' count and content hash, a datasets fingerprint where one is
        rundir.write_trained_on(handle.run_dir, trained_on(config.dataset, context.dataset, spec.data_format))
    if config.probe_every and spec.model_kind == "causal-lm":
        from alignlab.probe import ProbeCallback

        context.callbacks.append(ProbeCallback(handle, context))
    trainer = build_trainer(handle, context)
    context.sampling = sampling_of(trainer)
    if not context.sampling.together:  # sharded weights sample in step through transformers' generate
        route_generate(trainer.model)  # TRL's online trainers sample their rollouts with the lab's engine
    policy = policy_of(trainer.model)
    guard_adapter_switch(policy)  # a chat during training never reads the reference as the aligned model
    handle.live_model(policy, tokenizer)  # chat during training
    try:
        with quiet_checkpointing_rename():  # TRL reads the old name at each generation
            trainer.train(resume_from_checkpoint=handle.checkpoint)
    except NonFiniteMetric as error:  # weights that gave NaN or Inf are no result: nothing is saved
        if error.step is not None:
            raise
        step = (handle.history[-1]["step"] if handle.history else 0) + 1  # a reward scored for the step under way
        raise NonFiniteMetric(f"{error}, at step {step}; the run stops there and its weights are not saved",
                              step) from error
    except BaseException as error:
        try:  # whatever else happened, keep the weights trained so far
            save_model(handle, trainer, tokenizer, state="failed")
        except Exception as save_error:  # noqa: BLE001 - the first error is the reason the run failed
            error.add_note(f"the weights trained so far could not be saved either: {save_error}")
        raise
    handle.set_phase("saving the model")
    save_model(handle, trainer, tokenizer)
    if spec.model_kind == "causal-lm" and context.sampling.joins(handle.is_writer):
        handle.set_phase(f"sampling reference vs aligned on {len(handle.held_out.prompts[:SAMPLE_PROMPTS])} "
                         "held-out prompts")
        sample_and_write(handle, policy, tokenizer, context.reward, context.sampling, context.follow_check)
    if handle.is_writer:
        if spec.model_kind == "causal-lm":
            write_model_card(handle, rundir.model_dir(handle.run_dir),  # with the samples' figures now
                             "stopped" if handle.stop_requested else "finished")
        if not handle.stop_requested:
            rundir.remove_checkpoints(handle.run_dir)  # it finished: nothing left to resume


def save_model(handle: TrainingRun, trainer, tokenizer, state: str = "") -> None:
    """Save the weights, the tokenizer and the model card as the run's model: complete or not at all (a temporary
    folder, renamed when complete, see :func:`alignlab.rundir.saving_model`). ``state`` is how the run ends, for
    the card (default: stopped or finished)."""
    if not handle.is_writer and trainer.accelerator.num_processes == 1:
        return
    with rundir.saving_model(handle.run_dir, writer=handle.is_writer) as folder:
        trainer.save_model(str(folder))  # every process of a multi-process run joins in; the main one writes
        if handle.is_writer:
            tokenizer.save_pretrained(str(folder))
            write_model_card(handle, folder, state or ("stopped" if handle.stop_requested else "finished"))


def write_model_card(handle: TrainingRun, folder: Path, state: str | None = None) -> None:
    """The run's model card (:mod:`alignlab.model_card`) into ``folder``, in place of the boilerplate one PEFT
    writes; a card that cannot be made is a warning, never a reason to lose the weights."""
    try:
        write_card(handle.run_dir, folder, state=state)
    except Exception as error:  # noqa: BLE001 - the weights matter more than their description
        warnings.warn(f"run {handle.run_id}: the model card was not written ({error})", AlignLabWarning, stacklevel=2)


def sample_and_write(handle: TrainingRun, model, tokenizer, reward, sampling: Sampling | None = None,
                     check=None) -> None:
    """Reference vs aligned completions on the first 16 of the run's held-out prompts (``handle.held_out``), same
    seed and settings, with rewards and, with a ``check`` (:mod:`alignlab.follow`), whether each followed its
    instruction, written by the run's writer (:func:`alignlab.rundir.write_samples`). With sharded weights
    (``sampling.together``) every process calls this and samples."""
    sampling = sampling or Sampling()
    prompts = handle.held_out.prompts[:SAMPLE_PROMPTS]
    with sampling.whole_parameters():
        rows = side_by_side(model, tokenizer, handle.config, prompts, reward, synced_gpus=sampling.together,
                            check=check)
    if handle.is_writer:
        rundir.write_samples(handle.run_dir, rows)

