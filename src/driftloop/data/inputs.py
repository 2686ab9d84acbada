"""Input files: footer checks, and copies of bad files to a quarantine prefix (never deleted)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

import pyarrow as pa
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
            return replace(checked, schema=parquet.schema_arrow, rows=parquet.metadata.num_rows)
    except READ_ERRORS as error:
        return checked.rejected(f"unreadable Parquet footer or schema: {error}")


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
    with out_filesystem.open_output_stream(f"{destination}.reason.json") as stream:
        stream.write(json.dumps(record, indent=2, sort_keys=True).encode())
    return {"source": file.label, "reason": file.reason}
