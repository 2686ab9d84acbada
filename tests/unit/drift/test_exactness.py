"""Statistics match scipy where computed exactly; approximations stay within their stated bounds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

from driftloop.drift import statistics as st
from driftloop.drift.baseline import Moments
from driftloop.drift.policy import benjamini_hochberg
from driftloop.drift.sketch import QuantileSketch, rank_error_bound
from driftloop.drift.special import chi2_sf, kolmogorov_sf, ks_pvalue_asymptotic, ks_pvalue_exact_equal


@pytest.mark.parametrize("degrees", [1, 2, 5, 39, 499])
def test_chi2_sf_matches_scipy(degrees):
    for x in [0.0, 0.3, degrees / 2, degrees, degrees + 4 * np.sqrt(2 * degrees), 5.0 * degrees + 50]:
        assert chi2_sf(x, degrees) == pytest.approx(stats.chi2.sf(x, degrees), abs=1e-12)


def test_kolmogorov_sf_matches_scipy():
    for x in np.linspace(0.02, 4, 200):
        assert kolmogorov_sf(x) == pytest.approx(special.kolmogorov(x), abs=1e-12)


def test_exact_ks_pvalue_matches_scipy_for_equal_sizes():
    rng = np.random.default_rng(0)
    for size in (20, 300, 5000):
        a, b = rng.normal(size=size), rng.normal(0.1, 1, size)
        expected = stats.ks_2samp(a, b, method="exact")
        result = st.compare_exact(a, b)
        assert result.ks_statistic == pytest.approx(expected.statistic, abs=1e-12)
        assert result.ks_pvalue == pytest.approx(expected.pvalue, abs=1e-9)
        assert ks_pvalue_exact_equal(expected.statistic, size) == pytest.approx(expected.pvalue, abs=1e-9)


def test_asymptotic_ks_pvalue_is_close_to_scipy_at_large_sizes():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=40_000), rng.normal(0.01, 1, 30_000)
    expected = stats.ks_2samp(a, b, method="asymp")
    assert ks_pvalue_asymptotic(expected.statistic, a.size, b.size) == pytest.approx(expected.pvalue, abs=0.01)


def test_exact_wasserstein_and_ks_statistic_match_scipy_with_ties():
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 20, 700).astype(float), rng.integers(2, 25, 450).astype(float)
    result = st.compare_exact(a, b)
    assert result.ks_statistic == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    assert result.wasserstein_distance == pytest.approx(stats.wasserstein_distance(a, b), abs=1e-9)


def test_binned_distances_match_scipy():
    rng = np.random.default_rng(3)
    reference, current = rng.integers(0, 500, 30).astype(float), rng.integers(0, 500, 30).astype(float)
    current[4] = 0.0
    p, q = reference / reference.sum(), current / current.sum()
    assert st.jensen_shannon_distance(reference, current) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)
    assert st.l_infinity(reference, current) == pytest.approx(np.max(np.abs(p - q)), abs=1e-15)
    floored_p, floored_q = np.maximum(p, st.PSI_EPSILON), np.maximum(q, st.PSI_EPSILON)
    expected_psi = np.sum((floored_q - floored_p) * np.log(floored_q / floored_p))
    assert st.population_stability_index(reference, current) == pytest.approx(expected_psi, abs=1e-12)


def test_chi_square_matches_scipy_contingency():
    reference = np.array([500.0, 300, 120, 80, 0])
    current = np.array([450.0, 330, 100, 95, 25])
    expected = stats.chi2_contingency(np.vstack([reference, current]), correction=False)
    result = st.chi_square_homogeneity(reference, current)
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert result.pvalue == pytest.approx(expected.pvalue, abs=1e-9)
    assert result.degrees_of_freedom == expected.dof


def test_benjamini_hochberg_matches_scipy():
    pvalues = np.random.default_rng(4).random(25) ** 3
    assert np.allclose(benjamini_hochberg(pvalues), stats.false_discovery_control(pvalues), atol=1e-12)


def test_moments_merge_exactly():
    rng = np.random.default_rng(5)
    values = rng.normal(1e6, 3, 10_000)
    moments = Moments()
    for chunk in np.array_split(values, 7):
        moments.add(chunk)
    assert moments.mean == pytest.approx(values.mean(), rel=1e-12)
    assert moments.std == pytest.approx(values.std(), rel=1e-9)


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.5])
def test_binned_ks_and_wasserstein_stay_within_their_bounds(shift):
    rng = np.random.default_rng(6)
    reference, current = rng.lognormal(0, 0.7, 80_000), rng.lognormal(shift, 0.7, 50_000)
    sketch = QuantileSketch(2048)
    sketch.update(reference)
    interior = sketch.quantiles(np.arange(1, 1000) / 1000)
    edges = np.unique(np.concatenate([[reference.min()], interior, [reference.max()]]))

    def side(values):
        counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)
        below, above = values[values < edges[0]], values[values > edges[-1]]
        return st.BinnedSide(counts, float(np.sum(edges[0] - below)), float(np.sum(above - edges[-1])))

    binned = st.compare_binned(edges, side(reference), side(current))
    exact = st.compare_exact(reference, current)
    assert binned.ks_statistic <= exact.ks_statistic + 1e-12
    assert exact.ks_statistic <= binned.ks_statistic + binned.ks_statistic_error_bound + 1e-12
    assert abs(binned.wasserstein_distance - exact.wasserstein_distance) <= binned.wasserstein_error_bound
    assert binned.ks_statistic_error_bound < 0.01


@pytest.mark.parametrize("seed", range(8))
def test_sketch_rank_error_within_bound_and_merge(seed):
    rng = np.random.default_rng(seed)
    parts = [rng.normal(size=120_000), rng.exponential(size=80_000), rng.integers(0, 50, 60_000).astype(float)]
    sketches = []
    for index, part in enumerate(parts):
        sketch = QuantileSketch(512, seed=seed * 10 + index)
        for chunk in np.array_split(part, 5):
            sketch.update(chunk)
        sketches.append(sketch)
    merged = sketches[0].merge(sketches[1]).merge(sketches[2])
    values = np.sort(np.concatenate(parts))
    fractions = np.linspace(0.005, 0.995, 199)
    estimates = merged.quantiles(fractions)
    below = np.searchsorted(values, estimates, side="left") / values.size
    at_or_below = np.searchsorted(values, estimates, side="right") / values.size
    error = np.maximum(below - fractions, fractions - at_or_below).clip(min=0)
    assert merged.count == values.size
    assert error.max() <= rank_error_bound(512)
    assert sum(level.size for level in merged.levels) < 4 * 512
