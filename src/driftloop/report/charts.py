"""The report's charts as PNG bytes (matplotlib's Agg canvas; no pyplot state, no display)."""

from __future__ import annotations

import io
import math
import textwrap
from datetime import timedelta

import numpy as np
from matplotlib import dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from driftloop.report.extract import ABWindow, ConversionSeries, CostSummary, DriftScores, RunMarker, as_array

DPI = 110
VARIANT_COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#9d755d", "#e45756")
MARKER_COLOURS = {"promoted": "#2e7d32", "rolled_back": "#c62828"}
MARKER_WORDS = {"promoted": "promoted", "rolled_back": "rolled back"}
THRESHOLD_COLOUR = "#c62828"
PSI_COLOUR = "#4c78a8"
JS_COLOUR = "#f58518"


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
    return f"${value:.{1 - math.floor(math.log10(abs(value)))}f}"  # two significant digits, never 6.4e-05


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


def conversion_figure(series: ConversionSeries, markers: list[RunMarker], windows: list[ABWindow],
                      labels: dict[str, str]) -> Figure:
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
                            (mdates.date2num(marker.at), 0), xytext=(-3, 4), textcoords="offset points",
                            color=colour, fontsize=7.5, fontweight="bold", rotation=90, ha="right", va="bottom")
    rates_axis.set_ylim(0, max(top, 0.05) * 1.08)
    rates_axis.set_ylabel("conversion rate")
    rates_axis.yaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
    rates_axis.set_title(f"Conversion per variant, per {series.bucket.label} (band: 95% interval)", loc="left",
                         pad=22)
    rates_axis.legend(loc="lower left", bbox_to_anchor=(0, 1.0), fontsize=8, frameon=False, ncols=3,
                      borderaxespad=0.2)
    rates_axis.grid(alpha=0.3)
    served_axis.set_ylabel("requests")
    served_axis.grid(alpha=0.3)
    locator = mdates.AutoDateLocator()
    served_axis.xaxis.set_major_locator(locator)
    served_axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    served_axis.set_xlabel("served at (UTC)")
    figure.align_ylabels()
    return figure


def drift_figure(scores: DriftScores, labels: dict[str, str], columns: int = 4) -> Figure:
    """One panel per feature: PSI and JS distance across the runs that compared data, each with its
    threshold; runs where the feature drifted are ringed. Panels start with the features closest to
    (or furthest past) their thresholds."""
    features = sorted(scores.features, key=lambda name: -_threshold_ratio(scores, name))
    rows = -(-len(features) // columns)
    figure = Figure(figsize=(11, 0.6 + 2.5 * rows))
    axes = np.atleast_1d(figure.subplots(rows, columns, sharex=True, squeeze=False)).ravel()
    positions = np.arange(len(scores.run_ids))
    ticks = [labels.get(run_id, run_id) for run_id in scores.run_ids]
    for axis, name in zip(axes, features, strict=False):
        drifted = np.array(scores.drifted[name], dtype=bool)
        for metric, values, thresholds, colour in (("PSI", scores.psi, scores.psi_threshold, PSI_COLOUR),
                                                   ("JS", scores.js, scores.js_threshold, JS_COLOUR)):
            series = as_array(values[name])
            axis.plot(positions, series, marker="o", markersize=4, linewidth=1.4, color=colour, label=metric)
            limit = as_array(thresholds[name])
            axis.plot(positions, limit, color=colour, linestyle="--", linewidth=1.1,
                      drawstyle="steps-mid", label=f"{metric} threshold")
            if len(positions) == 1 and np.isfinite(limit[0]):
                axis.axhline(limit[0], color=colour, linestyle="--", linewidth=1.1)
            axis.scatter(positions[drifted], series[drifted], s=80, facecolors="none",
                         edgecolors=THRESHOLD_COLOUR, linewidths=1.8, zorder=3)
        axis.set_title("\n".join([name, *_drifted_in(ticks, drifted)]), loc="left", fontsize=8.5,
                       color=THRESHOLD_COLOUR if drifted.any() else "#1f2933")
        axis.set_ylim(bottom=0)
        axis.set_xlim(-0.5, len(positions) - 0.5)
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=8)
    for axis in axes[len(features):]:
        axis.set_visible(False)
    for axis in axes[max(0, len(features) - columns):len(features)]:
        axis.set_xticks(positions, ticks, rotation=90 if len(ticks) > 6 else 0, fontsize=7)
        axis.tick_params(labelbottom=True)
    handles, names = axes[0].get_legend_handles_labels()
    handles.append(axes[0].scatter([], [], s=80, facecolors="none", edgecolors=THRESHOLD_COLOUR, linewidths=1.8))
    names.append("drifted")
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.3 / figure.get_figheight()))
    figure.legend(handles, names, loc="upper center", ncols=5, fontsize=9, frameon=False, bbox_to_anchor=(0.5, 1.0))
    return figure


def _drifted_in(ticks: list[str], drifted: np.ndarray, width: int = 34) -> list[str]:
    """The runs a feature drifted in, on at most two lines of a panel's width (a count when they do not fit)."""
    runs = [tick for tick, flag in zip(ticks, drifted, strict=True) if flag]
    if not runs:
        return []
    lines = textwrap.wrap("drifted in " + ", ".join(runs), width)
    return lines if len(lines) <= 2 else [f"drifted in {len(runs)} of {len(ticks)} runs,", f"last {runs[-1]}"]


def _threshold_ratio(scores: DriftScores, name: str) -> float:
    """The largest score / threshold of a feature over all runs (0 when unknown)."""
    ratios = [0.0]
    for values, thresholds in ((scores.psi[name], scores.psi_threshold[name]),
                               (scores.js[name], scores.js_threshold[name])):
        for value, threshold in zip(values, thresholds, strict=True):
            if value is not None and threshold:
                ratios.append(value / threshold)
    return max(ratios)


def cost_figure(costs: CostSummary, labels: dict[str, str]) -> Figure:
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
    axis.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False, ncols=2, borderaxespad=0.2)
    axis.grid(alpha=0.3, axis="y")
    return figure


def conversion_chart(series: ConversionSeries, markers: list[RunMarker], windows: list[ABWindow],
                     labels: dict[str, str]) -> bytes:
    return _png(conversion_figure(series, markers, windows, labels))


def drift_chart(scores: DriftScores, labels: dict[str, str]) -> bytes:
    return _png(drift_figure(scores, labels))


def cost_chart(costs: CostSummary, labels: dict[str, str]) -> bytes:
    return _png(cost_figure(costs, labels))
