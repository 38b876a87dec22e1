"""Build the Gradio app: Train, Runs, Chat and Learn tabs over one set of server-side services; in workshop mode
a name box at the top and a Class tab too (:mod:`.components.class_tab`)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from alignlab.ui.gradio.components import create_chat_tab, create_learn_tab, create_runs_tab, create_train_tab
from alignlab.ui.gradio.components.class_tab import create_class_tab, create_workshop_bar
from alignlab.ui.gradio.services import Services
from alignlab.ui.gradio.workshop import Workshop

TITLE = "alignlab"
HEADER = (f"# {TITLE}\nAlign a small language model with preferences: train with DPO and friends, watch reward "
          "and KL move, then chat with the reference and the aligned model side by side.")


def create_app(runs_dir: str | Path | None = None, data_dir: str | Path | None = None,
               trust_remote_code: bool = False, workshop: Workshop | None = None, max_jobs: int = 1,
               admin: str | None = None) -> gr.Blocks:
    """The app over ``runs_dir`` (the lab's runs folder when None: :func:`alignlab.rundir.default_runs_dir`; uploads,
    job logs and exports under ``data_dir``, default ``<runs_dir>/_app``); with ``workshop``, in workshop mode;
    training ``max_jobs`` jobs at once. ``admin``: outside workshop mode, the signed-in account that may stop,
    cancel, delete and resume anyone's jobs and runs.

    The returned Blocks has ``demo.services`` (the job queue and friends) for shutdown and tests.
    """
    services = Services.create(runs_dir, data_dir, trust_remote_code, workshop, max_jobs, admin)
    with gr.Blocks(title=TITLE, analytics_enabled=False, fill_width=True) as demo:
        gr.Markdown(HEADER, elem_id="lab-header")
        bar = create_workshop_bar(services) if workshop is not None else None
        with gr.Tabs():
            with gr.Tab("Train", id="train"):
                create_train_tab(services, bar["stored"] if bar is not None else None)
            with gr.Tab("Runs", id="runs") as runs_tab:
                create_runs_tab(services, runs_tab)
            with gr.Tab("Chat", id="chat") as chat_tab:
                create_chat_tab(services, chat_tab)
            if bar is not None:
                with gr.Tab("Class", id="class") as class_tab:
                    create_class_tab(services, class_tab, bar, demo)
            with gr.Tab("Learn", id="learn"):
                create_learn_tab()
    demo.services = services
    return demo
