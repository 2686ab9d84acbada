"""The one feedback reader on moto S3: Data Capture joined with purchases, the feedback log when it has
rows, pinned upload versions, bad inputs counted; and the conversion metric it publishes."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from driftloop.capture import capture_record
from driftloop.config import Settings
from driftloop.drift.concept import ConversionMonitor, conversion_periods
from driftloop.drift.metrics import CONVERSION_DIMENSIONS, CONVERSION_RATE_METRIC, SERVED_METRIC
from driftloop.layout import capture_key, purchase_events_key
from driftloop.local.template import load_app
from driftloop.pipeline.drift import concept_drift
from driftloop.pipeline.feedback import publish_variant_conversion, read_feedback
from driftloop.pipeline.services import Services

REPO = Path(__file__).resolve().parents[2]
AT = datetime(2026, 3, 14, 18, 5, tzinfo=UTC)
TIME = pa.timestamp("us", tz="UTC")


@pytest.fixture(scope="module")
def environment() -> dict[str, str]:
    return load_app(REPO / "template.yaml", {}).functions["AnalyseABFunction"].environment


@pytest.fixture
def services(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    for name, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing",
                        "POWERTOOLS_METRICS_NAMESPACE": environment["POWERTOOLS_METRICS_NAMESPACE"]}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        settings = Settings.from_env(environment)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=settings.data_bucket)
        s3.put_bucket_versioning(Bucket=settings.data_bucket, VersioningConfiguration={"Status": "Enabled"})
        yield Services(settings=settings, s3=s3, sagemaker=None, sns=None, states=None, events=None, ledger=None,
                       trainer=None, endpoint=None, clock=(AT + timedelta(hours=2)).timestamp)


def put(services: Services, key: str, body: bytes) -> dict:
    return services.s3.put_object(Bucket=services.settings.data_bucket, Key=key, Body=body)


def parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def capture(services: Services, variant: str, rows: list[tuple[str, list[str], str | None]], extra: str = "") -> None:
    lines = [capture_record(f"e-{variant}-{user}", AT, {"user_id": user, "k": 2}, {"user_id": user, "items": items},
                            inference_id=tag) for user, items, tag in rows]
    key = capture_key(services.settings.endpoint_name, variant, AT, f"part-{variant}-{len(extra)}")
    put(services, key, ("\n".join(lines) + "\n" + extra).encode())


def purchases(rows: list[tuple[str, str, str | None]], minutes: float = 5, event_type: str = "purchase") -> pa.Table:
    return pa.table({"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                     "event_type": [event_type] * len(rows),
                     "event_time": pa.array([AT + timedelta(minutes=minutes)] * len(rows), TIME),
                     "inference_id": pa.array([r[2] for r in rows], pa.string())})


def served_shop(services: Services) -> None:
    champion, challenger = services.settings.champion_variant, services.settings.challenger_variant
    capture(services, champion, [("u1", ["a", "b"], None), ("u2", ["a"], None), ("u3", ["c"], "r-3")],
            extra='{"captureData": {"trunc')
    capture(services, challenger, [("u4", ["a"], None), ("u5", ["b"], "r-5")])
    capture(services, "shadow", [("u6", ["a"], None)])


def test_captured_requests_join_purchases_from_uploads_and_purchase_events(services: Services) -> None:
    served_shop(services)
    incoming = services.settings.incoming_prefix
    put(services, f"{incoming}day-1.parquet", parquet(purchases([("u1", "b", None), ("u3", "zz", "r-3")])))
    put(services, f"{incoming}views.parquet", parquet(purchases([("u2", "a", None)], event_type="view")))
    put(services, f"{incoming}broken.parquet", b"PAR1 not really")
    put(services, purchase_events_key(AT, "part-1"), parquet(purchases([("u5", "q", "r-5"), ("u4", "b", None)])))
    feedback = read_feedback(services, AT - timedelta(minutes=5))
    table = feedback.table.sort_by("user_id")
    assert table["user_id"].to_pylist() == ["u1", "u2", "u3", "u4", "u5"]
    assert table["converted"].to_pylist() == [True, False, True, False, True]
    evidence = feedback.evidence
    assert (evidence["source"], evidence["converted"], evidence["attribution_window_minutes"]) == (
        "data_capture", 3, 60)
    assert evidence["capture"]["skipped"] == {"truncated": 1, "unknown_variant": 1}
    assert evidence["capture"]["served_by_variant"] == {"challenger": 2, "champion": 3}
    assert evidence["purchases"] | {"unreadable_objects": []} == {
        "uploads_read": 3, "purchase_event_files_read": 1, "purchases": 4, "tagged_with_inference_id": 2,
        "unreadable": 1, "unreadable_objects": []}
    assert evidence["purchases"]["unreadable_objects"][0]["object"].endswith("broken.parquet")


def test_requests_outside_the_window_and_older_uploads_are_left_out(services: Services) -> None:
    incoming = services.settings.incoming_prefix
    put(services, f"{incoming}old.parquet", parquet(purchases([("u1", "b", None)])))
    served_shop(services)
    later = read_feedback(services, AT + timedelta(minutes=1))
    assert later.table.num_rows == 0 and later.evidence["source"] == "data_capture"
    # The upload was written (moto: now) before the window start of a day from now: it cannot hold its purchases.
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert read_feedback(services, tomorrow).evidence["purchases"]["uploads_read"] == 0


def test_the_version_a_run_fixed_is_read(services: Services) -> None:
    served_shop(services)
    key = f"{services.settings.incoming_prefix}day-1.parquet"
    first = put(services, key, parquet(purchases([("u1", "b", None)])))
    put(services, key, parquet(purchases([("u9", "b", None)])))
    put(services, "runs/run-1/inputs.json", json.dumps(
        {"readable": [{"key": key, "version_id": first["VersionId"]}]}).encode())
    pinned = read_feedback(services, AT - timedelta(minutes=5), run_id="run-1").table.sort_by("user_id")
    latest = read_feedback(services, AT - timedelta(minutes=5)).table.sort_by("user_id")
    assert pinned["converted"].to_pylist()[0] is True and latest["converted"].to_pylist()[0] is False


def test_a_feedback_log_with_rows_in_the_window_wins(services: Services) -> None:
    served_shop(services)
    log = pa.table({"variant": ["champion"], "served_at": pa.array([AT], TIME), "converted": [True],
                    "latency_ms": [3.0], "error": [False]})
    put(services, f"feedback/{services.settings.endpoint_name}/date={AT:%Y-%m-%d}/part-0.parquet", parquet(log))
    feedback = read_feedback(services, AT - timedelta(minutes=5))
    assert feedback.evidence == {"source": "feedback_log", "feedback_log_files": 1}
    assert feedback.table.num_rows == 1
    assert read_feedback(services, AT + timedelta(minutes=1)).evidence["source"] == "data_capture"


def test_no_capture_at_all_says_so(services: Services) -> None:
    feedback = read_feedback(services, AT)
    assert feedback.table.num_rows == 0 and feedback.evidence["source"] == "none"


def test_the_concept_check_counts_periods_from_the_joined_rows(services: Services) -> None:
    served_shop(services)
    put(services, purchase_events_key(AT, "p"), parquet(purchases([("u1", "a", None)])))
    table = read_feedback(services, AT - timedelta(hours=1), AT + timedelta(hours=1)).table
    (period,) = conversion_periods(table, services.settings.champion_variant, "hour")
    assert (period.label, period.served, period.conversions) == ("2026-03-14T18", 3, 1)


def test_the_conversion_metric_has_exactly_the_alarm_dimensions(services: Services,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    published = publish_variant_conversion(services, [
        {"variant": "champion", "matured": 200, "conversions": 30},
        {"variant": "challenger", "matured": 0, "conversions": 0}, None])
    assert published == [{"variant": "champion", CONVERSION_RATE_METRIC: 0.15, SERVED_METRIC: 200}]
    (document,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    settings = services.settings
    assert directive["Namespace"] == "driftloop"
    assert directive["Dimensions"] == [list(CONVERSION_DIMENSIONS)] == [["model", "endpoint", "variant"]]
    assert {metric["Name"] for metric in directive["Metrics"]} == {"conversion_rate", "served"}
    assert (document["model"], document["endpoint"], document["variant"]) == (
        settings.model_name, settings.endpoint_name, "champion")
    assert document["conversion_rate"] == [0.15] and "service" not in document


def test_only_the_hour_folders_of_the_window_are_read_and_a_vanished_file_is_counted(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint, champion = services.settings.endpoint_name, services.settings.champion_variant
    record = capture_record("e", AT, {"user_id": "u1"}, {"items": ["a"]}) + "\n"
    for hours in (-3, 0, 3):
        put(services, capture_key(endpoint, champion, AT + timedelta(hours=hours), "p"), record.encode())
    put(services, f"datacapture/{endpoint}/{champion}/notes.txt", b"not a capture file")
    fetched: list[str] = []
    original = services.s3.get_object

    def get_object(**arguments: str) -> dict:
        fetched.append(arguments["Key"])
        if arguments["Key"].startswith(f"datacapture/{endpoint}/{champion}/2026/03/14/18/"):
            services.s3.delete_object(Bucket=arguments["Bucket"], Key=arguments["Key"])
        return original(**arguments)

    monkeypatch.setattr(services.s3, "get_object", get_object)
    feedback = read_feedback(services, AT - timedelta(minutes=30), AT + timedelta(hours=1))
    assert [key.split("/")[-2] for key in fetched if key.startswith("datacapture/")] == ["18"]
    assert feedback.table.num_rows == 0
    assert feedback.evidence["capture"]["skipped"] == {"unreadable_file": 1}


def test_captured_requests_without_any_purchase_leave_the_concept_check_untested(services: Services) -> None:
    served_shop(services)
    hourly = replace(services, settings=replace(services.settings, conversion_period="hour"))
    champion = {"promoted_at": (AT - timedelta(days=1)).isoformat()}
    assert read_feedback(hourly, AT - timedelta(hours=1), AT + timedelta(hours=1)).lacks_purchases
    result = concept_drift(hourly, champion, ConversionMonitor())
    assert result["tested"] is False and "no purchase" in result["reasons"][0]
    assert result["feedback"]["capture"]["served_by_variant"]["champion"] == 3

    put(services, purchase_events_key(AT, "p"), parquet(purchases([("u1", "a", None)])))
    result = concept_drift(hourly, champion, ConversionMonitor())
    assert [(p["served"], p["conversions"]) for p in result["periods"]] == [(3, 1)]
    assert result["published"] == [{"variant": "champion", "conversion_rate": 1 / 3, "served": 3}]
    assert "too little" in result["reasons"][0]


def test_uploads_without_usable_purchase_columns_are_counted_not_fatal(services: Services) -> None:
    served_shop(services)
    incoming = services.settings.incoming_prefix
    twice = pa.Table.from_arrays([pa.array(["u1"]), pa.array(["u1"]), pa.array(["a"]), pa.array(["purchase"]),
                                  pa.array([AT], TIME)], names=["user_id", "user_id", "item_id", "event_type",
                                                                "event_time"])
    put(services, f"{incoming}twice.parquet", parquet(twice))
    put(services, f"{incoming}naive.parquet", parquet(purchases([("u1", "b", None)]).set_column(
        3, "event_time", pa.array([AT.replace(tzinfo=None)]))))
    put(services, f"{incoming}no-type.parquet", parquet(purchases([("u1", "b", None)]).drop_columns(["event_type"])))
    evidence = read_feedback(services, AT - timedelta(minutes=5)).evidence["purchases"]
    assert (evidence["uploads_read"], evidence["unreadable"], evidence["purchases"]) == (3, 3, 0)
    reasons = sorted(entry["reason"].split(":")[0] for entry in evidence["unreadable_objects"])
    assert reasons == ["InvalidInputError", "InvalidInputError", "KeyError"]
