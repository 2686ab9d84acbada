"""Rows the merge cannot key, through the real template: quarantined to S3 with a reason and counted."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import load_event, running, runs_of

from driftloop.local.shop import Shop, data_bucket, incoming_key, upload_bytes

NULL_TIMES = 700


def test_rows_with_a_null_key_reach_quarantine_not_the_dataset_and_the_run_counts_them(workspace: Path) -> None:
    shop = Shop.load(workspace)
    month = shop.simulator().month(shop.month + 1)
    column = month.schema.get_field_index("event_time")
    times = month["event_time"].to_pylist()
    times[:NULL_TIMES] = [None] * NULL_TIMES
    upload = month.set_column(column, "event_time", pa.array(times, month.schema.field("event_time").type))
    buffer = io.BytesIO()
    pq.write_table(upload, buffer)
    with running(workspace) as (world, runner):
        key = incoming_key(world, "with-null-times.parquet")
        upload_bytes(world, key, buffer.getvalue())
        world.drain_rule_queues()
        delivery = runner.replay(load_event("manual_retrain_request.json"))
        runner.wait(timeout=600)
        (arn,) = delivery.executions
        (run,) = [r for r in runs_of(world) if r["execution"] == arn]
        merge = run["evidence"]["merge"]
        assert merge["null_key_rows"] == NULL_TIMES
        s3, bucket = world.client("s3"), data_bucket(world)
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=merge["manifest_key"])["Body"].read())
        [entry] = manifest["quarantined_rows"]
        assert entry["source"] == f"s3://{bucket}/{key}" and entry["null_in"] == {"event_time": NULL_TIMES}
        copy_key = entry["copy"].removeprefix(f"{bucket}/")
        copy = pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=copy_key)["Body"].read()))
        assert copy.num_rows == NULL_TIMES and copy["event_time"].null_count == NULL_TIMES
        assert s3.head_object(Bucket=bucket, Key=f"{copy_key}.reason.json")
        assert manifest["rows_in"] == (manifest["rows_out"] + manifest["duplicates_dropped"]
                                       + manifest["null_key_rows"] + manifest["retention"]["rows_dropped"])
        assert not any(e["source"].endswith("with-null-times.parquet") for e in manifest["quarantined"])
