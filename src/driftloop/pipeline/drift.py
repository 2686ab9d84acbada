"""Decide whether the champion's world has changed enough to retrain."""

from __future__ import annotations

from typing import Any

from driftloop.adapters.s3 import get_json, put_bytes, put_json
from driftloop.drift import Baseline, DriftPolicy, compare_to_baseline
from driftloop.drift.metrics import publish_feature_drift
from driftloop.drift.model_monitor import parse_violations
from driftloop.errors import InvalidInputError
from driftloop.pipeline.inputs import fix_inputs
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.services import Services
from driftloop.storage import s3_source


def policy_from(services: Services) -> DriftPolicy:
    settings = services.settings
    return DriftPolicy(
        psi_threshold=settings.psi_threshold,
        js_threshold=settings.js_threshold,
        alpha=settings.significance_level,
        min_samples=settings.min_sample_size,
    )


def run(invocation: StepInvocation, services: Services) -> dict[str, Any]:
    settings = services.settings
    bucket = settings.data_bucket
    run = invocation.run
    trigger = run["trigger"]
    champion = services.ledger.champion(settings.model_name)
    inputs = fix_inputs(services, run["run_id"], champion)
    readable = [entry["key"] for entry in inputs["readable"]]
    result: dict[str, Any] = {
        "uploads": len(readable),
        "unreadable": [{"key": e["key"], "reason": e["reason"]} for e in inputs["unreadable"]][:20],
        "reasons": [],
    }
    if trigger["type"] == "upload" and trigger["key"] not in readable:
        problem = next((e["reason"] for e in inputs["unreadable"] if e["key"] == trigger["key"]), None)
        raise InvalidInputError(
            f"s3://{bucket}/{trigger['key']}: "
            + (problem or "no longer present, or already merged into the champion's training data")
        )
    forced: list[str] = []
    if trigger["type"] == "monitor_report":
        report = get_json(services.s3, bucket, trigger["key"])
        violations = [violation.to_dict() for violation in parse_violations(report)]
        result["violations"] = violations
        drift_checks = [v for v in violations if v.get("constraint_check_type") == "baseline_drift_check"
                        or v.get("metric_name")]
        if drift_checks:
            forced.append(f"Model Monitor reported {len(drift_checks)} drift or model-quality violations")
    elif trigger["type"] == "alarm":
        forced.append(f"alarm {trigger['detail'].get('alarm_name')} is in ALARM: "
                      f"{trigger['detail'].get('state_reason', '')[:200]}")
    elif trigger["type"] == "manual" and trigger["detail"].get("force", True):
        forced.append(f"retraining requested: {trigger['detail'].get('reason', 'manual request')}")

    if champion is None:
        forced.append("no champion yet: first deployment")
        decision = "retrain" if readable else "none"
    elif readable:
        baseline = Baseline.from_dict(get_json(services.s3, bucket, champion["baseline_key"]))
        report = compare_to_baseline(baseline, s3_source(services.s3, bucket, readable), policy_from(services))
        document = report.to_dict()
        prefix = f"reports/{run['run_id']}"
        result["report_key"] = f"{prefix}/drift.json"
        put_json(services.s3, bucket, result["report_key"], document)
        put_bytes(services.s3, bucket, f"{prefix}/drift.html", report.to_html().encode(), "text/html")
        publish_feature_drift(report, namespace=None)
        decision = report.decision
        result["reasons"].extend(document.get("reasons", []))
        result["drifted_features"] = sorted(
            name for name, feature in document["features"].items() if feature["drifted"])
        result["rows"] = document.get("rows", {})
        result["features"] = {
            name: {key: feature["statistics"].get(key) for key in ("psi", "js_distance")}
            | {"drifted": feature["drifted"]}
            for name, feature in document["features"].items()
        }
    else:
        decision = "none"
        result["reasons"].append("no new uploads to compare")
    if forced and readable:
        decision = "retrain"
    elif forced and not readable:
        result["reasons"].append("a retrain was asked for, but there is no new data to retrain on")
    result["reasons"] = forced + result["reasons"]
    result["decision"] = decision
    return result
