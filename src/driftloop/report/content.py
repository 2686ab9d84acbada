"""Everything one report page shows, computed once from what was read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from driftloop.report.decisions import DecisionRow, decision_rows
from driftloop.report.extract import (
    ABWindow,
    ConversionSeries,
    CostSummary,
    DriftScores,
    Lineage,
    RunMarker,
    RunSummary,
    ab_windows,
    conversion_series,
    drift_scores,
    lineage,
    run_labels,
    run_markers,
    summarise_run,
    training_costs,
)
from driftloop.report.loading import UNIT_SECONDS, ReportInput


@dataclass(frozen=True)
class ReportContent:
    source: ReportInput
    generated_at: datetime
    labels: dict[str, str]
    runs: list[RunSummary]
    decisions: list[DecisionRow]
    conversion: ConversionSeries
    markers: list[RunMarker]
    windows: list[ABWindow]
    drift: DriftScores
    costs: CostSummary
    lineage: Lineage

    @property
    def model_names(self) -> list[str]:
        return sorted({str(record["model"]) for record in self.source.records if record.get("model")})

    def to_dict(self) -> dict[str, Any]:
        return {
            "location": self.source.location,
            "generated_at": self.generated_at.isoformat(),
            "runs": [run.to_dict() for run in self.runs],
            "decisions": [row.to_dict() for row in self.decisions],
            "conversion": self.conversion.to_dict(),
            "drift": self.drift.to_dict(),
            "costs": self.costs.to_dict(),
            "lineage": self.lineage.to_dict(),
        }


def build_content(source: ReportInput, generated_at: datetime) -> ReportContent:
    records = source.records
    return ReportContent(
        source=source,
        generated_at=generated_at,
        labels=run_labels(records),
        runs=[summarise_run(record) for record in records],
        decisions=decision_rows(records),
        conversion=conversion_series(source.feedback, UNIT_SECONDS[source.feedback_unit]),
        markers=run_markers(records),
        windows=ab_windows(records),
        drift=drift_scores(records, source.drift_reports),
        costs=training_costs(records),
        lineage=lineage(records),
    )
