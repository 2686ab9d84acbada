from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from backtest_fixtures import monthly_events

from driftloop.backtest import BacktestConfig, PeriodSpec, history_from_table, run_backtest
from driftloop.drift import DriftPolicy
from driftloop.errors import InvalidInputError
from driftloop.model.data import ColumnMapping
from driftloop.model.recommender import Recommender

SMALL_SAMPLE_POLICY = DriftPolicy(min_samples=50)


def _history(devices, seed=0):
    return history_from_table("test", monthly_events(devices, seed), ColumnMapping())


def _retrained(result, name):
    return [score.retrained for score in result.strategies[name].per_period]


@pytest.fixture(scope="module")
def transient_shift():
    """Months 0..4 on mobile except month 3 on desktop: D's only drift is in month 3."""
    config = BacktestConfig(every_k=2, drift_policy=SMALL_SAMPLE_POLICY)
    return run_backtest(_history(["mobile", "mobile", "mobile", "desktop", "mobile"]), config)


def test_schedules_of_periodic_strategies(transient_shift):
    assert transient_shift.periods == ("2025-01", "2025-02", "2025-03", "2025-04", "2025-05")
    assert _retrained(transient_shift, "never") == [False, False, False, False]
    assert _retrained(transient_shift, "every") == [False, True, True, True]
    for name in ("A", "B", "C", "schedule"):
        assert _retrained(transient_shift, name) == [False, False, True, False], name
    expected_retrains = {"never": 0, "every": 3, "A": 1, "B": 1, "C": 1, "D": 1, "schedule": 1}
    retrains = {name: result.retrains for name, result in transient_shift.strategies.items()}
    assert {name: retrains[name] for name in expected_retrains} == expected_retrains
    assert list(transient_shift.strategies) == ["never", "every", "A", "B", "C", "D", "auto", "schedule", "oracle"]


def test_d_retrains_exactly_after_the_drifted_period(transient_shift):
    drift = transient_shift.strategies["D"]
    assert [check["decision"] for check in drift.drift_checks] == ["none", "none", "retrain"]
    assert drift.drift_checks[-1]["period"] == "2025-04"
    assert drift.drift_checks[-1]["drifted_features"] == ["device"]
    assert _retrained(transient_shift, "D") == [False, False, False, True]
    # Retrained on the same rows as "every" before the last period: the cached model, the same score.
    assert drift.per_period[-1] == transient_shift.strategies["every"].per_period[-1]
    assert drift.per_period[1] == transient_shift.strategies["never"].per_period[1]


def test_costs_follow_retrains(transient_shift):
    strategies = transient_shift.strategies
    assert strategies["never"].training_cost == 0.0 and strategies["never"].training_seconds == 0.0
    for name in ("every", "A", "B", "C", "D"):
        assert strategies[name].training_cost > 0, name
    # Each retrain pays at least one billed second plus start-up and the A/B test's exposure.
    cost = transient_shift.config.cost_model
    assert strategies["every"].training_cost >= 3 * (cost.job_cost(1) + cost.ab_exposure_cost) - 1e-9


def test_a_persistent_shift_is_learned_once_the_baseline_moves():
    result = run_backtest(
        _history(["mobile", "mobile", "desktop", "desktop", "desktop", "desktop"]),
        BacktestConfig(strategies=("D",), drift_policy=SMALL_SAMPLE_POLICY),
    )
    decisions = [check["decision"] for check in result.strategies["D"].drift_checks]
    assert decisions[:2] == ["none", "retrain"]
    assert result.strategies["D"].retrains == decisions.count("retrain")
    assert _retrained(result, "D")[2] is True


def test_scores_are_deterministic(transient_shift):
    again = run_backtest(
        _history(["mobile", "mobile", "mobile", "desktop", "mobile"]),
        BacktestConfig(every_k=2, drift_policy=SMALL_SAMPLE_POLICY),
    )
    for name, result in transient_shift.strategies.items():
        assert again.strategies[name].per_period == result.per_period
    assert again.popularity.per_period == transient_shift.popularity.per_period


def test_the_same_users_are_scored_for_every_strategy(transient_shift):
    users = [score.users for score in transient_shift.popularity.per_period]
    assert all(user_count > 0 for user_count in users)
    for result in transient_shift.strategies.values():
        assert [score.users for score in result.per_period] == users


def test_too_few_periods_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="1 non-empty month period.*needs at least 2"):
        run_backtest(_history(["mobile"]))
    with pytest.raises(InvalidInputError, match="fewer --initial-periods"):
        run_backtest(_history(["mobile", "mobile"]), BacktestConfig(initial_periods=2))


def test_weekly_periods_split_a_month():
    result = run_backtest(
        _history(["mobile", "mobile"]), BacktestConfig(strategies=("never",), period=PeriodSpec.parse("week"))
    )
    # 2025-01-01 is a Wednesday: weeks start on Mondays, the first one in 2024.
    assert result.periods[0] == "2024-12-30"
    assert len(result.periods) >= 8


