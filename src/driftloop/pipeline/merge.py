"""Merge the champion's training set with the run's uploads into a new dataset version."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from driftloop.adapters.s3 import get_json
from driftloop.data.merge import MergeConfig, dataset_source, merge_datasets
from driftloop.layout import dataset_dir, inputs_key, manifest_key, object_path, quarantine_dir, s3_uri
from driftloop.pipeline.contracts import Merge, returns
from driftloop.pipeline.inputs import mark_quarantined, upload_source
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.services import Services, hold_lock
from driftloop.storage import s3_filesystem


def merge_config(services: Services, run_id: str) -> MergeConfig:
    """How every branch of the state machine merges (one Lambda, or the scale-out map)."""
    settings = services.settings
    return MergeConfig(quarantine_dir=object_path(settings.data_bucket, quarantine_dir(run_id)),
                       partition_by=None if settings.dataset_partitioning == "none" else "event_date")


def merge_result(services: Services, run_id: str, out_dir: str, manifest: dict[str, Any],
                 champion: dict[str, Any] | None, etags: dict[str, str]) -> dict[str, Any]:
    """Remember what was quarantined and describe the committed version (``$.merge``)."""
    mark_quarantined(services, run_id, manifest["quarantined"], etags)
    newest = datetime.fromisoformat(manifest["time_range"]["max"])
    return {
        "dataset_dir": out_dir,
        "manifest_key": manifest_key(out_dir),
        "rows_in": manifest["rows_in"],
        "rows_out": manifest["rows_out"],
        "duplicates_dropped": manifest["duplicates_dropped"],
        "null_key_rows": manifest["null_key_rows"],
        "quarantined": manifest["quarantined"][:20],
        "content_hash": manifest["content_hash"],
        "previous_version": champion["dataset_dir"] if champion else None,
        "holdout_from": (newest - timedelta(days=services.settings.holdout_days)).isoformat(),
    }


@returns(Merge)
def run(invocation: StepInvocation, services: Services) -> dict[str, Any]:
    settings = services.settings
    bucket = settings.data_bucket
    run = invocation.run
    hold_lock(services, run["run_id"])
    champion = services.ledger.champion(settings.model_name)
    inputs = get_json(services.s3, bucket, inputs_key(run["run_id"]))
    filesystem = s3_filesystem(services.s3)
    previous = dataset_source(filesystem, object_path(bucket, champion["dataset_dir"])) if champion else None
    uploads = inputs["readable"]  # the unreadable ones were quarantined when the inputs were fixed
    new = [upload_source(services, [entry]) for entry in uploads]
    out_dir = dataset_dir(settings.model_name, run["run_id"])
    etags = {s3_uri(bucket, entry["key"]): entry["etag"] for entry in uploads}
    manifest = merge_datasets(previous, new, filesystem, object_path(bucket, out_dir),
                              merge_config(services, run["run_id"]), source_versions=etags).to_dict()
    return merge_result(services, run["run_id"], out_dir, manifest, champion, etags)
