"""Is the treatment's conversion rate different from the control's?

Two tests on the difference of two proportions (treatment minus control):

* ``two_proportion_test`` — the fixed-horizon pooled z-test with a Wald interval. Valid for one
  look at a pre-planned sample size; repeated looks inflate its false-positive rate.
* ``msprt_test`` — the normal-approximation mixture sequential probability ratio test of Johari,
  Koomen, Pekelis and Walsh ("Peeking at A/B tests", KDD 2017) with a N(0, tau^2) mixing
  distribution over the difference. Its p-value and interval are always valid: the chance that
  any look, ever, rejects a true null is at most alpha, so it may be checked after every stage.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

from driftloop.errors import ConfigurationError, InvalidInputError

TWO_PROPORTION = "two_proportion"
MSPRT = "msprt"
_STANDARD_NORMAL = NormalDist()


@dataclass(frozen=True)
class TestResult:
    """Treatment versus control on conversion; ``difference`` is treatment minus control."""

    __test__ = False  # a result, not a pytest test class

    method: str
    control_samples: int
    control_conversions: int
    treatment_samples: int
    treatment_conversions: int
    control_rate: float
    treatment_rate: float
    difference: float
    relative_lift: float | None  # None when the control never converted
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    alpha: float
    significant: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Proportions:
    control_samples: int
    control_conversions: int
    treatment_samples: int
    treatment_conversions: int

    @property
    def control_rate(self) -> float:
        return self.control_conversions / self.control_samples

    @property
    def treatment_rate(self) -> float:
        return self.treatment_conversions / self.treatment_samples

    @property
    def difference(self) -> float:
        return self.treatment_rate - self.control_rate

    @property
    def relative_lift(self) -> float | None:
        return None if self.control_rate == 0 else self.difference / self.control_rate

    @property
    def pooled_variance(self) -> float:
        """Variance of the difference under H0 (one common rate)."""
        pooled = (self.control_conversions + self.treatment_conversions) / (
            self.control_samples + self.treatment_samples
        )
        return pooled * (1 - pooled) * (1 / self.control_samples + 1 / self.treatment_samples)

    @property
    def unpooled_variance(self) -> float:
        control, treatment = self.control_rate, self.treatment_rate
        return (
            control * (1 - control) / self.control_samples
            + treatment * (1 - treatment) / self.treatment_samples
        )

    def result(
        self, method: str, z: float, p_value: float, ci: tuple[float, float], alpha: float
    ) -> TestResult:
        return TestResult(
            method=method,
            control_samples=self.control_samples,
            control_conversions=self.control_conversions,
            treatment_samples=self.treatment_samples,
            treatment_conversions=self.treatment_conversions,
            control_rate=self.control_rate,
            treatment_rate=self.treatment_rate,
            difference=self.difference,
            relative_lift=self.relative_lift,
            z=z,
            p_value=p_value,
            ci_low=ci[0],
            ci_high=ci[1],
            alpha=alpha,
            significant=p_value <= alpha,
        )


def _proportions(
    control_conversions: int, control_samples: int, treatment_conversions: int, treatment_samples: int
) -> _Proportions:
    for name, conversions, samples in (
        ("control", control_conversions, control_samples),
        ("treatment", treatment_conversions, treatment_samples),
    ):
        if samples <= 0:
            raise InvalidInputError(f"{name} has no samples")
        if not 0 <= conversions <= samples:
            raise InvalidInputError(f"{name} has {conversions} conversions out of {samples} samples")
    return _Proportions(
        int(control_samples), int(control_conversions), int(treatment_samples), int(treatment_conversions)
    )


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ConfigurationError(f"alpha must be in (0, 1), got {alpha}")


def two_proportion_test(
    control_conversions: int,
    control_samples: int,
    treatment_conversions: int,
    treatment_samples: int,
    alpha: float = 0.05,
) -> TestResult:
    """Pooled two-sided z-test; the interval is the unpooled Wald interval at level 1 - alpha."""
    _check_alpha(alpha)
    counts = _proportions(control_conversions, control_samples, treatment_conversions, treatment_samples)
    null_variance = counts.pooled_variance
    if null_variance == 0:
        z, p_value = 0.0, 1.0  # both arms all-converted or all-not: no evidence of a difference
    else:
        z = counts.difference / math.sqrt(null_variance)
        p_value = math.erfc(abs(z) / math.sqrt(2))
    half_width = _STANDARD_NORMAL.inv_cdf(1 - alpha / 2) * math.sqrt(counts.unpooled_variance)
    return counts.result(
        TWO_PROPORTION, z, p_value, (counts.difference - half_width, counts.difference + half_width), alpha
    )


def msprt_test(
    control_conversions: int,
    control_samples: int,
    treatment_conversions: int,
    treatment_samples: int,
    alpha: float = 0.05,
    tau: float = 0.01,
) -> TestResult:
    """Always-valid test of "no difference", mixing over differences with a N(0, tau^2) prior.

    ``tau`` is the scale of differences worth detecting (in conversion-rate units): the test is most
    powerful for true differences near it. The p-value is 1 / Lambda for the current look; rejecting
    whenever it is at most alpha, at any look, keeps the overall false-positive rate at most alpha.
    """
    _check_alpha(alpha)
    if not tau > 0 or not math.isfinite(tau):
        raise ConfigurationError(f"tau must be a positive number, got {tau}")
    counts = _proportions(control_conversions, control_samples, treatment_conversions, treatment_samples)
    variance = counts.unpooled_variance or counts.pooled_variance
    if variance == 0:
        return counts.result(MSPRT, 0.0, 1.0, (-1.0, 1.0), alpha)
    prior = tau * tau
    log_likelihood_ratio = 0.5 * math.log(variance / (variance + prior)) + (
        counts.difference**2 * prior / (2 * variance * (variance + prior))
    )
    p_value = min(1.0, math.exp(-log_likelihood_ratio))
    # The confidence sequence: every difference d whose mixture ratio for H0: difference = d is
    # below 1 / alpha.
    half_width = math.sqrt(
        2
        * variance
        * (variance + prior)
        / prior
        * (math.log(1 / alpha) + 0.5 * math.log((variance + prior) / variance))
    )
    z = counts.difference / math.sqrt(variance)
    return counts.result(
        MSPRT, z, p_value, (counts.difference - half_width, counts.difference + half_width), alpha
    )
