"""The class frontier of workshop mode: every participant's finished run as one point, reward against KL.

The points come from :func:`alignlab.workshop.class_points` (each run's final frontier point,
:func:`alignlab.panels.final_point`); the look is the run frontier's (:mod:`alignlab.ui.figures`: axis titles,
colours, error bars of ±1.96·se, the note on a KL below 0), with one colour and legend entry per participant
and the leaderboard's KL budget as a dashed line: points left of it count.
"""

from __future__ import annotations

import plotly.graph_objects as go

from alignlab.panels import FRONTIER_PANEL, error_bars
from alignlab.ui.figures import (
    COLOURS,
    ERROR_OPACITY,
    HEIGHT,
    KL_HOVER,
    LOOK,
    axis_fit,
    axis_titles,
    faint,
    kl_note,
    negative_kl,
)

TITLE = "Class frontier: each finished run's final reward vs KL"
EMPTY = "no finished run with a reward-vs-KL point yet (runs need the probe: probe_every > 0)"


def class_frontier_figure(points: list[dict], kl_budget: float | None = None) -> go.Figure:
    """One marker per run, one colour and legend entry per owner (in order of their first run), the KL budget as a
    dashed vertical line; hover names the run, its method, KL knob and steps."""
    figure = go.Figure()
    owners = list(dict.fromkeys(point["owner"] for point in points))
    for index, owner in enumerate(owners):
        mine = [point for point in points if point["owner"] == owner]
        colour = COLOURS[index % len(COLOURS)]
        bars = {}
        for axis, field in (("error_x", "kl"), ("error_y", "reward")):
            widths = error_bars(mine, field)
            if widths is not None:
                bars[axis] = {"type": "data", "array": widths, "thickness": 1, "width": 3,
                              "color": faint(colour, ERROR_OPACITY)}
        details = [" · ".join(part for part in (p["method"], p["kl_setting"], f"{p['steps']} steps") if part)
                   + f"<br>{p['run_id']}" for p in mine]
        figure.add_scatter(
            x=[p["kl"] for p in mine], y=[p["reward"] for p in mine], name=owner, mode="markers",
            marker={"color": colour, "size": 11, "line": {"color": "white", "width": 1}}, customdata=details,
            hovertext=[KL_HOVER if p["kl"] < 0 else "" for p in mine], **bars,
            hovertemplate=f"<b>{owner}</b><br>%{{customdata}}<br>KL %{{x:.4g}}<br>reward %{{y:.4g}}%{{hovertext}}"
                          "<extra></extra>")
    x_title, y_title = axis_titles(FRONTIER_PANEL)
    figure.update_layout(**LOOK, title={"text": TITLE, "x": 0.02, "font": {"size": 14}}, height=HEIGHT + 80,
                         margin={"l": 50, "r": 10, "t": 40, "b": 40}, xaxis_title=x_title, yaxis_title=y_title,
                         showlegend=bool(owners), legend={"title": {"text": "participant"}})
    x_fit, y_fit = axis_fit(FRONTIER_PANEL, figure.data)
    figure.update_xaxes(**x_fit)
    figure.update_yaxes(**y_fit)
    if negative_kl(figure.data):
        figure.add_annotation(**kl_note())
    if kl_budget is not None:
        figure.add_vline(x=kl_budget, line={"dash": "dash", "color": "#888", "width": 1},
                         annotation_text=f"KL budget {kl_budget:g}", annotation_position="top right")
    if not points:
        figure.add_annotation(text=EMPTY, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                              font={"size": 13, "color": "#888"})
    return figure
