"""A self-contained HTML page for a drift report: inline SVG charts, inline CSS, no external assets."""

from __future__ import annotations

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
"""


def _bar_chart(distribution: dict[str, Any]) -> str:
    labels = distribution["labels"]
    if not labels:
        return "<p>No values to draw.</p>"
    reference, current = distribution["reference"], distribution["current"]
    top = max(max(reference), max(current), 1e-12)
    width, height, bar = 30 * len(labels) + 60, 220, 12
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 90}" role="img">']
    for index, label in enumerate(labels):
        x = 40 + index * 30
        for offset, share, colour in (
            (0, reference[index], _REFERENCE_COLOUR),
            (bar, current[index], _CURRENT_COLOUR),
        ):
            bar_height = height * share / top
            parts.append(
                f'<rect x="{x + offset}" y="{height - bar_height:.1f}" width="{bar}" '
                f'height="{bar_height:.1f}" '
                f'fill="{colour}"><title>{escape(label)}: {share:.2%}</title></rect>'
            )
        parts.append(
            f'<text x="{x + bar}" y="{height + 8}" font-size="9" '
            f'transform="rotate(60 {x + bar} {height + 8})">'
            f"{escape(label[:24])}</text>"
        )
    parts.append(f'<line x1="38" y1="{height}" x2="{width}" y2="{height}" stroke="#888"/>')
    parts.append(f'<text x="0" y="10" font-size="10">{top:.1%}</text></svg>')
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
        sections.append(_bar_chart(feature["distribution"]))
        sections.append(_statistics_table(feature["statistics"]) + "</div>")
    sections.append("</body></html>")
    return "\n".join(sections)
