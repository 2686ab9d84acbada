"""Small synthetic buckets: run records shaped like Finalize writes them, drift reports, feedback Parquet."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from driftloop.capture import capture_record
from driftloop.layout import capture_key

T0 = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
BUCKET = "data-bucket"


class MemoryStore:
    """An ObjectStore over a dict of key -> bytes."""

    def __init__(self, objects: dict[str, bytes] | None = None) -> None:
        self.objects = dict(objects or {})

    @property
    def location(self) -> str:
        return f"s3://{BUCKET} (memory)"

    def keys(self, prefix: str) -> list[str]:
        return sorted(key for key in self.objects if key.startswith(prefix))

    def read(self, key: str) -> bytes:
        return self.objects[key]

    def put_json(self, key: str, document: Any) -> None:
        self.objects[key] = json.dumps(document).encode()

    def put_record(self, record: dict[str, Any]) -> None:
        self.put_json(f"runs/{record['run_id']}/record.json", record)

    def put_feedback(self, endpoint: str, table: pa.Table, name: str = "part-0") -> None:
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        day = table.column("served_at")[0].as_py().date().isoformat()
        self.objects[f"feedback/{endpoint}/date={day}/{name}.parquet"] = buffer.getvalue()


def feedback_table(rows: list[tuple[str, datetime, bool | None]]) -> pa.Table:
    """Feedback log rows (variant, served_at, converted) with the contract's other columns."""
    return pa.table({
        "request_id": [f"r{i}" for i in range(len(rows))],
        "user_id": ["u"] * len(rows),
        "variant": pa.array([row[0] for row in rows], pa.string()),
        "items": pa.array([["i1", "i2"]] * len(rows), pa.list_(pa.string())),
        "served_at": pa.array([row[1] for row in rows], pa.timestamp("us", tz="UTC")),
        "purchased_item": pa.array([None] * len(rows), pa.string()),
        "converted": pa.array([row[2] for row in rows], pa.bool_()),
        "latency_ms": [1.0] * len(rows),
        "error": [False] * len(rows),
    })


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def first_deployment_record(run_id: str = "run-a", start: datetime = T0) -> dict[str, Any]:
    return {
        "run_id": run_id, "model": "recommender", "outcome": "promoted",
        "trigger": {"type": "upload", "key": "incoming/2025-01.parquet", "source": "aws.s3"},
        "started_at": _iso(start), "finished_at": _iso(start + timedelta(minutes=2)),
        "execution": f"arn:aws:states:us-east-1:1:execution:driftloop-retrain:{run_id}",
        "record_uri": f"s3://{BUCKET}/runs/{run_id}/record.json",
        "steps": [{"name": "Admit", "status": "succeeded", "attempts": 1, "duration_seconds": 0.5, "errors": []}],
        "evidence": {
            "admission": {"admitted": True, "reason": "upload trigger admitted"},
            "drift": {"decision": "retrain", "reasons": ["no champion yet: first deployment"], "uploads": 1},
            "merge": {"dataset_dir": f"datasets/recommender/v={run_id}", "previous_version": None,
                      "manifest_key": f"datasets/recommender/v={run_id}/_manifest.json", "rows_in": 1000,
                      "rows_out": 990, "duplicates_dropped": 10, "quarantined": [], "content_hash": "a" * 64,
                      "holdout_from": "2025-01-24T00:00:00+00:00"},
            "training": {"job_name": f"job-{run_id}", "status": "Completed",
                         "model_artifact": f"s3://{BUCKET}/models/job-{run_id}/output/model.tar.gz",
                         "cost": {"cost_usd": 0.12, "on_demand_cost_usd": 0.3, "spot_saving_usd": 0.18,
                                  "billable_seconds": 100, "training_seconds": 300, "instance_type": "ml.m5.xlarge",
                                  "instance_count": 1, "spot": True}},
            "evaluation": {"passed": True, "baseline": "popularity", "primary_metric": "ndcg_at_10",
                           "reason": "challenger beats the popularity", "holdout_users": 50,
                           "metrics": {"champion": {"ndcg_at_10": 0.05}, "challenger": {"ndcg_at_10": 0.09}},
                           "differences": {"ndcg_at_10": {"mean_difference": 0.04, "ci_low": 0.01, "ci_high": 0.07,
                                                          "confidence": 0.95, "fraction_not_positive": 0.002}},
                           "model_package_arn": "arn:aws:sagemaker:us-east-1:1:model-package/recommender/1"},
            "promotion": {"champion": {"run_id": run_id, "sagemaker_model": f"recommender-{run_id}",
                                       "promoted_at": _iso(start + timedelta(minutes=2)),
                                       "previous_champion": None}},
        },
    }


