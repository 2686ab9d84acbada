"""Streaming merge of the current training set with new uploads into a new immutable version.

Two passes with bounded memory, whatever the input size:

1. *Spill*: every input file is read batch by batch, conformed to the unified schema and split by
   bucket, ``(UTC event date, hash slot)``, into Arrow IPC files in a local temporary folder.
   Rows with the same de-duplication key share the event time, hence the bucket.
2. *Reduce*: bucket by bucket, rows are de-duplicated (the first occurrence wins: previous version
   first, then new files in the order given), the retention policy is applied, and the bucket is
   written as ``<partition>=YYYY-MM-DD/part-<slot>.parquet``. A bucket larger than
   ``bucket_bytes`` is split again by a second hash before it is loaded.

Rows with a null key column cannot be told apart from other events, so they are never merged:
the spill pass copies them to ``<quarantine>/<file>.null-key-rows.parquet`` and the manifest
counts them (``null_key_rows``, ``quarantined_rows``). A file with a duplicated column name is
quarantined whole.

The manifest is written last; a version folder without one is incomplete and never read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from driftloop.data.hashing import is_fixed_width, row_hashes, unit_interval
from driftloop.data.inputs import (
    READ_ERRORS,
    InputFile,
    NullKeyRows,
    inspect_file,
    quarantine,
    quarantine_names,
)
from driftloop.data.manifest import (
    Manifest,
    OutputFile,
    SourceRecord,
    dataset_source,
    find_manifest,
    read_manifest,
    write_manifest,
)
from driftloop.data.schema import conform_batch, unify_schemas
from driftloop.errors import InvalidInputError
from driftloop.layout import version_quarantine_dir
from driftloop.storage import ParquetSource

__all__ = [
    "DEFAULT_KEY",
    "KeepAll",
    "Manifest",
    "MergeConfig",
    "SlidingWindow",
    "dataset_source",
    "merge_datasets",
    "read_manifest",
]

DEFAULT_KEY = ("user_id", "item_id", "event_type", "event_time")
_DAY_US = 86_400_000_000
_SOURCE_COLUMN = "__source"
_ORDINAL_COLUMN = "__ordinal"
_MAX_RESPLIT_DEPTH = 3


@dataclass(frozen=True)
class KeepAll:
    """Keep every row ever merged."""

    def to_dict(self) -> dict[str, Any]:
        return {"policy": "keep_all"}


@dataclass(frozen=True)
class SlidingWindow:
    """Keep the last ``days`` UTC dates (counted back from the newest event) and a sample of older rows.

    The sample keeps an older row when a seeded hash of its key falls below ``sample_fraction``,
    so it is the same in every run: a row kept once stays kept, and old data does not shrink
    again at each merge. The draw is independent of ``stratify_by``, so every stratum keeps its
    share; and every stratum present on an old date keeps at least its row with the lowest draw,
    so rare segments are never sampled away.
    """

    days: int
    sample_fraction: float
    seed: int = 0
    stratify_by: tuple[str, ...] = ("event_type",)

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"SlidingWindow.days must be at least 1, got {self.days}")
        if not 0.0 <= self.sample_fraction <= 1.0:
            raise ValueError(f"SlidingWindow.sample_fraction must be in [0, 1], got {self.sample_fraction}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": "sliding_window",
            "days": self.days,
            "sample_fraction": self.sample_fraction,
            "seed": self.seed,
            "stratify_by": list(self.stratify_by),
        }


@dataclass(frozen=True)
class MergeConfig:
    key: tuple[str, ...] = DEFAULT_KEY
    time_column: str = "event_time"
    partition_by: str | None = "event_date"  # the UTC date of ``time_column``, or None
    quarantine_dir: str | None = None  # default: <out_dir>/_quarantine
    max_bad_share: float = 0.5  # fail when more than this share of the new files is bad
    retention: KeepAll | SlidingWindow = field(default_factory=KeepAll)
    bucket_bytes: int = 128 * 1024 * 1024  # in-memory size of one bucket in the reduce pass
    spill_buffer_bytes: int = 128 * 1024 * 1024
    batch_rows: int = 64 * 1024
    compression: str = "snappy"
    workers: int = 2  # buckets reduced at once; memory grows with it
    spill_dir: str | None = None  # local folder for temporary files; default: the system's

    def __post_init__(self) -> None:
        if not self.key or len(set(self.key)) != len(self.key):
            raise ValueError(f"key must name distinct columns, got {self.key}")
        if self.partition_by not in (None, "event_date"):
            raise ValueError(f"partition_by must be 'event_date' or None, got {self.partition_by!r}")
        if self.partition_by and self.time_column not in self.key:
            raise ValueError(
                f"partitioning by date needs time_column {self.time_column!r} in the key, "
                "so that duplicates meet in one partition"
            )
        if isinstance(self.retention, SlidingWindow) and self.partition_by is None:
            raise ValueError("a SlidingWindow retention needs partition_by='event_date'")
        if not 0.0 <= self.max_bad_share <= 1.0:
            raise ValueError(f"max_bad_share must be in [0, 1], got {self.max_bad_share}")
        for name in ("bucket_bytes", "spill_buffer_bytes", "batch_rows", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")


@dataclass(frozen=True)
class _Bucket:
    day: int | None  # days since 1970-01-01 UTC; None without partitioning
    slot: str

    def partition_path(self, partition_by: str | None) -> str:
        if partition_by is None or self.day is None:  # the day is None only without partitioning
            return ""
        return f"{partition_by}={_date(self.day).isoformat()}/"


def _row_group_batches(parquet_file: pq.ParquetFile, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """A reader per row group: one reader over a whole file holds on to memory it no longer needs."""
    for row_group in range(parquet_file.num_row_groups):
        yield from parquet_file.iter_batches(batch_size=batch_rows, row_groups=[row_group])


def _date(day: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=day)


class _SpillArea:
    """Batches grouped by bucket, buffered in memory and flushed to Arrow IPC files together."""

    def __init__(self, directory: str, schema: pa.Schema, buffer_bytes: int) -> None:
        self._directory, self._schema, self._buffer_bytes = directory, schema, buffer_bytes
        self._buffers: dict[_Bucket, list[pa.RecordBatch]] = defaultdict(list)
        self._buffered = 0
        self._flushes = 0
        self.files: dict[_Bucket, list[str]] = defaultdict(list)

    def add(self, bucket: _Bucket, batch: pa.RecordBatch) -> None:
        self._buffers[bucket].append(batch)
        self._buffered += batch.nbytes
        if self._buffered >= self._buffer_bytes:
            self.flush()

    def flush(self) -> None:
        for number, (bucket, batches) in enumerate(self._buffers.items()):
            path = f"{self._directory}/{self._flushes:06d}-{number:06d}.arrow"
            with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, self._schema) as writer:
                for batch in batches:
                    writer.write_batch(batch)
            self.files[bucket].append(path)
        self._buffers.clear()
        self._buffered = 0
        self._flushes += 1


def _read_spilled(paths: Sequence[str]) -> Iterator[pa.RecordBatch]:
    for path in paths:
        with pa.memory_map(path) as source:
            reader = pa.ipc.open_file(source)
            for index in range(reader.num_record_batches):
                yield reader.get_batch(index)


def _spilled_bytes(paths: Sequence[str]) -> int:
    return sum(info.size for info in pafs.LocalFileSystem().get_file_info(list(paths)))


@dataclass
class _Totals:
    rows_out: int = 0
    duplicates_dropped: int = 0
    retention_dropped: int = 0
    time_min: Any = None
    time_max: Any = None
    files: list[OutputFile] = field(default_factory=list)

    def widen_time_range(self, low: Any, high: Any) -> None:
        if low is not None:
            self.time_min = low if self.time_min is None else min(self.time_min, low)
            self.time_max = high if self.time_max is None else max(self.time_max, high)

    def absorb(self, other: _Totals) -> None:
        self.rows_out += other.rows_out
        self.duplicates_dropped += other.duplicates_dropped
        self.retention_dropped += other.retention_dropped
        self.widen_time_range(other.time_min, other.time_max)
        self.files.extend(other.files)


class _Merger:
    def __init__(
        self,
        inputs: list[InputFile],
        schema: pa.Schema,
        out_filesystem: pafs.FileSystem,
        out_dir: str,
        config: MergeConfig,
        spill_dir: str,
        null_keys: NullKeyRows,
        quarantine_names: dict[int, str],
    ) -> None:
        self._inputs, self._schema, self._config = inputs, schema, config
        self.null_keys, self._quarantine_names = null_keys, quarantine_names
        self._out_filesystem, self._out_dir, self._spill_dir = out_filesystem, out_dir, spill_dir
        fixed = [name for name in config.key if name in schema.names and is_fixed_width(schema.field(name).type)]
        self._slot_columns = fixed or list(config.key)
        self._prefilter_columns = fixed
        spill_schema = schema.append(pa.field(_SOURCE_COLUMN, pa.int32()))
        self._spill = _SpillArea(spill_dir, spill_schema, config.spill_buffer_bytes)
        self._spill_schema = spill_schema
        self.rows_read: dict[int, int] = {}
        self.failed: dict[int, str] = {}
        self.max_day: int | None = None
        self.totals = _Totals()

    def spill(self) -> None:
        for file in self._inputs:
            self.rows_read[file.ordinal] = 0
            try:
                with file.filesystem.open_input_file(file.path) as handle:
                    for batch in _row_group_batches(pq.ParquetFile(handle), self._config.batch_rows):
                        conformed = conform_batch(batch, self._schema, file.label)
                        keyed = self.null_keys.split(conformed, file, self._quarantine_names[file.ordinal])
                        self._spill_batch(keyed, file.ordinal)
                        self.rows_read[file.ordinal] += batch.num_rows
            except READ_ERRORS as error:
                if file.role == "previous":
                    raise InvalidInputError(f"{file.label}: committed version file unreadable: {error}") from error
                self.failed[file.ordinal] = f"unreadable data: {error}"
        self._spill.flush()

    def _spill_batch(self, batch: pa.RecordBatch, ordinal: int) -> None:
        if batch.num_rows == 0:
            return
        batch = batch.append_column(_SOURCE_COLUMN, pa.array(np.full(batch.num_rows, ordinal, np.int32)))
        if self._config.partition_by is None:
            self._spill.add(_Bucket(None, "0"), batch)
            return
        days = np.floor_divide(batch.column(self._config.time_column).view(pa.int64()).to_numpy(), _DAY_US)
        newest = int(days.max())
        self.max_day = newest if self.max_day is None else max(self.max_day, newest)
        if days[0] == days[-1] and (days == days[0]).all():
            self._spill.add(_Bucket(int(days[0]), "0"), batch)
            return
        if (days[1:] >= days[:-1]).all():  # uploads are often in time order: slices, no copy
            ordered, sorted_days = batch, days
        else:
            order = np.argsort(days, kind="stable")
            ordered, sorted_days = batch.take(pa.array(order)), days[order]
        starts = np.flatnonzero(np.r_[True, sorted_days[1:] != sorted_days[:-1]])
        for start, end in zip(starts, [*starts[1:], len(sorted_days)], strict=True):
            self._spill.add(_Bucket(int(sorted_days[start]), "0"), ordered.slice(start, end - start))

    def reduce(self) -> None:
        buckets = sorted(self._spill.files, key=lambda b: (b.day or 0, b.slot))
        with ThreadPoolExecutor(max_workers=self._config.workers) as pool:
            for result in pool.map(lambda b: self._reduce_bucket(b, self._spill.files[b], 0), buckets):
                self.totals.absorb(result)

    def _reduce_bucket(self, bucket: _Bucket, paths: list[str], depth: int) -> _Totals:
        result = _Totals()
        if _spilled_bytes(paths) > self._config.bucket_bytes and depth < _MAX_RESPLIT_DEPTH:
            for sub_bucket, sub_paths in self._resplit(bucket, paths, depth):
                result.absorb(self._reduce_bucket(sub_bucket, sub_paths, depth + 1))
            return result
        table = pa.Table.from_batches(list(_read_spilled(paths)), schema=self._spill_schema)
        if self.failed:
            failed = pa.array(list(self.failed), pa.int32())
            table = table.filter(pc.invert(pc.is_in(table[_SOURCE_COLUMN], failed)))
        table = table.drop_columns([_SOURCE_COLUMN])
        unique = self._deduplicate(table)
        result.duplicates_dropped = table.num_rows - unique.num_rows
        kept = self._retain(unique, bucket)
        result.retention_dropped = unique.num_rows - kept.num_rows
        if kept.num_rows:
            self._write(bucket, kept, result)
        return result

    def _resplit(self, bucket: _Bucket, paths: list[str], depth: int) -> list[tuple[_Bucket, list[str]]]:
        parts = math.ceil(_spilled_bytes(paths) / self._config.bucket_bytes) + 1
        directory = tempfile.mkdtemp(dir=self._spill_dir)
        area = _SpillArea(directory, self._spill_schema, self._config.spill_buffer_bytes // self._config.workers)
        for batch in _read_spilled(paths):
            slots = row_hashes(batch, self._slot_columns, seed=depth + 1) % np.uint64(parts)
            for slot in np.unique(slots):
                area.add(_Bucket(bucket.day, f"{bucket.slot}-{int(slot)}"), batch.filter(pa.array(slots == slot)))
        area.flush()
        return sorted(area.files.items(), key=lambda item: item[0].slot)

    def _deduplicate(self, table: pa.Table) -> pa.Table:
        """Keeps the first row of each key. Only rows whose fixed-width key part repeats are grouped."""
        candidates = np.arange(table.num_rows, dtype=np.int64)
        if self._prefilter_columns:
            values = row_hashes(table, self._prefilter_columns)
            order = np.argsort(values, kind="stable")
            repeats = values[order][1:] == values[order][:-1]
            in_run = np.zeros(table.num_rows, dtype=bool)
            in_run[1:] |= repeats
            in_run[:-1] |= repeats
            candidates = np.sort(order[in_run])
        if len(candidates) == 0:
            return table
        keys = (
            table.select(list(self._config.key)).take(candidates).append_column(_ORDINAL_COLUMN, pa.array(candidates))
        )
        firsts = keys.group_by(list(self._config.key)).aggregate([(_ORDINAL_COLUMN, "min")])
        if firsts.num_rows == len(candidates):
            return table
        keep = np.ones(table.num_rows, dtype=bool)
        keep[candidates] = False
        keep[firsts.column(f"{_ORDINAL_COLUMN}_min").to_numpy()] = True
        return table.filter(pa.array(keep))

    def _retain(self, table: pa.Table, bucket: _Bucket) -> pa.Table:
        retention = self._config.retention
        if not isinstance(retention, SlidingWindow) or self.max_day is None or bucket.day is None:
            return table
        if bucket.day > self.max_day - retention.days:
            return table
        draws = unit_interval(row_hashes(table, self._config.key, seed=retention.seed))
        keep = draws < retention.sample_fraction
        if retention.stratify_by:
            strata = row_hashes(table, retention.stratify_by)
            by_stratum_then_draw = np.lexsort((draws, strata))
            sorted_strata = strata[by_stratum_then_draw]
            lowest_draws = by_stratum_then_draw[np.r_[True, sorted_strata[1:] != sorted_strata[:-1]]]
            keep[lowest_draws] = True
        return table.filter(pa.array(keep))

    def _write(self, bucket: _Bucket, table: pa.Table, result: _Totals) -> None:
        relative = f"{bucket.partition_path(self._config.partition_by)}part-{bucket.slot}.parquet"
        path = f"{self._out_dir}/{relative}"
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer, compression=self._config.compression)
        data = buffer.getvalue()
        self._out_filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with self._out_filesystem.open_output_stream(path) as stream:
            stream.write(data)
        result.files.append(OutputFile(relative, table.num_rows, data.size, hashlib.sha256(data).hexdigest()))
        result.rows_out += table.num_rows
        if self._config.time_column in table.column_names:
            low, high = (scalar.as_py() for scalar in pc.min_max(table[self._config.time_column]).values())
            result.widen_time_range(low, high)


def previous_manifest(source: ParquetSource) -> Manifest | None:
    """The manifest of the committed version ``source`` lists, if it is one (else: original data)."""
    if not source.paths:
        return None
    folder = source.paths[0].rsplit("/", 1)[0]
    for _ in range(3):
        manifest = find_manifest(source.filesystem, folder)
        if manifest is not None and set(source.paths) <= set(manifest.file_paths()):
            return manifest
        if "/" not in folder:
            return None
        folder = folder.rsplit("/", 1)[0]
    return None


def check_bad_share(files: list[InputFile], role: str, max_bad_share: float) -> None:
    checked = [file for file in files if file.role == role]
    bad = [file for file in checked if file.reason is not None]
    if checked and len(bad) / len(checked) > max_bad_share:
        reasons = "; ".join(f"{file.label}: {file.reason}" for file in bad)
        raise InvalidInputError(
            f"{len(bad)} of {len(checked)} {role} files are bad (more than {max_bad_share:.0%}): {reasons}"
        )


def _consumed(previous: Manifest | None, files: list[InputFile]) -> tuple[dict[str, str | None], ...]:
    seen = {(entry["source"], entry["version"]): entry for entry in (previous.consumed_sources if previous else ())}
    for file in files:
        if file.role != "previous":
            seen.setdefault((file.label, file.version), {"source": file.label, "version": file.version})
    return tuple(seen.values())


def merge_datasets(
    previous: ParquetSource | None,
    new: Sequence[ParquetSource],
    out_filesystem: pafs.FileSystem,
    out_dir: str,
    config: MergeConfig | None = None,
    source_versions: Mapping[str, str] | None = None,
) -> Manifest:
    """Merge ``previous`` (a committed version, or the original data) with ``new`` into ``out_dir``.

    Returns the manifest, written as ``out_dir/_manifest.json`` after every data file. When
    ``out_dir`` already holds a manifest of the same inputs, that version is returned unchanged;
    when it was merged from other inputs, ``InvalidInputError`` is raised and nothing is written.
    """
    out_dir = out_dir.rstrip("/")
    committed = find_manifest(out_filesystem, out_dir)
    if committed is not None:
        _require_same_inputs(committed, [*([previous] if previous else []), *new], source_versions or {})
        return committed
    manifest = build_version(previous, new, out_filesystem, out_dir, config or MergeConfig(), source_versions)
    write_manifest(out_filesystem, manifest)
    return manifest


def build_version(
    previous: ParquetSource | None,
    new: Sequence[ParquetSource],
    out_filesystem: pafs.FileSystem,
    out_dir: str,
    config: MergeConfig,
    source_versions: Mapping[str, str] | None = None,
) -> Manifest:
    """Writes the data files of a version and returns its manifest, leaving the manifest unwritten."""
    versions = dict(source_versions or {})
    base = previous_manifest(previous) if previous is not None else None
    already = {(entry["source"], entry["version"]) for entry in (base.consumed_sources if base else ())}

    files: list[InputFile] = []
    skipped: list[SourceRecord] = []
    roles = [("previous" if base else "original", previous)] if previous is not None else []
    for role, source in [*roles, *(("new", source) for source in new)]:
        for index in range(len(source.paths)):
            label = source.label(index)
            version = versions.get(label)
            if role == "new" and version is not None and (label, version) in already:
                skipped.append(SourceRecord(label, role, version, "already_consumed"))
                continue
            files.append(inspect_file(len(files), source, index, role, version))
    files = [_missing_key_check(file, config) for file in files]
    for file in files:
        if file.role == "previous" and file.reason is not None:
            raise InvalidInputError(f"{file.label}: committed version file is bad: {file.reason}")

    quarantine_dir = (config.quarantine_dir or version_quarantine_dir(out_dir)).rstrip("/")
    names = quarantine_names(files)
    quarantined = [
        quarantine(file, out_filesystem, quarantine_dir, names[file.ordinal]) for file in files if file.reason
    ]
    for role in ("original", "new"):
        check_bad_share(files, role, config.max_bad_share)
    good = [file for file in files if file.reason is None]
    schema = unify_schemas([(file.label, file.schema) for file in good if file.schema is not None])
    _require_columns(schema, config)

    with tempfile.TemporaryDirectory(prefix="driftloop-merge-", dir=config.spill_dir) as spill_dir:
        null_keys = NullKeyRows(out_filesystem, quarantine_dir, schema, config.key)
        merger = _Merger(good, schema, out_filesystem, out_dir, config, spill_dir, null_keys, names)
        merger.spill()
        quarantined_rows = null_keys.close(set(merger.failed))
        if merger.failed:
            late = [file.rejected(merger.failed[file.ordinal]) for file in good if file.ordinal in merger.failed]
            quarantined += [quarantine(file, out_filesystem, quarantine_dir, names[file.ordinal]) for file in late]
            files = [next((bad for bad in late if bad.ordinal == file.ordinal), file) for file in files]
            for role in ("original", "new"):
                check_bad_share(files, role, config.max_bad_share)
        merger.reduce()

    totals = merger.totals
    rows_in = sum(rows for ordinal, rows in merger.rows_read.items() if ordinal not in merger.failed)
    records = [
        SourceRecord(
            file.label,
            file.role,
            file.version,
            "quarantined" if file.reason else "merged",
            0 if file.reason else merger.rows_read.get(file.ordinal, 0),
            file.size,
        )
        for file in files
    ]
    return Manifest(
        version_dir=out_dir,
        previous_version=base.version_dir if base else None,
        sources=tuple(records + skipped),
        consumed_sources=_consumed(base, files),
        rows_in=rows_in,
        rows_out=totals.rows_out,
        duplicates_dropped=totals.duplicates_dropped,
        quarantined=tuple(quarantined),
        dedup={
            "key": list(config.key),
            "scope": "all rows of the previous version and of every merged new file",
            "keep": "first occurrence: previous version first, then new files in the order given",
        },
        retention={
            **config.retention.to_dict(),
            "rows_dropped": totals.retention_dropped,
            **_window(config, merger.max_day),
        },
        schema=tuple({"name": column.name, "type": str(column.type)} for column in schema),
        partition_by=config.partition_by,
        time_range={"min": _iso(totals.time_min), "max": _iso(totals.time_max)},
        files=tuple(totals.files),
        storage_bytes=sum(output.bytes for output in totals.files),
        content_hash=_content_hash(totals.files),
        null_key_rows=sum(entry["rows"] for entry in quarantined_rows),
        quarantined_rows=tuple(quarantined_rows),
    )


def _require_same_inputs(committed: Manifest, sources: Sequence[ParquetSource], versions: Mapping[str, str]) -> None:
    """Refuse to hand back a committed version for a request that names other files, versions or sizes."""
    recorded = {record.source: record for record in committed.sources}
    differences = []
    for source in sources:
        for index, path in enumerate(source.paths):
            label = source.label(index)
            record = recorded.pop(label, None)
            size = source.filesystem.get_file_info(path).size
            if record is None:
                differences.append(f"{label} is not among its sources")
            elif record.version != versions.get(label):
                differences.append(f"{label} was merged at version {record.version}, not {versions.get(label)}")
            elif record.status != "already_consumed" and size is not None and size != record.bytes:
                differences.append(f"{label} was merged at {record.bytes} bytes and now has {size}")
    differences += [f"{label} is missing from this request" for label in recorded]
    if differences:
        raise InvalidInputError(
            f"{committed.version_dir} already holds a version merged from other inputs ("
            + "; ".join(differences[:5]) + (f"; {len(differences) - 5} more" if len(differences) > 5 else "")
            + "): choose another version name"
        )


def _missing_key_check(file: InputFile, config: MergeConfig) -> InputFile:
    if file.reason is not None or file.schema is None:
        return file
    missing = [name for name in config.key if name not in file.schema.names]
    return file.rejected(f"missing key column(s): {', '.join(missing)}") if missing else file


def _require_columns(schema: pa.Schema, config: MergeConfig) -> None:
    needed = [*config.key]
    if isinstance(config.retention, SlidingWindow):
        needed += config.retention.stratify_by
    missing = [name for name in needed if name not in schema.names]
    if missing and schema.names:
        raise InvalidInputError(f"the merged data has no column(s) {', '.join(missing)}")


def _window(config: MergeConfig, max_day: int | None) -> dict[str, Any]:
    if not isinstance(config.retention, SlidingWindow) or max_day is None:
        return {}
    return {"window_start": _date(max_day - config.retention.days + 1).isoformat()}


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _content_hash(files: Sequence[OutputFile]) -> str:
    """SHA-256 over the sorted (path, SHA-256) list of the data files: the version's fingerprint."""
    listing = "".join(f"{output.path}\t{output.sha256}\n" for output in sorted(files, key=lambda f: f.path))
    return hashlib.sha256(listing.encode()).hexdigest()
