"""The one-pass baseline: exact counts, quantile-even fine bins, and a second pass only when needed."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from driftloop.drift import baseline as baseline_module
from driftloop.drift import build_baseline, compare_to_baseline, reading
from driftloop.drift.reading import prefetched
from driftloop.drift.sketch import QuantileSketch, rank_error_bound
from driftloop.errors import InvalidInputError
from driftloop.storage import local_source

ROWS = 200_000


def _exact_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)


def _passes(monkeypatch) -> list[list[str]]:
    """Record the columns of every streaming pass ``build_baseline`` makes."""
    calls: list[list[str]] = []
    original = reading.for_each_batch

    def counting(source, columns, handlers):
        calls.append(list(columns))
        original(source, columns, handlers)

    monkeypatch.setattr(baseline_module, "for_each_batch", counting)
    return calls


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng: rng.lognormal(3.0, 1.2, ROWS),
        lambda rng: rng.normal(1e6, 3.0, ROWS),
        lambda rng: rng.integers(0, 40, ROWS).astype(np.float64),
        lambda rng: np.where(rng.random(ROWS) < 0.3, 0.0, rng.exponential(5.0, ROWS)),
    ],
    ids=["lognormal", "narrow", "integers", "point-mass"],
)
def test_one_pass_counts_are_exact_and_bins_are_quantiles(draw, write_parquet, monkeypatch):
    values = draw(np.random.default_rng(7))
    passes = _passes(monkeypatch)
    path = write_parquet("ref.parquet", pa.table({"x": values}), row_group_size=30_000)
    summary = build_baseline(local_source(str(path))).features["x"]
    assert passes == [["x"]], "one read of the reference"
    assert np.array_equal(summary.counts, _exact_counts(values, summary.edges))
    assert summary.edges[0] == values.min() and summary.edges[-1] == values.max()
    shares = summary.counts / values.size
    # Each fine bin holds at most 1/1000 plus what one value (a point mass) or one grid cell holds.
    _, ties = np.unique(values, return_counts=True)
    assert shares[1:].max() <= 2 / summary.edges.size + ties.max() / values.size


def test_data_sorted_by_the_feature_takes_a_second_pass_with_exact_counts(write_parquet, monkeypatch):
    values = np.sort(np.random.default_rng(8).normal(size=ROWS))
    passes = _passes(monkeypatch)
    path = write_parquet("sorted.parquet", pa.table({"x": values, "y": values[::-1].copy()}), row_group_size=20_000)
    summary = build_baseline(local_source(str(path))).features["x"]
    assert passes == [["x", "y"], ["x", "y"]]
    assert np.array_equal(summary.counts, _exact_counts(values, summary.edges))
    assert summary.counts.max() / values.size < 0.005


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng: rng.lognormal(3.0, 1.2, ROWS),
        lambda rng: rng.integers(0, 40, ROWS).astype(np.float64),
        lambda rng: np.where(rng.random(ROWS) < 0.3, 0.0, rng.exponential(5.0, ROWS)),
        lambda rng: np.sort(rng.normal(size=ROWS)),
    ],
    ids=["lognormal", "integers", "point-mass", "sorted (second pass)"],
)
def test_the_sketch_of_the_exact_grid_stays_within_the_kll_bound(draw, write_parquet):
    values = draw(np.random.default_rng(12))
    path = write_parquet("ref.parquet", pa.table({"x": values}), row_group_size=30_000)
    sketch = build_baseline(local_source(str(path))).features["x"].sketch
    ordered = np.sort(values)
    fractions = np.linspace(0.001, 0.999, 999)
    estimates = sketch.quantiles(fractions)
    below = np.searchsorted(ordered, estimates, side="left") / values.size
    at_or_below = np.searchsorted(ordered, estimates, side="right") / values.size
    assert sketch.count == values.size
    assert np.maximum(below - fractions, fractions - at_or_below).max() <= rank_error_bound(sketch.k)
    assert sum(level.size for level in sketch.levels) < 4 * sketch.k


@pytest.mark.parametrize(
    ("values", "counts"),
    [([1.0, 2.0], [1]), ([1.0, 2.0], [1, -1]), ([2.0, 1.0], [1, 1]), ([1.0, 1.0], [1, 1])],
)
def test_a_sketch_from_counts_refuses_unordered_values_or_negative_counts(values, counts):
    with pytest.raises(ValueError, match="increasing values"):
        QuantileSketch.from_counts(np.array(values), np.array(counts))


def test_bins_from_another_baseline_count_exactly_in_one_pass(write_parquet, monkeypatch):
    rng = np.random.default_rng(9)
    reference = build_baseline(local_source(str(write_parquet("a.parquet", pa.table({"x": rng.gamma(2, 3, ROWS)})))))
    other = rng.gamma(2.5, 3, 70_000)
    passes = _passes(monkeypatch)
    summary = build_baseline(
        local_source(str(write_parquet("b.parquet", pa.table({"x": other})))), bins_from=reference
    ).features["x"]
    assert passes == [["x"]]
    assert np.array_equal(summary.edges, reference.features["x"].edges)
    assert np.array_equal(summary.counts, _exact_counts(other, summary.edges))


@pytest.mark.parametrize("shift", [0.0, 0.02, 0.3])
def test_end_to_end_ks_and_wasserstein_bracket_scipy(shift, write_parquet):
    rng = np.random.default_rng(10)
    reference, current = rng.lognormal(0, 0.7, 150_000), rng.lognormal(shift, 0.7, 120_000)
    baseline = build_baseline(local_source(str(write_parquet("r.parquet", pa.table({"x": reference}), 40_000))))
    report = compare_to_baseline(baseline, local_source(str(write_parquet("c.parquet", pa.table({"x": current})))))
    statistics = report.features["x"].statistics
    exact_ks = stats.ks_2samp(reference, current).statistic
    assert statistics["ks_statistic"] <= exact_ks + 1e-12
    assert exact_ks <= statistics["ks_statistic"] + statistics["ks_statistic_error_bound"] + 1e-12
    assert statistics["ks_statistic_error_bound"] < 0.005
    exact_w = stats.wasserstein_distance(reference, current)
    bound = statistics["wasserstein_error_bound"] * baseline.features["x"].moments.std  # reported per std
    assert abs(statistics["wasserstein_distance"] - exact_w) <= bound


def test_prefetched_passes_on_errors_and_stops_when_abandoned():
    def failing():
        yield 1
        raise InvalidInputError("corrupt")

    stream = prefetched(failing())
    assert next(stream) == 1
    with pytest.raises(InvalidInputError, match="corrupt"):
        next(stream)

    produced = []

    def endless():
        while True:
            produced.append(len(produced))
            yield produced[-1]

    before = threading.active_count()
    stream = prefetched(endless(), depth=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert threading.active_count() == before
    assert len(produced) <= 3 + 2 + 1


def test_a_failing_handler_stops_the_reading_thread(write_parquet):
    path = write_parquet("many.parquet", pa.table({"x": np.arange(100_000.0)}), row_group_size=1_000)
    seen = []

    def failing(chunk):
        seen.append(len(chunk))
        if len(seen) == 3:
            raise ValueError("handler failed")

    before = threading.active_count()
    with pytest.raises(ValueError, match="handler failed"):
        reading.for_each_batch(local_source(str(path)), ["x"], {"x": failing})
    assert threading.active_count() == before
    assert len(seen) == 3
