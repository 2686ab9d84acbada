"""Known shifts are flagged exactly; stable data stays quiet; reports carry the documented JSON."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pyarrow as pa
import pytest
from conftest import interactions

from driftloop.drift import Baseline, DriftPolicy, build_baseline, compare_to_baseline
from driftloop.storage import local_source

SHIFTED = frozenset({"price", "session_minutes", "device", "region"})


@pytest.fixture
def reference_baseline(write_parquet) -> Baseline:
    return build_baseline(local_source(str(write_parquet("reference.parquet", interactions(60_000, seed=1)))))


def test_exactly_the_shifted_features_drift(reference_baseline, write_parquet):
    current = write_parquet("current.parquet", interactions(60_000, seed=2, shift=SHIFTED))
    report = compare_to_baseline(reference_baseline, local_source(str(current)))
    assert report.decision == "retrain"
    assert set(report.drifted_features) == SHIFTED
    assert all(any(reason.startswith(name) for reason in report.reasons) for name in SHIFTED)


def test_same_distribution_does_not_alarm(reference_baseline, write_parquet):
    current = write_parquet("current.parquet", interactions(60_000, seed=3))
    report = compare_to_baseline(reference_baseline, local_source(str(current)))
    assert report.decision == "none"
    assert report.drifted_features == []


def test_report_json_has_the_documented_fields(reference_baseline, write_parquet):
    current = write_parquet("current.parquet", interactions(20_000, seed=4, shift=frozenset({"price"})))
    data = json.loads(json.dumps(compare_to_baseline(reference_baseline, local_source(str(current))).to_dict()))
    assert data["decision"] in ("none", "warn", "retrain")
    assert data["rows"] == {"reference": 60_000, "current": 20_000}
    numeric, categorical = data["features"]["price"], data["features"]["device"]
    assert numeric["kind"] == "numeric" and categorical["kind"] == "categorical"
    for key in ("psi", "js_distance", "linf", "ks_statistic", "ks_pvalue", "wasserstein"):
        assert isinstance(numeric["statistics"][key], float)
    for key in ("psi", "js_distance", "linf", "chi2_statistic", "chi2_pvalue"):
        assert isinstance(categorical["statistics"][key], float)
    for feature in data["features"].values():
        assert {"drifted", "reference_count", "current_count"} <= feature.keys()
    assert data["policy"]["psi_threshold"] == 0.2
    assert "user_id" not in data["features"] and "event_time" not in data["features"]


def test_baseline_survives_a_json_round_trip(reference_baseline, write_parquet):
    restored = Baseline.from_dict(json.loads(json.dumps(reference_baseline.to_dict())))
    current = local_source(str(write_parquet("current.parquet", interactions(20_000, seed=5, shift=SHIFTED))))
    assert (
        compare_to_baseline(restored, current).to_dict() == compare_to_baseline(reference_baseline, current).to_dict()
    )


def test_overrides_can_ignore_or_loosen_a_feature(reference_baseline, write_parquet):
    current = local_source(str(write_parquet("current.parquet", interactions(60_000, seed=2, shift=SHIFTED))))
    policy = DriftPolicy(overrides={"price": {"ignore": True}, "device": {"psi_threshold": 5.0, "js_threshold": 0.9}})
    report = compare_to_baseline(reference_baseline, current, policy)
    assert set(report.drifted_features) == SHIFTED - {"price", "device"}
    assert report.features["price"].status == "ignored"


def test_policy_rejects_unknown_override_keys():
    with pytest.raises(ValueError, match="unknown keys"):
        DriftPolicy(overrides={"price": {"psi": 0.3}})


def test_html_is_self_contained(reference_baseline, write_parquet):
    current = local_source(str(write_parquet("current.parquet", interactions(20_000, seed=6, shift=SHIFTED))))
    page = compare_to_baseline(reference_baseline, current).to_html()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "retrain" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page


@pytest.mark.parametrize("moved_to", [3.0, 7.0])
def test_a_point_mass_at_the_reference_edge_moving_out_of_range_drifts(write_parquet, moved_to):
    """A constant feature moving off its value, and a zero-inflated one whose zeros turn negative, drift
    either way; before, values below the reference's minimum shared its point mass's bin (PSI 0)."""
    rng = np.random.default_rng(5)

    def zero_inflated(low: np.ndarray) -> np.ndarray:
        return np.where(rng.random(20_000) < 0.7, low, 5.0 + rng.exponential(1.0, 20_000))

    reference = write_parquet("reference.parquet", pa.table({
        "constant": np.full(20_000, 5.0), "zero_inflated": zero_inflated(np.full(20_000, 5.0)),
        "steady": rng.normal(size=20_000)}))
    baseline = build_baseline(local_source(str(reference)))
    negative = moved_to < 5.0
    current = write_parquet("current.parquet", pa.table({
        "constant": np.full(20_000, moved_to),
        "zero_inflated": zero_inflated(5.0 - rng.exponential(1.0, 20_000) if negative else np.full(20_000, 5.0)),
        "steady": rng.normal(size=20_000)}))
    report = compare_to_baseline(baseline, local_source(str(current)))
    assert "constant" in report.drifted_features
    assert ("zero_inflated" in report.drifted_features) == negative
    assert "steady" not in report.drifted_features
    labels = report.features["constant"].distribution.labels
    assert labels[0].startswith("< ") and labels[-1].startswith("> ")


def test_values_near_the_float_limit_drift_without_warnings(write_parquet):
    rng = np.random.default_rng(6)
    reference = write_parquet("reference.parquet", pa.table({"x": np.full(20_000, 1e308)}))
    current = write_parquet("current.parquet", pa.table({"x": rng.normal(size=20_000)}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = compare_to_baseline(build_baseline(local_source(str(reference))), local_source(str(current)))
        again = compare_to_baseline(build_baseline(local_source(str(current))), local_source(str(reference)))
    assert report.drifted_features == again.drifted_features == ["x"]
