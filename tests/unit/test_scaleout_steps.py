"""The scale-out merge's steps (plan, merge_parts, combine) on moto S3 and DynamoDB, and the ASL that runs them."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from driftloop.adapters.ledger import Ledger
from driftloop.adapters.s3 import get_json, put_json
from driftloop.config import Settings
from driftloop.data.manifest import dataset_source
from driftloop.data.merge import MergeConfig
from driftloop.drift import Baseline, build_baseline
from driftloop.errors import InvalidInputError
from driftloop.layout import inputs_key, merge_plan_key, quarantine_marker_key
from driftloop.local.template import load_app
from driftloop.pipeline import merge, scaleout
from driftloop.pipeline.inputs import fix_inputs
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.scaleout import MergePartsItem, UploadPart, batch_uploads
from driftloop.pipeline.services import Services
from driftloop.simulate.config import SimulatorConfig
from driftloop.simulate.simulator import Simulator
from driftloop.storage import ParquetSource, s3_filesystem

REPO = Path(__file__).resolve().parents[2]
KEY = ("user_id", "item_id", "event_type", "event_time")


def _part(index: int, size: int) -> UploadPart:
    return UploadPart(index, f"incoming/{index}.parquet", f"etag-{index}", size)


# -- batching -------------------------------------------------------------------------------------
def test_batches_respect_upload_count_and_bytes_and_keep_the_order() -> None:
    parts = [_part(index, size) for index, size in enumerate([10, 10, 10, 50, 10, 200, 1, 1])]
    batches = batch_uploads(parts, max_uploads=3, max_bytes=60)
    assert [[part.index for part in batch] for batch in batches] == [[0, 1, 2], [3, 4], [5], [6, 7]]
    assert [part for batch in batches for part in batch] == parts


def test_batching_nothing_gives_no_items_and_bad_limits_are_refused() -> None:
    assert batch_uploads([]) == []
    with pytest.raises(ValueError):
        batch_uploads([_part(0, 1)], max_uploads=0)


# -- the steps on moto ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def environment() -> dict[str, str]:
    app = load_app(REPO / "template.yaml")
    return app.functions["CombineMergeFunction"].environment


@pytest.fixture
def services(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        settings = Settings.from_env(environment)
        s3, dynamodb = boto3.client("s3"), boto3.client("dynamodb")
        s3.create_bucket(Bucket=settings.data_bucket)
        s3.put_bucket_versioning(Bucket=settings.data_bucket, VersioningConfiguration={"Status": "Enabled"})
        dynamodb.create_table(
            TableName=settings.ledger_table, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}])
        yield Services(settings=settings, s3=s3, sagemaker=None, sns=None, states=None, events=None,
                       ledger=Ledger(dynamodb, settings.ledger_table), trainer=None, endpoint=None)


@pytest.fixture(scope="module")
def shop() -> Simulator:
    return Simulator(SimulatorConfig(seed=3, n_users=200, n_items=60, events_per_month=500))


def _put_parquet(services: Services, key: str, table: pa.Table) -> dict[str, Any]:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    response = services.s3.put_object(Bucket=services.settings.data_bucket, Key=key, Body=buffer.getvalue())
    return {"key": key, "etag": response["ETag"].strip('"'), "size": len(buffer.getvalue())}


def _invocation(run_id: str, services: Services) -> StepInvocation:
    """The invocation of a step of run ``run_id``, which holds the model's lock (the steps renew it)."""
    lock = services.ledger.lock(services.settings.model_name)
    if lock:
        services.ledger.release_lock(services.settings.model_name, lock["holder"])
    services.ledger.acquire_lock(services.settings.model_name, run_id, services.clock(), 600)
    context = {"Execution": {"Id": f"arn:aws:states:us-east-1:1:execution:m:{run_id}", "Name": run_id,
                             "StartTime": "2025-08-01T00:05:12Z"},
               "State": {"Name": "CombineMerge", "EnteredTime": "2025-08-01T00:06:00Z"}}
    run = {"run_id": run_id, "model": services.settings.model_name, "trigger": {"type": "schedule"},
           "started_at": "2025-08-01T00:05:12Z", "execution": context["Execution"]["Id"]}
    return StepInvocation.model_validate({"state": {"admission": {"run": run}}, "context": context})


def _champion(services: Services, shop: Simulator) -> Baseline:
    """Month 0 as the champion's training set (merged by the single-Lambda step) with its baseline."""
    bucket = services.settings.data_bucket
    upload = _put_parquet(services, "incoming/2025-01.parquet", shop.month(0))
    put_json(services.s3, bucket, inputs_key("run-0"), {"readable": [upload], "unreadable": [], "rejected": []})
    result = merge.run(_invocation("run-0", services), services)
    filesystem = s3_filesystem(services.s3)
    baseline = build_baseline(dataset_source(filesystem, f"{bucket}/{result['dataset_dir']}"))
    put_json(services.s3, bucket, "baselines/run-0.json", baseline.to_dict())
    services.ledger.put_champion(services.settings.model_name, {
        "run_id": "run-0", "dataset_dir": result["dataset_dir"], "dataset_manifest_key": result["manifest_key"],
        "baseline_key": "baselines/run-0.json"})
    return baseline


