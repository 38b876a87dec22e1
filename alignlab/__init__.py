"""alignlab: a lab for aligning language models with human preferences.

Training runners (SFT, reward model, DPO and its variants, KTO, ORPO, and the online RL methods)
over TRL, PEFT and transformers, with a metric bus that the JupyterLab widgets and the Gradio app
subscribe to. The engine (everything outside ``alignlab.ui``) imports no UI package.

>>> from alignlab import RunConfig, start
>>> handle = start(RunConfig(method="dpo", model="tiny-random", max_steps=2))  # doctest: +SKIP

Importing it changes nothing else in the process: alignlab's own loading calls stay offline unless
``ALIGNLAB_ALLOW_DOWNLOAD`` is set (:mod:`alignlab.offline`), and a run puts the libraries' progress bars back
as it found them.
"""

from alignlab.config import RunConfig
from alignlab.errors import AlignLabError
from alignlab.methods import get_method, method_names
from alignlab.rundir import list_runs
from alignlab.runner import RunHandle, resume, start

__all__ = ["AlignLabError", "RunConfig", "RunHandle", "get_method", "list_runs", "method_names", "resume", "start"]
__version__ = "0.1.0"
