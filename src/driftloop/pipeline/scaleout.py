"""The merge fanned out over a Distributed Map: plan, merge the parts, combine.

``plan`` turns the run's fixed upload list (``runs/<run_id>/inputs.json``) into the JSON array the
map's ItemReader reads (``runs/<run_id>/merge-parts.json``): each item is a batch of uploads with
the partial folder index of each. ``merge_parts`` runs in the map's child executions, one item
each: every upload becomes a partial version (``merge_partial``), and the batch's rows get one
drift summary over the champion's bins. ``combine`` runs after the map: partials whose child did
not finish count as bad uploads, the rest are combined with the champion's training set
(``combine_partials``, manifest written last), the drift summaries are merged, and the result has
the shape ``MergeDatasets`` returns. See docs/scale-out.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow.fs as pafs
from pydantic import BaseModel, Field

from driftloop.adapters.s3 import exists, get_json, put_json
from driftloop.data.manifest import Manifest, dataset_source, find_manifest
from driftloop.data.scaleout import combine_partials, merge_partial
from driftloop.drift import Baseline, build_baseline
from driftloop.errors import InvalidInputError
from driftloop.layout import (
    dataset_dir,
    inputs_key,
    merge_plan_key,
    new_data_summary_key,
    object_path,
    part_dir,
    partial_summary_key,
    partials_dir,
    s3_uri,
)
from driftloop.pipeline.contracts import Merge, MergePlan, returns
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.merge import merge_config, merge_result
from driftloop.pipeline.services import Services, hold_lock
from driftloop.storage import s3_filesystem, s3_source

MAX_UPLOADS_PER_ITEM = 25
MAX_BYTES_PER_ITEM = 256 * 1024 * 1024
MANIFEST_READERS = 16


@dataclass(frozen=True)
class UploadPart:
    """One upload of the run and the index of the partial version it becomes."""

    index: int
    key: str
    etag: str
    size: int
    version_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "key": self.key, "etag": self.etag, "size": self.size,
                "version_id": self.version_id}


def batch_uploads(
    parts: Sequence[UploadPart], max_uploads: int = MAX_UPLOADS_PER_ITEM, max_bytes: int = MAX_BYTES_PER_ITEM
) -> list[list[UploadPart]]:
    """Consecutive uploads grouped so that no batch exceeds ``max_uploads`` uploads or ``max_bytes``
    (an upload larger than ``max_bytes`` is a batch of its own)."""
    if max_uploads < 1 or max_bytes < 1:
        raise ValueError("max_uploads and max_bytes must be at least 1")
    batches: list[list[UploadPart]] = []
    size = 0
    for part in parts:
        if not batches or len(batches[-1]) >= max_uploads or size + part.size > max_bytes:
            batches.append([])
            size = 0
        batches[-1].append(part)
        size += part.size
    return batches


class PartInput(BaseModel):
    index: int = Field(ge=0)
    key: str = Field(min_length=1)
    etag: str
    size: int = Field(ge=0)
    version_id: str | None = None


class MergePartsItem(BaseModel):
    """One item of ``merge-parts.json``: what a child execution of the map receives."""

    run_id: str = Field(min_length=1)
    item: int = Field(ge=0)
    baseline_key: str | None
    parts: list[PartInput] = Field(min_length=1)


class CoordinatorInvocation(StepInvocation):
    """The Tasks before and after the map: ``{"state.$": "$", "context.$": "$$", "phase": ...}``."""

    phase: Literal["plan", "combine"]


@returns(MergePlan)
def plan(
    invocation: StepInvocation,
    services: Services,
    max_uploads: int = MAX_UPLOADS_PER_ITEM,
    max_bytes: int = MAX_BYTES_PER_ITEM,
) -> dict[str, Any]:
    """Write the map's items once per run (a retry reuses them) and say where they are."""
    settings = services.settings
    bucket = settings.data_bucket
    run_id = invocation.run["run_id"]
    hold_lock(services, run_id)
    champion = services.ledger.champion(settings.model_name)
    baseline_key = champion["baseline_key"] if champion else None
    key = merge_plan_key(run_id)
    if exists(services.s3, bucket, key):
        items = get_json(services.s3, bucket, key)
    else:
        inputs = get_json(services.s3, bucket, inputs_key(run_id))
        uploads = inputs["readable"]  # the unreadable ones were quarantined when the inputs were fixed
        parts = [UploadPart(index, entry["key"], entry["etag"], int(entry.get("size", 0)), entry.get("version_id"))
                 for index, entry in enumerate(uploads)]
        items = [
            {"run_id": run_id, "item": number, "baseline_key": baseline_key,
             "parts": [part.to_dict() for part in batch]}
            for number, batch in enumerate(batch_uploads(parts, max_uploads, max_bytes))
        ]
        put_json(services.s3, bucket, key, items)
    return {
        "items_key": key,
        "items": len(items),
        "uploads": sum(len(item["parts"]) for item in items),
        "partials_dir": partials_dir(settings.model_name, run_id),
    }


