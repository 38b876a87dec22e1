"""Panel data (alignlab.panels) and the plotly figures both UIs draw (alignlab.ui.figures)."""

from __future__ import annotations

import math

import pytest

from alignlab import rundir
from alignlab.config import RunConfig
from alignlab.methods import Panel, method_names
from alignlab.panels import (
    DRIFT_PANELS,
    FRONTIER,
    FRONTIER_PANEL,
    band,
    error_bars,
    final_point,
    frontier,
    frontier_points,
    merged_panels,
    panels_for,
    rows_from_events,
    series,
    visible_panels,
)
from alignlab.runner import start

ROWS = [
    {"step": 1, "loss": 0.69, "probe/reward": 0.10, "probe/kl": 0.0},
    {"step": 2, "loss": 0.60, "rewards/margins": None},
    {"step": 3, "loss": 0.52, "probe/reward": 0.30, "probe/kl": 0.4, "rewards/margins": 0.2},
]
RL_ROWS = [{"step": 1, "objective/kl": 0.1, "objective/scores": 0.2},
           {"step": 2, "objective/kl": 0.3, "objective/scores": 0.5}]
# GRPO and RLOO: their own "kl" estimate with the "reward" of their samples
GROUP_ROWS = [{"step": 1, "kl": 0.1, "reward": 0.2}]
# the probe's rows with their standard errors, as probe.py logs them
SE_ROWS = [{**row, "probe/reward_se": 0.02 * row["step"], "probe/kl_se": 0.01 * row["step"]} if "probe/kl" in row
           else row for row in ROWS]


@pytest.fixture(scope="module")
def dpo_rows(tmp_path_factory) -> list[dict]:
    handle = start(RunConfig(method="dpo", model="tiny-random", max_steps=2, batch_size=2, max_length=64,
                             max_completion_length=8, probe_every=0, output_dir=str(tmp_path_factory.mktemp("runs"))),
                   background=False)
    assert handle.state == "finished", handle.error
    rows, _ = rundir.read_metrics(handle.run_dir)
    return rows


def test_series_skips_missing_and_none():
    assert series(ROWS, "loss") == ([1, 2, 3], [0.69, 0.60, 0.52])
    assert series(ROWS, "rewards/margins") == ([3], [0.2])
    assert series(ROWS, "nope") == ([], [])


def test_frontier_pairs_reward_and_kl_from_the_probe_rows():
    assert frontier_points(ROWS) == [{"step": 1, "kl": 0.0, "reward": 0.1}, {"step": 3, "kl": 0.4, "reward": 0.3}]
    assert final_point(ROWS) == {"step": 3, "kl": 0.4, "reward": 0.3}
    assert final_point([{"step": 1, "loss": 1.0}]) is None


def test_frontier_falls_back_to_the_rl_trainers_keys():
    assert frontier_points(RL_ROWS) == [{"step": 1, "kl": 0.1, "reward": 0.2}, {"step": 2, "kl": 0.3, "reward": 0.5}]
    assert frontier_points(GROUP_ROWS) == [{"step": 1, "kl": 0.1, "reward": 0.2}]
    assert frontier({"probe": ROWS, "rl": RL_ROWS, "none": [{"step": 1, "loss": 1.0}]}).keys() == {"probe", "rl"}


def test_band_is_the_mean_plus_minus_1_96_standard_errors():
    steps, lower, upper = band(SE_ROWS, "probe/reward")
    assert steps == [1, 3]
    assert lower == pytest.approx([0.10 - 1.96 * 0.02, 0.30 - 1.96 * 0.06])
    assert upper == pytest.approx([0.10 + 1.96 * 0.02, 0.30 + 1.96 * 0.06])
    assert band(ROWS, "probe/reward") == ([], [], [])  # no standard error logged: no band


def test_frontier_points_carry_their_standard_errors():
    points = frontier_points(SE_ROWS)
    assert [p["kl_se"] for p in points] == pytest.approx([0.01, 0.03])
    assert [p["reward_se"] for p in points] == pytest.approx([0.02, 0.06])
    assert error_bars(points, "reward") == pytest.approx([1.96 * 0.02, 1.96 * 0.06])
    assert error_bars(frontier_points(RL_ROWS), "kl") is None


