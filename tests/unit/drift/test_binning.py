"""``EdgeIndex`` gives exactly ``np.searchsorted(edges, values, side="left")``, whatever the data."""

from __future__ import annotations

import numpy as np
import pytest

from driftloop.drift.binning import EdgeIndex

RNG = np.random.default_rng(11)
DRAWS = {
    "normal": lambda n: RNG.normal(0.0, 1.0, n),
    "lognormal": lambda n: RNG.lognormal(2.0, 0.5, n),
    "pareto": lambda n: RNG.pareto(0.7, n) + 1.0,
    "negative": lambda n: -RNG.lognormal(2.0, 0.5, n),
    "integers": lambda n: RNG.integers(0, 1000, n).astype(np.float64),
    "two scales": lambda n: np.concatenate([RNG.normal(0.0, 1e-9, n // 2), RNG.normal(1e9, 1.0, n - n // 2)]),
    "extremes": lambda n: np.concatenate([RNG.normal(0.0, 1.0, n - 6), [-1e308, 1e308, 5e-324, -5e-324, 0.0, -0.0]]),
    "subnormal": lambda n: RNG.integers(-50, 50, n) * 5e-324,
}


@pytest.mark.parametrize("name", list(DRAWS))
@pytest.mark.parametrize("edge_count", [1, 2, 1001, 32_768])
def test_bins_equal_searchsorted(name, edge_count):
    draw = DRAWS[name]
    sample = np.sort(draw(65_536))
    edges = np.unique(sample[:: max(1, sample.size // edge_count)])
    index = EdgeIndex(edges)
    # Values far outside, on every edge and one float either side of every edge.
    values = np.concatenate([draw(50_000), edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)])
    values = values[np.isfinite(values)]
    expected = np.searchsorted(edges, values, side="left")
    assert np.array_equal(index.bins(values), expected)
    counts, ties = index.counts_and_ties(values)
    assert np.array_equal(counts, np.bincount(expected, minlength=edges.size + 1))
    on_edge = np.searchsorted(edges, values, side="right") > expected
    assert np.array_equal(ties, np.bincount(expected[on_edge], minlength=edges.size + 1))


def test_minus_zero_and_zero_share_a_bin():
    index = EdgeIndex(np.array([-1.0, 0.0, 1.0]))
    assert index.bins(np.array([-0.0, 0.0, -1e-300, 1e-300])).tolist() == [1, 1, 1, 2]


@pytest.mark.parametrize(
    "edges", [np.array([]), np.array([1.0, 1.0]), np.array([2.0, 1.0]), np.array([0.0, np.nan]), np.array([np.inf])]
)
def test_edges_must_be_increasing_and_finite(edges):
    with pytest.raises(ValueError, match="strictly increasing"):
        EdgeIndex(edges)
