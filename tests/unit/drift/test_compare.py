"""Known shifts are flagged exactly; stable data stays quiet; reports carry the documented JSON."""

from __future__ import annotations

import json

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
