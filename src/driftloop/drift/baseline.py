"""The reference profile: per-feature summaries built once from training data, stored with the model.

Numeric features keep exact counts over fine bins whose edges are reference quantiles (from a KLL
sketch in a first pass), exact moments, min and max, and the sketch itself. Categorical features keep
exact counts per category. Small references also keep their raw values so comparisons can be exact.

Merging: summaries over the same bin edges (``build_baseline(..., bins_from=...)``) merge exactly.
Otherwise the merged edges are quantiles of the merged sketch and each side's counts are re-binned by
linear interpolation of its CDF; any CDF value is then off by at most the largest fine-bin share of
either input, which is recorded in ``cdf_error_bound``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from driftloop.drift.reading import (
    CATEGORICAL,
    NUMERIC,
    category_counts,
    column_kind,
    inferred_type,
    iter_batches,
    numeric_values,
    read_source_schema,
)
from driftloop.drift.sketch import QuantileSketch
from driftloop.errors import InvalidInputError
from driftloop.storage import ParquetSource

FORMAT_VERSION = 1
OTHER_CATEGORY = "__other__"
DEFAULT_EXCLUDE = ("user_id", "item_id", "event_time")


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

    def bin_counts(self, values: np.ndarray) -> np.ndarray:
        """Counts of ``values`` over this summary's fine bins: ``<= min``, the quantile bins, ``> max``."""
        return np.bincount(np.searchsorted(self.edges, values, side="left"), minlength=self.edges.size + 1)

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
    """Profile the reference data in bounded memory: one pass for quantile sketches (numeric
    features), one for exact bin counts. ``bins_from`` reuses another baseline's bin edges (one pass,
    and the results merge exactly), as partitions of a scaled-out build do."""
    settings = settings or (bins_from.settings if bins_from else BaselineSettings())
    schema = read_source_schema(source)
    if schema.row_count == 0:
        raise InvalidInputError("the reference data has no rows")
    names = _select_features(schema.types, features, exclude)
    numeric = [name for name in names if column_kind(schema.types[name]) == NUMERIC]
    categorical = [name for name in names if name not in numeric]
    sketches = {name: QuantileSketch(settings.sketch_k, seed=index) for index, name in enumerate(numeric)}
    moments = {name: Moments() for name in numeric}
    missing = dict.fromkeys(names, 0)
    extremes = {name: [np.inf, -np.inf] for name in numeric}
    raw: dict[str, list[np.ndarray] | None] = {name: [] for name in numeric}
    counts: dict[str, dict[str, int]] = {name: {} for name in categorical}
    for batch in iter_batches(source, names):
        for name in numeric:
            values, absent = numeric_values(batch.column(name))
            missing[name] += absent
            if values.size:
                sketches[name].update(values)
                moments[name].add(values)
                extremes[name] = [min(extremes[name][0], values.min()), max(extremes[name][1], values.max())]
                chunks = raw[name]
                if chunks is not None:
                    raw[name] = chunks + [values] if moments[name].count <= settings.exact_limit else None
        for name in categorical:
            batch_counts, absent = category_counts(batch.column(name))
            missing[name] += absent
            totals = counts[name]
            for category, count in batch_counts.items():
                totals[category] = totals.get(category, 0) + count
    summaries: dict[str, FeatureSummary] = {}
    for name in numeric:
        if moments[name].count == 0:
            raise InvalidInputError(f"reference column {name!r} has no values (all null)")
        low, high = float(extremes[name][0]), float(extremes[name][1])
        reused = bins_from.features.get(name) if bins_from else None
        edges = (
            reused.edges
            if isinstance(reused, NumericSummary)
            else _edges(sketches[name], low, high, settings.fine_bins)
        )
        chunks = raw[name]
        summaries[name] = NumericSummary(
            name,
            inferred_type(schema.types[name]),
            missing[name],
            low,
            high,
            moments[name],
            edges,
            np.zeros(edges.size + 1),
            sketches[name],
            np.sort(np.concatenate(chunks)) if chunks is not None else None,
        )
    if numeric:
        for batch in iter_batches(source, numeric):
            for name in numeric:
                values, _ = numeric_values(batch.column(name))
                summary = summaries[name]
                assert isinstance(summary, NumericSummary)
                summary.counts += summary.bin_counts(values)
    for name in categorical:
        summaries[name] = CategoricalSummary(
            name, "String", missing[name], {key: float(value) for key, value in counts[name].items()}
        ).truncate(settings.max_categories)
    ordered = {name: summaries[name] for name in names}
    return Baseline(ordered, tuple(schema.columns), schema.row_count, settings)


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
