"""The reference profile: per-feature summaries built once from training data, stored with the model.

Numeric features keep exact counts over fine bins whose edges are reference quantiles (chosen among
the edges of a finer grid counted in the same pass, see ``_NumericProfile``), exact moments, min and
max, and a KLL sketch of the grid's exact histogram. Categorical features keep exact counts per
category. Small references also keep their raw values so comparisons can be exact.

Merging: summaries over the same bin edges (``build_baseline(..., bins_from=...)``) merge exactly.
Otherwise the merged edges are quantiles of the merged sketch and each side's counts are re-binned by
linear interpolation of its CDF; any CDF value is then off by at most the largest fine-bin share of
either input, which is recorded in ``cdf_error_bound``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa

from driftloop.drift.binning import EdgeIndex
from driftloop.drift.reading import (
    CATEGORICAL,
    NUMERIC,
    category_counts,
    column_kind,
    for_each_batch,
    inferred_type,
    numeric_values,
    read_source_schema,
)
from driftloop.drift.sketch import QuantileSketch
from driftloop.errors import InvalidInputError
from driftloop.storage import ParquetSource

FORMAT_VERSION = 1
OTHER_CATEGORY = "__other__"
DEFAULT_EXCLUDE = ("user_id", "item_id", "event_time")
GRID_SAMPLE = 65_536
GRID_CELLS = 32_768


@dataclass(frozen=True)
class BaselineSettings:
    fine_bins: int = 1000
    coarse_bins: int = 10
    sketch_k: int = 2048
    max_categories: int = 1000
    exact_limit: int = 10_000

    def __post_init__(self) -> None:
        if self.coarse_bins < 2 or self.fine_bins < self.coarse_bins:
            raise ValueError("need 2 <= coarse_bins <= fine_bins")
        if self.sketch_k < 8 or self.max_categories < 1 or self.exact_limit < 0:
            raise ValueError("sketch_k >= 8, max_categories >= 1 and exact_limit >= 0 are required")

    def to_dict(self) -> dict[str, int]:
        return {
            "fine_bins": self.fine_bins,
            "coarse_bins": self.coarse_bins,
            "sketch_k": self.sketch_k,
            "max_categories": self.max_categories,
            "exact_limit": self.exact_limit,
        }


@dataclass
class Moments:
    """Count, mean and sum of squared deviations, merged with Chan's parallel formula."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, values: np.ndarray) -> None:
        if values.size:
            with np.errstate(over="ignore", invalid="ignore"):  # values near the float limit: moments overflow
                batch_mean = float(values.mean())
                self.merge(Moments(int(values.size), batch_mean, float(((values - batch_mean) ** 2).sum())))

    def merge(self, other: Moments) -> None:
        total = self.count + other.count
        if total == 0:
            return
        delta = other.mean - self.mean
        self.mean += delta * other.count / total
        self.m2 += other.m2 + delta * delta * self.count * other.count / total
        self.count = total

    @property
    def std(self) -> float:
        return float(np.sqrt(self.m2 / self.count)) if self.count else 0.0