def ab_record(run_id: str, start: datetime, outcome: str, previous: str, drifted: dict[str, float],
              ab_action: str) -> dict[str, Any]:
    """A run that compared data, retrained, passed the gate and ran an A/B test ending in ``ab_action``."""
    features = {name: {"psi": value * 2, "js_distance": value, "drifted": value >= 0.1}
                for name, value in drifted.items()}
    record = first_deployment_record(run_id, start)
    evidence = record["evidence"]
    record["outcome"] = outcome
    evidence["drift"] = {"decision": "retrain" if any(f["drifted"] for f in features.values()) else "none",
                         "reasons": [f"{n} drifted" for n, f in features.items() if f["drifted"]],
                         "drifted_features": sorted(n for n, f in features.items() if f["drifted"]),
                         "features": features, "report_key": f"reports/{run_id}/drift.json",
                         "rows": {"reference": 1000, "current": 900}, "uploads": 1}
    evidence["merge"]["previous_version"] = f"datasets/recommender/v={previous}"
    evidence["evaluation"]["baseline"] = "champion"
    evidence["traffic"] = {"ab_started_at": _iso(start + timedelta(minutes=1)), "stage_index": 1}
    evidence["ab"] = {"action": ab_action, "reason": f"challenger {ab_action}",
                      "evidence": {"test": {"control_rate": 0.2, "treatment_rate": 0.25, "p_value": 0.003}}}
    if outcome == "promoted":
        evidence["promotion"]["champion"].update(previous_champion=previous,
                                                 promoted_at=_iso(start + timedelta(minutes=3)))
    else:
        del evidence["promotion"]
        evidence["rollback"] = {"restored": True, "actions": ["champion weight 100%, challenger 0%"]}
    return record


def drift_report(psi_threshold: float = 0.2, js_threshold: float = 0.1,
                 overrides: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    return {"decision": "retrain", "reasons": [], "features": {}, "quality": [], "rows": {},
            "policy": {"psi_threshold": psi_threshold, "js_threshold": js_threshold, "alpha": 0.05,
                       "min_samples": 100, "overrides": overrides or {}, "retrain_min_features": 1,
                       "warn_fraction": 0.5, "completeness_tolerance": 0.01, "domain_tolerance": 0.0,
                       "correction": "benjamini-hochberg"}}



def put_capture(store: MemoryStore, endpoint: str, variant: str, lines: list[str], name: str = "part-0") -> None:
    """A Data Capture file of ``lines`` in the hour folder of its first line's ``inferenceTime``."""
    first = json.loads(lines[0])["eventMetadata"]["inferenceTime"]
    hour = datetime.fromisoformat(first.replace("Z", "+00:00"))
    store.objects[capture_key(endpoint, variant, hour, name)] = ("\n".join(lines) + "\n").encode()


def served_line(event_id: str, served_at: datetime, user: str, items: list[str],
                inference_id: str | None = None) -> str:
    """One captured request of ``user`` answered with ``items``."""
    return capture_record(event_id, served_at, {"user_id": user, "k": len(items)},
                          {"user_id": user, "items": items, "source": "model"}, inference_id)


def put_purchases(store: MemoryStore, key: str, rows: list[tuple[str, str, datetime, str | None]]) -> None:
    """An upload or purchase-events object of purchases (user, item, time, inference id)."""
    buffer = io.BytesIO()
    pq.write_table(pa.table({
        "user_id": [row[0] for row in rows], "item_id": [row[1] for row in rows],
        "event_type": ["purchase"] * len(rows),
        "event_time": pa.array([row[2] for row in rows], pa.timestamp("us", tz="UTC")),
        "inference_id": pa.array([row[3] for row in rows], pa.string()),
    }), buffer)
    store.objects[key] = buffer.getvalue()
