"""The sample events in ``events/`` and the small data they refer to, both generated deterministically.

``driftloop seed`` stages the objects (a drifted month, a Model Monitor violation report, a file that
is not Parquet) in the local S3 *without* delivering their S3 events; ``driftloop replay`` delivers
them. ``python -m driftloop.local.samples events/`` rewrites the event files (run it after changing
the simulator or the template's names).
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from driftloop.drift import DriftPolicy, build_baseline, compare_to_baseline
from driftloop.drift.model_monitor import violations_document
from driftloop.layout import DEFAULT_MONITOR_REPORT_PREFIX, incoming_key, monitor_report_key
from driftloop.local.template import ACCOUNT_ID, REGION, load_app
from driftloop.simulate import Scenario, Simulator, SimulatorConfig
from driftloop.storage import ParquetSource

SAMPLE_SEED = 7
DRIFTED_MONTH = 6
REPORT_KEY = monitor_report_key(DEFAULT_MONITOR_REPORT_PREFIX, "driftloop-recommender", "driftloop-dq-schedule",
                                datetime(2025, 7, 31, 23))
EVENT_TIME = "2025-08-01T00:05:12Z"


def _month_bytes(simulator: Simulator, month: int) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(simulator.month(month), buffer)
    return buffer.getvalue()


def _violation_report(simulator: Simulator, drifted: bytes) -> bytes:
    """A Model Monitor style report: our own drift check of the drifted month against month 0."""
    with tempfile.TemporaryDirectory() as folder:
        reference, current = f"{folder}/reference.parquet", f"{folder}/current.parquet"
        pq.write_table(simulator.month(0), reference)
        Path(current).write_bytes(drifted)
        local = pafs.LocalFileSystem()
        baseline = build_baseline(ParquetSource(local, (reference,)))
        report = compare_to_baseline(baseline, ParquetSource(local, (current,)), DriftPolicy())
    return json.dumps(violations_document(report), indent=2, sort_keys=True).encode()


def default_simulator() -> Simulator:
    """The shop ``driftloop seed`` simulates by default; the committed events describe its objects."""
    return Simulator(SimulatorConfig(seed=SAMPLE_SEED), Scenario.SEASONAL)


def sample_objects(incoming_prefix: str, simulator: Simulator) -> dict[str, bytes]:
    """Object key -> content, the same bytes every time for the same simulator."""
    drifted = _month_bytes(simulator, DRIFTED_MONTH)
    return {
        incoming_key(incoming_prefix, f"{simulator.month_label(DRIFTED_MONTH)}.parquet"): drifted,
        REPORT_KEY: _violation_report(simulator, drifted),
        incoming_key(incoming_prefix, "notes.txt"): b"not a Parquet file: a note someone uploaded by mistake\n",
    }


def _s3_event(bucket: str, key: str, body: bytes, sequencer: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.UUID(hashlib.md5(key.encode()).hexdigest())),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT_ID,
        "time": EVENT_TIME,
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": len(body), "etag": hashlib.md5(body).hexdigest(),
                       "version-id": f"sample-{hashlib.sha256(body).hexdigest()[:24]}", "sequencer": sequencer},
            "request-id": "SAMPLEREQUEST0001",
            "requester": ACCOUNT_ID,
            "source-ip-address": "203.0.113.10",
            "reason": "PutObject",
        },
    }


def _alarm_event(alarms: dict[str, dict[str, Any]], alarm_names: str) -> dict[str, Any]:
    """The "CloudWatch Alarm State Change" the template's conversion-drop alarm (the first of AlarmNames)
    sends when the champion's conversion stays below its threshold for its evaluation periods."""
    name = alarm_names.split(",")[0].strip()
    alarm = next(properties for properties in alarms.values() if properties.get("AlarmName") == name)
    periods, threshold = int(alarm["EvaluationPeriods"]), float(alarm["Threshold"])
    period, statistic = int(alarm["Period"]), alarm["Statistic"]
    datapoints = [round(threshold * 0.62, 4)] * periods
    hours = ", ".join(f"{value} (31/07/25 {23 - index:02d}:00:00)" for index, value in enumerate(datapoints))
    return {
        "version": "0",
        "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": ACCOUNT_ID,
        "time": EVENT_TIME,
        "region": REGION,
        "resources": [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{name}"],
        "detail": {
            "alarmName": name,
            "state": {
                "value": "ALARM",
                "reason": f"Threshold Crossed: {periods} out of the last {periods} datapoints [{hours}] was less "
                          f"than the threshold ({threshold:g}) (minimum {periods} datapoint"
                          f"{'s' if periods > 1 else ''} for OK -> ALARM transition).",
                "reasonData": json.dumps({"version": "1.0", "queryDate": "2025-08-01T00:05:12.985+0000",
                                          "statistic": statistic, "period": period,
                                          "recentDatapoints": datapoints, "threshold": threshold}),
                "timestamp": "2025-08-01T00:05:12.988+0000",
            },
            "previousState": {"value": "OK", "reason": "Threshold Crossed", "reasonData": "{}",
                              "timestamp": "2025-07-31T00:05:12.988+0000"},
            "configuration": {
                "description": alarm["AlarmDescription"],
                "metrics": [{"id": "m1", "metricStat": {
                    "metric": {"namespace": alarm["Namespace"], "name": alarm["MetricName"],
                               "dimensions": {d["Name"]: d["Value"] for d in alarm["Dimensions"]}},
                    "period": period, "stat": statistic}, "returnData": True}],
            },
        },
    }


def sample_events(project_dir: Path, simulator: Simulator) -> dict[str, dict[str, Any]]:
    """The events announcing ``simulator``'s sample objects; events/ holds those of the default shop."""
    app = load_app(project_dir / "template.yaml")
    environment = app.environment
    bucket, prefix = environment["DATA_BUCKET"], environment["INCOMING_PREFIX"]
    objects = sample_objects(prefix, simulator)
    drifted_key, notes_key = (key for key in objects if key.startswith(prefix) and key != REPORT_KEY)
    return {
        "s3_object_created_new_data.json": _s3_event(bucket, drifted_key, objects[drifted_key], "0066A8D0E77DE42B01"),
        "s3_object_created_violation_report.json": _s3_event(bucket, REPORT_KEY, objects[REPORT_KEY],
                                                             "0066A8D0E77DE42B02"),
        "s3_object_created_not_parquet.json": _s3_event(bucket, notes_key, objects[notes_key], "0066A8D0E77DE42B03"),
        "s3_object_created_outside_prefix.json": _s3_event(bucket, "uploads/2025-07.parquet",
                                                           objects[drifted_key], "0066A8D0E77DE42B04"),
        "cloudwatch_alarm_conversion_drop.json": _alarm_event(app.alarms, app.parameters["AlarmNames"]),
        "scheduled_periodic_check.json": {
            "version": "0",
            "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT_ID,
            "time": EVENT_TIME,
            "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/driftloop-RetrainStateMachinePeriodicCheck"],
            "detail": {},
        },
        "manual_retrain_request.json": {
            "version": "0",
            "id": "0b9e8c1a-7d7e-4f0e-9a51-3f3c2a1d9e77",
            "detail-type": "Retrain Requested",
            "source": "driftloop",
            "account": ACCOUNT_ID,
            "time": EVENT_TIME,
            "region": REGION,
            "resources": [],
            "detail": {"reason": "new product catalogue launched", "requested_by": "mlops-oncall"},
        },
    }


def stage_sample_objects(world: Any, simulator: Simulator) -> list[str]:
    """Put the sample objects (made with the workspace's own shop) into the local bucket and drop the S3
    events that announced them, so that replaying ``events/*.json`` is what delivers them."""
    environment = world.app.environment
    s3 = world.client("s3")
    keys = []
    for key, body in sample_objects(environment["INCOMING_PREFIX"], simulator).items():
        s3.put_object(Bucket=environment["DATA_BUCKET"], Key=key, Body=body)
        keys.append(key)
    world.drain_rule_queues()
    return keys


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    target = Path(args[0] if args else "events")
    project = target.resolve().parent
    target.mkdir(parents=True, exist_ok=True)
    for name, event in sample_events(project, default_simulator()).items():
        (target / name).write_text(json.dumps(event, indent=2) + "\n")
        print(f"wrote {target / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
