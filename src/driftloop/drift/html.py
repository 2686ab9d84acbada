"""A self-contained HTML page for a drift report: inline SVG charts, inline CSS, no external assets."""

from __future__ import annotations

import math
from html import escape
from typing import Any

_REFERENCE_COLOUR = "#4c78a8"
_CURRENT_COLOUR = "#f58518"
_DECISION_COLOURS = {"none": "#2e7d32", "warn": "#ef6c00", "retrain": "#c62828"}
_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
.decision{display:inline-block;color:#fff;padding:.3rem .8rem;border-radius:.3rem;font-weight:bold}
.feature{border-top:1px solid #ddd;margin-top:1.5rem;padding-top:.5rem}
.drifted{color:#c62828;font-weight:bold}.legend span{margin-right:1rem}
.chart{max-width:100%;overflow-x:auto}
"""


def _share_ticks(top: float) -> list[float]:
    """Round shares from 0 to at least ``top`` for the y axis: 4 to 6 steps of 1, 2 or 5 x 10^k."""
    raw = top / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(multiple * magnitude for multiple in (1, 2, 5, 10) if multiple * magnitude >= raw)
    return [step * index for index in range(math.ceil(top / step - 1e-9) + 1)]


def _bar_chart(distribution: dict[str, Any]) -> str:
    """Reference and current share of rows per bin or category, on a labelled y axis of shares."""
    labels = distribution["labels"]
    if not labels:
        return "<p>No values to draw.</p>"
    reference, current = distribution["reference"], distribution["current"]
    ticks = _share_ticks(max(max(reference), max(current), 1e-6))
    top = ticks[-1]
    left, slot, bar, height = 56, 30, 12, 220
    width = left + slot * len(labels) + 10
    digits = 0 if ticks[1] >= 0.01 else 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 100}" role="img" '
             f'font-family="system-ui,sans-serif">',
             f'<text x="12" y="{height / 2 + 10}" font-size="10" transform="rotate(-90 12 {height / 2 + 10})" '
             f'text-anchor="middle">share of rows</text>']
    for tick in ticks:
        y = 10 + height * (1 - tick / top)
        parts.append(f'<line x1="{left - 4}" y1="{y:.1f}" x2="{width}" y2="{y:.1f}" stroke="#e3e3e3"/>'
                     f'<text x="{left - 6}" y="{y + 3:.1f}" font-size="9" text-anchor="end">{tick:.{digits}%}</text>')
    for index, label in enumerate(labels):
        x = left + 2 + index * slot
        for offset, share, colour in ((0, reference[index], _REFERENCE_COLOUR), (bar, current[index], _CURRENT_COLOUR)):
            bar_height = height * share / top
            parts.append(f'<rect x="{x + offset}" y="{10 + height - bar_height:.1f}" width="{bar}" '
                         f'height="{bar_height:.1f}" fill="{colour}">'
                         f'<title>{escape(label)}: {share:.2%}</title></rect>')
        parts.append(f'<text x="{x + bar}" y="{height + 20}" font-size="9" '
                     f'transform="rotate(60 {x + bar} {height + 20})">{escape(label[:24])}</text>')
    parts.append(f'<line x1="{left - 4}" y1="{10 + height}" x2="{width}" y2="{10 + height}" stroke="#888"/>'
                 f'<line x1="{left - 4}" y1="10" x2="{left - 4}" y2="{10 + height}" stroke="#888"/></svg>')
    return "".join(parts)


def _statistics_table(statistics: dict[str, float]) -> str:
    rows = "".join(f"<tr><th>{escape(key)}</th><td>{value:.6g}</td></tr>" for key, value in statistics.items())
    return f"<table>{rows}</table>"


def render_report(report: dict[str, Any], title: str) -> str:
    decision = report["decision"]
    colour = _DECISION_COLOURS.get(decision, "#555")
    sections = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{escape(title)}</h1>",
        f"<p>Decision: <span class='decision' style='background:{colour}'>{escape(decision)}</span></p>",
        f"<p>Rows: reference {report['rows']['reference']:,}, current {report['rows']['current']:,}</p>",
        "<h2>Reasons</h2><ul>" + "".join(f"<li>{escape(reason)}</li>" for reason in report["reasons"]) + "</ul>",
        "<h2>Summary</h2><table><tr><th>feature</th><th>kind</th><th>status</th><th>PSI</th><th>JS</th>"
        "<th>L-inf</th><th>adjusted p</th></tr>",
    ]
    for name, feature in report["features"].items():
        statistics = feature["statistics"]
        adjusted = feature["adjusted_pvalue"]
        css = " class='drifted'" if feature["drifted"] else ""
        sections.append(
            f"<tr{css}><td><a href='#f-{escape(name)}'>{escape(name)}</a></td><td>{feature['kind']}</td>"
            f"<td>{escape(feature['status'])}</td><td>{statistics['psi']:.4f}</td>"
            f"<td>{statistics['js_distance']:.4f}</td><td>{statistics['linf']:.4f}</td>"
            f"<td>{'-' if adjusted is None else f'{adjusted:.3g}'}</td></tr>"
        )
    sections.append("</table>")
    if report["quality"]:
        sections.append("<h2>Data quality</h2><table><tr><th>feature</th><th>check</th><th>detail</th></tr>")
        sections.extend(
            f"<tr><td>{escape(v['feature'])}</td><td>{escape(v['check'])}</td><td>{escape(v['detail'])}</td></tr>"
            for v in report["quality"]
        )
        sections.append("</table>")
    sections.append(
        "<h2>Features</h2><p class='legend'>"
        f"<span style='color:{_REFERENCE_COLOUR}'>&#9632; reference</span>"
        f"<span style='color:{_CURRENT_COLOUR}'>&#9632; current</span></p>"
    )
    for name, feature in report["features"].items():
        sections.append(f"<div class='feature' id='f-{escape(name)}'><h3>{escape(name)} ({feature['kind']})</h3>")
        sections.append(f"<p>{escape(feature['reason'])}</p>")
        if feature.get("new_categories"):
            sections.append(f"<p>New categories: {escape(', '.join(feature['new_categories'][:50]))}</p>")
        if feature.get("missing_categories"):
            sections.append(f"<p>Vanished categories: {escape(', '.join(feature['missing_categories'][:50]))}</p>")
        sections.append(f"<div class='chart'>{_bar_chart(feature['distribution'])}</div>")
        sections.append(_statistics_table(feature["statistics"]) + "</div>")
    sections.append("</body></html>")
    return "\n".join(sections)
