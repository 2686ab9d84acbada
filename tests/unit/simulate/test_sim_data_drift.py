"""Feature distributions: they move under SEASONAL / POPULATION_SHIFT and stay put under NO_DRIFT."""

from __future__ import annotations

import pandas as pd
import pytest
from sim_fixtures import DEFAULT

from driftloop.simulate import Scenario, Simulator, SimulatorConfig
from driftloop.simulate.schema import SUMMER_CATEGORIES, WINTER_CATEGORIES


def shares(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].value_counts(normalize=True)


def total_variation(before: pd.DataFrame, after: pd.DataFrame, column: str) -> float:
    return 0.5 * float(shares(before, column).subtract(shares(after, column), fill_value=0.0).abs().sum())


@pytest.fixture(scope="module")
def months() -> dict[tuple[Scenario, int], pd.DataFrame]:
    frames = {}
    for scenario in Scenario:
        simulator = Simulator(DEFAULT, scenario)
        for month in (0, 6, 12):
            frames[scenario, month] = simulator.month(month).to_pandas()
    return frames


@pytest.mark.parametrize("column", ["age_band", "region", "device", "item_category"])
def test_no_drift_keeps_categorical_mixes(months: dict, column: str) -> None:
    for month in (6, 12):
        assert total_variation(months[Scenario.NO_DRIFT, 0], months[Scenario.NO_DRIFT, month], column) < 0.04


@pytest.mark.parametrize("column", ["price", "discount", "session_minutes", "user_tenure_days"])
def test_no_drift_keeps_numeric_distributions(months: dict, column: str) -> None:
    before, after = months[Scenario.NO_DRIFT, 0][column], months[Scenario.NO_DRIFT, 12][column]
    for quantile in (0.25, 0.5, 0.75):
        assert after.quantile(quantile) == pytest.approx(before.quantile(quantile), rel=0.15, abs=0.01)


@pytest.mark.parametrize("scenario", [Scenario.SEASONAL, Scenario.POPULATION_SHIFT])
def test_the_population_gets_younger_and_more_mobile(months: dict, scenario: Scenario) -> None:
    before, after = months[scenario, 0], months[scenario, 12]
    assert shares(after, "age_band")["18-24"] > shares(before, "age_band")["18-24"] + 0.08
    assert shares(after, "device")["mobile"] > shares(before, "device")["mobile"] + 0.1
    assert total_variation(before, after, "age_band") > 0.1


@pytest.mark.parametrize("scenario", [Scenario.SEASONAL, Scenario.POPULATION_SHIFT])
def test_prices_rise_for_the_same_items(months: dict, scenario: Scenario) -> None:
    price = {month: months[scenario, month].groupby("item_id").price.first() for month in (0, 12)}
    common = price[0].index.intersection(price[12].index)
    ratio = (price[12][common] / price[0][common]).median()
    assert ratio == pytest.approx(1 + DEFAULT.inflation, abs=0.005)


def test_summer_brings_summer_categories(months: dict) -> None:
    def summer_share(frame: pd.DataFrame) -> float:
        return float(frame.item_category.isin(SUMMER_CATEGORIES).mean())

    def winter_share(frame: pd.DataFrame) -> float:
        return float(frame.item_category.isin(WINTER_CATEGORIES).mean())

    january, july = months[Scenario.SEASONAL, 0], months[Scenario.SEASONAL, 6]
    assert summer_share(july) > summer_share(january) + 0.15
    assert winter_share(july) < winter_share(january) - 0.15
    kept = months[Scenario.POPULATION_SHIFT, 6]
    assert summer_share(kept) == pytest.approx(summer_share(january), abs=0.05)


def test_newcomers_arrive_at_the_churn_rate_from_month_zero_on() -> None:
    simulator = Simulator(DEFAULT, Scenario.NO_DRIFT)
    for month in (0, 1, 6, 12):
        truth = simulator.ground_truth(month).to_pandas()
        first_visit_month = truth.first_visit.dt.strftime("%Y-%m")
        arrived = float((first_visit_month == simulator.month_label(month)).mean())
        assert arrived == pytest.approx(DEFAULT.monthly_churn, abs=0.012)


def test_no_drift_keeps_the_tenure_of_active_customers() -> None:
    many_customers = SimulatorConfig(seed=3, n_users=20_000, n_items=60, events_per_month=100)
    simulator = Simulator(many_customers, Scenario.NO_DRIFT)

    def tenure_quantiles(month: int) -> pd.Series:
        truth = simulator.ground_truth(month).to_pandas()
        start = pd.Timestamp(simulator.month_label(month) + "-15", tz="UTC")
        return ((start - truth.first_visit).dt.total_seconds() / 86_400).quantile([0.25, 0.5, 0.75])

    launch = tenure_quantiles(0)
    for month in (6, 12):
        assert tenure_quantiles(month).to_numpy() == pytest.approx(launch.to_numpy(), rel=0.05)
