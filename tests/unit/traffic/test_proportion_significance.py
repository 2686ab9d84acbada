import math

import numpy as np
import pytest
from scipy import integrate, stats

from driftloop.errors import ConfigurationError, InvalidInputError
from driftloop.traffic.significance import msprt_test, two_proportion_test


@pytest.mark.parametrize(
    ("xa", "na", "xb", "nb"),
    [(50, 1000, 70, 1000), (30, 800, 22, 1200), (5, 60, 15, 70), (400, 5000, 460, 4800)],
)
def test_two_proportion_matches_chi_square_and_wald_reference(xa, na, xb, nb):
    result = two_proportion_test(xa, na, xb, nb, alpha=0.05)
    chi2, p_value, _, _ = stats.chi2_contingency([[xa, na - xa], [xb, nb - xb]], correction=False)
    assert result.p_value == pytest.approx(p_value, rel=1e-9)
    assert result.z**2 == pytest.approx(chi2, rel=1e-9)
    assert math.copysign(1, result.z) == math.copysign(1, xb / nb - xa / na)
    pa_, pb = xa / na, xb / nb
    half = stats.norm.ppf(0.975) * math.sqrt(pa_ * (1 - pa_) / na + pb * (1 - pb) / nb)
    assert (result.ci_low, result.ci_high) == pytest.approx((pb - pa_ - half, pb - pa_ + half), rel=1e-9)
    assert result.difference == pytest.approx(pb - pa_)
    assert result.relative_lift == pytest.approx((pb - pa_) / pa_)
    assert result.significant == (p_value <= 0.05)


def test_two_proportion_without_any_variation_has_no_evidence():
    result = two_proportion_test(0, 100, 0, 300)
    assert result.p_value == 1.0 and not result.significant and result.relative_lift is None


@pytest.mark.parametrize("test", [two_proportion_test, msprt_test])
def test_invalid_counts_are_rejected(test):
    with pytest.raises(InvalidInputError):
        test(5, 0, 1, 10)
    with pytest.raises(InvalidInputError):
        test(11, 10, 1, 10)
    with pytest.raises(InvalidInputError):
        test(1, 10, -1, 10)
    with pytest.raises(ConfigurationError):
        test(1, 10, 1, 10, alpha=1.5)


def _mixture_likelihood_ratio(difference, variance, tau, null=0.0):
    """Reference: integrate the normal likelihood ratio over the N(0, tau^2) mixing density."""

    def integrand(theta):
        ratio = stats.norm.pdf(difference, theta, math.sqrt(variance)) / stats.norm.pdf(
            difference, null, math.sqrt(variance)
        )
        return ratio * stats.norm.pdf(theta, null, tau)

    spread = 12 * max(tau, math.sqrt(variance))
    value, _ = integrate.quad(integrand, null - spread, null + spread, points=[difference], limit=200)
    return value


@pytest.mark.parametrize(
    ("xa", "na", "xb", "nb", "tau"),
    [(50, 1000, 70, 1000, 0.01), (300, 5000, 380, 5000, 0.02), (90, 900, 60, 1100, 0.05)],
)
def test_msprt_matches_numerically_integrated_mixture(xa, na, xb, nb, tau):
    result = msprt_test(xa, na, xb, nb, alpha=0.05, tau=tau)
    pa_, pb = xa / na, xb / nb
    variance = pa_ * (1 - pa_) / na + pb * (1 - pb) / nb
    ratio = _mixture_likelihood_ratio(pb - pa_, variance, tau)
    assert result.p_value == pytest.approx(min(1.0, 1 / ratio), rel=1e-6)
    # The interval's ends are the differences whose null the test rejects exactly at alpha.
    for end in (result.ci_low, result.ci_high):
        assert _mixture_likelihood_ratio(pb - pa_, variance, tau, null=end) == pytest.approx(
            1 / 0.05, rel=1e-6
        )
    assert result.significant == (result.ci_low > 0 or result.ci_high < 0)


def test_msprt_interval_is_wider_than_fixed_horizon_interval():
    fixed = two_proportion_test(400, 10_000, 470, 10_000)
    always_valid = msprt_test(400, 10_000, 470, 10_000)
    assert always_valid.ci_low < fixed.ci_low and always_valid.ci_high > fixed.ci_high


def test_msprt_detects_a_clear_win():
    result = msprt_test(500, 10_000, 700, 10_000)
    assert result.significant and result.difference > 0 and result.p_value < 1e-6


def _peeking_false_positive_rate(test, repetitions=300, looks=20, per_look=200, rate=0.05, seed=1):
    rng = np.random.default_rng(seed)
    control = rng.binomial(per_look, rate, size=(repetitions, looks)).cumsum(axis=1)
    treatment = rng.binomial(per_look, rate, size=(repetitions, looks)).cumsum(axis=1)
    samples = per_look * np.arange(1, looks + 1)
    rejected = 0
    for run in range(repetitions):
        rejected += any(
            test(
                int(control[run, look]), int(samples[look]), int(treatment[run, look]), int(samples[look])
            ).significant
            for look in range(looks)
        )
    return rejected / repetitions


def test_msprt_keeps_alpha_under_continuous_peeking_while_the_z_test_does_not():
    always_valid = _peeking_false_positive_rate(msprt_test)
    peeking_z = _peeking_false_positive_rate(two_proportion_test)
    assert always_valid <= 0.06
    assert peeking_z > 0.1  # why the always-valid test exists
