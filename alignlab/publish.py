"""Sharing a run's model: export it to a folder, push it to the Hugging Face hub.

:func:`export_run` copies the run's saved model to a new folder with a model card
(:mod:`alignlab.model_card`): the LoRA adapter as trained, its ``adapter_config.json`` naming the base by
its hub id where it has one (:mod:`alignlab.base_model`), or, ``merged``, the adapter folded into the base
and saved as full weights with the tokenizer, a folder that loads with transformers alone. TRL's pickled
trainer settings stay behind. The folder appears complete or not at all (written beside it, then renamed), and
what it holds is readable by everyone (files 0644, folders 0755), whatever the user's umask or the run's modes:
an export is made to be shared.

:func:`push_run` exports to a temporary folder and uploads it to a hub repository (made if needed). Without
a token, or with the hub switched off (``HF_HUB_OFFLINE``), it says so in one line before any upload.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from alignlab import rundir
from alignlab.base_model import base_of, trained_from
from alignlab.errors import AlignLabError
from alignlab.model_card import write_card

BASE_FIELD = "base_model_name_or_path"  # where peft's adapter config names the base model
FILE_MODE, FOLDER_MODE = 0o644, 0o755  # an export's files and folders: readable by other users


def _check_target(target: Path) -> None:
    """AlignLabError unless ``target`` is a new folder or an empty one (an export never mixes with other files)."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise AlignLabError(f"to: {str(target)!r} exists and is not an empty folder; choose a new folder")


def _name_base(folder: Path, reference: str) -> None:
    """Make the adapter in ``folder`` name its base as ``reference`` (a hub id, or a local folder without one)."""
    path = folder / rundir.ADAPTER_CONFIG
    config = json.loads(path.read_text(encoding="utf-8"))
    config[BASE_FIELD] = reference
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _readable_by_all(folder: Path) -> None:
    """Give ``folder``, its subfolders and files the modes :data:`FOLDER_MODE` and :data:`FILE_MODE`."""
    folder.chmod(FOLDER_MODE)
    for path in folder.rglob("*"):
        if not path.is_symlink():
            path.chmod(FOLDER_MODE if path.is_dir() else FILE_MODE)


def _save_merged(run_dir: Path, folder: Path) -> None:
    """The run's adapter folded into its base model (peft's ``merge_and_unload``) on the CPU, in the dtype the base
    stores its weights in, saved with the tokenizer."""
    from alignlab.devices import on_cpu
    from alignlab.models import load_trained, saved_dtype

    config = rundir.read_config(run_dir)
    trust_remote_code = bool(config.get("trust_remote_code"))
    model, tokenizer = load_trained(run_dir, trust_remote_code=trust_remote_code,
                                    placement=on_cpu(saved_dtype(str(config.get("model")))))
    model.merge_and_unload().save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def export_run(run_dir: str | Path, target: str | Path, merged: bool = False, location: str | None = None) -> Path:
    """Export the run's model to the folder ``target`` (new, or empty) with its model card; returns the folder.

    The adapter is copied with the hub id of its base in ``adapter_config.json`` (the local folder for a base
    with no hub id: tiny-random, a local model); ``merged`` saves the adapter merged into the base instead (a
    run trained without LoRA is copied either way). ``location`` is the name the card's loading code uses
    (default: ``target``; a hub repo id when pushing). AlignLabError in one line when the run has no model,
    ``target`` is taken, or the folder cannot be written (nothing is left behind then).
    """
    run_dir, target = Path(run_dir), Path(target).expanduser()
    if not rundir.has_model(run_dir):
        raise AlignLabError(f"run: {run_dir.name} has no saved model yet (a run saves it when it ends or is stopped)")
    _check_target(target)
    config = rundir.read_config(run_dir)
    source = rundir.model_dir(run_dir)
    base = base_of(str(config.get("model")), trained_from(source))
    adapter = rundir.has_adapter(run_dir)
    kind = ("merged" if merged else "adapter") if adapter else "model"
    partial = target.with_name(target.name + ".partial")
    try:
        shutil.rmtree(partial, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        if kind == "merged":
            _save_merged(run_dir, partial)
        else:
            shutil.copytree(source, partial, ignore=shutil.ignore_patterns(rundir.TRAINING_ARGS, rundir.MODEL_CARD))
            if adapter:
                _name_base(partial, base.reference)
        write_card(run_dir, partial, kind=kind, base=base, location=location or str(target))
        _readable_by_all(partial)
        if target.exists():
            target.rmdir()  # empty (checked above)
        os.replace(partial, target)
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise AlignLabError(f"to: cannot write {str(target)!r} ({error.strerror or error})") from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target


def _hub_problem(error: Exception) -> str:
    """One line saying why a hub call failed."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if isinstance(error, OfflineModeIsEnabled):
        return "the Hugging Face hub is switched off here (HF_HUB_OFFLINE); unset it to push"
    status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(error, HfHubHTTPError) and status in (401, 403):
        return f"the hub refused the token ({status}): log in again with `hf auth login`, with a write token"
    if isinstance(error, HfHubHTTPError):
        return f"the hub answered {status}: {first_line}"
    return f"cannot reach the Hugging Face hub ({type(error).__name__}: {first_line})"


def push_run(run_dir: str | Path, repo_id: str, private: bool = False, merged: bool = False) -> str:
    """Export the run's model (see :func:`export_run`) and upload it to the hub model repository ``repo_id``
    (``NAME`` or ``OWNER/NAME``; made if it does not exist, ``private`` then); returns the repository's URL.

    AlignLabError in one line, before anything is uploaded, for a bad repo id, a run without a model, a hub
    switched off (``HF_HUB_OFFLINE``) or no token (``hf auth login`` or ``HF_TOKEN``); and for a hub that
    refuses or cannot be reached.
    """
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.constants import is_offline_mode
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    run_dir = Path(run_dir)
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise AlignLabError(f"repo_id: got {repo_id!r}, expected NAME or OWNER/NAME ({error})") from None
    if not rundir.has_model(run_dir):
        raise AlignLabError(f"run: {run_dir.name} has no saved model yet (a run saves it when it ends or is stopped)")
    if is_offline_mode():
        raise AlignLabError("push: the Hugging Face hub is switched off here (HF_HUB_OFFLINE is set); unset it, or "
                            "`alignlab export` the run and push the folder from a machine online")
    token = get_token()
    if not token:
        raise AlignLabError("push: no Hugging Face token; log in with `hf auth login` or set HF_TOKEN (a token "
                            "with write access)")
    api = HfApi(token=token)
    try:
        repo = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    except Exception as error:  # noqa: BLE001 - any hub failure is one line
        raise AlignLabError(f"push: {_hub_problem(error)}") from None
    with tempfile.TemporaryDirectory(prefix="alignlab-push-") as temp:
        folder = export_run(run_dir, Path(temp) / repo.split("/")[-1], merged=merged, location=repo)
        try:
            api.upload_folder(repo_id=repo, folder_path=folder, commit_message=f"alignlab run {run_dir.name}")
        except Exception as error:  # noqa: BLE001 - any hub failure is one line
            raise AlignLabError(f"push: {_hub_problem(error)}") from None
    return f"https://huggingface.co/{repo}"
