from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from model_fixtures import clustered_interactions, table_of

from driftloop.errors import InvalidInputError
from driftloop.model.data import ColumnMapping
from driftloop.model.inference import input_fn, model_fn, predict_fn
from driftloop.model.train import TrainingParameters, collect_hyperparameters, main

REQUIRED = ("ndcg_at_10", "recall_at_10", "hit_rate_at_10")


@pytest.fixture()
def sagemaker_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    dirs = {name: tmp_path / name for name in ("train", "model", "output", "output/data")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(dirs["train"]))
    monkeypatch.setenv("SM_MODEL_DIR", str(dirs["model"]))
    monkeypatch.setenv("SM_OUTPUT_DIR", str(dirs["output"]))
    monkeypatch.setenv("SM_OUTPUT_DATA_DIR", str(dirs["output/data"]))
    monkeypatch.delenv("SM_HPS", raising=False)
    monkeypatch.delenv("SM_CHANNEL_HOLDOUT", raising=False)
    return dirs


def write_partitioned(table: pa.Table, root: Path) -> None:
    """Two date partitions plus a manifest, as the merge step lays out a dataset version."""
    half = table.num_rows // 2
    for index, part in enumerate((table.slice(0, half), table.slice(half))):
        folder = root / f"date=2026-03-0{index + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, folder / "part-0.parquet")
    (root / "_manifest.json").write_text(json.dumps({"files": 2}))


def test_trains_from_a_partitioned_channel_and_writes_model_and_metrics(
    sagemaker_dirs: dict[str, Path], interactions: pa.Table
) -> None:
    write_partitioned(interactions, sagemaker_dirs["train"])
    assert main([]) == 0
    metrics = json.loads((sagemaker_dirs["model"] / "metrics.json").read_text())
    assert json.loads((sagemaker_dirs["output/data"] / "metrics.json").read_text()) == metrics
    for key in REQUIRED:
        assert 0 <= metrics[key] <= 1 and 0 <= metrics["baseline_popularity"][key] <= 1
    assert metrics["ndcg_at_10"] > metrics["baseline_popularity"]["ndcg_at_10"]
    assert metrics["refitted_on_all"] and metrics["fitted_interactions"] == interactions.num_rows
    assert metrics["model"]["users"] == len(set(interactions.column("user_id").to_pylist()))
    model = model_fn(str(sagemaker_dirs["model"]))
    assert len(predict_fn(input_fn(json.dumps({"user_id": "u1", "k": 4})), model)["items"]) == 4
    assert not (sagemaker_dirs["output"] / "failure").exists()


def test_train_until_keeps_later_rows_out_of_the_model(
    sagemaker_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        ("a", "x", "purchase", "2026-01-01T00:00"),
        ("b", "x", "purchase", "2026-01-02T00:00"),
        ("b", "y", "purchase", "2026-01-03T00:00"),
        ("late", "z", "purchase", "2026-02-01T00:00"),
        ("a", "y", "purchase", "2026-02-02T00:00"),
    ]
    pq.write_table(table_of(rows), sagemaker_dirs["train"] / "data.parquet")
    monkeypatch.setenv("SM_HPS", json.dumps({"train_until": "2026-01-15T00:00:00Z", "algorithm": "item_knn"}))
    assert main([]) == 0
    metrics = json.loads((sagemaker_dirs["model"] / "metrics.json").read_text())
    assert metrics["fitted_interactions"] == 3 and metrics["model"]["users"] == 2
    assert metrics["split"] == {"train_until": "2026-01-15T00:00:00+00:00"}
    assert metrics["algorithm"] == "item_knn"
    # a's later purchase of y is the holdout: the model (fit on a, b) should find it.
    assert metrics["users_evaluated"] == 1 and metrics["hit_rate_at_10"] == 1.0
    assert metrics["cold_users_skipped"] == 1