def test_rows_from_events_flattens_bus_events():
    events = [{"run_id": "r", "step": 4, "time": 1.5, "metrics": {"loss": 0.3, "probe/kl": 0.2}}]
    assert rows_from_events(events) == [{"step": 4, "time": 1.5, "loss": 0.3, "probe/kl": 0.2}]


@pytest.mark.parametrize("method", method_names())
def test_panels_start_with_loss_reward_kl_and_draw_each_key_once(method):
    panels = panels_for(method)
    assert [p.title for p in panels[:2]] == ["Loss", "Reward"]
    assert any("probe/reward" in p.keys for p in panels) and any("probe/kl" in p.keys for p in panels)
    keys = [key for panel in panels for key in panel.keys]
    assert len(keys) == len(set(keys))
    merged = [key for panel in merged_panels(method_names()) for key in panel.keys]
    assert not [key for key in keys + merged if key.endswith("_se")]  # standard errors are bands, not curves


def test_dpo_panels_include_its_own():
    titles = [panel.title for panel in panels_for("dpo")]
    assert titles[:3] == ["Loss", "Reward", "KL from reference"]
    assert {"Reward margin", "Preference accuracy", "Implicit rewards"} <= set(titles)


def test_visible_panels_show_everything_until_rows_arrive_then_what_they_fill_and_always_the_frontier():
    everything = visible_panels(["dpo", "kto"])
    assert everything == merged_panels(["dpo", "kto"]) + [FRONTIER_PANEL]
    kinds = [panel.kind for panel in everything]
    assert kinds == ["curve"] * (len(everything) - 3) + ["drift", "curve", "frontier"]  # drift, KL rate, frontier
    assert everything[-3:-1] == list(DRIFT_PANELS)
    no_probe = {"a": [{"step": 1, "loss": 0.7, "rewards/margins": 0.1}], "b": [{"step": 1, "kl": 0.2}]}
    titles = [panel.title for panel in visible_panels(["dpo", "kto"], no_probe)]
    assert titles == ["Loss", "KL from reference", "Reward margin", "KL estimate", FRONTIER]
    probing = [panel.title for panel in visible_panels(["dpo"], {"a": no_probe["a"]}, probing=True)]
    assert probing[:3] == ["Loss", "Reward", "KL from reference"]  # the probe will fill Reward and KL
    assert visible_panels(["dpo"], {"a": []}) == visible_panels(["dpo"])  # no row yet: every panel waits


def test_a_panel_kind_is_curve_or_frontier():
    assert Panel("Loss", ("loss",)).kind == "curve" and FRONTIER_PANEL.kind == "frontier"
    with pytest.raises(ValueError, match="kind"):
        Panel("Loss", ("loss",), kind="bars")


def test_series_on_a_real_dpo_run(dpo_rows):
    steps, losses = series(dpo_rows, "loss")
    # finite and positive: DPO's −log σ plus the default chosen-likelihood term (about ln V per token on tiny-random)
    assert steps == [1, 2] and all(0 < loss < 2 * math.log(32_000) for loss in losses)
    assert series(dpo_rows, "rewards/margins")[0] == [1, 2]
    assert frontier_points(dpo_rows) == []  # no probe in this run, and DPO logs no RL keys


def test_figures_have_one_trace_per_run_and_key(dpo_rows):
    from alignlab.ui.figures import curves_figure, frontier_figure, panel_figures

    histories = {"a": dpo_rows, "b": dpo_rows[:1]}
    figure = curves_figure(histories, ("rewards/chosen", "rewards/rejected"), "Implicit rewards")
    assert [trace.name for trace in figure.data] == ["a · chosen reward", "a · rejected reward",
                                                     "b · chosen reward", "b · rejected reward"]
    assert "rewards/chosen" in figure.data[0].hovertemplate  # the key as TRL logs it, in the hover
    assert list(figure.data[0].x) == [1, 2]
    figures = panel_figures(visible_panels(["dpo"]), histories)
    assert [figure.layout.title.text for figure in figures] == [panel.title for panel in panels_for("dpo")] + [FRONTIER]
    assert len(figures[0].data) == 2
    frontier_fig = frontier_figure({"probe": ROWS, "rl": RL_ROWS})
    assert [trace.name for trace in frontier_fig.data] == ["probe", "rl"]
    assert list(frontier_fig.data[0].x) == [0.0, 0.4] and list(frontier_fig.data[0].customdata) == [1, 3]
    assert "step" in frontier_fig.data[0].hovertemplate