def merge_parts(item: MergePartsItem, services: Services) -> dict[str, Any]:
    """Each upload of the item as its own partial version, then one drift summary of their rows. Every
    child renews the run's lease first: a map of many items may run for longer than the lease."""
    settings = services.settings
    hold_lock(services, item.run_id)
    bucket = settings.data_bucket
    filesystem = s3_filesystem(services.s3)
    config = merge_config(services, item.run_id)
    reference = Baseline.from_dict(get_json(services.s3, bucket, item.baseline_key)) if item.baseline_key else None
    results: list[dict[str, Any]] = []
    summaries: list[Baseline] = []
    for part in item.parts:
        directory = object_path(bucket, part_dir(settings.model_name, item.run_id, part.index))
        manifest = merge_partial(
            s3_source(services.s3, bucket, [part.key], {part.key: part.version_id}),
            filesystem,
            directory,
            config,
            source_versions={s3_uri(bucket, part.key): part.etag},
        )
        result = {"index": part.index, "key": part.key, "rows_out": manifest.rows_out,
                  "quarantined": len(manifest.quarantined)}
        if manifest.rows_out:
            try:
                summaries.append(_summary(filesystem, manifest, reference))
            except InvalidInputError as error:
                result["summary_skipped"] = str(error)[:300]
        results.append(result)
    merged = _merge_summaries(summaries)
    key = None
    if merged.summary is not None:
        key = partial_summary_key(settings.model_name, item.run_id, item.item)
        put_json(services.s3, bucket, key, merged.summary.to_dict(), compact=True)
    return {"item": item.item, "parts": results, "summary_key": key, "summaries_skipped": merged.skipped}


@returns(Merge)
def combine(invocation: StepInvocation, services: Services) -> dict[str, Any]:
    """The partials combined into the run's dataset version; ``$.merge`` as ``MergeDatasets`` writes it.

    Uploads whose child failed (the map tolerates some) are left out of the version and out of its
    consumed sources, so the next run merges them again; they are listed in ``failed_uploads``."""
    settings = services.settings
    bucket = settings.data_bucket
    run_id = invocation.run["run_id"]
    hold_lock(services, run_id)
    filesystem = s3_filesystem(services.s3)
    items = [MergePartsItem.model_validate(item) for item in get_json(services.s3, bucket, merge_plan_key(run_id))]
    parts = [part for item in items for part in item.parts]
    directories = [object_path(bucket, part_dir(settings.model_name, run_id, part.index)) for part in parts]
    manifests = _read_manifests(filesystem, directories)
    failed = [part.key for part, manifest in zip(parts, manifests, strict=True) if manifest is None]
    config = merge_config(services, run_id)
    _check_bad_share(failed, [m for m in manifests if m is not None], len(parts), config.max_bad_share)

    champion = services.ledger.champion(settings.model_name)
    previous = dataset_source(filesystem, object_path(bucket, champion["dataset_dir"])) if champion else None
    out_dir = dataset_dir(settings.model_name, run_id)
    manifest = combine_partials(
        previous,
        [directory for directory, found in zip(directories, manifests, strict=True) if found is not None],
        filesystem,
        object_path(bucket, out_dir),
        config,
    ).to_dict()
    result = merge_result(services, run_id, out_dir, manifest, champion,
                          {s3_uri(bucket, part.key): part.etag for part in parts})

    summaries = [Baseline.from_dict(get_json(services.s3, bucket, key))
                 for key in _existing(services, bucket, [partial_summary_key(settings.model_name, run_id, item.item)
                                                         for item in items])]
    merged = _merge_summaries(summaries)
    drift_summary_key = None
    if merged.summary is not None:
        drift_summary_key = new_data_summary_key(run_id)
        put_json(services.s3, bucket, drift_summary_key, merged.summary.to_dict(), compact=True)

    return {
        **result,
        "scale_out": {
            "uploads": len(parts),
            "items": len(items),
            "failed_uploads": failed[:20],
            "failed_count": len(failed),
            "drift_summary_key": drift_summary_key,
            "drift_summary_rows": merged.summary.row_count if merged.summary else 0,
        },
    }


@dataclass(frozen=True)
class _MergedSummaries:
    summary: Baseline | None
    skipped: int


def _summary(filesystem: pafs.FileSystem, manifest: Manifest, reference: Baseline | None) -> Baseline:
    """The partial's rows summarised like the champion's baseline (same features, same bins), so that
    summaries of all parts merge exactly; without a champion, over their own quantile bins."""
    source = manifest.source(filesystem)
    if reference is None:
        return build_baseline(source)
    return build_baseline(source, features=list(reference.features), bins_from=reference)


def _merge_summaries(summaries: Iterable[Baseline]) -> _MergedSummaries:
    merged: Baseline | None = None
    skipped = 0
    for summary in summaries:
        if merged is None:
            merged = summary
            continue
        try:
            merged = merged.merge(summary)
        except InvalidInputError:
            skipped += 1  # features differ (no champion to fix them): this part's rows stay unsummarised
    return _MergedSummaries(merged, skipped)


def _read_manifests(filesystem: pafs.FileSystem, directories: Sequence[str]) -> list[Manifest | None]:
    with ThreadPoolExecutor(MANIFEST_READERS) as pool:
        return list(pool.map(lambda directory: find_manifest(filesystem, directory), directories))


def _existing(services: Services, bucket: str, keys: Sequence[str]) -> list[str]:
    with ThreadPoolExecutor(MANIFEST_READERS) as pool:
        found = list(pool.map(lambda key: exists(services.s3, bucket, key), keys))
    return [key for key, present in zip(keys, found, strict=True) if present]


def _check_bad_share(failed: Sequence[str], finished: Sequence[Manifest], total: int, max_bad_share: float) -> None:
    """Uploads whose child did not finish count as bad, with the quarantined ones, against the same
    ``max_bad_share`` the single merge applies; ``combine_partials`` then judges the finished ones."""
    quarantined = sum(1 for manifest in finished for record in manifest.sources
                      if record.role == "new" and record.status == "quarantined")
    bad = len(failed) + quarantined
    if total and bad / total > max_bad_share:
        raise InvalidInputError(
            f"{bad} of {total} new files could not be merged (more than {max_bad_share:.0%}): "
            f"{len(failed)} map iterations did not finish ({', '.join(failed[:10])}), {quarantined} quarantined"
        )
