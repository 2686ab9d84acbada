"""The merge split for a Distributed Map: one partial per uploaded object, then one combine.

``merge_partial`` runs in the map's child executions, one upload each: it checks the object
(quarantining it if bad), conforms and de-duplicates it, and writes it as a small version of its
own (date-partitioned files, then its ``_manifest.json``). ``combine_partials`` runs once after
the map: it merges the previous version with every partial, de-duplicating across all of them,
and writes the final manifest last, listing the original uploads (not the partial files).
See docs/scale-out.md for the limits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import pyarrow.fs as pafs

from driftloop.data.manifest import (
    Manifest,
    SourceRecord,
    find_manifest,
    read_manifest,
    write_manifest,
)
from driftloop.data.merge import MergeConfig, build_version, merge_datasets, previous_manifest
from driftloop.errors import InvalidInputError
from driftloop.storage import ParquetSource


def merge_partial(
    upload: ParquetSource,
    out_filesystem: pafs.FileSystem,
    partial_dir: str,
    config: MergeConfig | None = None,
    source_versions: Mapping[str, str] | None = None,
) -> Manifest:
    """One upload as a partial version in ``partial_dir``; a bad upload gives a partial with no rows.

    The bad-file share is judged by ``combine_partials`` over all uploads, never here.
    """
    config = replace(config or MergeConfig(), max_bad_share=1.0)
    return merge_datasets(None, [upload], out_filesystem, partial_dir, config, source_versions)


def combine_partials(
    previous: ParquetSource | None,
    partial_dirs: Sequence[str],
    out_filesystem: pafs.FileSystem,
    out_dir: str,
    config: MergeConfig | None = None,
) -> Manifest:
    """The previous version merged with every partial into ``out_dir``; the manifest is written last.

    Raises ``NotFoundError`` when a partial has no manifest (its map iteration did not finish) and
    ``InvalidInputError`` when more than ``max_bad_share`` of the uploads were quarantined.
    """
    config = config or MergeConfig()
    out_dir = out_dir.rstrip("/")
    committed = find_manifest(out_filesystem, out_dir)
    if committed is not None:
        return committed
    base = previous_manifest(previous) if previous is not None else None
    consumed = {(entry["source"], entry["version"]) for entry in (base.consumed_sources if base else ())}
    partials = [read_manifest(out_filesystem, directory) for directory in partial_dirs]
    uploads: list[SourceRecord] = []
    merged: list[Manifest] = []
    for partial in partials:
        records = [record for record in partial.sources if record.role == "new"]
        if records and all(
            record.version is not None and (record.source, record.version) in consumed for record in records
        ):
            uploads += [replace(record, status="already_consumed", rows=0) for record in records]
            continue
        uploads += records
        merged.append(partial)
    _check_upload_share(uploads, config.max_bad_share)

    combined = build_version(
        previous,
        [partial.source(out_filesystem) for partial in merged],
        out_filesystem,
        out_dir,
        config,
    )
    kept_sources = [record for record in combined.sources if record.role != "new"]
    lineage = [
        *(base.consumed_sources if base else ()),
        *({"source": record.source, "version": record.version} for record in kept_sources if record.role == "original"),
        *(entry for partial in merged for entry in partial.consumed_sources),
    ]
    manifest = replace(
        combined,
        sources=tuple(kept_sources + uploads),
        consumed_sources=tuple({(entry["source"], entry["version"]): entry for entry in lineage}.values()),
        rows_in=combined.rows_in - sum(p.rows_out for p in merged) + sum(p.rows_in for p in merged),
        duplicates_dropped=combined.duplicates_dropped + sum(p.duplicates_dropped for p in merged),
        quarantined=tuple(entry for partial in merged for entry in partial.quarantined),
        null_key_rows=combined.null_key_rows + sum(partial.null_key_rows for partial in merged),
        quarantined_rows=combined.quarantined_rows + tuple(entry for p in merged for entry in p.quarantined_rows),
        dedup={**combined.dedup, "partials": [partial.version_dir for partial in merged]},
    )
    write_manifest(out_filesystem, manifest)
    return manifest


def _check_upload_share(uploads: list[SourceRecord], max_bad_share: float) -> None:
    judged = [record for record in uploads if record.status != "already_consumed"]
    bad = [record for record in judged if record.status == "quarantined"]
    if judged and len(bad) / len(judged) > max_bad_share:
        raise InvalidInputError(
            f"{len(bad)} of {len(judged)} new files are bad (more than {max_bad_share:.0%}): "
            + ", ".join(record.source for record in bad)
        )
