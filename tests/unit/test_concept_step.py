"""The drift step's concept check: the champion's conversion from the feedback log on moto S3."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from driftloop.adapters.ledger import Ledger
from driftloop.adapters.s3 import put_json
from driftloop.config import Settings
from driftloop.drift import build_baseline
from driftloop.local.template import load_app
from driftloop.pipeline import drift
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.services import Services
from driftloop.storage import s3_source

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2024, 6, 30, 9, 30, tzinfo=UTC)
DAILY_REQUESTS = 4000
BASE_RATE = 0.10


@pytest.fixture(scope="module")
def environment() -> dict[str, str]:
    return load_app(REPO / "template.yaml").functions["DriftFunction"].environment


def _services(environment: dict[str, str], **overrides: str) -> Services:
    settings = Settings.from_env({**environment, **overrides})
    s3, dynamodb = boto3.client("s3"), boto3.client("dynamodb")
    return Services(settings=settings, s3=s3, sagemaker=None, sns=None, states=None, events=None,
                    ledger=Ledger(dynamodb, settings.ledger_table), trainer=None, endpoint=None,
                    clock=NOW.timestamp)


@pytest.fixture
def services(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", environment["POWERTOOLS_METRICS_NAMESPACE"])
    with mock_aws():
        services = _services(environment)
        settings = services.settings
        services.s3.create_bucket(Bucket=settings.data_bucket)
        boto3.client("dynamodb").create_table(
            TableName=settings.ledger_table, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}])
        yield services


def _interactions(rows: int, seed: int) -> pa.Table:
    """Inputs from one stable distribution: the data-drift side of the step has nothing to say."""
    rng = np.random.default_rng(seed)
    return pa.table({
        "price": rng.lognormal(3.0, 0.6, rows),
        "session_minutes": rng.gamma(2.0, 6.0, rows),
        "device": rng.choice(["mobile", "desktop", "tablet"], rows, p=[0.6, 0.3, 0.1]),
    })


def _put_parquet(services: Services, key: str, table: pa.Table) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    services.s3.put_object(Bucket=services.settings.data_bucket, Key=key, Body=buffer.getvalue())


def _champion(services: Services, promoted_at: datetime) -> None:
    bucket = services.settings.data_bucket
    _put_parquet(services, "datasets/v1/part-0.parquet", _interactions(6000, seed=1))
    baseline = build_baseline(s3_source(services.s3, bucket, ["datasets/v1/part-0.parquet"]))
    put_json(services.s3, bucket, "baselines/v1.json", baseline.to_dict())
    services.ledger.put_champion(services.settings.model_name, {
        "baseline_key": "baselines/v1.json", "promoted_at": promoted_at.isoformat(), "sagemaker_model": "m-v1"})


def _feedback(services: Services, first_day: datetime, days: int, rate_of_day: Any, variant: str,
              seed: int = 0, requests: int = DAILY_REQUESTS) -> None:
    """One file per day: ``requests`` spread over the day, converting at ``rate_of_day(day index)``."""
    rng = np.random.default_rng(seed)
    endpoint = services.settings.endpoint_name
    for index in range(days):
        day = first_day + timedelta(days=index)
        offsets = np.sort(rng.integers(0, 86_400_000_000, requests)).astype("timedelta64[us]")
        served_at = np.datetime64(day.replace(tzinfo=None), "us") + offsets
        table = pa.table({
            "request_id": [f"{variant}-{index}-{row}" for row in range(requests)],
            "variant": pa.array([variant] * requests),
            "served_at": pa.array(served_at, pa.timestamp("us", tz="UTC")),
            "converted": pa.array(rng.random(requests) < rate_of_day(index)),
            "latency_ms": pa.array(rng.gamma(2.0, 10.0, requests)),
            "error": pa.array(np.zeros(requests, bool)),
        })
        _put_parquet(services, f"feedback/{endpoint}/date={day:%Y-%m-%d}/part-{variant}.parquet", table)


def _run(services: Services, run_id: str = "run-1") -> dict[str, Any]:
    invocation = StepInvocation.model_validate({
        "state": {"admission": {"run": {"run_id": run_id, "model": "recommender", "execution": "arn:x",
                                        "started_at": NOW.isoformat(),
                                        "trigger": {"type": "schedule", "detail": {}}}}},
        "context": {"Execution": {"Id": "arn:x", "Name": run_id, "StartTime": NOW.isoformat()},
                    "State": {"Name": "DetectDrift", "EnteredTime": NOW.isoformat()}},
    })
    services.ledger.acquire_lock(services.settings.model_name, run_id, services.clock(), 600)  # as Admit does
    return drift.run(invocation, services)


def _upload(services: Services) -> None:
    _put_parquet(services, f"{services.settings.incoming_prefix}batch-1.parquet", _interactions(3000, seed=2))


def _days_ago(days: int) -> datetime:
    return datetime(NOW.year, NOW.month, NOW.day, tzinfo=UTC) - timedelta(days=days)


def test_a_conversion_drop_asks_for_retraining_even_with_stable_inputs(services: Services) -> None:
    _champion(services, promoted_at=_days_ago(30))
    _feedback(services, _days_ago(30), 30, lambda day: BASE_RATE if day < 27 else 0.075, "champion")
    _upload(services)
    result = _run(services)
    assert result["drifted_features"] == []
    assert result["decision"] == "retrain"
    assert result["reasons"][0].startswith("conversion dropped: conversion 0.1")
    concept = result["concept"]
    assert concept["detected"] and concept["tested"] and concept["period_unit"] == "day"
    assert concept["relative_change"] == pytest.approx(-0.25, abs=0.05)
    assert [p["period"] for p in concept["periods"]] == [f"{_days_ago(d):%Y-%m-%d}" for d in range(10, 0, -1)]
    assert concept["until"] == _days_ago(0).isoformat()
    # only the 10 days of the window (and not today, still maturing) were opened
    assert concept["feedback_files"] == 10


def test_stable_conversion_and_stable_inputs_leave_the_champion_alone(services: Services) -> None:
    _champion(services, promoted_at=_days_ago(30))
    _feedback(services, _days_ago(30), 31, lambda day: BASE_RATE, "champion")
    _upload(services)
    result = _run(services)
    assert result["decision"] == "none"
    assert result["concept"]["tested"] and not result["concept"]["detected"]
    assert result["reasons"][-1].startswith("no significant conversion drop")
    assert sum(p["served"] for p in result["concept"]["periods"]) == 10 * DAILY_REQUESTS


def test_little_history_since_the_promotion_is_said_and_decides_nothing(services: Services) -> None:
    # the previous champion converted far worse: none of that may be blamed on the new one
    _feedback(services, _days_ago(30), 26, lambda day: 0.03, "champion", seed=1)
    _champion(services, promoted_at=_days_ago(4) + timedelta(hours=12))
    _feedback(services, _days_ago(4), 5, lambda day: BASE_RATE, "champion", seed=2)
    _upload(services)
    result = _run(services)
    concept = result["concept"]
    assert result["decision"] == "none" and not concept["tested"] and not concept["detected"]
    assert concept["since"] == (_days_ago(4) + timedelta(hours=12)).isoformat()
    assert len(concept["periods"]) == 4 and concept["periods"][0]["served"] < DAILY_REQUESTS
    assert concept["reasons"][0].startswith("too little conversion history to test: 4 periods")
    assert concept["reasons"][0] in result["reasons"]


def test_the_challenger_and_a_worse_previous_champion_do_not_count(services: Services) -> None:
    _feedback(services, _days_ago(40), 15, lambda day: 0.02, "champion", seed=1)
    _champion(services, promoted_at=_days_ago(25))
    _feedback(services, _days_ago(25), 26, lambda day: BASE_RATE, "champion", seed=2)
    _feedback(services, _days_ago(5), 6, lambda day: 0.01, "challenger", seed=3)
    _upload(services)
    concept = _run(services)["concept"]
    assert concept["tested"] and not concept["detected"]
    assert concept["baseline_rate"] == pytest.approx(BASE_RATE, abs=0.01)
    assert concept["recent_rate"] == pytest.approx(BASE_RATE, abs=0.015)


def test_a_drop_without_new_data_says_there_is_nothing_to_retrain_on(services: Services) -> None:
    _champion(services, promoted_at=_days_ago(30))
    _feedback(services, _days_ago(30), 30, lambda day: BASE_RATE if day < 27 else 0.06, "champion")
    result = _run(services)
    assert result["decision"] == "none"
    assert result["reasons"][0].startswith("conversion dropped")
    assert any("no new data to retrain on" in reason for reason in result["reasons"])


def test_weekly_periods_read_only_the_window(environment: dict[str, str], services: Services) -> None:
    weekly = _services(environment, CONVERSION_PERIOD="week")
    _champion(weekly, promoted_at=_days_ago(90))
    _feedback(weekly, _days_ago(90), 91, lambda day: BASE_RATE if day < 66 else 0.07, "champion", requests=500)
    _upload(weekly)
    result = _run(weekly)
    concept = result["concept"]
    assert concept["period_unit"] == "week" and len(concept["periods"]) == 10
    assert concept["feedback_files"] == 70 and concept["since"] == concept["periods"][0]["period"] + "T00:00:00+00:00"
    assert concept["detected"] and result["decision"] == "retrain"


def test_an_unknown_conversion_period_is_a_configuration_error(environment: dict[str, str]) -> None:
    from driftloop.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="CONVERSION_PERIOD"):
        Settings.from_env({**environment, "CONVERSION_PERIOD": "month"})
