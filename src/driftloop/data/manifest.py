"""The ``_manifest.json`` of a dataset version: written last, so its presence means "complete"."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow.fs as pafs

from driftloop.errors import InvalidInputError, NotFoundError
from driftloop.layout import manifest_key
from driftloop.storage import ParquetSource

FORMAT_VERSION = 1


@dataclass(frozen=True)
class SourceRecord:
    """One input file: where it came from, which version of it, and what became of it."""

    source: str
    role: str  # "previous", "original" or "new"
    version: str | None
    status: str  # "merged", "quarantined" or "already_consumed"
    rows: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class OutputFile:
    path: str  # relative to the version folder
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    version_dir: str
    previous_version: str | None
    sources: tuple[SourceRecord, ...]
    consumed_sources: tuple[dict[str, str | None], ...]
    rows_in: int
    rows_out: int
    duplicates_dropped: int
    quarantined: tuple[dict[str, str], ...]
    dedup: dict[str, Any]
    retention: dict[str, Any]
    schema: tuple[dict[str, str], ...]
    partition_by: str | None
    time_range: dict[str, str | None]
    files: tuple[OutputFile, ...]
    storage_bytes: int
    content_hash: str
    format_version: int = field(default=FORMAT_VERSION)
    null_key_rows: int = 0  # rows with a null key column: copied to quarantine, never merged
    quarantined_rows: tuple[dict[str, Any], ...] = ()  # per input file: rows, columns, reason, copy

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        values = dict(data)
        values["sources"] = tuple(SourceRecord(**source) for source in data["sources"])
        values["files"] = tuple(OutputFile(**output) for output in data["files"])
        for name in ("consumed_sources", "quarantined", "schema"):
            values[name] = tuple(data[name])
        values["quarantined_rows"] = tuple(data.get("quarantined_rows", ()))
        return cls(**values)

    def file_paths(self) -> tuple[str, ...]:
        return tuple(f"{self.version_dir}/{output.path}" for output in self.files)

    def source(self, filesystem: pafs.FileSystem) -> ParquetSource:
        """The files this version lists, on ``filesystem`` (stray files of an interrupted run are ignored)."""
        return ParquetSource(filesystem, self.file_paths())


def write_manifest(filesystem: pafs.FileSystem, manifest: Manifest) -> str:
    path = manifest_key(manifest.version_dir)
    body = json.dumps(manifest.to_dict(), indent=2, sort_keys=True).encode()
    filesystem.create_dir(manifest.version_dir, recursive=True)
    with filesystem.open_output_stream(path) as stream:
        stream.write(body)
    return path


def find_manifest(filesystem: pafs.FileSystem, version_dir: str) -> Manifest | None:
    path = manifest_key(version_dir)
    try:
        with filesystem.open_input_stream(path) as stream:  # one request on S3, none to ask first
            body = stream.read()
    except (FileNotFoundError, NotADirectoryError):  # no manifest, or ``version_dir`` is a file
        return None
    try:
        data = json.loads(body)
    except ValueError as error:
        raise InvalidInputError(f"{path}: not a JSON manifest ({error})") from error
    manifest = Manifest.from_dict(data)
    return manifest if manifest.version_dir == version_dir.rstrip("/") else _relocated(manifest, version_dir)


def _relocated(manifest: Manifest, version_dir: str) -> Manifest:
    """The same version read from another place (a copied or downloaded folder)."""
    return Manifest.from_dict({**manifest.to_dict(), "version_dir": version_dir.rstrip("/")})


def read_manifest(filesystem: pafs.FileSystem, version_dir: str) -> Manifest:
    """The manifest of a committed version; ``NotFoundError`` when absent (incomplete version)."""
    manifest = find_manifest(filesystem, version_dir)
    if manifest is None:
        raise NotFoundError(f"{manifest_key(version_dir)}: no manifest, so no committed version there")
    return manifest


def dataset_source(filesystem: pafs.FileSystem, version_dir: str) -> ParquetSource:
    """The files a committed version lists (stray files of an interrupted run are ignored)."""
    return read_manifest(filesystem, version_dir).source(filesystem)
