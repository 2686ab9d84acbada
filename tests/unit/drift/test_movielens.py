"""MovieLens 100K month over month (read from the installed ``recbole`` wheel, never committed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from driftloop.drift import build_baseline, compare_to_baseline
from driftloop.storage import local_source


def _movielens_folder() -> Path:
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("MovieLens 100K comes from the recbole wheel: pip install --no-deps recbole==1.2.1")
    folder = Path(spec.submodule_search_locations[0]) / "dataset_example" / "ml-100k"
    if not (folder / "ml-100k.inter").exists():
        pytest.skip(f"recbole is installed but {folder} has no ml-100k.inter")
    return folder


def _read(path: Path) -> pa.Table:
    table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter="\t"))
    return table.rename_columns([name.split(":")[0] for name in table.column_names])


@pytest.fixture(scope="module")
def ratings() -> pa.Table:
    folder = _movielens_folder()
    inter, users = _read(folder / "ml-100k.inter"), _read(folder / "ml-100k.user")
    table = inter.join(users.select(["user_id", "age", "gender", "occupation"]), "user_id")
    months = pa.array(table["timestamp"].to_numpy().astype("datetime64[s]").astype("datetime64[M]").astype(str))
    return table.append_column("month", months).drop_columns(["timestamp"])


def _write(table: pa.Table, path: Path) -> str:
    pq.write_table(table, path)
    return str(path)


FEATURES = ["rating", "age", "gender", "occupation"]


def test_random_halves_do_not_alarm(ratings, tmp_path):
    order = np.random.default_rng(0).permutation(ratings.num_rows)
    half = ratings.num_rows // 2
    reference = _write(ratings.take(order[:half]), tmp_path / "a.parquet")
    current = _write(ratings.take(order[half:]), tmp_path / "b.parquet")
    report = compare_to_baseline(build_baseline(local_source(reference), FEATURES), local_source(current))
    assert report.decision == "none", report.reasons


def test_month_over_month_explains_the_user_mix_shift(ratings, tmp_path):
    months = sorted(set(ratings["month"].to_pylist()))
    assert len(months) == 8
    decisions = {}
    for previous, month in zip(months, months[1:], strict=False):
        reference = _write(
            ratings.filter(pa.compute.equal(ratings["month"], previous)), tmp_path / f"{previous}.parquet"
        )
        current = _write(ratings.filter(pa.compute.equal(ratings["month"], month)), tmp_path / f"{month}.parquet")
        report = compare_to_baseline(build_baseline(local_source(reference), FEATURES), local_source(current))
        decisions[month] = report
        for feature in report.features.values():
            assert 0.0 <= feature.statistics["js_distance"] <= 1.0
    # Who rates changes from month to month (new cohorts of users), what they rate much less:
    # the demographic features drift somewhere over the period while the rating scale stays put.
    drifted = {name for report in decisions.values() for name in report.drifted_features}
    assert drifted & {"age", "occupation", "gender"}
    assert all(report.features["rating"].statistics["js_distance"] < 0.1 for report in decisions.values())
