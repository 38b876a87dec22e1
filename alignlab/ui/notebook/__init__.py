"""JupyterLab widgets: the lab, side-by-side chat, run overlays and sweeps (extra ``notebook``).

>>> from alignlab.ui.notebook import Lab
>>> Lab()  # doctest: +SKIP

- :class:`Lab`: pick a method, tune its knobs, Start/Stop, watch live curves; Runs and Chat tabs.
- :class:`Chat`: reference and aligned model side by side, streamed, with rewards.
- :class:`RunsView`: overlay past runs and their reward-vs-KL frontier.
- :func:`train` / :func:`sweep` / :func:`compare`: runs from code (one, a grid, several methods) with
  live curves, one after another; ``await train_async(...)`` (``sweep_async``, ``compare_async``,
  ``await lab.wait_async()``) wait so that the kernel keeps Stop live by itself (ipykernel >= 7.4).
"""

from alignlab.ui.notebook.chat import Chat
from alignlab.ui.notebook.form import RunForm, knob_widget
from alignlab.ui.notebook.lab import Lab
from alignlab.ui.notebook.live import LiveFigures
from alignlab.ui.notebook.runs import RunsView
from alignlab.ui.notebook.sweeps import compare, compare_async, sweep, sweep_async, train, train_async

__all__ = ["Chat", "Lab", "LiveFigures", "RunForm", "RunsView", "compare", "compare_async", "knob_widget", "sweep",
           "sweep_async", "train", "train_async"]