def test_d_without_feature_columns_is_refused():
    table = monthly_events(["mobile", "mobile"]).select(["user_id", "item_id", "event_time"])
    history = history_from_table("bare", table, ColumnMapping(event_type_col=None))
    with pytest.raises(InvalidInputError, match="strategy D needs feature columns"):
        run_backtest(history, BacktestConfig(strategies=("D",)))
    assert run_backtest(history, BacktestConfig(strategies=("never",))).strategies["never"].retrains == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"strategies": ("E",)}, "strategies must be some of"),
        ({"strategies": ("A", "A")}, "repeat"),
        ({"every_k": 0}, ">= 1"),
        ({"challenger_algorithm": "ease"}, "other than the champion"),
        ({"instance_type": "ml.unknown"}, "no list price"),
    ],
)
def test_config_is_validated(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        BacktestConfig(**kwargs)


def test_exclusion_decides_what_counts_as_new():
    """Everyone views item "x" in February and buys it in March: a new purchase for a shop, but not
    for a catalogue where an interaction means the item was consumed."""
    rows = [
        (f"u{user}", f"i{(user + step) % 6}", "purchase", f"2025-01-{1 + step:02d}")
        for user in range(10)
        for step in range(3)
    ]
    rows += [(f"u{user}", "x", "view", "2025-02-10") for user in range(10)]
    rows += [(f"u{user}", "x", "purchase", "2025-03-10") for user in range(10)]
    names = ("user_id", "item_id", "event_type", "event_time")
    table = pa.table({name: [row[index] for row in rows] for index, name in enumerate(names)})
    history = history_from_table("views then purchases", table, ColumnMapping())
    by_purchases = run_backtest(history, BacktestConfig(strategies=("never", "every")))
    by_interactions = run_backtest(history, BacktestConfig(strategies=("never", "every"), exclude="interactions"))
    assert [score.users for score in by_purchases.popularity.per_period] == [0, 10]
    assert [score.users for score in by_interactions.popularity.per_period] == [0, 0]
    assert by_interactions.strategies["every"].mean_ndcg_at_10 is None
    # The retrained model saw everyone view "x": its most co-viewed item; popularity has no purchase of it yet.
    assert by_purchases.strategies["every"].per_period[1].hit_rate_at_10 == 1.0
    assert by_purchases.popularity.per_period[1].hit_rate_at_10 == 0.0


def test_auto_schedule_and_oracle_are_priced_against_the_same_models(transient_shift):
    strategies = transient_shift.strategies
    assert strategies["oracle"].regret == 0.0
    for name in ("never", "every", "D", "auto", "schedule"):
        assert strategies[name].regret >= -1e-9, name
    assert strategies["every"].staleness_cost == 0.0  # it always serves the freshest model
    assert transient_shift.frontier[0] == pytest.approx(strategies["never"].mean_ndcg_at_10)
    assert transient_shift.frontier[3] == pytest.approx(strategies["every"].mean_ndcg_at_10)
    auto = strategies["auto"]
    assert [decision["period"] for decision in auto.decisions] == ["2025-02", "2025-03", "2025-04"]
    assert auto.retrains == sum(decision["retrain"] for decision in auto.decisions)
    assert _retrained(transient_shift, "auto")[1:] == [decision["retrain"] for decision in auto.decisions]


def test_every_model_scores_users_with_their_purchases_since_its_training(monkeypatch):
    """The original model (trained on January) sees, when scoring April, what users bought Feb..Mar."""
    calls = []
    original_recommend = Recommender.recommend

    def recording(self, user_ids, k=10, exclude_seen=True, recent=None):
        calls.append((self.trained_until, dict(recent or {})))
        return original_recommend(self, user_ids, k, exclude_seen, recent)

    monkeypatch.setattr(Recommender, "recommend", recording)
    table = monthly_events(["mobile"] * 4)
    run_backtest(history_from_table("test", table, ColumnMapping()), BacktestConfig(strategies=("never",)))
    bought = table.filter(pc.equal(table.column("event_type"), "purchase"))
    months = pc.month(bought.column("event_time")).to_pylist()
    february_march = {}
    users, items = bought.column("user_id").to_pylist(), bought.column("item_id").to_pylist()
    for user, item, month in zip(users, items, months, strict=True):
        if month in (2, 3):
            february_march.setdefault(user, set()).add(item)
    january_model = min(trained for trained, _ in calls)
    april = [recent for trained, recent in calls if trained == january_model and recent][-1]
    assert april and all(set(items) == february_march[user] for user, items in april.items())


def test_auto_measures_a_challenger_before_each_decision_and_pays_for_its_fit(transient_shift):
    auto = transient_shift.strategies["auto"]
    measured = [decision["challenger_gain"] for decision in auto.decisions]
    assert all(gain is not None for gain in measured)
    month_days = 28.0
    for decision, gain, retrained_before in zip(
        auto.decisions, measured, _retrained(transient_shift, "auto")[:-1], strict=True
    ):
        assert gain["users"] >= 1 and gain["ci_low"] <= gain["gain"] <= gain["ci_high"], decision["period"]
        if retrained_before or decision is auto.decisions[0]:
            # the champion had missed nothing before this upload: the challenger learns its first half
            assert 0 < gain["missed_days"] < month_days + 3, decision["period"]
        else:
            assert gain["missed_days"] >= month_days, decision["period"]
    # Each challenger is a real training job (at least one billed second and the start-up, no A/B test).
    cost = transient_shift.config.cost_model
    retrains = auto.retrains * (cost.job_cost(1) + cost.ab_exposure_cost)
    assert auto.training_cost >= retrains + len(measured) * cost.job_cost(1) - 1e-9