def _stage_uploads(services: Services, shop: Simulator, run_id: str) -> tuple[list[dict[str, Any]], pa.Table]:
    """Month 1 in pieces of 200 rows, a fifth repeating rows of the first, and a file that is not Parquet,
    fixed as the run's inputs (the readable ones, then the one quarantined on the way)."""
    month = shop.month(1)
    pieces = [month.slice(offset, 200) for offset in range(0, month.num_rows, 200)]
    for n, piece in enumerate(pieces):
        _put_parquet(services, f"incoming/m1/{n}.parquet", piece)
    _put_parquet(services, "incoming/m1/repeat.parquet", pieces[0].slice(0, 30))
    services.s3.put_object(Bucket=services.settings.data_bucket, Key="incoming/m1/broken.parquet", Body=b"nope")
    inputs = fix_inputs(services, run_id, services.ledger.champion(services.settings.model_name))
    assert [entry["key"] for entry in inputs["unreadable"]] == ["incoming/m1/broken.parquet"]
    return inputs["readable"] + inputs["unreadable"], month


def _run_children(services: Services, run_id: str, skip: set[int] = frozenset()) -> list[dict[str, Any]]:
    items = get_json(services.s3, services.settings.data_bucket, merge_plan_key(run_id))
    return [scaleout.merge_parts(MergePartsItem.model_validate(item), services)
            for item in items if item["item"] not in skip]


def _keys(filesystem: Any, paths: Any) -> set[tuple]:
    table = pa.concat_tables(pq.read_table(path, filesystem=filesystem, columns=list(KEY)) for path in paths)
    return set(zip(*(table.column(name).to_pylist() for name in KEY), strict=True))


def test_plan_lists_the_fixed_uploads_once_as_a_json_array(services: Services, shop: Simulator) -> None:
    _champion(services, shop)
    uploads, _ = _stage_uploads(services, shop, "run-1")
    result = scaleout.plan(_invocation("run-1", services), services, max_uploads=3)
    items = get_json(services.s3, services.settings.data_bucket, result["items_key"])
    assert isinstance(items, list) and len(items) == result["items"] == 2
    parts = [part for item in items for part in item["parts"]]
    assert [part["key"] for part in parts] == [upload["key"] for upload in uploads[:-1]], "never the unreadable"
    assert all(part["version_id"] == upload["version_id"] is not None
               for part, upload in zip(parts, uploads, strict=False))
    assert [part["index"] for part in parts] == list(range(len(uploads) - 1))
    assert all(item["baseline_key"] == "baselines/run-0.json" and item["run_id"] == "run-1" for item in items)

    put_json(services.s3, services.settings.data_bucket, inputs_key("run-1"), {"readable": [], "unreadable": []})
    assert scaleout.plan(_invocation("run-1", services), services) == result, "a retry keeps the first plan"


def test_map_and_combine_give_the_single_merge_result(services: Services, shop: Simulator) -> None:
    reference = _champion(services, shop)
    uploads, month = _stage_uploads(services, shop, "run-1")
    put_json(services.s3, services.settings.data_bucket, inputs_key("run-2"),
             get_json(services.s3, services.settings.data_bucket, inputs_key("run-1")))
    scaleout.plan(_invocation("run-1", services), services)
    children = _run_children(services, "run-1")
    assert sum(part["quarantined"] for child in children for part in child["parts"]) == 0, "quarantined before"
    result = scaleout.combine(_invocation("run-1", services), services)
    bucket, broken = services.settings.data_bucket, uploads[-1]
    marker = get_json(services.s3, bucket, quarantine_marker_key(f"s3://{bucket}/{broken['key']}", broken["etag"]))
    assert marker["run_id"] == "run-1", "later runs do not count the quarantined version again"
    single = merge.run(_invocation("run-2", services), services)

    assert set(single) <= set(result)
    for field in ("rows_in", "rows_out", "duplicates_dropped", "previous_version", "holdout_from"):
        assert result[field] == single[field], field
    assert [entry["source"] for entry in result["quarantined"]] == [e["source"] for e in single["quarantined"]]
    filesystem = s3_filesystem(services.s3)
    merged = _keys(filesystem, dataset_source(filesystem, f"{bucket}/{result['dataset_dir']}").paths)
    assert merged == _keys(filesystem, dataset_source(filesystem, f"{bucket}/{single['dataset_dir']}").paths)
    manifest = get_json(services.s3, bucket, result["manifest_key"])
    consumed = {entry["source"] for entry in manifest["consumed_sources"]}
    assert {f"s3://{bucket}/{upload['key']}" for upload in uploads[:-1]} <= consumed

    summary = Baseline.from_dict(get_json(services.s3, bucket, result["scale_out"]["drift_summary_key"]))
    whole = build_baseline(ParquetSource(filesystem, tuple(f"{bucket}/{u['key']}" for u in uploads[:-1])),
                           features=list(reference.features), bins_from=reference)
    assert summary.row_count == whole.row_count == month.num_rows + 30
    for name, feature in whole.features.items():
        if hasattr(feature, "edges"):
            np.testing.assert_array_equal(summary.features[name].edges, reference.features[name].edges)
            np.testing.assert_allclose(summary.features[name].counts, feature.counts)
        else:
            assert summary.features[name].counts == feature.counts, name


