"""Decide whether the champion's world has changed enough to retrain.

The step reads the run's inputs, compares them with the champion's baseline, checks the champion's
conversion and asks the retrain policy; ``drift.verdict`` combines the findings into the decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from driftloop.adapters.s3 import get_json, put_bytes, put_json
from driftloop.drift import Baseline, DriftPolicy, DriftReport, compare_to_baseline
from driftloop.drift.concept import ConversionMonitor, complete_periods_window, conversion_periods
from driftloop.drift.metrics import publish_feature_drift
from driftloop.drift.model_monitor import parse_violations
from driftloop.drift.verdict import DriftFindings, PolicyOpinion, trigger_reasons
from driftloop.errors import InvalidInputError
from driftloop.layout import drift_html_key, drift_report_key, s3_uri
from driftloop.pipeline.contracts import Drift, returns
from driftloop.pipeline.evidence import compact_drift, is_drift_violation
from driftloop.pipeline.feedback import publish_variant_conversion, read_feedback
from driftloop.pipeline.inputs import fix_inputs, upload_source
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.retrain import DecisionSetup, decide
from driftloop.pipeline.services import Services, hold_lock


def policy_from(services: Services) -> DriftPolicy:
    settings = services.settings
    return DriftPolicy(
        psi_threshold=settings.psi_threshold,
        js_threshold=settings.js_threshold,
        alpha=settings.significance_level,
        min_samples=settings.min_sample_size,
    )


def conversion_monitor(services: Services) -> ConversionMonitor:
    return ConversionMonitor(alpha=services.settings.significance_level)


def concept_drift(services: Services, champion: dict[str, Any], monitor: ConversionMonitor,
                  run_id: str | None = None) -> dict[str, Any]:
    """The champion variant's conversion in the last complete, matured periods since its promotion.

    A period counts once it is over and its last requests had the whole attribution window to convert,
    so a period still filling up is not read as a drop. Purchases in the uploads ``run_id`` fixed are
    read as those versions."""
    settings = services.settings
    unit = settings.conversion_period
    now = datetime.fromtimestamp(services.clock(), UTC)
    matured = now - timedelta(minutes=settings.attribution_window_minutes)
    window_start, window_end = complete_periods_window(matured, unit, monitor.needed_periods)
    promoted_at = datetime.fromisoformat(champion["promoted_at"])
    if promoted_at.tzinfo is None:
        promoted_at = promoted_at.replace(tzinfo=UTC)
    since = max(window_start, promoted_at)
    evidence: dict[str, Any] = {"variant": settings.champion_variant, "period_unit": unit,
                                "since": since.isoformat(), "until": window_end.isoformat(),
                                "champion_promoted_at": promoted_at.isoformat()}
    try:
        feedback = read_feedback(services, since, window_end, run_id) if since < window_end else None
        evidence["feedback"] = feedback.evidence if feedback else {"source": "none"}
        evidence["feedback_files"] = evidence["feedback"].get("feedback_log_files", 0)
        periods = (conversion_periods(feedback.table, settings.champion_variant, unit, since, window_end)
                   if feedback and feedback.table.num_rows else [])
    except InvalidInputError as error:
        return {"decision": "none", "detected": False, "tested": False,
                "reasons": [f"conversion not tested, the feedback is unreadable: {error}"]} | evidence
    if feedback and feedback.lacks_purchases:
        return {"decision": "none", "detected": False, "tested": False,
                "reasons": [f"conversion not tested: {feedback.table.num_rows} captured requests, but no purchase in "
                            "the uploads or purchase events of the window (missing purchases are no drop)"]} | evidence
    evidence["periods"] = [{"period": p.label, "served": p.served, "conversions": p.conversions} for p in periods]
    if periods:
        evidence["published"] = publish_variant_conversion(services, [
            {"variant": settings.champion_variant, "matured": periods[-1].served,
             "conversions": periods[-1].conversions}])
    return monitor.assess(periods).to_dict() | evidence


@returns(Drift)
def run(invocation: StepInvocation, services: Services) -> dict[str, Any]:
    settings = services.settings
    bucket = settings.data_bucket
    run = invocation.run
    hold_lock(services, run["run_id"])
    trigger = run["trigger"]
    setup = DecisionSetup.from_services(services)
    champion = services.ledger.champion(settings.model_name)
    inputs = fix_inputs(services, run["run_id"], champion)
    readable = [entry["key"] for entry in inputs["readable"]]
    result: dict[str, Any] = {
        "uploads": len(readable),
        "unreadable": [{"key": e["key"], "reason": e["reason"]} for e in inputs["unreadable"]],
    }
    if trigger["type"] == "upload" and trigger["key"] not in readable:
        problem = next((e["reason"] for e in inputs["unreadable"] if e["key"] == trigger["key"]), None)
        raise InvalidInputError(
            f"{s3_uri(bucket, trigger['key'])}: "
            + (problem or "no longer present, or already merged into the champion's training data")
        )
    drift_violations = 0
    if trigger["type"] == "monitor_report":
        monitor_report = get_json(services.s3, bucket, trigger["key"])
        violations = [violation.to_dict() for violation in parse_violations(monitor_report)]
        result["violations"] = violations
        drift_violations = sum(1 for violation in violations if is_drift_violation(violation))
    findings: dict[str, Any] = {"new_uploads": len(readable), "has_champion": champion is not None,
                                "forced": trigger_reasons(trigger["type"], trigger.get("detail", {}), drift_violations)}
    if champion is not None:
        concept = result["concept"] = concept_drift(services, champion, conversion_monitor(services), run["run_id"])
        findings |= {"concept_reason": next(iter(concept["reasons"]), None), "concept_detected": concept["detected"]}
    if champion is not None and readable:
        baseline = Baseline.from_dict(get_json(services.s3, bucket, champion["baseline_key"]))
        report = compare_to_baseline(baseline, upload_source(services, inputs["readable"]), policy_from(services))
        result |= data_drift_evidence(services, run["run_id"], report)
        _, result["retrain"] = decide(services, setup, run, champion, inputs["readable"], report.decision)
        findings |= {"data_drift": report.decision, "data_reasons": list(report.reasons),
                     "policy": PolicyOpinion(result["retrain"]["policy"], bool(result["retrain"]["retrain"]),
                                             result["retrain"]["reasons"][0])}
    verdict = DriftFindings(**findings).verdict()
    if verdict.overridden_by:
        result["retrain"]["overridden_by"] = verdict.overridden_by
    result |= {"decision": verdict.decision, "reasons": verdict.reasons}
    return compact_drift(services, run["run_id"], result)


def data_drift_evidence(services: Services, run_id: str, report: DriftReport) -> dict[str, Any]:
    """The data drift report, written whole (JSON and HTML) and summarised for ``$.drift``."""
    bucket = services.settings.data_bucket
    document = report.to_dict()
    put_json(services.s3, bucket, drift_report_key(run_id), document)
    put_bytes(services.s3, bucket, drift_html_key(run_id), report.to_html().encode(), "text/html")
    publish_feature_drift(report, namespace=None)
    return {
        "report_key": drift_report_key(run_id),
        "drifted_features": sorted(name for name, feature in document["features"].items() if feature["drifted"]),
        "rows": document.get("rows", {}),
        "features": {
            name: {key: feature["statistics"].get(key) for key in ("psi", "js_distance")}
            | {"drifted": feature["drifted"]}
            for name, feature in document["features"].items()
        },
        "data_drift": report.decision,
    }
