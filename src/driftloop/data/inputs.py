"""Input files: footer checks, and copies of bad files or rows to a quarantine prefix (never deleted)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from driftloop.errors import NotFoundError
from driftloop.storage import ParquetSource

READ_ERRORS = (pa.ArrowException, OSError, ValueError)
_MAGIC = b"PAR1"


@dataclass(frozen=True)
class InputFile:
    """One file to merge and what its footer says; ``reason`` is set when it is unusable."""

    ordinal: int
    filesystem: pafs.FileSystem
    path: str
    label: str
    role: str  # "previous", "original" or "new"
    version: str | None
    size: int
    schema: pa.Schema | None
    rows: int
    reason: str | None = None

    def rejected(self, reason: str) -> InputFile:
        return replace(self, reason=reason)


def inspect_file(ordinal: int, source: ParquetSource, index: int, role: str, version: str | None) -> InputFile:
    path, label = source.paths[index], source.label(index)
    info = source.filesystem.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise NotFoundError(f"{label}: no such file")
    checked = InputFile(ordinal, source.filesystem, path, label, role, version, info.size or 0, None, 0)
    if not info.size:
        return checked.rejected("empty file (0 bytes)")
    try:
        with source.filesystem.open_input_file(path) as handle:
            head = handle.read(4)
            handle.seek(max(0, info.size - 4))
            tail = handle.read(4)
            if head != _MAGIC:
                return checked.rejected("not a Parquet file (no PAR1 magic number at the start)")
            if info.size < 12 or tail != _MAGIC:
                return checked.rejected("truncated Parquet file (no PAR1 magic number at the end)")
            handle.seek(0)
            parquet = pq.ParquetFile(handle)
            schema = parquet.schema_arrow
    except READ_ERRORS as error:
        return checked.rejected(f"unreadable Parquet footer or schema: {error}")
    repeated = sorted({name for name in schema.names if schema.names.count(name) > 1})
    if repeated:
        return checked.rejected(f"duplicate column name(s): {', '.join(repeated)}")
    return replace(checked, schema=schema, rows=parquet.metadata.num_rows)


def _file_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def quarantine_names(files: list[InputFile]) -> dict[int, str]:
    """A quarantine file name per input: its own name, prefixed by a label hash when names clash."""
    names = [_file_name(file.path) for file in files]
    return {
        file.ordinal: (
            name if names.count(name) == 1 else f"{hashlib.sha256(file.label.encode()).hexdigest()[:8]}-{name}"
        )
        for file, name in zip(files, names, strict=True)
    }


def quarantine(file: InputFile, out_filesystem: pafs.FileSystem, quarantine_dir: str, name: str) -> dict[str, str]:
    """Copy ``file`` under ``quarantine_dir`` with ``<name>.reason.json`` beside it."""
    assert file.reason is not None
    destination = f"{quarantine_dir}/{name}"
    out_filesystem.create_dir(quarantine_dir, recursive=True)
    if file.filesystem.equals(out_filesystem):
        out_filesystem.copy_file(file.path, destination)
    else:
        pafs.copy_files(
            file.path, destination, source_filesystem=file.filesystem, destination_filesystem=out_filesystem
        )
    record = {"source": file.label, "reason": file.reason, "version": file.version, "copy": destination}
    _write_reason(out_filesystem, destination, record)
    return {"source": file.label, "reason": file.reason}


def _write_reason(filesystem: pafs.FileSystem, destination: str, record: dict[str, Any]) -> None:
    with filesystem.open_output_stream(f"{destination}.reason.json") as stream:
        stream.write(json.dumps(record, indent=2, sort_keys=True).encode())


class NullKeyRows:
    """Rows with a null key column, which no key can de-duplicate, copied per input file to
    ``<quarantine_dir>/<name>.null-key-rows.parquet`` with a ``.reason.json`` beside it.

    Parameters
    ----------
    filesystem, quarantine_dir
        Where the copies go.
    schema
        The merge's unified schema: the copies hold the rows as the merge conformed them.
    key
        The de-duplication key columns.
    """

    def __init__(self, filesystem: pafs.FileSystem, quarantine_dir: str, schema: pa.Schema,
                 key: tuple[str, ...]) -> None:
        self._filesystem, self._directory, self._schema, self._key = filesystem, quarantine_dir, schema, key
        self._writers: dict[int, tuple[Any, pq.ParquetWriter]] = {}
        self._files: dict[int, tuple[InputFile, str]] = {}
        self._null_in: dict[int, Counter[str]] = {}
        self.rows: dict[int, int] = {}

    def split(self, batch: pa.RecordBatch, file: InputFile, name: str) -> pa.RecordBatch:
        """``batch`` without its null-key rows, which are copied to the file's quarantine copy."""
        nulls = [(column, batch.column(column).is_null()) for column in self._key if batch.column(column).null_count]
        if not nulls:
            return batch
        mask = nulls[0][1]
        for _, column_nulls in nulls[1:]:
            mask = pc.or_(mask, column_nulls)
        counts = self._null_in.setdefault(file.ordinal, Counter())
        for column, column_nulls in nulls:
            counts[column] += column_nulls.true_count
        rejected = batch.filter(mask)
        self.rows[file.ordinal] = self.rows.get(file.ordinal, 0) + rejected.num_rows
        self._writer(file, name).write_batch(rejected)
        return batch.filter(pc.invert(mask))

    def _writer(self, file: InputFile, name: str) -> pq.ParquetWriter:
        if file.ordinal not in self._writers:
            path = f"{self._directory}/{name}.null-key-rows.parquet"
            self._filesystem.create_dir(self._directory, recursive=True)
            stream = self._filesystem.open_output_stream(path)
            self._writers[file.ordinal] = (stream, pq.ParquetWriter(stream, self._schema))
            self._files[file.ordinal] = (file, path)
        return self._writers[file.ordinal][1]

    def close(self, failed: set[int]) -> list[dict[str, Any]]:
        """Finish the copies and return one record per file not in ``failed``. A file in ``failed``
        was quarantined whole after its first rows were read: its partial row copy stays (nothing in
        S3 is deleted) with a reason saying so, and is not counted."""
        records = []
        for ordinal, (stream, writer) in self._writers.items():
            writer.close()
            stream.close()
            file, path = self._files[ordinal]
            null_in = dict(sorted(self._null_in[ordinal].items()))
            record = {
                "source": file.label,
                "version": file.version,
                "rows": self.rows[ordinal],
                "null_in": null_in,
                "reason": f"{self.rows[ordinal]} rows with a null key column ("
                + ", ".join(f"{column}: {count}" for column, count in null_in.items())
                + "): no key identifies them, so they cannot be de-duplicated",
                "copy": path,
            }
            if ordinal in failed:
                record["reason"] = "partial copy only: the whole file was quarantined as unreadable"
            else:
                records.append(record)
            _write_reason(self._filesystem, path, record)
        return records
