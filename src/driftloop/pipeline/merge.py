"""Merge the champion's training set with the run's uploads into a new dataset version."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from driftloop.adapters.s3 import get_json
from driftloop.data.merge import MergeConfig, dataset_source, merge_datasets
from driftloop.pipeline.inputs import mark_quarantined
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.services import Services
from driftloop.storage import s3_filesystem, s3_source


def dataset_dir(model: str, version: str) -> str:
    return f"datasets/{model}/v={version}"


def run(invocation: StepInvocation, services: Services) -> dict[str, Any]:
    settings = services.settings
    bucket = settings.data_bucket
    run = invocation.run
    champion = services.ledger.champion(settings.model_name)
    inputs = get_json(services.s3, bucket, f"runs/{run['run_id']}/inputs.json")
    filesystem = s3_filesystem(services.s3)
    previous = dataset_source(filesystem, f"{bucket}/{champion['dataset_dir']}") if champion else None
    uploads = inputs["readable"] + inputs["unreadable"]
    new = [s3_source(services.s3, bucket, [entry["key"]]) for entry in uploads]
    out_dir = dataset_dir(settings.model_name, run["run_id"])
    manifest = merge_datasets(
        previous,
        new,
        filesystem,
        f"{bucket}/{out_dir}",
        MergeConfig(quarantine_dir=f"{bucket}/quarantine/{run['run_id']}",
                    partition_by=None if settings.dataset_partitioning == "none" else "event_date"),
        source_versions={f"s3://{bucket}/{entry['key']}": entry["etag"] for entry in uploads},
    ).to_dict()
    mark_quarantined(services, run["run_id"], manifest["quarantined"],
                     {f"s3://{bucket}/{entry['key']}": entry["etag"] for entry in uploads})
    newest = datetime.fromisoformat(manifest["time_range"]["max"])
    holdout_from = newest - timedelta(days=settings.holdout_days)
    return {
        "dataset_dir": out_dir,
        "manifest_key": f"{out_dir}/_manifest.json",
        "rows_in": manifest["rows_in"],
        "rows_out": manifest["rows_out"],
        "duplicates_dropped": manifest["duplicates_dropped"],
        "quarantined": manifest["quarantined"][:20],
        "content_hash": manifest["content_hash"],
        "previous_version": champion["dataset_dir"] if champion else None,
        "holdout_from": holdout_from.isoformat(),
    }