def test_a_curve_with_standard_errors_gets_a_shaded_band_and_the_frontier_error_bars():
    from alignlab.ui.figures import curves_figure, frontier_figure

    figure = curves_figure({"a": SE_ROWS}, ("reward", "probe/reward"), "Reward")
    band_trace, line = figure.data  # the band first, under its line
    assert band_trace.fill == "toself" and band_trace.showlegend is False and band_trace.hoverinfo == "skip"
    assert list(band_trace.x) == [1, 3, 3, 1]
    assert list(band_trace.y) == pytest.approx([0.10 + 1.96 * 0.02, 0.30 + 1.96 * 0.06,  # upper edge, forward
                                                0.30 - 1.96 * 0.06, 0.10 - 1.96 * 0.02])  # lower edge, back
    assert line.name == "probe reward" and list(line.y) == [0.10, 0.30]
    assert band_trace.fillcolor.startswith("rgba(") and band_trace.fillcolor.endswith(", 0.15)")
    red, green, blue = (int(line.line.color[i:i + 2], 16) for i in (1, 3, 5))  # the line's colour, faint
    assert band_trace.fillcolor == f"rgba({red}, {green}, {blue}, 0.15)"
    assert not figure.layout.showlegend  # one line: the band adds no legend entry
    overlaid = curves_figure({"a": SE_ROWS, "b": ROWS}, ("probe/reward",), "Reward")
    assert [trace.name for trace in overlaid.data if trace.showlegend is not False] == ["a", "b"]
    frontier_fig = frontier_figure({"probe": SE_ROWS, "rl": RL_ROWS})
    assert [trace.name for trace in frontier_fig.data] == ["probe", "rl"]  # error bars, no band
    assert list(frontier_fig.data[0].error_y.array) == pytest.approx([1.96 * 0.02, 1.96 * 0.06])
    assert list(frontier_fig.data[0].error_x.array) == pytest.approx([1.96 * 0.01, 1.96 * 0.03])
    assert frontier_fig.data[1].error_y.array is None
    frontier_fig.to_json()


def test_empty_histories_give_a_figure_that_says_it_is_waiting():
    from alignlab.ui.figures import curves_figure, frontier_figure, panel_figures

    for figure in (curves_figure({}, ("loss",), "Loss"), curves_figure({"a": []}, ("loss",), "Loss"),
                   frontier_figure({}), *panel_figures(visible_panels(["kto"]), {})):
        assert len(figure.data) == 0
        assert "waiting for the first logged step" in figure.layout.annotations[0].text
        figure.to_json()  # serialisable: both UIs ship it to the browser


def test_figures_name_the_keys_a_run_has_not_logged(dpo_rows):
    from alignlab.ui.figures import curves_figure, frontier_figure

    kl_panel = next(panel for panel in panels_for("dpo") if panel.title == "KL from reference")
    kl = curves_figure({"a": dpo_rows}, kl_panel.keys, kl_panel.title)
    assert len(kl.data) == 0 and "no kl, objective/kl, probe/kl logged yet" in kl.layout.annotations[0].text
    assert "probe_every" in frontier_figure({"a": dpo_rows}).layout.annotations[0].text


def test_the_notebook_grid_draws_the_lines_of_the_app_figures(dpo_rows):
    from alignlab.ui.figures import curves_figure, frontier_figure
    from alignlab.ui.notebook.grid import grid_figure

    histories = {"a": dpo_rows, "b": SE_ROWS}
    panels = visible_panels(["dpo"])
    grid = grid_figure(panels, histories, overlay=True)

    def look(traces) -> list[tuple]:
        return [(t.name, t.mode, t.line.color, t.line.dash, t.hovertemplate, t.fillcolor, list(t.x), list(t.y),
                 t.error_y.array) for t in traces]

    for panel in panels:
        app = frontier_figure(histories) if panel.kind == "frontier" else curves_figure(histories, panel.keys,
                                                                                         panel.title)
        assert look(trace for trace in grid.data if trace.meta[0] == panel.title) == look(app.data), panel.title
    colours = {trace.meta[1]: trace.line.color for trace in grid.data if trace.fill is None}
    assert len(set(colours.values())) == 2  # overlaid: a colour per run
    assert ("Reward", "b", "probe/reward_se") in {tuple(trace.meta) for trace in grid.data}  # the band, keyed _se
    assert [trace.meta[1] for trace in grid.data if trace.showlegend] == ["a", "b"]  # bands: no legend entry


