"""Distribution tails the drift tests need, in numpy/math only (the Lambda layer has no scipy).

``chi2_sf``, ``kolmogorov_sf`` and ``ks_pvalue_exact_equal`` match their scipy counterparts (named in
their docstrings) to 1e-9 or better; ``ks_pvalue_asymptotic`` is Smirnov's limit, within 0.01 of the
exact p-value at the sample sizes the policy requires. ``tests/unit/drift/test_exactness.py`` checks
both against scipy.

References
----------
Press, W. H., Teukolsky, S. A., Vetterling, W. T. and Flannery, B. P. (2007). Numerical Recipes,
3rd ed., section 6.2 (incomplete gamma function: series and Lentz's continued fraction).
Kolmogorov, A. N. (1933). Sulla determinazione empirica di una legge di distribuzione. Giornale
dell'Istituto Italiano degli Attuari 4, 83-91.
Smirnov, N. (1948). Table for estimating the goodness of fit of empirical distributions. Annals of
Mathematical Statistics 19(2), 279-281.
Gnedenko, B. V. and Korolyuk, V. S. (1951). On the maximum discrepancy between two empirical
distributions. Doklady Akademii Nauk SSSR 80, 525-528.
Hodges, J. L. (1958). The significance probability of the Smirnov two-sample test. Arkiv för
Matematik 3(5), 469-486.
"""

from __future__ import annotations

import math

_EPSILON = 1e-16
_TINY = 1e-300
_MAX_ITERATIONS = 10_000


def chi2_sf(statistic: float, degrees_of_freedom: int) -> float:
    """P(X >= statistic) for X ~ chi-square(degrees_of_freedom): the regularised upper gamma Q(k/2, x/2).

    As ``scipy.stats.chi2.sf``.

    Parameters
    ----------
    statistic
        The observed chi-square statistic; at or below 0 the tail is 1.
    degrees_of_freedom
        A positive whole number.

    Example
    -------
    >>> from driftloop.drift.special import chi2_sf
    >>> round(chi2_sf(3.841459, 1), 4), round(chi2_sf(11.0705, 5), 4)
    (0.05, 0.05)
    """
    if degrees_of_freedom <= 0:
        raise ValueError("degrees_of_freedom must be positive")
    if statistic <= 0.0:
        return 1.0
    return _upper_regularised_gamma(degrees_of_freedom / 2.0, statistic / 2.0)


def _upper_regularised_gamma(a: float, x: float) -> float:
    log_prefactor = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        # Series for the lower function P(a, x); Q = 1 - P.
        term = total = 1.0 / a
        denominator = a
        for _ in range(_MAX_ITERATIONS):
            denominator += 1.0
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * _EPSILON:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefactor))
    # Lentz's continued fraction for Q(a, x).
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    fraction = d
    for index in range(1, _MAX_ITERATIONS):
        an = -index * (index - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        fraction *= delta
        if abs(delta - 1.0) < _EPSILON:
            break
    return math.exp(log_prefactor) * fraction


def kolmogorov_sf(x: float) -> float:
    """P(K > x) for the limiting Kolmogorov distribution (scipy's ``kstwobign.sf``).

    Example
    -------
    >>> from driftloop.drift.special import kolmogorov_sf
    >>> round(kolmogorov_sf(1.358), 4), round(kolmogorov_sf(0.5), 4)
    (0.05, 0.9639)
    """
    if x <= 0.0:
        return 1.0
    if x < 1.0:
        # Small x: use the theta-function form of the CDF, which converges fast there.
        factor = math.sqrt(2.0 * math.pi) / x
        q = math.exp(-(math.pi**2) / (8.0 * x * x))
        cdf = factor * sum(q ** ((2 * k - 1) ** 2) for k in range(1, 8))
        return 1.0 - cdf
    total = 0.0
    for k in range(1, 101):
        term = math.exp(-2.0 * k * k * x * x)
        total += term if k % 2 else -term
        if term < 1e-18:
            break
    return min(1.0, max(0.0, 2.0 * total))


def ks_pvalue_asymptotic(statistic: float, reference_count: int, current_count: int) -> float:
    """Two-sided two-sample KS p-value from Smirnov's limit, with n_eff = n·m/(n+m).

    Agrees with the exact distribution to O(1/sqrt(n_eff)); at the sample sizes the policy
    requires (thousands) the difference is below 0.01 and shrinks as samples grow.

    Parameters
    ----------
    statistic
        The two-sample KS statistic ``D``, the largest gap between the two empirical CDFs.
    reference_count, current_count
        The two sample sizes.

    Example
    -------
    >>> from driftloop.drift.special import ks_pvalue_asymptotic, ks_pvalue_exact_equal
    >>> round(ks_pvalue_asymptotic(0.05, 1000, 1000), 3), round(ks_pvalue_exact_equal(0.05, 1000), 3)
    (0.164, 0.164)
    >>> round(ks_pvalue_asymptotic(0.05, 1000, 4000), 3)
    0.037
    """
    effective = reference_count * current_count / (reference_count + current_count)
    return kolmogorov_sf(math.sqrt(effective) * statistic)


def ks_pvalue_exact_equal(statistic: float, count: int) -> float:
    """Exact two-sided p-value of the two-sample KS test with equal sample sizes (Gnedenko-Korolyuk).

    Same algorithm as scipy's ``ks_2samp(method="exact")`` for n1 == n2.

    Parameters
    ----------
    statistic
        The two-sample KS statistic ``D``; ``D * count`` is rounded to a whole number of steps.
    count
        The size of each of the two samples.

    Example
    -------
    >>> from driftloop.drift.special import ks_pvalue_exact_equal
    >>> round(ks_pvalue_exact_equal(0.5, 10), 4)  # 0..9 against 5..14
    0.1678
    """
    h = round(statistic * count)
    if h == 0:
        return 1.0
    probability = 0.0
    k = count // h
    while k >= 0:
        ratio = 1.0
        for j in range(h):
            ratio = (count - k * h - j) * ratio / (count + k * h + j + 1)
        probability = ratio * (1.0 - probability)
        k -= 1
    return min(1.0, max(0.0, 2.0 * probability))
