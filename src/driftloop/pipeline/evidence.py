"""Keep the state machine's state small: a step's full evidence goes to S3, the state keeps its key and
capped summaries.

Step Functions fails a state whose input or output exceeds 256 KiB with ``States.DataLimitExceeded``, which
``States.ALL`` does not catch. The drift step's evidence grows with the data (one entry per feature, reason
and Model Monitor violation: about 470 KB at 1,500 features, 720 KB at 3,000 violations), so it is written
whole to ``reports/<run_id>/drift-evidence.json`` and the state holds the ``STATE_LIST_LIMIT`` most telling
entries of each list, with their full counts.
"""

from __future__ import annotations

from typing import Any

from driftloop.adapters.s3 import put_json
from driftloop.layout import drift_evidence_key
from driftloop.pipeline.contracts import STATE_LIST_LIMIT
from driftloop.pipeline.services import Services


def _feature_score(entry: dict[str, Any]) -> tuple[bool, float]:
    scores = [value for key, value in entry.items() if key in ("psi", "js_distance") and isinstance(value, int | float)]
    return bool(entry.get("drifted")), max(scores, default=0.0)


def is_drift_violation(violation: dict[str, Any]) -> bool:
    return violation.get("constraint_check_type") == "baseline_drift_check" or bool(violation.get("metric_name"))


def compact_drift(services: Services, run_id: str, result: dict[str, Any],
                  limit: int = STATE_LIST_LIMIT) -> dict[str, Any]:
    """``result`` (the drift step's ``$.drift``) with its full copy in S3 under ``evidence_key`` and every
    list cut to ``limit`` entries: the most drifted features (drifted first, then by PSI or JS distance),
    the first reasons (the deciding ones come first), drift violations before the others, the first
    unreadable uploads. Each cut list
    keeps its length as ``<name>_count``."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    key = drift_evidence_key(run_id)
    put_json(services.s3, services.settings.data_bucket, key, result)
    small = {**result, "evidence_key": key}
    features = result.get("features")
    if isinstance(features, dict):
        ranked = sorted(features, key=lambda name: _feature_score(features[name]), reverse=True)
        small["features"] = {name: features[name] for name in ranked[:limit]}
        small["features_count"] = len(features)
    drifted = result.get("drifted_features")
    if isinstance(drifted, list):
        scores = features if isinstance(features, dict) else {}
        ordered = sorted(drifted, key=lambda name: _feature_score(scores.get(name, {})), reverse=True)
        small["drifted_features"] = sorted(ordered[:limit])
        small["drifted_count"] = len(drifted)
    if isinstance(result.get("reasons"), list):
        small["reasons"] = [str(reason)[:500] for reason in result["reasons"][:limit]]
        small["reasons_count"] = len(result["reasons"])
    if isinstance(result.get("unreadable"), list):
        small["unreadable"] = result["unreadable"][:limit]
        small["unreadable_count"] = len(result["unreadable"])
    violations = result.get("violations")
    if isinstance(violations, list):
        ordered_violations = sorted(violations, key=lambda v: not is_drift_violation(v))
        small["violations"] = ordered_violations[:limit]
        small["violations_count"] = len(violations)
    return small