@dataclass
class NumericSummary:
    name: str
    inferred_type: str
    missing: int
    minimum: float
    maximum: float
    moments: Moments
    edges: np.ndarray
    counts: np.ndarray
    sketch: QuantileSketch
    values: np.ndarray | None = None
    cdf_error_bound: float = 0.0

    kind = NUMERIC

    @property
    def count(self) -> int:
        return self.moments.count

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": NUMERIC,
            "inferred_type": self.inferred_type,
            "count": self.count,
            "missing": self.missing,
            "min": self.minimum,
            "max": self.maximum,
            "mean": self.moments.mean,
            "m2": self.moments.m2,
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "cdf_error_bound": self.cdf_error_bound,
            "sketch": self.sketch.to_dict(),
            "values": None if self.values is None else self.values.tolist(),
        }

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> NumericSummary:
        return cls(
            name=name,
            inferred_type=data["inferred_type"],
            missing=int(data["missing"]),
            minimum=float(data["min"]),
            maximum=float(data["max"]),
            moments=Moments(int(data["count"]), float(data["mean"]), float(data["m2"])),
            edges=np.asarray(data["edges"], dtype=np.float64),
            counts=np.asarray(data["counts"], dtype=np.float64),
            sketch=QuantileSketch.from_dict(data["sketch"]),
            values=None if data.get("values") is None else np.asarray(data["values"], dtype=np.float64),
            cdf_error_bound=float(data.get("cdf_error_bound", 0.0)),
        )

    @cached_property
    def edge_index(self) -> EdgeIndex:
        """Finds each value's fine bin: ``<= min``, the quantile bins, ``> max``."""
        return EdgeIndex(self.edges)

    def merge(self, other: NumericSummary, exact_limit: int) -> NumericSummary:
        sketch = self.sketch.merge(other.sketch)
        moments = Moments(self.moments.count, self.moments.mean, self.moments.m2)
        moments.merge(other.moments)
        values = None
        if self.values is not None and other.values is not None and moments.count <= exact_limit:
            values = np.sort(np.concatenate([self.values, other.values]))
        if np.array_equal(self.edges, other.edges):
            edges, counts = self.edges, self.counts + other.counts
            bound = max(self.cdf_error_bound, other.cdf_error_bound)
        else:
            fine_bins = max(self.edges.size, other.edges.size) - 1
            edges = _edges(sketch, min(self.minimum, other.minimum), max(self.maximum, other.maximum), fine_bins)
            counts = _rebin(self, edges) + _rebin(other, edges)
            bound = max(self.cdf_error_bound, other.cdf_error_bound) + max(
                _largest_bin_share(self), _largest_bin_share(other)
            )
        return NumericSummary(
            self.name,
            self.inferred_type if self.inferred_type == other.inferred_type else "Fractional",
            self.missing + other.missing,
            min(self.minimum, other.minimum),
            max(self.maximum, other.maximum),
            moments,
            edges,
            counts,
            sketch,
            values,
            bound,
        )


@dataclass
class CategoricalSummary:
    name: str
    inferred_type: str
    missing: int
    counts: dict[str, float]
    other_count: float = 0.0

    kind = CATEGORICAL

    @property
    def count(self) -> int:
        return int(round(sum(self.counts.values()) + self.other_count))

    @property
    def truncated(self) -> bool:
        """True when rare categories were folded into ``__other__`` (the domain is then incomplete)."""
        return self.other_count > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": CATEGORICAL,
            "inferred_type": self.inferred_type,
            "count": self.count,
            "missing": self.missing,
            "counts": dict(self.counts),
            "other_count": self.other_count,
        }

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> CategoricalSummary:
        return cls(
            name,
            data.get("inferred_type", "String"),
            int(data["missing"]),
            {str(key): float(value) for key, value in data["counts"].items()},
            float(data.get("other_count", 0.0)),
        )

    def merge(self, other: CategoricalSummary, max_categories: int) -> CategoricalSummary:
        counts = dict(self.counts)
        for category, count in other.counts.items():
            counts[category] = counts.get(category, 0.0) + count
        merged = CategoricalSummary(
            self.name,
            self.inferred_type,
            self.missing + other.missing,
            counts,
            self.other_count + other.other_count,
        )
        return merged.truncate(max_categories)

    def truncate(self, max_categories: int) -> CategoricalSummary:
        if len(self.counts) <= max_categories:
            return self
        ranked = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
        kept = dict(ranked[:max_categories])
        folded = sum(count for _, count in ranked[max_categories:])
        return replace(self, counts=kept, other_count=self.other_count + folded)


FeatureSummary = NumericSummary | CategoricalSummary


