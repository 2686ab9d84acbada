"""Distances and tests between a reference and a current distribution.

Binned numeric statistics use the baseline's fine bins, whose CDF values at the edges are exact on
both sides. Between edges the true CDFs are unknown, so:
- ``ks_statistic`` is the largest CDF gap at an edge (a lower bound of the true statistic) and
  ``ks_statistic_error_bound`` is the gap to the largest value the data could reach between edges;
- ``wasserstein_distance`` interpolates both CDFs linearly inside each bin (the tails beyond the
  reference range are exact) and ``wasserstein_error_bound`` is sum(bin width x both bins' shares).
With raw values on both sides (small data) the same statistics are computed exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from driftloop.drift.special import chi2_sf, ks_pvalue_asymptotic, ks_pvalue_exact_equal

PSI_EPSILON = 1e-4
EXACT_KS_PVALUE_LIMIT = 10_000


def proportions(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts, dtype=np.float64)


def population_stability_index(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI over matching bins; empty bins are floored at ``PSI_EPSILON`` so new or vanished bins count."""
    p = np.maximum(proportions(reference), PSI_EPSILON)
    q = np.maximum(proportions(current), PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Square root of the Jensen-Shannon divergence in bits (0..1), as scipy's ``jensenshannon(base=2)``."""
    p, q = proportions(reference), proportions(current)
    middle = (p + q) / 2.0
    divergence = 0.5 * (_kl_bits(p, middle) + _kl_bits(q, middle))
    return float(math.sqrt(max(divergence, 0.0)))


def _kl_bits(p: np.ndarray, q: np.ndarray) -> float:
    present = p > 0
    return float(np.sum(p[present] * np.log2(p[present] / q[present])))


def l_infinity(reference: np.ndarray, current: np.ndarray) -> float:
    return float(np.max(np.abs(proportions(reference) - proportions(current)))) if reference.size else 0.0


@dataclass(frozen=True)
class TestResult:
    statistic: float
    pvalue: float
    degrees_of_freedom: int = 0


def chi_square_homogeneity(reference: np.ndarray, current: np.ndarray) -> TestResult:
    """Chi-square test on the 2 x K contingency table (scipy ``chi2_contingency(correction=False)``)."""
    table = np.vstack([reference, current]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return TestResult(0.0, 1.0, max(table.shape[1] - 1, 0))
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    degrees = table.shape[1] - 1
    return TestResult(statistic, chi2_sf(statistic, degrees), degrees)


def ks_pvalue(statistic: float, reference_count: int, current_count: int) -> float:
    """Exact for equal sizes up to ``EXACT_KS_PVALUE_LIMIT``, Smirnov's asymptotic formula otherwise."""
    if reference_count == current_count and reference_count <= EXACT_KS_PVALUE_LIMIT:
        return ks_pvalue_exact_equal(statistic, reference_count)
    return ks_pvalue_asymptotic(statistic, reference_count, current_count)


@dataclass(frozen=True)
class NumericComparison:
    ks_statistic: float
    ks_pvalue: float
    ks_statistic_error_bound: float
    wasserstein_distance: float
    wasserstein_error_bound: float
    exact: bool


def compare_exact(reference: np.ndarray, current: np.ndarray) -> NumericComparison:
    """KS and Wasserstein on raw values (as scipy's ``ks_2samp`` and ``wasserstein_distance``)."""
    reference, current = np.sort(reference), np.sort(current)
    combined = np.concatenate([reference, current])
    combined.sort(kind="mergesort")
    cdf_reference = np.searchsorted(reference, combined, side="right") / reference.size
    cdf_current = np.searchsorted(current, combined, side="right") / current.size
    statistic = float(np.max(np.abs(cdf_reference - cdf_current)))
    widths = np.diff(combined)
    wasserstein = float(np.sum(np.abs(cdf_reference[:-1] - cdf_current[:-1]) * widths))
    return NumericComparison(statistic, ks_pvalue(statistic, reference.size, current.size), 0.0, wasserstein, 0.0, True)


@dataclass(frozen=True)
class BinnedSide:
    """One side's counts over the reference fine bins (``<= edges[0]``, each ``(e[i-1], e[i]]``,
    ``> edges[-1]``) and the summed distance of its values below ``edges[0]`` / above ``edges[-1]``."""

    counts: np.ndarray
    gap_below: float = 0.0
    gap_above: float = 0.0


def compare_binned(edges: np.ndarray, reference: BinnedSide, current: BinnedSide) -> NumericComparison:
    n_reference, n_current = reference.counts.sum(), current.counts.sum()
    cdf_r = np.cumsum(reference.counts[:-1]) / n_reference
    cdf_c = np.cumsum(current.counts[:-1]) / n_current
    gaps = cdf_r - cdf_c
    statistic = float(np.max(np.abs(gaps)))
    inside = max(
        float(np.max(cdf_r[1:] - cdf_c[:-1], initial=0.0)),
        float(np.max(cdf_c[1:] - cdf_r[:-1], initial=0.0)),
        float(cdf_c[0]),
        float(cdf_r[0]),
    )
    upper = max(statistic, inside)
    widths = np.diff(edges)
    start, end = gaps[:-1], gaps[1:]
    same_sign = start * end >= 0
    magnitude = np.abs(start) + np.abs(end)
    crossing = np.divide(start**2 + end**2, 2 * magnitude, out=np.zeros_like(magnitude), where=magnitude > 0)
    interior = float(np.sum(widths * np.where(same_sign, magnitude / 2, crossing)))
    tails = (reference.gap_below + reference.gap_above) / n_reference
    tails += (current.gap_below + current.gap_above) / n_current
    shares = reference.counts[1:-1] / n_reference + current.counts[1:-1] / n_current
    bound = float(np.sum(widths * shares))
    return NumericComparison(
        statistic,
        ks_pvalue_asymptotic(statistic, int(n_reference), int(n_current)),
        upper - statistic,
        interior + tails,
        bound,
        False,
    )


def coarse_cuts(reference_counts: np.ndarray, coarse_bins: int) -> np.ndarray:
    """Fine-bin indices where reference quantile bins end, so coarse bins are unions of fine bins."""
    cumulative = np.cumsum(reference_counts) / reference_counts.sum()
    targets = np.arange(1, coarse_bins) / coarse_bins
    cuts = np.searchsorted(cumulative, targets - 1e-12, side="left") + 1
    return np.unique(np.clip(cuts, 1, reference_counts.size - 1))


def coarse_bounds(edges: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Value bounds of the coarse bins: the reference min, the last fine edge of each, the max."""
    return np.concatenate([edges[:1], edges[cuts - 1], edges[-1:]])


def coarsen(counts: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    return np.add.reduceat(counts, np.concatenate([[0], cuts]))


def align_categories(
    reference: Mapping[str, float], current: Mapping[str, float], reference_other: float = 0.0
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Union of categories (reference order first) with both sides' counts."""
    labels = list(reference) + [category for category in current if category not in reference]
    ref = np.array([reference.get(label, 0.0) for label in labels], dtype=np.float64)
    cur = np.array([current.get(label, 0.0) for label in labels], dtype=np.float64)
    return labels, ref, cur
