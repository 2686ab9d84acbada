"""Why each trigger retrained or not: the retrain policy's evidence from the run records."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from driftloop.report.extract import describe_trigger


def as_interval(value: Any) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        return float(value[0]), float(value[1])
    return None


@dataclass(frozen=True)
class DecisionRow:
    """One trigger: what the policy saw, what it cost, what it said, and what the run did."""

    run_id: str
    trigger: str
    policy: str | None
    policy_retrain: bool | None
    decision: str | None  # the step's decision after forcing rules: retrain | warn | none
    why: str | None
    forced_by: list[str]
    expected_gain: float | None
    gain_ci: tuple[float, float] | None
    staleness_cost: float | None
    retraining_cost: float | None
    ndcg_at_10: float | None
    ndcg_ci: tuple[float, float] | None
    users: int | None
    accuracy_reason: str | None
    item_novelty: float | None
    user_novelty: float | None
    days_since_training: float | None
    interactions_since_training: int | None
    data_drift: str | None
    report_key: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decision_row(record: dict[str, Any]) -> DecisionRow | None:
    """None for a run whose drift step did not run (a duplicate, a deferred trigger, a failed admission)."""
    drift = (record.get("evidence") or {}).get("drift")
    if not isinstance(drift, dict):
        return None
    retrain = drift.get("retrain") if isinstance(drift.get("retrain"), dict) else {}
    signals = retrain.get("signals") or {}
    reasons = drift.get("reasons") or []
    return DecisionRow(
        run_id=record["run_id"],
        trigger=describe_trigger(record.get("trigger") or {}),
        policy=retrain.get("policy"),
        policy_retrain=retrain.get("retrain"),
        decision=drift.get("decision"),
        why=reasons[0] if reasons else None,
        forced_by=list(retrain.get("overridden_by") or []),
        expected_gain=retrain.get("expected_gain"),
        gain_ci=as_interval(retrain.get("gain_ci")),
        staleness_cost=retrain.get("staleness_cost"),
        retraining_cost=retrain.get("retraining_cost"),
        ndcg_at_10=signals.get("ndcg_at_10"),
        ndcg_ci=as_interval(signals.get("ndcg_ci")),
        users=signals.get("users"),
        accuracy_reason=signals.get("accuracy_reason"),
        item_novelty=signals.get("item_novelty"),
        user_novelty=signals.get("user_novelty"),
        days_since_training=signals.get("days_since_training"),
        interactions_since_training=signals.get("interactions_since_training"),
        data_drift=signals.get("data_drift", drift.get("data_drift")),
        report_key=retrain.get("report_key"),
    )


def decision_rows(records: list[dict[str, Any]]) -> list[DecisionRow]:
    return [row for row in map(decision_row, records) if row is not None]
