"""The app's look: a theme and a little CSS for the progress bar, plots and cards."""

import gradio as gr

THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="slate")
# The colour of a job's state word in the progress card (``<div class="lab-progress STATE">``), one per state.
STATE_COLOURS = {"queued": "#64748b", "starting": "#4f46e5", "running": "#4f46e5", "finished": "#15803d",
                 "stopped": "#b45309", "failed": "#b91c1c", "cancelled": "#64748b"}

CSS = """
.lab-progress { padding: 10px 14px; border: 1px solid var(--border-color-primary); border-radius: 8px; }
.lab-progress.idle { color: var(--body-text-color-subdued); }
.lab-progress-head { display: flex; justify-content: space-between; gap: 12px; font-size: 14px; }
.lab-job { margin-left: 10px; color: var(--body-text-color-subdued); font-size: 13px; }
.lab-state { font-weight: 600; text-transform: uppercase; font-size: 12px; letter-spacing: .04em; }
.lab-bar { height: 8px; background: var(--neutral-200); border-radius: 4px; margin: 8px 0 6px; overflow: hidden; }
.lab-bar > div { height: 100%; background: #6366f1; transition: width .4s; }
.lab-progress-detail { font-size: 13px; color: var(--body-text-color-subdued); }
.lab-summary { font-size: 13px; }
.lab-section { padding: 6px 12px 0; }
.lab-card table { font-size: 13px; }
/* The job queue: words wrap whole ("finished", not "finishe d"); a run id at its hyphens, or anywhere if it must */
#train-queue .cell-wrap { padding-left: 5px !important; padding-right: 3px !important; }
#train-queue span.text { word-break: normal !important; overflow-wrap: normal !important; font-size: 13px; }
#train-queue .body-cell:last-child span.text { overflow-wrap: anywhere !important; }
#train-queue .cell-menu-button { display: none !important; }
/* A chat column's scroll area starts below its name badge and icon bar, so scrolled messages never run under them */
.wrapper > .bubble-wrap { margin-top: 40px; height: calc(100% - 40px); }
""" + "".join(f".lab-progress.{state} .lab-state {{ color: {colour}; }}\n" for state, colour in STATE_COLOURS.items())
