"""The drift step's retrain decision without AWS: parameters, history from run records, the uploads' split,
the cheap challenger and its guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pytest
from moto import mock_aws

from driftloop.config import RETRAIN_ENVIRONMENT, RetrainSettings
from driftloop.decision import ChallengerGain, make_policy, measure_signals, plan_challenger_fit
from driftloop.errors import ConfigurationError
from driftloop.model.data import ColumnMapping, at_or_after, before, normalise_interactions
from driftloop.model.recommender import Recommender, RecommenderConfig
from driftloop.pipeline import retrain
from driftloop.pipeline.retrain import (
    ChallengerBudget,
    cost_model,
    fit_challenger,
    hourly_price,
    measure_challenger,
    policy_history,
    split_uploads,
)

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


# ---------------------------------------------------------------- the cheap challenger


def _shop(users: int = 150) -> dict[str, pa.Table]:
    """Three groups of customers buying their group's items for 21 days; a new item per group appears on
    day 14 (after the champion's last training day, 13) and keeps selling in the upload (days 22-29)."""
    rng = np.random.default_rng(7)
    rows: list[tuple[str, str, str, int]] = []
    for user in range(users):
        group = user % 3
        for day in rng.choice(14, size=6, replace=False):
            rows.append((f"u{user}", f"g{group}_{rng.integers(10)}", "purchase", int(day)))
        if user % 2:  # half the group finds the new item before the upload, the other half in it
            rows.append((f"u{user}", f"new{group}", "purchase", 14 + user % 7))
        else:
            rows.append((f"u{user}", f"new{group}", "purchase", 22 + user % 8))
            rows.append((f"u{user}", f"g{group}_{rng.integers(10)}", "view", 22 + user % 8))
    table = normalise_interactions(_events(rows), ColumnMapping())
    upload_from = DAY + timedelta(days=21, hours=23)
    trained, upload = before(table, upload_from), at_or_after(table, upload_from)
    return {"trained": trained, "champion_data": before(trained, DAY + timedelta(days=14)), "upload": upload}


ROOMY = ChallengerBudget(memory_bytes=2**30, seconds=300.0, function_memory_gb=3008 / 1024)


def _challenger(shop: dict[str, pa.Table], budget: ChallengerBudget = ROOMY) -> tuple[Any, dict[str, Any]]:
    champion = Recommender.fit(shop["champion_data"])
    new = split_uploads({"incoming/upload.parquet": shop["upload"]}, champion.trained_until, ["purchase"])
    return fit_challenger(champion, shop["trained"], [shop["upload"]], new, champion.trained_until,
                          RecommenderConfig(), budget)


def test_the_challenger_learns_what_the_champion_missed_and_is_scored_on_the_upload() -> None:
    shop = _shop()
    gain, evidence = _challenger(shop)
    assert evidence["measured"] is True and "reason" not in evidence
    assert isinstance(gain, ChallengerGain), evidence.get("reason")
    # Cut at the upload's first event: the champion (trained to day 13) had missed days 14-21 before it.
    assert evidence["cut_at"] == "period start" and evidence["cut"].startswith("2026-03-23")
    assert gain.missed_days == pytest.approx(9.0, abs=0.01)
    assert gain.users == 75, "every customer who bought the new item in the upload is returning"
    assert gain.gain > 0.2 and gain.ci_low > 0, "only the challenger can recommend the new items"
    assert evidence["plan"]["user_share"] == 1.0 and evidence["fitted_rows"] == shop["trained"].num_rows
    assert evidence["gain"] == gain.to_dict()


def test_a_tight_budget_fits_a_seeded_user_sample_and_a_hopeless_one_skips_with_its_reason() -> None:
    shop = _shop(users=600)
    rows, users, items = shop["trained"].num_rows, 600, 33
    full = plan_challenger_fit(RecommenderConfig(), rows=rows, users=users, items=items,
                               memory_budget_bytes=2**30, seconds_budget=300)
    tight = ChallengerBudget(memory_bytes=int(full.estimated_bytes * 0.6), seconds=300.0, function_memory_gb=2.9)
    gain, evidence = _challenger(shop, tight)
    share = evidence["plan"]["user_share"]
    assert 0.3 < share < 0.6 and evidence["plan"]["estimated_bytes"] <= tight.memory_bytes
    assert isinstance(gain, ChallengerGain) and evidence["measured"] is True
    assert evidence["fitted_rows"] < rows * 0.7 and gain.users < 300, "fitted and scored on the sampled users"
    assert _challenger(shop, tight)[1]["gain"] == evidence["gain"], "the same seeded sample when run again"

    hopeless = ChallengerBudget(memory_bytes=100_000, seconds=300.0, function_memory_gb=2.9)
    gain, evidence = _challenger(shop, hopeless)
    assert gain is None and evidence["measured"] is False
    assert evidence["reason"].startswith("challenger not measured: ")
    assert "fewer than 100 users" in evidence["reason"] or "whatever share" in evidence["reason"]


def test_an_upload_without_purchases_is_not_measurable_and_nothing_crashes() -> None:
    shop = _shop()
    upload = shop["upload"]
    views = upload.set_column(upload.schema.get_field_index("event_type"), "event_type",
                              pa.array(["view"] * upload.num_rows))
    gain, evidence = _challenger({**shop, "upload": views})
    assert gain is None and evidence["measured"] is False
    assert evidence["reason"] == "challenger not measured: no returning customer bought something new after the cut"
    # The step's other signals say the same, and the rule decides on what is left.
    champion = Recommender.fit(shop["champion_data"])
    new = split_uploads({"incoming/views.parquet": views}, champion.trained_until, ["purchase"])
    signals = measure_signals(champion, new.scored, histories=new.histories, days_since_training=16.0,
                              interactions_since_training=new.interactions, data_drift="warn",
                              period_days=new.period_days, challenger_gain=gain)
    assert signals.accuracy.reason == "accuracy not measurable: the upload has no purchases"
    cost, _ = cost_model(RetrainSettings.from_env(GOOD), "ml.m5.xlarge")
    decision = make_policy("auto", cost).update(signals)
    assert decision.expected_gain is not None and decision.reasons[-1].startswith("accuracy not measurable")


def test_a_runtime_without_scipy_records_why_instead_of_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    shop = _shop()
    champion = Recommender.fit(shop["champion_data"])
    new = split_uploads({"u": shop["upload"]}, champion.trained_until, ["purchase"])
    real = retrain.importlib.util.find_spec
    monkeypatch.setattr(retrain.importlib.util, "find_spec", lambda name: None if name == "scipy" else real(name))
    gain, evidence = measure_challenger(None, {}, champion, {"u": shop["upload"]}, new, champion.trained_until, ROOMY)
    assert gain is None and evidence["reason"].startswith("challenger not measured: fitting needs scipy")
    assert evidence["cost_usd"] >= 0 and "GB-second" in evidence["cost_basis"]


def test_the_challenger_switch_is_checked_and_only_the_auto_policy_fits_one() -> None:
    with pytest.raises(ConfigurationError, match="RetrainChallenger must be one of auto, off, not 'sometimes'"):
        RetrainSettings.from_env({**GOOD, "RETRAIN_CHALLENGER": "sometimes"})
    assert RetrainSettings.from_env(GOOD).fits_challenger
    assert not RetrainSettings.from_env({**GOOD, "RETRAIN_CHALLENGER": "off"}).fits_challenger
    assert not RetrainSettings.from_env({**GOOD, "RETRAIN_POLICY": "drift"}).fits_challenger
    budget = ChallengerBudget.of_this_function({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048"})
    assert budget.memory_bytes == 2**30 and budget.cost(10.0) == pytest.approx(10 * 2 * 0.0000133334)


def test_a_champion_without_readable_training_data_is_a_reason_not_a_failure() -> None:
    shop = _shop()
    champion = Recommender.fit(shop["champion_data"])
    new = split_uploads({"u": shop["upload"]}, champion.trained_until, ["purchase"])
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bucket")
        services = SimpleNamespace(s3=s3, settings=SimpleNamespace(training_hyperparameters={}, data_bucket="bucket"))
        reasons = [measure_challenger(services, record, champion, {"u": shop["upload"]}, new,
                                      champion.trained_until, ROOMY)[1]["reason"]
                   for record in ({}, {"dataset_dir": "datasets/recommender/gone"})]
    assert reasons[0] == "challenger not measured: the champion's record names no training dataset"
    assert reasons[1].startswith("challenger not measured: the champion's training data is unreadable: ")
    assert "no manifest" in reasons[1]
