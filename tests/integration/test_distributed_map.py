"""The scale-out merge through the real template and state machine: moto runs the Distributed Map in-process."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import history, load_event, object_keys, running, runs_of, states_entered

from driftloop.data.manifest import dataset_source
from driftloop.local.shop import Shop, data_bucket, incoming_key, upload_bytes
from driftloop.storage import s3_filesystem

PIECES = 5
KEY = ("user_id", "item_id", "event_type", "event_time")


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _keys(table: pa.Table) -> set[tuple]:
    columns = [table.column(name).to_pylist() for name in KEY]
    return set(zip(*columns, strict=True))


def _read_keys(filesystem, paths) -> set[tuple]:
    return _keys(pa.concat_tables(pq.read_table(path, filesystem=filesystem, columns=list(KEY)) for path in paths))


def test_many_uploads_merge_in_a_distributed_map_then_train(workspace: Path) -> None:
    shop = Shop.load(workspace)
    month = shop.simulator().month(shop.month + 1)
    size = -(-month.num_rows // PIECES)
    pieces = [month.slice(offset, size) for offset in range(0, month.num_rows, size)]
    with running(workspace, ScaleOutUploads="3", ScaleOutMaxConcurrency="2") as (world, runner):
        for number, piece in enumerate(pieces):
            upload_bytes(world, incoming_key(world, f"burst/part-{number:02d}.parquet"), _parquet(piece))
        # The repeated rows of the last piece are dropped; a file that is not Parquet is quarantined when
        # the run fixes its inputs.
        upload_bytes(world, incoming_key(world, "burst/repeat.parquet"), _parquet(pieces[-1].slice(0, 50)))
        upload_bytes(world, incoming_key(world, "burst/broken.parquet"), b"not parquet at all")
        world.drain_rule_queues()  # one manual request instead of one run per upload
        delivery = runner.replay(load_event("manual_retrain_request.json"))
        results = runner.wait(timeout=600)
        (arn,) = delivery.executions
        assert results[arn].status == "SUCCEEDED", results[arn]

        events = history(world, arn)
        visited = states_entered(events)
        for state in ("MergeScale", "PlanMergeParts", "MergeParts", "CombineMerge", "StartTraining",
                      "EvaluateChallenger", "Finalize"):
            assert state in visited, f"{state} not visited: {visited}"
        assert "MergeDatasets" not in visited
        kinds = [event["type"] for event in events]
        assert "MapRunStarted" in kinds and "MapRunSucceeded" in kinds

        (run,) = [r for r in runs_of(world) if r["execution"] == arn]
        merge = run["evidence"]["merge"]
        bucket = data_bucket(world)
        s3 = world.client("s3")
        inputs = json.loads(s3.get_object(Bucket=bucket, Key=f"runs/{run['run_id']}/inputs.json")["Body"].read())
        readable = [entry["key"] for entry in inputs["readable"]]
        assert {f"incoming/burst/part-{n:02d}.parquet" for n in range(PIECES)} <= set(readable)
        assert merge["scale_out"]["uploads"] == len(readable), "unreadable uploads were quarantined before"
        assert merge["scale_out"]["failed_count"] == 0
        quarantined = {entry["key"].rsplit("/", 1)[-1] for entry in inputs["unreadable"]}
        assert "broken.parquet" in quarantined
        assert merge["duplicates_dropped"] >= 50

        filesystem = s3_filesystem(s3)
        merged = _read_keys(filesystem, dataset_source(filesystem, f"{bucket}/{merge['dataset_dir']}").paths)
        uploaded = _read_keys(filesystem, [f"{bucket}/{key}" for key in readable])
        assert _keys(month) <= merged, "every valid uploaded row reached the new dataset"
        previous = _read_keys(filesystem, dataset_source(filesystem, f"{bucket}/{merge['previous_version']}").paths)
        assert merge["rows_out"] == len(merged)
        assert merged == previous | uploaded

        summary = json.loads(s3.get_object(Bucket=bucket, Key=merge["scale_out"]["drift_summary_key"])["Body"].read())
        upload_rows = sum(pq.ParquetFile(f"{bucket}/{key}", filesystem=filesystem).metadata.num_rows
                          for key in readable)
        assert summary["row_count"] == upload_rows, "the rows of every merged upload, over the champion's bins"
        assert not any(key.startswith(f"{merge['dataset_dir']}/_partials") for key in object_keys(world))
