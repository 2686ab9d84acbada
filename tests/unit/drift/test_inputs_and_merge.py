"""Clear errors for bad inputs; partial baselines merge exactly (shared bins) or within the bound."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from conftest import interactions

from driftloop.drift import Baseline, build_baseline, compare_to_baseline
from driftloop.drift.baseline import NumericSummary
from driftloop.drift.reading import numeric_values
from driftloop.errors import InvalidInputError, UnsafeSchemaChangeError
from driftloop.storage import local_source


def _source(path):
    return local_source(str(path))


def test_corrupt_file_names_the_file(write_parquet, tmp_path):
    reference = build_baseline(_source(write_parquet("ref.parquet", interactions(2000, 1))))
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InvalidInputError, match="broken.parquet"):
        compare_to_baseline(reference, _source(broken))


def test_empty_inputs_are_rejected(write_parquet, tmp_path):
    empty = write_parquet("empty.parquet", interactions(10, 1).slice(0, 0))
    with pytest.raises(InvalidInputError, match="no rows"):
        build_baseline(_source(empty))
    (tmp_path / "folder").mkdir()
    with pytest.raises(InvalidInputError, match="no Parquet files"):
        build_baseline(_source(tmp_path / "folder"))
    reference = build_baseline(_source(write_parquet("ref.parquet", interactions(2000, 1))))
    with pytest.raises(InvalidInputError, match="no rows"):
        compare_to_baseline(reference, _source(empty))


def test_schema_mismatch_is_reported_or_rejected(write_parquet):
    reference = build_baseline(_source(write_parquet("ref.parquet", interactions(3000, 1))))
    table = interactions(3000, 2)
    changed = table.drop_columns(["device"])
    changed = changed.set_column(changed.schema.get_field_index("price"), "price", pa.array(np.full(3000, "cheap")))
    changed = changed.append_column("promo_flag", pa.array(np.zeros(3000, dtype=bool)))
    report = compare_to_baseline(reference, _source(write_parquet("cur.parquet", changed)))
    checks = {(v.feature, v.check) for v in report.quality}
    assert {
        ("device", "missing_column_check"),
        ("price", "data_type_check"),
        ("promo_flag", "extra_column_check"),
    } <= checks
    assert "price" not in report.features and report.decision == "warn"
    unrelated = pa.table({"something": pa.array([1.0, 2.0])})
    with pytest.raises(InvalidInputError, match="shares no comparable feature"):
        compare_to_baseline(reference, _source(write_parquet("other.parquet", unrelated)))


def test_files_disagreeing_on_a_column_type_are_unsafe(write_parquet, tmp_path):
    write_parquet("parts/a.parquet", pa.table({"price": pa.array([1.0, 2.0])}))
    write_parquet("parts/b.parquet", pa.table({"price": pa.array(["1", "2"])}))
    with pytest.raises(UnsafeSchemaChangeError, match="price"):
        build_baseline(_source(tmp_path / "parts"))


def test_quality_checks_completeness_domain_and_type(write_parquet):
    reference = build_baseline(_source(write_parquet("ref.parquet", interactions(5000, 1))))
    table = interactions(5000, 2)
    device = np.array(table["device"].to_pylist(), dtype=object)
    device[:300] = "smart-tv"
    tenure = table["user_tenure_days"].to_numpy() + 0.5
    mask = np.random.default_rng(0).random(5000) < 0.2
    table = table.set_column(table.schema.get_field_index("device"), "device", pa.array(device.tolist()))
    table = table.set_column(
        table.schema.get_field_index("session_minutes"),
        "session_minutes",
        pa.array(table["session_minutes"].to_numpy(), mask=mask),
    )
    table = table.set_column(
        table.schema.get_field_index("user_tenure_days"), "user_tenure_days", pa.array(tenure.astype(np.int64))
    )
    report = compare_to_baseline(reference, _source(write_parquet("cur.parquet", table)))
    checks = {(v.feature, v.check) for v in report.quality}
    assert ("device", "categorical_values_check") in checks
    assert ("session_minutes", "completeness_check") in checks
    assert report.features["device"].new_categories == ["smart-tv"]


def test_integral_baseline_flags_fractional_values(write_parquet):
    reference = build_baseline(_source(write_parquet("ref.parquet", pa.table({"qty": pa.array(np.arange(4000) % 9)}))))
    current = pa.table({"qty": pa.array((np.arange(4000) % 9) + np.where(np.arange(4000) < 400, 0.5, 0.0))})
    report = compare_to_baseline(reference, _source(write_parquet("cur.parquet", current)))
    [violation] = [v for v in report.quality if v.check == "data_type_check"]
    assert "90.0% of data is Integral" in violation.detail


def test_merge_with_shared_bins_is_exact(write_parquet):
    whole = interactions(40_000, 7)
    full = build_baseline(_source(write_parquet("full.parquet", whole)))
    first = build_baseline(_source(write_parquet("a.parquet", whole.slice(0, 15_000))), bins_from=full)
    second = build_baseline(_source(write_parquet("b.parquet", whole.slice(15_000))), bins_from=full)
    merged = first.merge(second)
    for name, summary in full.features.items():
        other = merged.features[name]
        if isinstance(summary, NumericSummary):
            assert np.array_equal(summary.counts, other.counts)
            assert other.count == summary.count and other.missing == summary.missing
            assert other.minimum == summary.minimum and other.maximum == summary.maximum
        else:
            assert other.counts == summary.counts
    assert merged.row_count == full.row_count


def test_merge_with_different_bins_stays_within_its_cdf_bound(write_parquet):
    whole = interactions(40_000, 8)
    first = build_baseline(_source(write_parquet("a.parquet", whole.slice(0, 25_000))))
    second = build_baseline(_source(write_parquet("b.parquet", whole.slice(25_000))))
    merged = first.merge(second)
    values = np.sort(whole["price"].to_numpy())
    summary = merged.features["price"]
    assert isinstance(summary, NumericSummary) and summary.cdf_error_bound > 0
    merged_cdf = np.cumsum(summary.counts[:-1]) / summary.counts.sum()
    true_cdf = np.searchsorted(values, summary.edges, side="right") / values.size
    assert np.max(np.abs(merged_cdf - true_cdf)) <= summary.cdf_error_bound
    assert Baseline.from_dict(merged.to_dict()).features["price"].cdf_error_bound == summary.cdf_error_bound


def test_malformed_baseline_document_is_rejected():
    with pytest.raises(InvalidInputError, match="not a driftloop baseline"):
        Baseline.from_dict({"features": {}})
    with pytest.raises(InvalidInputError, match="malformed"):
        Baseline.from_dict({"format": "driftloop-baseline", "version": 1, "features": {"x": {"kind": "numeric"}}})


@pytest.mark.parametrize(
    "data_type", [pa.int8(), pa.uint16(), pa.int32(), pa.int64(), pa.uint64(), pa.float16(), pa.float32(), pa.float64()]
)
def test_numeric_values_drop_nulls_and_non_finite_values_of_every_width_and_offset(data_type):
    rng = np.random.default_rng(13)
    raw = rng.integers(0, 100, 1000)
    mask = rng.random(1000) < 0.2
    floats = pa.types.is_floating(data_type)
    numbers = raw.astype(np.float16 if data_type == pa.float16() else np.float64)
    if floats:
        numbers[[3, 7, 11]] = [np.nan, np.inf, -np.inf]
    array = pa.array(numbers if floats else raw, mask=mask, type=data_type)
    for start, length in [(0, 1000), (5, 600), (333, 1)]:
        chunk = array.slice(start, length)
        expected = np.array([value for value in chunk.to_pylist() if value is not None], dtype=np.float64)
        expected = expected[np.isfinite(expected)]
        values, missing = numeric_values(chunk)
        assert values.dtype == np.float64 and np.array_equal(values, expected)
        assert missing == length - expected.size
