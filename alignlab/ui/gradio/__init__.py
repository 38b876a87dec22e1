"""The alignlab Gradio app (extra ``app``): ``alignlab app``, ``python apps/app.py``, or :func:`launch` from code.

:mod:`~alignlab.ui.gradio.server` checks the settings and serves the app, :mod:`~alignlab.ui.gradio.app` builds it
(:func:`~alignlab.ui.gradio.app.create_app`) from its tabs (:mod:`~alignlab.ui.gradio.components`), bound to the
services in :mod:`~alignlab.ui.gradio.services`.
"""

from alignlab.ui.gradio.server import launch

__all__ = ["launch"]