def test_unfinished_children_count_as_bad_uploads_and_stay_unconsumed(services: Services, shop: Simulator) -> None:
    _champion(services, shop)
    uploads, _ = _stage_uploads(services, shop, "run-1")
    scaleout.plan(_invocation("run-1", services), services, max_uploads=1)
    _run_children(services, "run-1", skip={2})
    result = scaleout.combine(_invocation("run-1", services), services)
    assert result["scale_out"]["failed_uploads"] == [uploads[2]["key"]]
    bucket = services.settings.data_bucket
    consumed = {entry["source"] for entry in get_json(services.s3, bucket, result["manifest_key"])["consumed_sources"]}
    assert f"s3://{bucket}/{uploads[2]['key']}" not in consumed, "the next run picks it up again"
    assert f"s3://{bucket}/{uploads[1]['key']}" in consumed

    put_json(services.s3, bucket, inputs_key("run-3"), get_json(services.s3, bucket, inputs_key("run-1")))
    scaleout.plan(_invocation("run-3", services), services, max_uploads=1)
    _run_children(services, "run-3", skip={0, 1, 2})
    with pytest.raises(InvalidInputError, match="map iterations did not finish"):
        scaleout.combine(_invocation("run-3", services), services)


# -- the state machine and template that run them -----------------------------------------------------
def _definition() -> dict[str, Any]:
    text = (REPO / "statemachines/retrain.asl.json").read_text()
    return json.loads(re.sub(r"\$\{\w+\}", "7", re.sub(r'"\$\{(\w+)\}"', r'"\1"', text)))


def test_the_map_branch_follows_drift_and_rejoins_training() -> None:
    states = _definition()["States"]
    assert [choice["Next"] for choice in states["DriftDecision"]["Choices"]] == ["MergeScale"]
    [many] = states["MergeScale"]["Choices"]
    assert (many["Variable"], many["Next"], states["MergeScale"]["Default"]) == (
        "$.drift.uploads", "PlanMergeParts", "MergeDatasets")
    assert states["PlanMergeParts"]["Next"] == "MergeParts" and states["MergeParts"]["Next"] == "CombineMerge"
    assert states["CombineMerge"]["ResultPath"] == states["MergeDatasets"]["ResultPath"] == "$.merge"
    assert states["CombineMerge"]["Next"] == states["MergeDatasets"]["Next"] == "StartTraining"
    for name in ("PlanMergeParts", "MergeParts", "CombineMerge"):
        assert states[name]["Catch"][0]["Next"] == "RestoreChampion", name


def test_the_map_reads_the_plan_and_tolerates_what_the_merge_tolerates() -> None:
    mapped = _definition()["States"]["MergeParts"]
    assert mapped["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    reader = mapped["ItemReader"]
    assert reader["Resource"] == "arn:aws:states:::s3:getObject"
    assert reader["ReaderConfig"] == {"InputType": "JSON"}
    assert reader["Parameters"]["Key.$"] == "$.merge_plan.items_key"
    assert mapped["ToleratedFailurePercentage"] == MergeConfig().max_bad_share * 100
    [child] = mapped["ItemProcessor"]["States"].values()
    assert child["TimeoutSeconds"] > 900 and child["Retry"]


def test_template_wires_the_two_functions_and_the_map_rights(environment: dict[str, str]) -> None:
    app = load_app(REPO / "template.yaml")
    for logical_id, folder in (("MergePartFunction", "merge_part"), ("CombineMergeFunction", "combine_merge")):
        function = app.functions[logical_id]
        assert function.code_dir.name == folder and function.timeout == 900
        assert function.environment == environment
    text = (REPO / "template.yaml").read_text()
    assert "Action: states:StartExecution" in text
    assert '${DataBucket.Arn}/runs/*/merge-parts.json' in text
    assert app.parameters["ScaleOutUploads"] == "20"
