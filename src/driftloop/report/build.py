"""``build_report``: read a bucket's run records, drift reports and feedback; write report.html and PNGs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from driftloop.report.charts import conversion_chart, cost_chart, drift_chart
from driftloop.report.html import Charts, render_page
from driftloop.report.reading import ObjectStore, ReportContent, build_content, load_report_input

REPORT_FILE = "report.html"
DATA_FILE = "report.json"
CHART_FILES = {"conversion": "conversion.png", "drift": "drift.png", "costs": "training-costs.png"}


def draw_charts(content: ReportContent) -> Charts:
    return Charts(
        conversion=conversion_chart(content.conversion, content.markers, content.windows, content.labels)
        if content.conversion.variants else None,
        drift=drift_chart(content.drift, content.labels) if content.drift.run_ids else None,
        costs=cost_chart(content.costs, content.labels) if content.costs.rows else None,
    )


def build_report(source: ObjectStore, out_dir: Path, generated_at: datetime | None = None) -> Path:
    """Write ``report.html`` (self-contained), one PNG per chart that has data, and ``report.json`` (the
    numbers behind them) into ``out_dir``; return the HTML file's path."""
    content = build_content(load_report_input(source), generated_at or datetime.now(UTC))
    charts = draw_charts(content)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, file_name in CHART_FILES.items():
        png = getattr(charts, name)
        path = out_dir / file_name
        if png is not None:
            path.write_bytes(png)
        elif path.exists():
            path.unlink()
    (out_dir / DATA_FILE).write_text(json.dumps(content.to_dict(), indent=1, default=str))
    report = out_dir / REPORT_FILE
    report.write_text(render_page(content, charts), encoding="utf-8")
    return report
