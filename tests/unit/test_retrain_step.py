"""The drift step's retrain decision without AWS: parameters, history from run records, the uploads' split."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from driftloop.config import RETRAIN_ENVIRONMENT, RetrainSettings
from driftloop.errors import ConfigurationError
from driftloop.pipeline.retrain import cost_model, hourly_price, policy_history, split_uploads

GOOD = {"RETRAIN_POLICY": "auto", "RETRAIN_EVERY_DAYS": "7", "VALUE_PER_NDCG_POINT": "0.5",
        "TRAINING_HOURLY_PRICE": "", "TRAINING_STARTUP_SECONDS": "180", "AB_EXPOSURE_COST": "19.32",
        "RETRAIN_CHALLENGER": "auto"}
DAY = datetime(2026, 3, 1, tzinfo=UTC)


def test_good_parameters_parse_and_an_empty_price_means_the_list_price() -> None:
    settings = RetrainSettings.from_env(GOOD)
    assert (settings.policy, settings.every_days, settings.value_per_ndcg_point) == ("auto", 7.0, 0.5)
    assert settings.training_hourly_price is None
    assert hourly_price(settings, "ml.m5.xlarge") == (0.23, "us-east-1 list price 2025-06 of ml.m5.xlarge")
    assert hourly_price(RetrainSettings.from_env({**GOOD, "TRAINING_HOURLY_PRICE": "0.5"}), "ml.m5.xlarge")[0] == 0.5
    assert set(GOOD) == set(RETRAIN_ENVIRONMENT)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("VALUE_PER_NDCG_POINT", "-1", "ValuePerNdcgPoint=-1.0 makes no sense: it must be > 0"),
        ("VALUE_PER_NDCG_POINT", "0", "ValuePerNdcgPoint=0.0 makes no sense"),
        ("VALUE_PER_NDCG_POINT", "nan", "ValuePerNdcgPoint=nan makes no sense"),
        ("VALUE_PER_NDCG_POINT", "ten", "ValuePerNdcgPoint='ten' is not a number"),
        ("TRAINING_HOURLY_PRICE", "0", "TrainingHourlyPrice=0.0 makes no sense: it must be > 0"),
        ("TRAINING_STARTUP_SECONDS", "-5", "TrainingStartupSeconds=-5.0 makes no sense"),
        ("AB_EXPOSURE_COST", "-0.01", "AbExposureCost=-0.01 makes no sense"),
        ("RETRAIN_EVERY_DAYS", "0", "RetrainEveryDays=0.0 makes no sense"),
        ("RETRAIN_POLICY", "weekly", "RetrainPolicy must be one of auto, drift, schedule, not 'weekly'"),
    ],
)
def test_nonsense_parameters_are_rejected_by_name(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RetrainSettings.from_env({**GOOD, variable: value})


def test_a_missing_parameter_and_an_unpriced_instance_are_named() -> None:
    environment = {name: value for name, value in GOOD.items() if name != "AB_EXPOSURE_COST"}
    with pytest.raises(ConfigurationError, match="AB_EXPOSURE_COST"):
        RetrainSettings.from_env(environment)
    with pytest.raises(ConfigurationError, match="set TrainingHourlyPrice"):
        cost_model(RetrainSettings.from_env(GOOD), "ml.x99.huge")


def _record(run_id: str, started: int, *, state: dict[str, Any] | None = None, job_seconds: float | None = None,
            gain: float | None = None, baseline: str = "champion") -> dict[str, Any]:
    evidence: dict[str, Any] = {"drift": {"decision": "none"}}
    if state is not None:
        evidence["drift"]["retrain"] = {"policy": "auto", "policy_state": state,
                                        "scored_until": (DAY + timedelta(days=started)).isoformat(),
                                        "signals": {"days_since_training": 30.0 + started}}
    if job_seconds is not None:
        evidence["training"] = {"status": "Completed", "training_seconds": job_seconds + 10,
                                "billable_seconds": job_seconds}
    if gain is not None:
        evidence["evaluation"] = {"baseline": baseline, "differences": {"ndcg_at_10": {
            "mean_difference": gain, "ci_low": gain - 0.0196, "ci_high": gain + 0.0196}}}
    return {"run_id": run_id, "started_at": (DAY + timedelta(hours=started)).isoformat(), "evidence": evidence}


def test_history_starts_from_the_latest_earlier_state_and_says_whether_that_run_retrained() -> None:
    records = [
        _record("first", 0, job_seconds=300.0, gain=0.2, baseline="popularity"),
        _record("second", 1, state={"n": 1}),
        _record("third", 2, state={"n": 2}, job_seconds=200.0, gain=0.012),
        _record("fourth", 3),  # duplicate or deferred: no decision
        _record("this", 4, state={"n": 99}),  # the retried step's own earlier attempt
        _record("later", 5, state={"n": 100}),  # a step run again after later runs finished
    ]
    history = policy_history(records, "this", records[4]["started_at"], holdout_days=7)
    assert history.previous_run_id == "third" and history.state == {"n": 2}
    assert history.scored_until == DAY + timedelta(days=2)
    assert history.retrained == pytest.approx({"job_seconds": 200.0, "realised_gain": 0.012, "age_days": 25.0,
                                               "gain_standard_error": 0.01}, rel=1e-4)  # 32 days old, less the hold-out
    assert history.job_seconds == (200.0, 300.0)


def test_a_failed_runs_decision_was_never_carried_out_so_its_data_is_weighed_again() -> None:
    failed = {**_record("failed", 3, state={"n": 3}, job_seconds=250.0), "outcome": "failed"}
    history = policy_history([_record("second", 1, state={"n": 1}), failed], "next")
    assert history.previous_run_id == "second" and history.state == {"n": 1}
    assert history.scored_until == DAY + timedelta(days=1)
    assert history.job_seconds == (250.0,), "its training job still measured what a job costs"


def test_history_is_empty_before_the_first_decision_and_ignores_gains_against_popularity() -> None:
    history = policy_history([_record("first", 0, job_seconds=300.0, gain=0.2, baseline="popularity")], "next")
    assert (history.previous_run_id, history.state, history.retrained) == (None, None, None)
    assert history.job_seconds == (300.0,)
    only = policy_history([_record("first", 0, state={}, job_seconds=300.0, gain=0.2, baseline="popularity")], "x")
    assert only.retrained == {"job_seconds": 300.0, "realised_gain": None, "age_days": 30.0,
                              "gain_standard_error": None}


def _events(rows: list[tuple[str, str, str, int]]) -> pa.Table:
    return pa.table({
        "user_id": [row[0] for row in rows], "item_id": [row[1] for row in rows],
        "event_type": [row[2] for row in rows],
        "event_time": pa.array([DAY + timedelta(days=row[3]) for row in rows], pa.timestamp("us", tz="UTC")),
    })


def test_events_after_the_last_weighed_one_are_the_period_and_earlier_purchases_the_histories() -> None:
    march = _events([("u1", "a", "purchase", 1), ("u1", "b", "view", 2), ("u2", "c", "purchase", 3),
                     ("u1", "d", "purchase", 4)])
    april = _events([("u1", "e", "purchase", 31), ("u3", "f", "purchase", 32)])
    uploads = {"incoming/03.parquet": march, "incoming/04.parquet": april}
    new = split_uploads(uploads, DAY + timedelta(days=10), ["purchase"], DAY + timedelta(days=10))
    assert new.scored_keys == ["incoming/04.parquet"] and new.scored.num_rows == 2
    assert new.histories == {"u1": ["a", "d"], "u2": ["c"]}  # purchases only, oldest first
    assert new.interactions == 6 and new.end == DAY + timedelta(days=32)
    assert new.period_days == 22.0  # from where the last decision stopped, gaps included
    assert split_uploads(uploads, DAY + timedelta(days=10), ["purchase"]).period_days == 1.0  # from the first new


def test_right_after_training_everything_is_new_and_a_replayed_old_upload_brings_nothing() -> None:
    march = _events([("u1", "a", "purchase", 1), ("u2", "c", "purchase", 3)])
    first = split_uploads({"incoming/03.parquet": march}, DAY, ["purchase"])
    assert first.scored.num_rows == 2 and first.histories == {} and first.period_days == 2.0  # day 1 to day 3
    weighed = split_uploads({"incoming/03.parquet": march}, DAY + timedelta(days=3), ["purchase"],
                            DAY + timedelta(days=3))
    assert weighed.end is None and weighed.scored.num_rows == 0 and weighed.period_days is None
    assert weighed.interactions == 2