def test_holdout_channel_is_used_for_metrics(
    sagemaker_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pq.write_table(
        table_of([("a", "x", "purchase", "2026-01-01T00:00"), ("b", "x", "purchase", "2026-01-01T00:00")]),
        sagemaker_dirs["train"] / "data.parquet",
    )
    holdout = tmp_path / "holdout"
    holdout.mkdir()
    pq.write_table(table_of([("a", "q", "purchase", "2026-01-09T00:00")]), holdout / "data.parquet")
    monkeypatch.setenv("SM_CHANNEL_HOLDOUT", str(holdout))
    assert main([]) == 0
    metrics = json.loads((sagemaker_dirs["model"] / "metrics.json").read_text())
    assert metrics["split"] == {"holdout": "channel"} and metrics["users_evaluated"] == 1
    assert metrics["holdout_interactions"] == 1


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        ([], "0 interactions"),
        (
            [("solo", "x", "purchase", "2026-01-01T00:00"), ("solo", "y", "view", "2026-01-02T00:00")],
            "2 users",
        ),
    ],
)
def test_empty_or_single_user_data_fails_with_a_failure_file(
    sagemaker_dirs: dict[str, Path], rows: list, reason: str
) -> None:
    table = table_of(rows) if rows else table_of([("u", "i", "view", "2026-01-01T00:00")]).slice(0, 0)
    pq.write_table(table, sagemaker_dirs["train"] / "data.parquet")
    assert main([]) == 1
    failure = (sagemaker_dirs["output"] / "failure").read_text()
    assert failure.startswith("InvalidInputError") and reason in failure
    assert not (sagemaker_dirs["model"] / "metrics.json").exists()


def test_a_job_too_large_for_its_memory_limit_fails_before_fitting(sagemaker_dirs: dict[str, Path]) -> None:
    pq.write_table(clustered_interactions(n_users=40), sagemaker_dirs["train"] / "data.parquet")
    assert main(["--memory_limit_gb", "0.0001"]) == 1
    failure = (sagemaker_dirs["output"] / "failure").read_text()
    assert failure.startswith("InvalidInputError") and "memory_limit_gb=0.0001" in failure
    assert not (sagemaker_dirs["model"] / "recommender.npz").exists()


def test_missing_columns_and_unknown_hyperparameters_fail(
    sagemaker_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    pq.write_table(pa.table({"who": ["a"], "what": ["x"]}), sagemaker_dirs["train"] / "data.parquet")
    assert main([]) == 1
    assert "lack column" in (sagemaker_dirs["output"] / "failure").read_text()
    assert main(["--learning_rate", "0.1"]) == 1
    assert "learning_rate" in (sagemaker_dirs["output"] / "failure").read_text()


def test_hyperparameters_come_from_sm_hps_env_and_arguments() -> None:
    environ = {"SM_HPS": json.dumps({"algorithm": "ease", "k": 5}), "SM_HP_L2": "50", "SM_HP_K": "7"}
    collected = collect_hyperparameters(environ, ["--neighbours", "20", "--user-col=customer"])
    assert collected == {"algorithm": "ease", "k": 5, "l2": "50", "neighbours": "20", "user_col": "customer"}
    parameters = TrainingParameters.from_hyperparameters(
        {
            **collected,
            "sagemaker_program": "train.py",
            "event_type_col": "none",
            "recency_half_life_days": "none",
            "target_event_types": "purchase, cart",
            "event_weights": '{"purchase": 3}',
            "refit_on_all": "false",
        }
    )
    assert parameters.columns == ColumnMapping(user_col="customer", event_type_col=None)
    assert parameters.config.l2 == 50 and parameters.config.neighbours == 20
    assert parameters.config.recency_half_life_days is None
    assert parameters.config.target_event_types == ("purchase", "cart")
    assert parameters.config.event_weights == {"purchase": 3}
    assert parameters.k == 5 and parameters.refit_on_all is False


@pytest.mark.parametrize(
    "hyperparameters",
    [{"k": "0"}, {"evaluation_fraction": "1.5"}, {"refit_on_all": "maybe"}, {"train_until": "yesterday"}],
)
def test_bad_hyperparameters_are_rejected(hyperparameters: dict) -> None:
    with pytest.raises(InvalidInputError):
        TrainingParameters.from_hyperparameters(hyperparameters)


def test_missing_channel_fails(sagemaker_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SM_CHANNEL_TRAIN", os.path.join(str(sagemaker_dirs["train"]), "nowhere"))
    assert main([]) == 1
    assert "does not exist" in (sagemaker_dirs["output"] / "failure").read_text()
