"""A boundary for an A/B test that is looked at many times: O'Brien-Fleming-type alpha spending.

Why this test. The rollout looks at the test after every bake, at every stage, and each look may
promote. A fixed-horizon test checked that often promotes an equal model far more often than its
level says. A mixture SPRT ("always valid", Johari et al. 2017) stays valid for ever, but it pays for
that: at the traffic of a typical rollout it needs a z of about 2.8 where a single look needs 1.6
(+10 % lift at 30 % conversion, 4,000 requests at 10 % and 4,000 at 50 %: 42 % power against 78 %).
A rollout has a horizon, though (``MaxBakeWaits`` at the last test stage, or sooner once the test has
the information to detect ``MinimumLift``), and a boundary that only has to hold up to a horizon is
much cheaper. The Lan-DeMets O'Brien-Fleming spending function, ``alpha(t) = 2 - 2 Phi(z / sqrt(t))``
with ``z = Phi^-1(1 - alpha / 2)``, is the chance that a Brownian motion crosses the flat line
``z sqrt(H)`` by information ``t H`` (the reflection principle). So rejecting whenever the score
``S`` (``S / sqrt(I)`` is the usual z) reaches ``z sqrt(H)`` keeps the chance of ever rejecting a true
"no lift" at or below ``alpha``, whatever the number and timing of the looks up to ``H``; with a few
discrete looks it is below. At the horizon the boundary is ``z`` itself: 1.96 for a one-sided 5 %.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

from driftloop.errors import ConfigurationError, InvalidInputError

_NORMAL = NormalDist()


@dataclass(frozen=True)
class SequentialLook:
    """One look: the z the score must reach (``critical_z``) at this information, and the verdict."""

    information: float
    horizon: float
    information_fraction: float
    z: float
    critical_z: float
    nominal_p_value: float  # one-sided, for reading only: the boundary is what decides
    crossed_upper: bool
    crossed_lower: bool
    final: bool  # the horizon is reached: no later look may use this boundary

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class OBrienFlemingBoundary:
    """One-sided-per-direction group-sequential boundary with O'Brien-Fleming alpha spending.

    ``look`` compares a z statistic at information ``I`` with ``z_(1 - alpha/2) * sqrt(H / I)``; the
    upper and the lower crossings each have probability at most ``alpha`` under "no difference", over
    all looks up to the horizon ``H``. ``power``, ``information_needed`` and
    ``minimum_detectable_effect`` describe the last look (a test that may stop earlier has at least
    that power).

    Parameters
    ----------
    alpha
        Chance of crossing each boundary over the whole test when there is no difference.

    Example
    -------
    >>> from driftloop.traffic.sequential import OBrienFlemingBoundary
    >>> boundary = OBrienFlemingBoundary(alpha=0.05)
    >>> round(boundary.look(z=2.5, information=1000, horizon=4000).critical_z, 2)  # early: strict
    3.92
    >>> round(boundary.look(z=2.5, information=4000, horizon=4000).critical_z, 2)  # at the horizon
    1.96
    >>> round(boundary.power(effect=0.03, horizon=6477), 2)
    0.68

    References
    ----------
    Lan, K. K. G. and DeMets, D. L. (1983). Discrete sequential boundaries for clinical trials.
    Biometrika 70(3), 659-663.
    O'Brien, P. C. and Fleming, T. R. (1979). A multiple testing procedure for clinical trials.
    Biometrics 35(3), 549-556.
    Jennison, C. and Turnbull, B. W. (2000). Group Sequential Methods with Applications to Clinical
    Trials, chapters 7 (alpha spending) and 9 (repeated confidence intervals).
    Johari, R., Koomen, P., Pekelis, L. and Walsh, D. (2017). Peeking at A/B tests. KDD 2017.
    """

    def __init__(self, alpha: float = 0.05) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 0.5:
            raise ConfigurationError(f"alpha must be in (0, 0.5), got {alpha!r}")
        self.alpha = float(alpha)
        self.final_z = _NORMAL.inv_cdf(1 - self.alpha / 2)

    def critical_z(self, information: float, horizon: float) -> float:
        _check_information(information, horizon)
        return self.final_z * math.sqrt(max(horizon, information) / information)

    def look(self, z: float, information: float, horizon: float) -> SequentialLook:
        if not math.isfinite(z):
            raise InvalidInputError(f"z must be finite, got {z}")
        critical = self.critical_z(information, horizon)
        return SequentialLook(
            information=information, horizon=horizon, information_fraction=min(1.0, information / horizon),
            z=z, critical_z=critical, nominal_p_value=1 - _NORMAL.cdf(z),
            crossed_upper=z >= critical, crossed_lower=z <= -critical, final=information >= horizon)

    def interval(self, difference: float, information: float, horizon: float) -> tuple[float, float]:
        """Repeated confidence interval of the difference: the decision is "promote" exactly when its
        lower end is above 0; it covers the true difference at every look with probability >= 1 - 2 alpha."""
        half_width = self.critical_z(information, horizon) / math.sqrt(information)
        return difference - half_width, difference + half_width

    def power(self, effect: float, horizon: float) -> float:
        """Chance that a true difference ``effect`` crosses the boundary at the horizon."""
        _check_information(horizon, horizon)
        return _NORMAL.cdf(effect * math.sqrt(horizon) - self.final_z)

    def information_needed(self, effect: float, power: float = 0.8) -> float:
        """Information at which a true difference ``effect`` is detected with probability ``power``."""
        if not effect > 0 or not math.isfinite(effect):
            raise InvalidInputError(f"effect must be a positive number, got {effect}")
        return ((self.final_z + _power_z(power)) / effect) ** 2

    def minimum_detectable_effect(self, information: float, power: float = 0.8) -> float:
        """Smallest true difference detected with probability ``power`` by a test ending at ``information``."""
        _check_information(information, information)
        return (self.final_z + _power_z(power)) / math.sqrt(information)


def _power_z(power: float) -> float:
    if not 0 < power < 1:
        raise ConfigurationError(f"power must be in (0, 1), got {power}")
    return _NORMAL.inv_cdf(power)


def _check_information(information: float, horizon: float) -> None:
    if not (information > 0 and horizon > 0 and math.isfinite(information) and math.isfinite(horizon)):
        raise InvalidInputError(f"information and horizon must be positive, got {information} and {horizon}")