# Hand-written metric rows as the probe logs them: a first point alone, then a path whose first KL is below 0.
FIRST_PROBE = [{"step": 0, "probe/reward": 0.41, "probe/kl": 0.0}]
PATH = [{"step": 2, "loss": 0.69, "probe/reward": 0.30, "probe/kl": -0.004, "probe/kl_se": 0.003},
        {"step": 4, "loss": 0.60, "probe/reward": 0.35, "probe/kl": 0.010},
        {"step": 6, "loss": 0.52, "probe/reward": 0.50, "probe/kl": 0.030}]


def test_an_axis_whose_points_sit_at_one_value_gets_a_padded_range_and_others_autoscale():
    from alignlab.ui.figures import curves_figure, flat_range, frontier_figure
    from alignlab.ui.notebook.grid import grid_figure

    single = frontier_figure({"a": FIRST_PROBE})
    assert single.layout.xaxis.range == (-0.05, 0.05) and single.layout.xaxis.autorange is False  # not −1…1
    assert single.layout.yaxis.range == pytest.approx((0.36, 0.46))  # 0.41 ± 0.05 (10 % of it is less)
    loss = curves_figure({"a": PATH[:1]}, ("loss",), "Loss")
    assert loss.layout.xaxis.range == (1, 3) and loss.layout.yaxis.range == pytest.approx((0.621, 0.759))
    # A first probe of a real tiny run: KL a hair below 0 with error bars a few millionths wide, reward ± 0.08.
    first = [{"step": 0, "probe/reward": 0.011, "probe/kl": -2.4e-7, "probe/reward_se": 0.04, "probe/kl_se": 6e-7}]
    noisy = frontier_figure({"a": first})
    assert noisy.layout.xaxis.range == pytest.approx((-0.05, 0.05), abs=1e-6)  # not a window of a few millionths
    low, high = noisy.layout.yaxis.range
    assert low < 0.011 - 1.96 * 0.04 and high > 0.011 + 1.96 * 0.04  # the error bar fits, with room
    kl = curves_figure({"a": first}, ("probe/kl",), "KL from reference")  # a band's edges count as error bars
    assert kl.layout.yaxis.range == pytest.approx((-0.05, 0.05), abs=1e-6)
    assert kl.layout.xaxis.range == (-0.5, 0.5)  # step 0 alone: no step −1 on its axis
    grown = frontier_figure({"a": FIRST_PROBE + PATH})  # more points: plotly's autorange fits them again
    assert grown.layout.xaxis.autorange is True and grown.layout.xaxis.range is None
    assert grown.layout.yaxis.autorange is True
    assert flat_range([0.1, 0.1 + 1e-9], 0.05) is None and flat_range([], 0.05) is None
    grid = grid_figure([FRONTIER_PANEL], {"a": FIRST_PROBE})  # the notebook's subplots fit the same way
    assert grid.layout.xaxis.range == (-0.05, 0.05) and grid.layout.yaxis.range == single.layout.yaxis.range


def test_the_frontier_path_reads_in_order_and_its_axes_say_which_way_is_which():
    from alignlab.ui.figures import STEP_COLOURS, frontier_figure

    figure = frontier_figure({"a": PATH})
    line = figure.data[0]
    assert list(line.marker.color) == [2, 4, 6] and (line.marker.cmin, line.marker.cmax) == (2, 6)
    assert line.marker.colorscale == frontier_figure({"b": PATH}).data[0].marker.colorscale and STEP_COLOURS
    assert list(line.text) == ["step 2", "", "step 6"] and "text" in line.mode
    assert line.marker.line.color == line.line.color  # outlined in the run's colour
    red, green, blue = (int(line.line.color[i:i + 2], 16) for i in (1, 3, 5))
    assert line.error_x.color == f"rgba({red}, {green}, {blue}, 0.4)"  # error bars faint: the path reads first
    assert line.marker.showscale and line.marker.colorbar.title.text == "step"  # one run: its colour scale
    overlaid = frontier_figure({"a": PATH, "b": FIRST_PROBE + PATH})
    assert not any(trace.marker.showscale for trace in overlaid.data)  # runs are told apart by their line colours
    assert list(overlaid.data[1].text) == ["step 0", "", "", "step 6"]
    assert "↑ more" in figure.layout.yaxis.title.text and "reward" in figure.layout.yaxis.title.text
    assert "→ further from the reference" in figure.layout.xaxis.title.text
    alone = frontier_figure({"a": FIRST_PROBE}).data[0]
    assert list(alone.text) == ["step 0"] and not alone.marker.showscale  # one point: no scale to read
    figure.to_json()


