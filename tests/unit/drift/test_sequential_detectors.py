"""Page-Hinkley as a detector object, and the two-proportion z-test concept drift shares with the A/B test."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from driftloop.drift.concept import ConversionMonitor, ConversionPeriod, PageHinkley, page_hinkley_decrease
from driftloop.errors import ConfigurationError, InvalidInputError
from driftloop.traffic.stratified import (
    ArmCounts,
    StratifiedComparison,
    Stratum,
    two_proportion_information,
    two_proportion_z,
)


def reference_page_hinkley(values: list[float], delta: float, threshold: float) -> int | None:
    """The textbook recursion, written out: m_t = sum(x_i - mean_i + delta), alarm when M_t - m_t > threshold."""
    cumulative = peak = mean = 0.0
    peak_at = 0
    for index, value in enumerate(values):
        mean += (value - mean) / (index + 1)
        cumulative += value - mean + delta
        if cumulative > peak:
            peak, peak_at = cumulative, index
        if peak - cumulative > threshold:
            return peak_at + 1
    return None


@pytest.mark.parametrize("kwargs", [{"delta": -0.1}, {"delta": math.nan}, {"delta": "0.1"}, {"threshold": 0},
                                    {"threshold": -1}, {"threshold": math.inf}, {"threshold": True}])
def test_page_hinkley_rejects_bad_parameters_at_construction(kwargs):
    with pytest.raises(ConfigurationError, match=next(iter(kwargs))):
        PageHinkley(**kwargs)


@pytest.mark.parametrize("kwargs", [{"page_hinkley_delta": math.nan}, {"page_hinkley_threshold": math.inf}])
def test_conversion_monitor_rejects_page_hinkley_parameters_that_are_not_finite(kwargs):
    with pytest.raises(ConfigurationError):
        ConversionMonitor(**kwargs)


@pytest.mark.parametrize("value", [math.nan, math.inf, None, "1.0"])
def test_page_hinkley_rejects_values_that_are_not_finite_numbers(value):
    with pytest.raises(InvalidInputError, match="finite numbers"):
        PageHinkley().update(value)


@given(st.lists(st.floats(0, 2), max_size=40), st.sampled_from([0.0, 0.02, 0.1]), st.sampled_from([0.05, 0.3, 1.0]))
def test_page_hinkley_dates_the_change_as_the_recursion_does(values, delta, threshold):
    assert page_hinkley_decrease(values, delta, threshold) == reference_page_hinkley(values, delta, threshold)


def test_page_hinkley_starts_afresh_after_a_detection():
    detector = PageHinkley(delta=0.01, threshold=0.5)
    values = [1.0] * 5 + [0.5] * 5
    detections = [(position, detector.change_index) for position, value in enumerate(values)
                  if detector.update(value).drift_detected]
    assert detections == [(6, 5)]  # one detection: the next update started afresh
    assert detector.n_seen == len(values) - 7 and not detector.drift_detected
    detector = PageHinkley(delta=0.01, threshold=0.5)
    for value in values[:7]:
        detector.update(value)
    assert detector.drift_detected and detector.n_seen == 7
    detector.update(0.5)
    assert (detector.n_seen, detector.drift_detected, detector.change_index) == (1, False, None)


def test_page_hinkley_says_nothing_on_a_flat_or_rising_sequence():
    detector = PageHinkley()
    for value in [1.0, 1.0, 1.1, 1.2, 1.3, 1.3]:
        assert not detector.update(value).drift_detected
    assert detector.change_index is None and detector.n_seen == 6


@given(st.integers(1, 5000), st.integers(1, 5000), st.data())
def test_two_proportion_z_is_the_pooled_z_and_the_one_stratum_comparison(n0, n1, data):
    first = ArmCounts(n0, data.draw(st.integers(0, n0)))
    second = ArmCounts(n1, data.draw(st.integers(0, n1)))
    z = two_proportion_z(first, second)
    pooled = (first.conversions + second.conversions) / (n0 + n1)
    if pooled in (0.0, 1.0):
        assert z == 0.0 and two_proportion_information(first, second) == 0.0
        return
    error = math.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))
    assert z == pytest.approx((second.rate - first.rate) / error, rel=1e-9, abs=1e-12)
    assert z == pytest.approx(StratifiedComparison([Stratum(0, first, second)]).estimate().z, rel=1e-9, abs=1e-12)
    # the pooled z squared is Pearson's chi-square of the 2x2 table without continuity correction
    table = [[first.conversions, n0 - first.conversions], [second.conversions, n1 - second.conversions]]
    assert z * z == pytest.approx(stats.chi2_contingency(table, correction=False)[0], rel=1e-9, abs=1e-9)


def test_two_proportion_information_is_zero_without_a_sample():
    assert two_proportion_information(ArmCounts(0, 0), ArmCounts(10, 3)) == 0.0
    assert two_proportion_z(ArmCounts(10, 3), ArmCounts(0, 0)) == 0.0


def test_concept_drift_p_value_is_the_one_sided_normal_tail_of_the_shared_z():
    baseline = [ConversionPeriod(f"d{day}", 10_000, 500) for day in range(7)]
    recent = [ConversionPeriod(f"d{day}", 10_000, 470) for day in range(7, 10)]
    result = ConversionMonitor().evaluate(baseline + recent)
    z = two_proportion_z(ArmCounts(70_000, 3500), ArmCounts(30_000, 1410))
    assert result.z_statistic == pytest.approx(z, rel=1e-12)
    assert result.pvalue == pytest.approx(stats.norm.cdf(z), rel=1e-9)


def test_concept_drift_without_conversions_is_tested_and_not_significant():
    periods = [ConversionPeriod(f"d{day}", 2_000, 0) for day in range(10)]
    result = ConversionMonitor().evaluate(periods)
    assert result.tested and not result.detected and (result.z_statistic, result.pvalue) == (0.0, 1.0)
