"""alignlab: a lab for aligning language models with human preferences.

Training runners (SFT, reward model, DPO and its variants, KTO, ORPO, and the online RL methods)
over TRL, PEFT and transformers, with a metric bus that the JupyterLab widgets and the Gradio app
subscribe to. The engine (everything outside ``alignlab.ui``) imports no UI package.

>>> from alignlab import RunConfig, start
>>> handle = start(RunConfig(method="dpo", model="tiny-random", max_steps=2))  # doctest: +SKIP
"""

import os

# Offline first: never wait on the Hugging Face hub unless the user allows downloads.
if not os.environ.get("ALIGNLAB_ALLOW_DOWNLOAD"):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from alignlab.config import RunConfig  # noqa: E402
from alignlab.errors import AlignLabError  # noqa: E402
from alignlab.methods import get_method, method_names  # noqa: E402
from alignlab.rundir import list_runs  # noqa: E402
from alignlab.runner import RunHandle, resume, start  # noqa: E402

__all__ = ["AlignLabError", "RunConfig", "RunHandle", "get_method", "list_runs", "method_names", "resume", "start"]
__version__ = "0.1.0"
