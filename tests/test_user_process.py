"""alignlab leaves the user's process as it found it: no process-wide offline switch on import, progress bars
back after a run; its own loading calls stay offline all the same."""

import os
import subprocess
import sys

from alignlab.config import RunConfig
from alignlab.offline import ALLOW_DOWNLOAD, OFFLINE_VARIABLES, hub_offline
from alignlab.runner import start

# A process that records every attempt to reach the network and refuses it.
NO_NETWORK = """
import socket
attempts = []
def refuse(*args, **kwargs):
    attempts.append(args[:2])
    raise OSError("network refused by the test")
socket.getaddrinfo = refuse
socket.socket.connect = refuse
"""


def user_environment() -> dict:
    """This process's environment without the Hub's offline switches and alignlab's download permission."""
    removed = {*OFFLINE_VARIABLES, "TRANSFORMERS_OFFLINE", ALLOW_DOWNLOAD}
    return {key: value for key, value in os.environ.items() if key not in removed}


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env=user_environment())
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_importing_alignlab_sets_no_offline_switch():
    assert run_python("import alignlab, os; print(os.environ.get('HF_HUB_OFFLINE'))") == "None"
    assert run_python("import alignlab, huggingface_hub; print(huggingface_hub.is_offline_mode())") == "False"


def test_loading_and_training_never_reach_the_network(tmp_path):
    """With no offline switch set anywhere, alignlab still never touches the network: loading the default model
    (from the cache) and tiny-random, a dataset id that is not cached (refused, not looked up), and a run (TRL's
    trainers send telemetry when made, unless offline)."""
    code = NO_NETWORK + f"""
import os
from alignlab import RunConfig, start
from alignlab.data import load_rows
from alignlab.errors import AlignLabError
from alignlab.models import DEFAULT_MODEL, load_model, load_tokenizer
load_tokenizer(DEFAULT_MODEL)
load_model("tiny-random")
try:
    load_rows("someone/not-a-cached-dataset", "preference")
except AlignLabError as error:
    print("refused:", "local cache" in str(error))
handle = start(RunConfig(method="dpo", model="tiny-random", max_steps=1, batch_size=2, max_length=80,
                         max_completion_length=8, probe_every=0, output_dir={str(tmp_path)!r}), background=False)
print("run:", handle.state, handle.error)
print("attempts:", attempts, "offline after:", os.environ.get("HF_HUB_OFFLINE"))
"""
    assert run_python(code).splitlines()[-3:] == ["refused: True", "run: finished None",
                                                  "attempts: [] offline after: None"]


def test_hub_offline_puts_the_settings_back(monkeypatch):
    import datasets
    import huggingface_hub.constants

    for name in (*OFFLINE_VARIABLES, ALLOW_DOWNLOAD):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    with hub_offline():
        with hub_offline():  # nested: the outer block restores
            pass
        assert os.environ["HF_HUB_OFFLINE"] == "1" and huggingface_hub.constants.is_offline_mode()
        assert datasets.config.HF_HUB_OFFLINE is True
    assert "HF_HUB_OFFLINE" not in os.environ and "HF_DATASETS_OFFLINE" not in os.environ
    assert huggingface_hub.constants.is_offline_mode() is False and datasets.config.HF_HUB_OFFLINE is False


def bar_states() -> dict:
    import datasets
    import huggingface_hub.utils
    from transformers.utils import logging as transformers_logging

    return {"transformers": transformers_logging.is_progress_bar_enabled(),
            "huggingface_hub": not huggingface_hub.utils.are_progress_bars_disabled(),
            "datasets": datasets.is_progress_bar_enabled()}


def test_a_run_puts_the_progress_bars_back_as_they_were(tiny):
    import datasets
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a mixed state: transformers' (and the Hub's) off, datasets' on
    datasets.enable_progress_bars()
    before = bar_states()
    assert before == {"transformers": False, "huggingface_hub": False, "datasets": True}
    try:
        handle = start(RunConfig(method="dpo", probe_every=0, **tiny), background=False)
        assert handle.state == "finished", handle.error
        assert bar_states() == before
    finally:
        transformers_logging.enable_progress_bar()

