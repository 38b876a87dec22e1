"""Tab builders: each ``create_*_tab`` lays out its tab's components and binds their events to the services."""

from alignlab.ui.gradio.components.chat import create_chat_tab
from alignlab.ui.gradio.components.learn import create_learn_tab
from alignlab.ui.gradio.components.runs import create_runs_tab
from alignlab.ui.gradio.components.train import create_train_tab

__all__ = ["create_chat_tab", "create_learn_tab", "create_runs_tab", "create_train_tab"]