@dataclass(frozen=True)
class Baseline:
    """Reference summaries of every drift feature, JSON-safe via ``to_dict``/``from_dict``."""

    features: dict[str, FeatureSummary]
    columns: tuple[str, ...]
    row_count: int
    settings: BaselineSettings = field(default_factory=BaselineSettings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "driftloop-baseline",
            "version": FORMAT_VERSION,
            "row_count": self.row_count,
            "columns": list(self.columns),
            "settings": self.settings.to_dict(),
            "features": {name: summary.to_dict() for name, summary in self.features.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Baseline:
        if data.get("format") != "driftloop-baseline":
            raise InvalidInputError("not a driftloop baseline (missing format: driftloop-baseline)")
        if data.get("version") != FORMAT_VERSION:
            raise InvalidInputError(f"unsupported baseline version {data.get('version')!r}")
        try:
            features: dict[str, FeatureSummary] = {}
            for name, summary in data["features"].items():
                if summary["kind"] == NUMERIC:
                    features[name] = NumericSummary.from_dict(name, summary)
                else:
                    features[name] = CategoricalSummary.from_dict(name, summary)
            return cls(features, tuple(data["columns"]), int(data["row_count"]), BaselineSettings(**data["settings"]))
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidInputError(f"malformed baseline: {error!r}") from error

    def merge(self, other: Baseline) -> Baseline:
        """Combine summaries of two partitions of the reference data (see the module docstring)."""
        if self.features.keys() != other.features.keys():
            raise InvalidInputError(
                f"cannot merge baselines over different features: {sorted(self.features)} vs {sorted(other.features)}"
            )
        merged: dict[str, FeatureSummary] = {}
        for name, mine in self.features.items():
            theirs = other.features[name]
            if isinstance(mine, NumericSummary) and isinstance(theirs, NumericSummary):
                merged[name] = mine.merge(theirs, self.settings.exact_limit)
            elif isinstance(mine, CategoricalSummary) and isinstance(theirs, CategoricalSummary):
                merged[name] = mine.merge(theirs, self.settings.max_categories)
            else:
                raise InvalidInputError(f"feature {name!r} is numeric in one baseline and categorical in the other")
        columns = self.columns + tuple(column for column in other.columns if column not in self.columns)
        return Baseline(merged, columns, self.row_count + other.row_count, self.settings)


def build_baseline(
    source: ParquetSource,
    features: Sequence[str] | None = None,
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    settings: BaselineSettings | None = None,
    bins_from: Baseline | None = None,
) -> Baseline:
    """Profile the reference data in bounded memory, in one streaming pass (see ``_NumericProfile``;
    a second pass reads only the numeric features whose first values did not represent the rest).
    ``bins_from`` reuses another baseline's bin edges, so the results merge exactly, as partitions of a
    scaled-out build do."""
    settings = settings or (bins_from.settings if bins_from else BaselineSettings())
    schema = read_source_schema(source)
    if schema.row_count == 0:
        raise InvalidInputError("the reference data has no rows")
    names = _select_features(schema.types, features, exclude)
    numeric = [name for name in names if column_kind(schema.types[name]) == NUMERIC]
    categorical = [name for name in names if name not in numeric]
    stride = max(1, schema.row_count // GRID_SAMPLE)
    profiles: dict[str, _NumericProfile | _CategoricalProfile] = {}
    for index, name in enumerate(numeric):
        reused = bins_from.features.get(name) if bins_from else None
        edges = reused.edges if isinstance(reused, NumericSummary) else None
        profiles[name] = _NumericProfile(name, inferred_type(schema.types[name]), settings, index, edges, stride)
    for name in categorical:
        profiles[name] = _CategoricalProfile(name)
    for_each_batch(source, names, {name: profile.add for name, profile in profiles.items()})
    summaries: dict[str, FeatureSummary] = {}
    second_pass: dict[str, _NumericProfile] = {}
    for name, profile in profiles.items():
        if isinstance(profile, _CategoricalProfile):
            summaries[name] = profile.summary().truncate(settings.max_categories)
        elif profile.representative():
            summaries[name] = profile.summary()
        else:
            second_pass[name] = profile.recount()
    if second_pass:
        for_each_batch(source, list(second_pass), {name: profile.add for name, profile in second_pass.items()})
        summaries |= {name: profile.summary() for name, profile in second_pass.items()}
    ordered = {name: summaries[name] for name in names}
    return Baseline(ordered, tuple(schema.columns), schema.row_count, settings)


class _CategoricalProfile:
    def __init__(self, name: str) -> None:
        self.name = name
        self.missing = 0
        self.counts: dict[str, int] = {}

    def add(self, array: pa.Array) -> None:
        batch_counts, absent = category_counts(array)
        self.missing += absent
        for category, count in batch_counts.items():
            self.counts[category] = self.counts.get(category, 0) + count

    def summary(self) -> CategoricalSummary:
        return CategoricalSummary(
            self.name, "String", self.missing, {key: float(value) for key, value in self.counts.items()}
        )


class _NumericProfile:
    """One numeric feature's profile, built in the same pass as everything else.

    Quantile edges cannot be known before the data is read, so the pass counts exactly over a much
    finer grid instead: the edges of the grid are every other value of the first ``GRID_SAMPLE``
    values, sorted (about 32,768 cells), and each value is counted in its grid cell, and as a tie when
    it equals the cell's upper edge (``EdgeIndex``: no sort of the batch). At the end the fine bins'
    edges are the grid edges closest above the reference's quantiles, so their counts are exact sums of
    grid cells, and each fine bin holds at most ``1/fine_bins`` plus one grid cell's open interior. The
    quantile sketch is the exact grid histogram, compacted (``QuantileSketch.from_counts``).

    When some cell's open interior holds more than ``1/fine_bins`` of the values (the first values did
    not represent the rest, e.g. data sorted by the feature), ``recount`` gives a profile whose grid is
    every ``stride``-th value of the whole pass (``stride`` = rows / ``GRID_SAMPLE``, kept on the way),
    for a second pass over that feature (``build_baseline``).
    """

    def __init__(
        self,
        name: str,
        type_name: str,
        settings: BaselineSettings,
        seed: int,
        edges: np.ndarray | None,
        stride: int,
        grid: np.ndarray | None = None,
    ) -> None:
        self.name = name
        self.type_name = type_name
        self.settings = settings
        self.seed = seed
        self.stride = stride
        self.moments = Moments()
        self.missing = 0
        self.minimum, self.maximum = np.inf, -np.inf
        self.at_minimum = self.at_maximum = 0
        self.raw: list[np.ndarray] | None = []
        self.fixed_edges = edges
        self.pending: list[np.ndarray] = []
        self.sample: list[np.ndarray] = []
        self.grid: EdgeIndex | None = None
        self.in_cell: np.ndarray | None = None
        self.ties: np.ndarray | None = None
        if grid is not None:
            self._set_grid(grid)

    def add(self, array: pa.Array) -> None:
        values, absent = numeric_values(array)
        self.missing += absent
        if not values.size:
            return
        self.sample.append(values[(-self.moments.count) % self.stride :: self.stride].copy())
        self.moments.add(values)
        self._extremes(values)
        if self.raw is not None:
            self.raw = self.raw + [values] if self.moments.count <= self.settings.exact_limit else None
        if self.grid is None:
            self.pending.append(values)
            if sum(chunk.size for chunk in self.pending) >= GRID_SAMPLE:
                self._fix_grid()
        else:
            self._count(values)

    def _extremes(self, values: np.ndarray) -> None:
        low, high = values.min(), values.max()
        if low < self.minimum:
            self.minimum, self.at_minimum = low, 0
        if low == self.minimum:
            self.at_minimum += int(np.count_nonzero(values == low))
        if high > self.maximum:
            self.maximum, self.at_maximum = high, 0
        if high == self.maximum:
            self.at_maximum += int(np.count_nonzero(values == high))

    def _fix_grid(self) -> None:
        self._set_grid(np.concatenate(self.pending)[:GRID_SAMPLE])
        pending, self.pending = self.pending, []
        for values in pending:
            self._count(values)

    def _set_grid(self, sample: np.ndarray) -> None:
        edges = np.sort(sample)[:: max(1, sample.size // GRID_CELLS)]
        edges = edges[np.concatenate([[True], edges[1:] != edges[:-1]])]
        if self.fixed_edges is not None:
            edges = np.union1d(edges, self.fixed_edges)
        self.grid = EdgeIndex(edges)
        self.in_cell = np.zeros(edges.size + 1, dtype=np.int64)
        self.ties = np.zeros(edges.size + 1, dtype=np.int64)

    def _count(self, values: np.ndarray) -> None:
        assert self.grid is not None and self.in_cell is not None and self.ties is not None
        in_cell, ties = self.grid.counts_and_ties(values)
        self.in_cell += in_cell
        self.ties += ties

    def _finish_grid(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Grid edges and, at each, how many values are at or below it and strictly below it."""
        if self.moments.count == 0:
            raise InvalidInputError(f"reference column {self.name!r} has no values (all null)")
        if self.grid is None:
            self._fix_grid()
        assert self.grid is not None and self.in_cell is not None and self.ties is not None
        at_or_below = np.cumsum(self.in_cell[:-1])
        return self.grid.edges, at_or_below, at_or_below - self.ties[:-1]

    def _points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``[min, grid edges strictly inside (min, max), max]``, how many values are at or below each,
        and how many lie strictly between each and the one before (what no edge among them can split)."""
        grid, at_or_below, below = self._finish_grid()
        total = self.moments.count
        if self.minimum == self.maximum:
            return np.array([self.minimum]), np.array([total]), np.zeros(0, dtype=np.int64)
        inside = (grid > self.minimum) & (grid < self.maximum)
        points = np.concatenate([[self.minimum], grid[inside], [self.maximum]])
        cumulative = np.concatenate([[self.at_minimum], at_or_below[inside], [total]])
        right = np.concatenate([below[inside], [total - self.at_maximum]])
        return points, cumulative, right - cumulative[:-1]

    def representative(self) -> bool:
        """Whether no grid cell's open interior holds more than ``1/fine_bins`` of the values."""
        if self.fixed_edges is not None:
            return True
        _, _, interiors = self._points()
        return bool(interiors.max(initial=0) <= self.moments.count / self.settings.fine_bins)

    def recount(self) -> _NumericProfile:
        """A profile for a second pass whose grid is every ``stride``-th value of this pass."""
        return _NumericProfile(
            self.name, self.type_name, self.settings, self.seed, None, self.stride, np.concatenate(self.sample)
        )

    def summary(self) -> NumericSummary:
        points, cumulative, _ = self._points()
        total = self.moments.count
        if self.fixed_edges is not None:
            grid, at_or_below, _ = self._finish_grid()
            edges = self.fixed_edges
            inner = at_or_below[np.searchsorted(grid, edges)]
            counts = np.diff(np.concatenate([[0], inner, [total]]))
        else:
            targets = np.arange(1, self.settings.fine_bins) * (total / self.settings.fine_bins)
            chosen = np.unique(np.searchsorted(cumulative[1:-1], targets, side="left")) + 1
            chosen = np.concatenate([[0], chosen[chosen < points.size - 1], [points.size - 1]])
            edges = np.unique(points[chosen])
            counts = np.diff(np.concatenate([[0], cumulative[np.unique(chosen)], [total]]))
        sketch = QuantileSketch.from_counts(
            points, np.diff(np.concatenate([[0], cumulative])), self.settings.sketch_k, self.seed
        )
        chunks = self.raw
        return NumericSummary(
            self.name,
            self.type_name,
            self.missing,
            float(self.minimum),
            float(self.maximum),
            self.moments,
            edges,
            counts.astype(np.float64),
            sketch,
            np.sort(np.concatenate(chunks)) if chunks is not None else None,
        )


def _select_features(types: Mapping[str, Any], features: Sequence[str] | None, exclude: Sequence[str]) -> list[str]:
    if features is not None:
        unknown = [name for name in features if name not in types]
        if unknown:
            raise InvalidInputError(f"features not in the reference data: {unknown}")
        unsupported = [name for name in features if column_kind(types[name]) is None]
        if unsupported:
            raise InvalidInputError(
                f"features of a type drift cannot compare: {[f'{n} ({types[n]})' for n in unsupported]}"
            )
        return list(features)
    names = [name for name in types if name not in exclude and column_kind(types[name]) is not None]
    if not names:
        raise InvalidInputError(f"no numeric or categorical feature columns in the reference data {list(types)}")
    return names


def _edges(sketch: QuantileSketch, low: float, high: float, fine_bins: int) -> np.ndarray:
    interior = sketch.quantiles(np.arange(1, fine_bins) / fine_bins)
    return np.unique(np.concatenate([[low], interior[(interior > low) & (interior < high)], [high]]))


def _cdf_at_edges(summary: NumericSummary) -> np.ndarray:
    return np.cumsum(summary.counts[:-1]) / max(summary.counts.sum(), 1.0)


def _rebin(summary: NumericSummary, edges: np.ndarray) -> np.ndarray:
    """Counts of ``summary`` over new ``edges``, interpolating its CDF linearly inside its own bins."""
    cdf = np.interp(edges, summary.edges, _cdf_at_edges(summary), left=0.0, right=1.0)
    total = summary.counts.sum()
    return np.diff(np.concatenate([[0.0], cdf, [1.0]])) * total


def _largest_bin_share(summary: NumericSummary) -> float:
    return float(summary.counts.max() / max(summary.counts.sum(), 1.0))
