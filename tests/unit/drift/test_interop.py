"""Model Monitor files, concept drift from feedback, Powertools metrics and the CLI."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pyarrow as pa
import pytest
from conftest import interactions

from driftloop.console import ExitCode
from driftloop.drift import build_baseline, cli, compare_to_baseline
from driftloop.drift.concept import (
    ConversionMonitor,
    ConversionPeriod,
    conversion_periods,
    detect_conversion_drop,
)
from driftloop.drift.metrics import publish_feature_drift
from driftloop.drift.model_monitor import (
    baseline_from_model_monitor,
    constraints_document,
    parse_violations,
    statistics_document,
    violations_document,
)
from driftloop.errors import InvalidInputError
from driftloop.storage import local_source

SHIFTED = frozenset({"price", "device"})

DATA_QUALITY_VIOLATIONS = {
    "violations": [
        {
            "feature_name": "rating",
            "constraint_check_type": "baseline_drift_check",
            "description": "Numerical distance: 0.2711598746081505 exceeds numerical threshold: 0.1",
        },
        {
            "feature_name": "genre",
            "constraint_check_type": "baseline_drift_check",
            "description": "Categorical distance: 0.16 exceeds categorical threshold: 0.1",
        },
        {
            "feature_name": "user_id",
            "constraint_check_type": "data_type_check",
            "description": "Data type match requirement is not met. Expected data type: Integral, "
            "Expected match: 100.0%. Observed: Only 97.2% of data is Integral.",
        },
        {"feature_name": "zip", "constraint_check_type": "completeness_check", "description": None},
        {
            "constraint_check_type": "LessThanThreshold",
            "metric_name": "auc",
            "description": "Metric auc with 0.7712 +/- 0.0052 was LessThanThreshold '0.82'",
        },
    ]
}


@pytest.fixture
def drift_report(write_parquet):
    reference = build_baseline(local_source(str(write_parquet("ref.parquet", interactions(20_000, 1)))))
    current = write_parquet("cur.parquet", interactions(20_000, 2, shift=SHIFTED))
    return reference, compare_to_baseline(reference, local_source(str(current)))


def test_parse_violations_reads_numbers_defensively():
    rating, genre, user, zip_code, auc = parse_violations(DATA_QUALITY_VIOLATIONS)
    assert (rating.feature_name, rating.distance, rating.threshold) == ("rating", 0.2711598746081505, 0.1)
    assert rating.is_drift and genre.distance == 0.16 and genre.threshold == 0.1
    assert user.expected == 1.0 and user.observed == pytest.approx(0.972)
    assert zip_code.description == "" and zip_code.distance is None
    assert auc.metric_name == "auc" and auc.feature_name is None
    assert (auc.observed, auc.threshold) == (0.7712, 0.82)
    with pytest.raises(InvalidInputError):
        parse_violations({"violation": []})


def test_violation_file_round_trip(drift_report):
    _, report = drift_report
    document = json.loads(json.dumps(violations_document(report)))
    parsed = parse_violations(document)
    drift = {v.feature_name: v for v in parsed if v.is_drift}
    assert set(drift) == SHIFTED == set(report.drifted_features)
    assert drift["price"].distance == pytest.approx(report.features["price"].statistics["psi"])
    assert drift["price"].threshold == 0.2
    assert [v.to_dict() for v in parsed] == document["violations"]


def test_statistics_and_constraints_round_trip_to_a_usable_baseline(drift_report, write_parquet):
    reference, report = drift_report
    statistics = json.loads(json.dumps(statistics_document(reference)))
    constraints = json.loads(json.dumps(constraints_document(reference)))
    by_name = {f["name"]: f for f in statistics["features"]}
    assert by_name["price"]["numerical_statistics"]["common"]["num_present"] == 20_000
    assert len(by_name["price"]["numerical_statistics"]["distribution"]["kll"]["buckets"]) == 10
    domains = {f["name"]: f.get("string_constraints", {}).get("domains") for f in constraints["features"]}
    assert domains["device"] == ["desktop", "mobile", "tablet"]
    restored = baseline_from_model_monitor(statistics, constraints)
    current = local_source(str(write_parquet("again.parquet", interactions(20_000, 2, shift=SHIFTED))))
    again = compare_to_baseline(restored, current)
    assert set(again.drifted_features) == SHIFTED
    for name in ("price", "device"):
        assert again.features[name].statistics["psi"] == pytest.approx(
            report.features[name].statistics["psi"], rel=1e-9
        )


def test_model_monitor_example_statistics_are_readable():
    statistics = {
        "version": 0.0,
        "dataset": {"item_count": 100},
        "features": [
            {
                "name": "rating",
                "inferred_type": "Fractional",
                "numerical_statistics": {
                    "common": {"num_present": 98, "num_missing": 2},
                    "mean": 3.5,
                    "sum": 343.0,
                    "std_dev": 1.1,
                    "min": 1.0,
                    "max": 5.0,
                    "distribution": {
                        "kll": {
                            "buckets": [
                                {"lower_bound": 1.0, "upper_bound": 3.0, "count": 40.0},
                                {"lower_bound": 3.0, "upper_bound": 5.0, "count": 58.0},
                            ],
                            "sketch": {"parameters": {"c": 0.64, "k": 2048.0}, "data": [[4.0, 3.0, 5.0], [2.0]]},
                        }
                    },
                },
            },
            {
                "name": "genre",
                "inferred_type": "String",
                "string_statistics": {
                    "common": {"num_present": 100, "num_missing": 0},
                    "distinct_count": 3.0,
                    "distribution": {
                        "categorical": {"buckets": [{"value": "Drama", "count": 60}, {"value": "Comedy", "count": 30}]}
                    },
                },
            },
        ],
    }
    baseline = baseline_from_model_monitor(statistics)
    assert baseline.features["rating"].count == 98
    assert baseline.features["genre"].other_count == 10.0


def test_concept_drift_flags_a_real_drop_only():
    stable = [ConversionPeriod(f"d{i}", 20_000, 1000 + (i % 3) * 10) for i in range(10)]
    assert not detect_conversion_drop(stable).detected
    dropped = stable[:7] + [ConversionPeriod(f"d{i}", 20_000, 820) for i in range(7, 10)]
    result = detect_conversion_drop(dropped)
    assert result.detected and result.decision == "retrain"
    assert result.relative_change == pytest.approx(-0.18, abs=0.01)
    assert result.change_period == "d7"
    tiny = stable[:7] + [ConversionPeriod(f"d{i}", 2_000_000, 99_000) for i in range(7, 10)]
    assert not detect_conversion_drop(tiny, ConversionMonitor(min_relative_drop=0.05)).detected
    with pytest.raises(InvalidInputError):
        detect_conversion_drop(stable[:5])


def test_conversion_periods_from_feedback_log(write_parquet):
    rng = np.random.default_rng(0)
    rows = 6000
    days = np.datetime64("2024-03-01", "us") + (np.arange(rows) % 3).astype("timedelta64[D]")
    table = pa.table(
        {
            "request_id": pa.array([f"r{i}" for i in range(rows)]),
            "variant": pa.array(np.where(np.arange(rows) % 2 == 0, "champion", "challenger")),
            "served_at": pa.array(days, pa.timestamp("us", tz="UTC")),
            "converted": pa.array(rng.random(rows) < 0.1),
        }
    )
    periods = conversion_periods(local_source(str(write_parquet("feedback.parquet", table))), variant="champion")
    assert [p.label for p in periods] == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert sum(p.served for p in periods) == 3000
    champion = table.filter(pa.compute.equal(table["variant"], "champion"))
    assert sum(p.conversions for p in periods) == pa.compute.sum(champion["converted"]).as_py()


def test_metrics_are_emitted_per_feature(drift_report, capsys):
    _, report = drift_report
    published = publish_feature_drift(report, namespace="team/drift", dimensions={"endpoint": "recs"})
    document = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    metric_names = {m["Name"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "team/drift"
    assert "feature_baseline_drift_price" in metric_names and document["endpoint"] == "recs"
    assert document["feature_baseline_drift_price"] == [pytest.approx(published["price"])]


def _arguments(**values):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    argv = ["drift"] + [item for key, value in values.items() for item in (f"--{key.replace('_', '-')}", str(value))]
    return parser.parse_args(argv)


def test_cli_writes_reports_and_reuses_a_saved_baseline(write_parquet, tmp_path, capsys):
    reference = write_parquet("ref.parquet", interactions(8000, 1))
    current = write_parquet("cur/part-0.parquet", interactions(8000, 2, shift=SHIFTED))
    saved, out, page = tmp_path / "baseline.json", tmp_path / "report.json", tmp_path / "report.html"
    args = _arguments(baseline=reference, current=current.parent, json=out, html=page, save_baseline=saved)
    assert cli.run(args) == 0
    first = json.loads(out.read_text())
    assert first["decision"] == "retrain" and "decision: retrain" in capsys.readouterr().out
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert cli.run(_arguments(baseline=saved, current=current, json=out, fail_on="retrain")) == 1
    assert json.loads(out.read_text())["features"] == first["features"]


def test_cli_reports_bad_input_with_the_bad_input_exit_code(tmp_path, capsys):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"nope")
    assert cli.run(_arguments(baseline=bad, current=bad)) == ExitCode.BAD_INPUT
    assert "bad.parquet" in capsys.readouterr().err