def test_a_kl_below_zero_says_it_is_the_estimates_noise():
    from alignlab.ui.figures import KL_HOVER, KL_NOTE, curves_figure, frontier_figure
    from alignlab.ui.notebook.grid import grid_figure

    kl = curves_figure({"a": PATH}, ("probe/kl",), "KL from reference")
    line = kl.data[-1]  # over its ±1.96·se band
    assert list(line.hovertext) == [KL_HOVER, "", ""] and "%{hovertext}" in line.hovertemplate
    assert [note.text for note in kl.layout.annotations] == [KL_NOTE] and kl.layout.yaxis.zeroline
    frontier = frontier_figure({"a": PATH})
    assert list(frontier.data[0].hovertext) == [KL_HOVER, "", ""] and frontier.layout.xaxis.zeroline
    assert [note.text for note in frontier.layout.annotations] == [KL_NOTE]
    positive = curves_figure({"a": PATH[1:]}, ("probe/kl",), "KL from reference")
    assert not positive.layout.annotations and not positive.layout.yaxis.zeroline
    loss = curves_figure({"a": [{"step": 1, "loss": -0.2}, {"step": 2, "loss": 0.1}]}, ("loss",), "Loss")
    assert loss.data[0].hovertext is None and not loss.layout.annotations  # only a KL below 0 is noise
    panels = visible_panels(["dpo"], {"a": PATH})
    grid = grid_figure(panels, {"a": PATH})
    notes = [note for note in grid.layout.annotations if note.text == KL_NOTE]
    kl_index = [panel.title for panel in panels].index("KL from reference")
    assert sorted(note.xref for note in notes) == sorted([f"x{kl_index + 1} domain", f"x{len(panels)} domain"])


def test_step_axes_tick_whole_steps():
    from alignlab.ui.figures import STEP_TICKS_UPTO, curves_figure, frontier_figure
    from alignlab.ui.notebook.grid import grid_figure

    short = curves_figure({"a": PATH}, ("loss",), "Loss").layout.xaxis  # steps 2…6: plotly alone ticks 2.5, 3.5
    assert (short.tickmode, short.tick0, short.dtick) == ("linear", 0, 1)
    long_rows = [{"step": step, "loss": 1 / step} for step in range(1, STEP_TICKS_UPTO + 3)]
    assert curves_figure({"a": long_rows}, ("loss",), "Loss").layout.xaxis.tickmode == "auto"  # whole steps anyway
    assert frontier_figure({"a": PATH}).layout.xaxis.tickmode is None  # KL is no step
    grid = grid_figure(visible_panels(["dpo"], {"a": PATH}), {"a": PATH})  # the notebook's subplots alike
    assert (grid.layout.xaxis.tickmode, grid.layout.xaxis.dtick) == ("linear", 1)


def test_legends_and_notebook_titles_name_metrics_for_people_with_the_key_in_the_hover():
    from alignlab.labels import metric_name
    from alignlab.ui.figures import curves_figure
    from alignlab.ui.notebook.grid import grid_figure

    reward = next(panel for panel in panels_for("dpo") if panel.title == "Reward")
    alone = curves_figure({"a": ROWS}, reward.keys, reward.title)
    assert [trace.name for trace in alone.data] == ["probe reward"] and "probe/reward" in alone.data[0].hovertemplate
    rows = [{"step": 1, "rewards/chosen": 0.1, "rewards/rejected": -0.1, "probe/reward": 0.2}]
    panels = visible_panels(["dpo"], {"a": rows})
    grid = grid_figure(panels, {"a": rows})
    titles = {panel.title: note.text for panel, note in zip(panels, grid.layout.annotations)}
    assert titles["Reward"] == "Reward (probe)"  # not "Reward: probe/reward"
    assert "chosen</span>" in titles["Implicit rewards"] and "rewards/" not in titles["Implicit rewards"]
    every_key = {key for method in method_names() for panel in panels_for(method) for key in panel.keys}
    named = {key: metric_name(key) for key in every_key}
    assert all(name != key or "/" not in key for key, name in named.items()), named  # no raw TRL key in a legend
