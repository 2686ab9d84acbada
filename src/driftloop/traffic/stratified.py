"""Challenger minus champion conversion, compared only within strata where both served at once.

A stratum is a window of time in which the traffic split stayed the same (one A/B stage, or one bake
of it). Comparing the variants inside each stratum and combining the per-stratum differences means a
change of the base rate between strata (a weekend, a campaign) cannot pass for a lift, even though the
challenger's share of the traffic grows from stratum to stratum.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from driftloop.errors import InvalidInputError

VARIANTS = ("champion", "challenger")


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        raise InvalidInputError(f"{what} must be a whole number, got {value!r}")
    if value < 0:
        raise InvalidInputError(f"{what} must not be negative, got {value}")
    return int(value)


@dataclass(frozen=True)
class ArmCounts:
    """One variant in one stratum: ``served`` requests whose outcome is known, ``conversions`` among them."""

    served: int
    conversions: int

    def __post_init__(self) -> None:
        _count(self.served, "served")
        _count(self.conversions, "conversions")
        if self.conversions > self.served:
            raise InvalidInputError(f"{self.conversions} conversions out of {self.served} served")

    @property
    def rate(self) -> float:
        return self.conversions / self.served if self.served else math.nan


@dataclass(frozen=True)
class Stratum:
    """Champion and challenger counts from one window in which the traffic split did not change."""

    stage_index: int
    champion: ArmCounts
    challenger: ArmCounts

    @classmethod
    def from_dict(cls, data: Any, position: int = 0) -> Stratum:
        """From ``{"stage": i, "champion": {"served": n, "conversions": c}, "challenger": {...}}``."""
        where = f"stratum {position}"
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"{where} must be an object, got {type(data).__name__}")
        missing = [key for key in ("stage", *VARIANTS) if key not in data]
        if missing:
            raise InvalidInputError(f"{where} lacks {', '.join(missing)}")
        arms = {}
        for variant in VARIANTS:
            arm = data[variant]
            if not isinstance(arm, Mapping) or {"served", "conversions"} - set(arm):
                raise InvalidInputError(f"{where}: {variant} must be {{\"served\": n, \"conversions\": c}}")
            try:
                arms[variant] = ArmCounts(_count(arm["served"], "served"), _count(arm["conversions"], "conversions"))
            except InvalidInputError as error:
                raise InvalidInputError(f"{where}: {variant} {error}") from None
        return cls(_count(data["stage"], f"{where}: stage"), arms["champion"], arms["challenger"])

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage_index, "champion": asdict(self.champion), "challenger": asdict(self.challenger)}

    @property
    def concurrent(self) -> bool:
        """Both variants served in this window: the only windows that compare anything."""
        return self.champion.served > 0 and self.challenger.served > 0


@dataclass(frozen=True)
class StratifiedEstimate:
    """The combined comparison; ``difference`` is challenger minus champion conversion rate.

    ``score`` and ``information`` are the score for a common difference and its variance under "no
    difference": ``difference = score / information`` and ``z = score / sqrt(information)``.
    """

    strata: int
    champion_samples: int
    challenger_samples: int
    champion_rate: float
    challenger_rate: float
    difference: float
    relative_lift: float | None  # None when the champion never converted
    score: float
    information: float
    z: float
    base_variance: float  # p(1 - p) of one request at the pooled rate

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StratifiedComparison:
    """Stratified difference of two conversion rates: each stratum's difference, weighted by its inverse
    variance under "no difference".

    A stratum weighs ``w = n0 n1 / ((n0 + n1) p (1 - p))`` with ``p`` its pooled rate; the sum of the
    weighted differences is the score and the sum of the weights its variance (the information). With
    one stratum this is the pooled two-proportion z-test; when every stratum has the same pooled rate it
    is the Cochran-Mantel-Haenszel test (which weighs for a common odds ratio instead of a common
    difference). A stratum with no conversions at all (or only conversions) carries no information.

    Parameters
    ----------
    strata
        Concurrent strata to start from; more can be added with ``update``.

    Example
    -------
    >>> from driftloop.traffic.stratified import ArmCounts, Stratum, StratifiedComparison
    >>> weekday = Stratum(0, ArmCounts(900, 270), ArmCounts(100, 30))    # 30 % in both
    >>> weekend = Stratum(1, ArmCounts(500, 200), ArmCounts(500, 200))   # 40 % in both
    >>> estimate = StratifiedComparison([weekday, weekend]).estimate()
    >>> round(estimate.difference, 6), round(estimate.z, 6)
    (0.0, 0.0)

    Pooled over both days the challenger would seem 5 points better (230/600 against 470/1400).

    References
    ----------
    Mantel, N. and Haenszel, W. (1959). Statistical aspects of the analysis of data from retrospective
    studies of disease. Journal of the National Cancer Institute 22(4), 719-748.
    Agresti, A. (2013). Categorical Data Analysis, 3rd ed., section 6.4.
    """

    def __init__(self, strata: Iterable[Stratum] = ()) -> None:
        self._strata: list[Stratum] = []
        for stratum in strata:
            self.update(stratum)

    def update(self, stratum: Stratum) -> StratifiedComparison:
        if not isinstance(stratum, Stratum):
            raise InvalidInputError(f"expected a Stratum, got {type(stratum).__name__}")
        if not stratum.concurrent:
            raise InvalidInputError(f"a stratum of stage {stratum.stage_index} where one variant served nothing "
                                    "compares nothing")
        self._strata.append(stratum)
        return self

    def estimate(self) -> StratifiedEstimate:
        score = information = weighted_champion = weighted_challenger = 0.0
        pooled_conversions = pooled_samples = 0
        for stratum in self._strata:
            pooled_conversions += stratum.champion.conversions + stratum.challenger.conversions
            pooled_samples += stratum.champion.served + stratum.challenger.served
            weight = two_proportion_information(stratum.champion, stratum.challenger)
            if weight == 0:
                continue
            score += weight * (stratum.challenger.rate - stratum.champion.rate)
            information += weight
            weighted_champion += weight * stratum.champion.rate
            weighted_challenger += weight * stratum.challenger.rate
        base = pooled_conversions / pooled_samples if pooled_samples else math.nan
        if information > 0:
            champion_rate, challenger_rate = weighted_champion / information, weighted_challenger / information
            difference, z = score / information, score / math.sqrt(information)
        else:  # no stratum with a mix of outcomes: the plain rates, and no evidence either way
            champion_rate = _pooled_rate(self._strata, "champion")
            challenger_rate = _pooled_rate(self._strata, "challenger")
            difference, z = challenger_rate - champion_rate, 0.0
        return StratifiedEstimate(
            strata=len(self._strata),
            champion_samples=sum(s.champion.served for s in self._strata),
            challenger_samples=sum(s.challenger.served for s in self._strata),
            champion_rate=champion_rate,
            challenger_rate=challenger_rate,
            difference=difference,
            relative_lift=difference / champion_rate if champion_rate > 0 else None,
            score=score,
            information=information,
            z=z,
            base_variance=base * (1 - base) if pooled_samples else math.nan,
        )


def two_proportion_information(first: ArmCounts, second: ArmCounts) -> float:
    """Inverse variance of ``second.rate - first.rate`` under "no difference", at the pooled rate ``p``.

    ``n0 n1 / ((n0 + n1) p (1 - p))``; 0 when either side served nothing or ``p`` is 0 or 1, where the
    two samples carry no information about a difference. ``StratifiedComparison`` weighs each stratum
    by it.

    Example
    -------
    >>> from driftloop.traffic.stratified import ArmCounts, two_proportion_information
    >>> round(two_proportion_information(ArmCounts(1000, 100), ArmCounts(1000, 140)), 1)
    4734.8
    >>> two_proportion_information(ArmCounts(1000, 0), ArmCounts(1000, 0))
    0.0
    """
    n0, n1 = first.served, second.served
    if n0 == 0 or n1 == 0:
        return 0.0
    pooled = (first.conversions + second.conversions) / (n0 + n1)
    if pooled in (0.0, 1.0):
        return 0.0
    return n0 * n1 / ((n0 + n1) * pooled * (1 - pooled))


def two_proportion_z(first: ArmCounts, second: ArmCounts) -> float:
    """The pooled two-proportion z statistic of ``second.rate - first.rate``.

    ``z = (r1 - r0) / sqrt(p (1 - p) (1 / n0 + 1 / n1))`` with ``p`` the pooled rate: the one-stratum
    case of ``StratifiedComparison``. It is 0 when the samples carry no information
    (``two_proportion_information`` is 0); a caller that turns it into a p-value must check that.

    Parameters
    ----------
    first
        The reference sample (the champion, or the baseline window of concept drift).
    second
        The sample compared with it (the challenger, or the recent window).

    Example
    -------
    >>> from driftloop.traffic.stratified import ArmCounts, two_proportion_z
    >>> round(two_proportion_z(ArmCounts(1000, 100), ArmCounts(1000, 140)), 3)
    2.752
    >>> round(two_proportion_z(ArmCounts(1000, 140), ArmCounts(1000, 100)), 3)
    -2.752

    References
    ----------
    Agresti, A. (2013). Categorical Data Analysis, 3rd ed., section 3.1 (comparing two proportions).
    Fleiss, J. L., Levin, B. and Paik, M. C. (2003). Statistical Methods for Rates and Proportions,
    3rd ed., chapter 2.
    """
    information = two_proportion_information(first, second)
    return (second.rate - first.rate) * math.sqrt(information) if information else 0.0


def _pooled_rate(strata: list[Stratum], variant: str) -> float:
    served = sum(getattr(s, variant).served for s in strata)
    return sum(getattr(s, variant).conversions for s in strata) / served if served else math.nan
