"""Series and tables the report draws, from small synthetic records and feedback."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
from report_fixtures import T0, ab_record, drift_report, first_deployment_record

from driftloop.errors import InvalidInputError
from driftloop.report.extract import (
    BUCKETS,
    VariantSeries,
    choose_bucket,
    conversion_series,
    count_unit,
    drift_scores,
    lineage,
    run_markers,
    summarise_run,
    training_costs,
)
from driftloop.report.reading import COUNT_SCHEMA


def counts(rows: list[tuple[datetime, str, str, int, int]]) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    return pa.table({name: list(values) for name, values in zip(COUNT_SCHEMA.names, columns, strict=True)},
                    schema=COUNT_SCHEMA)


@pytest.mark.parametrize(("span", "expected"), [
    (timedelta(seconds=90), "5 seconds"),     # a local demo: seconds
    (timedelta(minutes=30), "30 seconds"),
    (timedelta(hours=3), "5 minutes"),
    (timedelta(days=2), "hour"),             # days in AWS: hours
    (timedelta(days=60), "day"),
    (timedelta(days=150), "week"),
    (timedelta(days=365), "month"),          # the local demo's simulated year: twelve months
    (timedelta(days=3000), "month"),
])
def test_bucket_follows_the_time_span(span: timedelta, expected: str) -> None:
    assert choose_bucket(span).label == expected


def test_bucket_is_never_finer_than_the_counts() -> None:
    assert choose_bucket(timedelta(seconds=90), finest_seconds=60).label == "minute"
    assert choose_bucket(timedelta(hours=5), finest_seconds=3600).label == "hour"
    with pytest.raises(InvalidInputError):
        choose_bucket(timedelta(hours=1), max_buckets=0)


def test_count_unit_from_partition_days() -> None:
    assert count_unit([date(2025, 7, 1)]) == "second"
    assert count_unit([date(2025, 7, 1), date(2025, 8, 29)]) == "minute"
    assert count_unit([date(2025, 1, 1), date(2025, 7, 1)]) == "hour"
    assert count_unit([]) == "minute"


def test_conversion_series_sums_per_bucket_and_variant() -> None:
    table = counts([
        (T0, "ep", "champion", 10, 2), (T0 + timedelta(seconds=61), "ep", "champion", 10, 4),
        (T0 + timedelta(seconds=30), "ep", "challenger", 5, 5), (T0 + timedelta(minutes=9), "ep", "champion", 20, 1),
    ])
    series = conversion_series(table, unit_seconds=60, bucket=BUCKETS[4])  # 5 minutes
    assert [variant.name for variant in series.variants] == ["challenger", "champion"]
    champion = series.variants[1]
    assert champion.starts == [T0, T0 + timedelta(minutes=5)]
    assert champion.served == [20, 20] and champion.conversions == [6, 1]
    assert champion.rates == [0.3, 0.05]
    assert series.total_served == 45


def test_a_year_of_feedback_is_counted_per_calendar_month() -> None:
    january, march = datetime(2025, 1, 31, 23, tzinfo=UTC), datetime(2025, 3, 15, tzinfo=UTC)
    table = counts([(january, "ep", "champion", 10, 1), (march, "ep", "champion", 10, 3),
                    (datetime(2025, 12, 31, tzinfo=UTC), "ep", "champion", 10, 2)])
    (champion,) = conversion_series(table, unit_seconds=3600).variants
    assert champion.starts == [datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC),
                               datetime(2025, 12, 1, tzinfo=UTC)]
    assert champion.conversions == [1, 3, 2]


def test_conversion_series_names_variants_by_endpoint_when_there_are_several() -> None:
    table = counts([(T0, "a", "champion", 1, 0), (T0, "b", "champion", 1, 1)])
    assert [v.name for v in conversion_series(table).variants] == ["a/champion", "b/champion"]


def test_conversion_series_of_no_feedback_is_empty() -> None:
    assert conversion_series(COUNT_SCHEMA.empty_table()).variants == []


def test_wilson_interval_contains_the_rate_and_stays_in_unit_range() -> None:
    series = VariantSeries("v", [T0] * 3, [10, 1000, 4], [0, 500, 4])
    (low0, high0), (low1, high1), (low2, high2) = series.wilson_intervals()
    assert low0 == 0.0 and 0.2 < high0 < 0.35  # 0/10: upper bound ~0.28
    assert 0.46 < low1 < 0.5 < high1 < 0.54
    assert high2 == pytest.approx(1.0) and 0.4 < low2 < 0.6


def test_markers_for_promotions_and_rollbacks() -> None:
    records = [first_deployment_record("a", T0),
               ab_record("b", T0 + timedelta(minutes=10), "rolled_back", "a", {"price": 0.3}, "rollback"),
               {**first_deployment_record("c", T0 + timedelta(minutes=20)), "outcome": "no_drift",
                "evidence": {}}]
    markers = run_markers(records)
    assert [(m.run_id, m.kind) for m in markers] == [("a", "promoted"), ("b", "rolled_back")]
    assert markers[0].at == T0 + timedelta(minutes=2)  # the promotion time, not the run's end


def test_drift_scores_per_feature_per_run_with_each_runs_thresholds() -> None:
    records = [first_deployment_record("a", T0),
               ab_record("b", T0 + timedelta(minutes=10), "promoted", "a", {"price": 0.3, "region": 0.02}, "promote"),
               ab_record("c", T0 + timedelta(minutes=20), "promoted", "b", {"price": 0.05, "device": 0.2}, "promote")]
    reports = {"b": drift_report(), "c": drift_report(js_threshold=0.15, overrides={"price": {"psi_threshold": 0.5}})}
    scores = drift_scores(records, reports)
    assert scores.run_ids == ["b", "c"]  # the first deployment compared nothing
    assert scores.features == ["device", "price", "region"]
    assert scores.js["price"] == [0.3, 0.05] and scores.psi["price"] == [0.6, 0.1]
    assert scores.js["device"] == [None, 0.2]
    assert scores.drifted["price"] == [True, False]
    assert scores.js_threshold["price"] == [0.1, 0.15]
    assert scores.psi_threshold["price"] == [0.2, 0.5]
    assert scores.policy_thresholds("psi") == [0.2, 0.2]


def test_drift_thresholds_unknown_without_the_drift_report() -> None:
    record = ab_record("b", T0, "promoted", "a", {"price": 0.3}, "promote")
    scores = drift_scores([record], {})
    assert scores.js_threshold["price"] == [None]
    assert scores.policy_thresholds("js") == [None]


def test_run_summary_has_the_tables_numbers() -> None:
    run = summarise_run(ab_record("b", T0, "promoted", "a", {"price": 0.3, "region": 0.02}, "promote"))
    assert (run.trigger, run.outcome, run.drift_decision) == ("upload: incoming/2025-01.parquet", "promoted", "retrain")
    assert run.drifted_features == ["price"]
    assert (run.gate_passed, run.gate_metric, run.gate_baseline) == (True, "ndcg_at_10", "champion")
    assert (run.gate_champion, run.gate_challenger, run.gate_ci) == (0.05, 0.09, (0.01, 0.07))
    assert (run.ab_action, run.ab_champion_rate, run.ab_challenger_rate) == ("promote", 0.2, 0.25)
    assert run.cost_usd == 0.12 and run.error is None


def test_run_summary_of_a_failed_run() -> None:
    record = {"run_id": "x", "outcome": "failed", "trigger": {"type": "alarm", "detail": {"alarm_name": "lat"}},
              "started_at": "2025-07-01T00:00:00", "error": {"error": "TrainingFailedError", "cause": "no capacity"}}
    run = summarise_run(record)
    assert run.trigger == "alarm: lat"
    assert run.error == "TrainingFailedError: no capacity"
    assert run.started_at == datetime(2025, 7, 1, tzinfo=UTC)  # naive times are read as UTC
    assert run.gate_passed is None and run.ab_action is None and run.cost_usd is None


def test_training_costs_per_run_and_total() -> None:
    records = [first_deployment_record("a"), first_deployment_record("b"), {"run_id": "c", "evidence": {}}]
    costs = training_costs(records)
    assert [row.run_id for row in costs.rows] == ["a", "b"]
    assert costs.total_usd == pytest.approx(0.24)
    assert costs.total_on_demand_usd == pytest.approx(0.6)
    assert costs.total_saving_usd == pytest.approx(0.36)


def test_lineage_follows_datasets_and_champions() -> None:
    records = [first_deployment_record("a", T0),
               ab_record("b", T0 + timedelta(minutes=10), "promoted", "a", {"price": 0.3}, "promote"),
               ab_record("c", T0 + timedelta(minutes=20), "rolled_back", "b", {"price": 0.3}, "rollback")]
    graph = lineage(records)
    assert [(d.version.rsplit("=", 1)[1], d.previous) for d in graph.datasets] == [
        ("a", None), ("b", "datasets/recommender/v=a"), ("c", "datasets/recommender/v=b")]
    assert {m.run_id: m.status for m in graph.models} == {"a": "retired", "b": "champion", "c": "rolled_back"}
    assert [m.run_id for m in graph.champions] == ["a", "b"]
    assert graph.models[1].previous_champion == "a"
    assert graph.models[2].dataset_version == "datasets/recommender/v=c"
