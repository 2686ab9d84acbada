"""Distribution tails the drift tests need, in numpy/math only (the Lambda layer has no scipy)."""

from __future__ import annotations

import math

_EPSILON = 1e-16
_TINY = 1e-300
_MAX_ITERATIONS = 10_000


def chi2_sf(statistic: float, degrees_of_freedom: int) -> float:
    """P(X >= statistic) for X ~ chi-square(degrees_of_freedom): the regularised upper gamma Q(k/2, x/2)."""
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
    """P(K > x) for the limiting Kolmogorov distribution (scipy's ``kstwobign.sf``)."""
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
    """
    effective = reference_count * current_count / (reference_count + current_count)
    return kolmogorov_sf(math.sqrt(effective) * statistic)


def ks_pvalue_exact_equal(statistic: float, count: int) -> float:
    """Exact two-sided p-value of the two-sample KS test with equal sample sizes (Gnedenko-Korolyuk).

    Same algorithm as scipy's ``ks_2samp(method="exact")`` for n1 == n2.
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
