"""The report's charts as PNG bytes (matplotlib's Agg canvas; no pyplot state, no display)."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
from matplotlib import colormaps
from matplotlib import dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from driftloop.report.extract import ABWindow, ConversionSeries, CostSummary, DriftScores, RunMarker, as_array

DPI = 110
VARIANT_COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#9d755d", "#e45756")
MARKER_COLOURS = {"promoted": "#2e7d32", "rolled_back": "#c62828"}
MARKER_WORDS = {"promoted": "promoted", "rolled_back": "rolled back"}
THRESHOLD_COLOUR = "#c62828"


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def _text(value: str) -> str:
    """A label as matplotlib shows it literally (a pair of dollar signs would start mathtext)."""
    return value.replace("$", r"\$")


def format_usd(value: float) -> str:
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    if abs(value) >= 0.01:
        return f"${value:.3f}"
    return f"${value:.2g}"


def _with_gaps(starts: list, values: np.ndarray, step: timedelta) -> tuple[list, np.ndarray]:
    """Insert a NaN wherever consecutive buckets are not adjacent, so lines break over silences."""
    times, out = [], []
    for index, start in enumerate(starts):
        if index and start - starts[index - 1] > step:
            times.append(starts[index - 1] + step)
            out.append(np.nan)
        times.append(start)
        out.append(values[index])
    return times, np.array(out, dtype=float)


def conversion_chart(series: ConversionSeries, markers: list[RunMarker], windows: list[ABWindow],
                     labels: dict[str, str]) -> bytes:
    """Conversion rate per variant and bucket (95% Wilson band), requests below, model changes marked."""
    figure = Figure(figsize=(11, 5.6))
    rates_axis, served_axis = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
    step = timedelta(seconds=series.bucket.seconds)
    width = step.total_seconds() / 86400
    bottom: dict = {}
    for index, variant in enumerate(series.variants):
        colour = VARIANT_COLOURS[index % len(VARIANT_COLOURS)]
        centres = [start + step / 2 for start in variant.starts]
        times, rates = _with_gaps(centres, np.array(variant.rates), step)
        intervals = np.array(variant.wilson_intervals())
        _, low = _with_gaps(centres, intervals[:, 0], step)
        _, high = _with_gaps(centres, intervals[:, 1], step)
        rates_axis.plot(times, rates, marker="o", markersize=3, linewidth=1.6, color=colour,
                        label=f"{variant.name} ({sum(variant.served):,} requests)")
        rates_axis.fill_between(times, low, high, color=colour, alpha=0.18, linewidth=0)
        base = [bottom.get(start, 0) for start in variant.starts]
        served_axis.bar(variant.starts, variant.served, width=width, bottom=base, align="edge", color=colour)
        for start, served in zip(variant.starts, variant.served, strict=True):
            bottom[start] = bottom.get(start, 0) + served
    for number, window in enumerate(windows):
        for axis in (rates_axis, served_axis):
            axis.axvspan(window.start, window.end, color="#f2c94c", alpha=0.22, linewidth=0, zorder=0,
                         label="A/B test" if axis is rates_axis and number == 0 else None)
    top = rates_axis.get_ylim()[1]
    for marker in markers:
        colour = MARKER_COLOURS[marker.kind]
        for axis in (rates_axis, served_axis):
            axis.axvline(marker.at, color=colour, linestyle="--", linewidth=1.2)
        rates_axis.annotate(f"{labels.get(marker.run_id, marker.run_id)} {MARKER_WORDS[marker.kind]}",
                            (mdates.date2num(marker.at), top), xytext=(3, -12), textcoords="offset points",
                            color=colour, fontsize=8, fontweight="bold", rotation=0)
    rates_axis.set_ylim(0, max(top, 0.05) * 1.08)
    rates_axis.set_ylabel("conversion rate")
    rates_axis.yaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
    rates_axis.set_title(f"Conversion per variant, per {series.bucket.label} (band: 95% interval)", loc="left")
    rates_axis.legend(loc="upper left", fontsize=8, frameon=False, ncols=3)
    rates_axis.grid(alpha=0.3)
    served_axis.set_ylabel("requests")
    served_axis.grid(alpha=0.3)
    locator = mdates.AutoDateLocator()
    served_axis.xaxis.set_major_locator(locator)
    served_axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    served_axis.set_xlabel("served at (UTC)")
    figure.align_ylabels()
    return _png(figure)


def drift_chart(scores: DriftScores, labels: dict[str, str]) -> bytes:
    """PSI and JS distance per feature across the runs that compared data, with the thresholds."""
    figure = Figure(figsize=(11, 4.6))
    axes = figure.subplots(1, 2)
    positions = np.arange(len(scores.run_ids))
    ticks = [f"{labels.get(run_id, run_id)}\n{time:%m-%d %H:%M}" for run_id, time in
             zip(scores.run_ids, scores.times, strict=True)]
    for axis, metric, values, thresholds, title in (
        (axes[0], "psi", scores.psi, scores.psi_threshold, "PSI"),
        (axes[1], "js", scores.js, scores.js_threshold, "Jensen-Shannon distance"),
    ):
        for index, name in enumerate(scores.features):
            series = as_array(values[name])
            colour = _feature_colour(index)
            axis.plot(positions, series, marker="o", markersize=4, linewidth=1.3, color=colour, label=name)
            drifted = np.array(scores.drifted[name], dtype=bool)
            axis.scatter(positions[drifted], series[drifted], s=90, facecolors="none", edgecolors=THRESHOLD_COLOUR,
                         linewidths=1.8, zorder=3)
            own = as_array(thresholds[name])
            if not np.allclose(own, as_array(scores.policy_thresholds(metric)), equal_nan=True):
                axis.plot(positions, own, linestyle=":", color=colour, linewidth=1.2)
        policy = as_array(scores.policy_thresholds(metric))
        if np.isfinite(policy).any():
            axis.step(positions, policy, where="mid", color=THRESHOLD_COLOUR, linestyle="--", linewidth=1.4,
                      label="threshold")
            if len(positions) == 1:
                axis.axhline(policy[0], color=THRESHOLD_COLOUR, linestyle="--", linewidth=1.4)
        axis.set_title(title, loc="left")
        axis.set_xticks(positions, ticks, fontsize=8)
        axis.set_xlim(-0.5, len(positions) - 0.5)
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    handles, names = axes[1].get_legend_handles_labels()
    handles.append(axes[1].scatter([], [], s=90, facecolors="none", edgecolors=THRESHOLD_COLOUR, linewidths=1.8))
    names.append("drifted")
    axes[1].legend(handles, names, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return _png(figure)


def _feature_colour(index: int) -> tuple[float, float, float, float]:
    return colormaps["tab10" if index < 10 else "tab20b"](index % 10 if index < 10 else index - 10)


def cost_chart(costs: CostSummary, labels: dict[str, str]) -> bytes:
    """Paid training cost per run, with what spot capacity saved stacked on top."""
    figure = Figure(figsize=(11, 3.4))
    axis = figure.subplots()
    positions = np.arange(len(costs.rows))
    paid = np.array([row.cost_usd for row in costs.rows])
    saved = np.array([row.spot_saving_usd for row in costs.rows])
    axis.bar(positions, paid, color="#4c78a8", label="paid")
    axis.bar(positions, saved, bottom=paid, color="#ffffff", edgecolor="#54a24b", hatch="///",
             label="saved by spot")
    for position, value, extra in zip(positions, paid, saved, strict=True):
        axis.annotate(_text(format_usd(value)), (position, value + extra), xytext=(0, 3), textcoords="offset points",
                      ha="center", fontsize=8)
    axis.set_xticks(positions, [labels.get(row.run_id, row.run_id) for row in costs.rows])
    axis.set_xlim(-0.6, max(len(positions), 4) - 0.4)
    axis.set_ylim(0, max(float((paid + saved).max()) if len(positions) else 0, 1e-9) * 1.2)
    axis.yaxis.set_major_formatter(lambda value, _: _text(format_usd(value)))
    axis.set_title(_text(f"Training cost per run — total {format_usd(costs.total_usd)} "
                         f"(spot saved {format_usd(costs.total_saving_usd)})"), loc="left")
    axis.legend(loc="upper left", fontsize=8, frameon=False)
    axis.grid(alpha=0.3, axis="y")
    return _png(figure)
