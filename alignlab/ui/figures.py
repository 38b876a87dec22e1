"""Plotly figures from run histories, shared by the notebook widgets and the Gradio app.

Pure functions ``histories -> go.Figure``: a history is a list of ``metrics.jsonl`` rows (see
:mod:`alignlab.plots`, which picks the data); these functions only decide how it looks. The notebook
wraps a figure in a ``FigureWidget`` and updates its traces in place; Gradio redraws on a timer.
An empty history gives a valid empty figure that says it is waiting for the first logged step; a history
without the figure's keys says which keys are missing.
"""

from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go

from alignlab.plots import frontier, panels_for, series

HEIGHT = 280
TEMPLATE = "plotly_white"
WAITING = "waiting for the first logged step"


def _layout(figure: go.Figure, title: str, x_title: str, y_title: str = "") -> go.Figure:
    figure.update_layout(
        title={"text": title, "x": 0.02, "font": {"size": 14}}, template=TEMPLATE, height=HEIGHT,
        margin={"l": 50, "r": 10, "t": 40, "b": 40}, hovermode="closest",
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0, "font": {"size": 10}},
        xaxis_title=x_title, yaxis_title=y_title,
    )
    return figure


def _waiting(figure: go.Figure, text: str = WAITING) -> go.Figure:
    figure.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                          font={"size": 13, "color": "#888"})
    figure.update_xaxes(showticklabels=False)
    figure.update_yaxes(showticklabels=False)
    return figure


def _missing(keys: Sequence[str]) -> str:
    """The note on a figure whose runs have logged steps, none with these keys."""
    hint = "<br>(the probe logs reward and KL: set probe_every)" if any(k.startswith("probe/") for k in keys) else ""
    return f"no {', '.join(keys)} logged yet{hint}"


def curves_figure(histories: dict[str, list[dict]], keys: Sequence[str], title: str) -> go.Figure:
    """One line per (run label, metric key) that has data, against the training step.

    The legend names the run when there are several runs and the key when there are several keys.
    """
    figure = go.Figure()
    for label, rows in histories.items():
        for key in keys:
            steps, values = series(rows, key)
            if not steps:
                continue
            parts = [label] * (len(histories) > 1) + [key] * (len(keys) > 1)
            name = " · ".join(parts) or key
            figure.add_trace(go.Scatter(x=steps, y=values, mode="lines+markers" if len(steps) < 30 else "lines",
                                        name=name, hovertemplate=f"{name}<br>step %{{x}}: %{{y:.4g}}<extra></extra>"))
    _layout(figure, title, "step")
    if not figure.data:
        _waiting(figure, _missing(keys) if any(histories.values()) else WAITING)
    figure.update_layout(showlegend=len(figure.data) > 1)
    return figure


def frontier_figure(runs: dict[str, list[dict]]) -> go.Figure:
    """Reward (y) against KL from the reference (x), one line with markers per run; hover shows the step.

    Up and to the left is better: more reward for less drift (the DPO paper's Fig. 2).
    """
    figure = go.Figure()
    for label, points in frontier(runs).items():
        figure.add_trace(go.Scatter(
            x=[p["kl"] for p in points], y=[p["reward"] for p in points], customdata=[p["step"] for p in points],
            mode="lines+markers", name=label,
            hovertemplate=f"{label}<br>step %{{customdata}}<br>KL %{{x:.4g}}<br>reward %{{y:.4g}}<extra></extra>",
        ))
    _layout(figure, "Reward vs KL from reference", "KL(policy ‖ reference)", "reward")
    if not figure.data:
        _waiting(figure, _missing(("probe/reward", "probe/kl")) if any(runs.values()) else WAITING)
    figure.update_layout(showlegend=bool(figure.data))
    return figure


def method_figures(method: str, histories: dict[str, list[dict]]) -> dict[str, go.Figure]:
    """Title -> figure, one per plot panel of ``method`` (see :func:`alignlab.plots.panels_for`)."""
    return {panel.title: curves_figure(histories, panel.keys, panel.title) for panel in panels_for(method)}
