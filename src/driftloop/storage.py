"""Where Parquet lives: local folders or S3, behind one pyarrow filesystem interface.

The core (drift, merge, training data) reads and writes through ``pyarrow.fs.FileSystem`` and
plain paths, so it never imports boto3. S3 is reached through boto3 (not pyarrow's own S3 client)
so that the embedded AWS of the local runtime and Lambda's trimmed layer both work.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from driftloop.layout import path_uri, s3_uri

PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
_MULTIPART_CHUNK = 16 * 1024 * 1024
# Objects up to this size are fetched with one GET: a Parquet reader's footer, metadata and column
# reads would otherwise cost several requests per small file.
_WHOLE_OBJECT_LIMIT = 8 * 1024 * 1024


@dataclass(frozen=True)
class ParquetSource:
    """A set of Parquet files on one filesystem, read in the given order."""

    filesystem: pafs.FileSystem
    paths: tuple[str, ...]
    labels: tuple[str, ...] = field(default=())

    def label(self, index: int) -> str:
        """How the file at ``index`` is named to users (an ``s3://`` URI or a local path)."""
        return self.labels[index] if self.labels else self.paths[index]


def is_parquet_name(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.lower().endswith(PARQUET_SUFFIXES) and not name.startswith(("_", "."))


def local_source(path: str) -> ParquetSource:
    """A Parquet file, or every Parquet file below a folder (sorted, hidden files skipped)."""
    filesystem = pafs.LocalFileSystem()
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{path}: no such file or folder")
    if info.type == pafs.FileType.File:
        return ParquetSource(filesystem, (info.path,))
    selector = pafs.FileSelector(info.path, recursive=True)
    files = sorted(
        entry.path
        for entry in filesystem.get_file_info(selector)
        if entry.type == pafs.FileType.File and is_parquet_name(entry.path)
    )
    return ParquetSource(filesystem, tuple(files))


def s3_filesystem(client: Any, versions: Mapping[str, str] | None = None) -> pafs.FileSystem:
    """A pyarrow filesystem over a boto3 S3 client; paths are ``bucket/key``. ``versions`` pins paths to an
    object version id: they are read as that version even after the key was overwritten."""
    return pafs.PyFileSystem(Boto3S3Handler(client, versions))


def s3_source(client: Any, bucket: str, keys: Iterable[str],
              versions: Mapping[str, str | None] | None = None) -> ParquetSource:
    """The objects ``keys``, each read as its version in ``versions`` (by key) when one is given."""
    keys = tuple(keys)
    pinned = {f"{bucket}/{key}": version for key, version in (versions or {}).items() if version}
    return ParquetSource(
        s3_filesystem(client, pinned),
        tuple(f"{bucket}/{key}" for key in keys),
        tuple(s3_uri(bucket, key) for key in keys),
    )


class _RangedS3Reader(io.RawIOBase):
    """A seekable read-only file over one S3 object version, fetched with ranged GETs; ``tail`` is the
    object's end already fetched (from its offset on), which reads within it are served from."""

    def __init__(self, client: Any, bucket: str, key: str, size: int, etag: str, version: str | None = None,
                 tail: tuple[int, bytes] | None = None) -> None:
        super().__init__()
        self._client, self._bucket, self._key = client, bucket, key
        self._size, self._etag, self._position = size, etag, 0
        self._version = {"VersionId": version} if version else {}
        self._tail_start, self._tail = tail if tail is not None else (size, b"")

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def _from_tail(self, end: int) -> bytes | None:
        if self._position < self._tail_start:
            return None
        return self._tail[self._position - self._tail_start : end - self._tail_start]

    def readall(self) -> bytes:
        if self._position >= self._size:
            return b""
        data = self._from_tail(self._size)
        if data is None:
            data = self._client.get_object(
                Bucket=self._bucket, Key=self._key, Range=f"bytes={self._position}-{self._size - 1}",
                IfMatch=self._etag, **self._version,
            )["Body"].read()
        self._position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        end = min(self._position + len(view), self._size)
        if end <= self._position:
            return 0
        data = self._from_tail(end)
        if data is None:
            data = self._client.get_object(
                Bucket=self._bucket,
                Key=self._key,
                Range=f"bytes={self._position}-{end - 1}",
                IfMatch=self._etag,
                **self._version,
            )["Body"].read()
        view[: len(data)] = data
        self._position += len(data)
        return len(data)


class _S3Writer(io.RawIOBase):
    """Buffers up to one part in memory; large outputs go up as a multipart upload."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        super().__init__()
        self._client, self._bucket, self._key = client, bucket, key
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._buffer += chunk
        if len(self._buffer) >= _MULTIPART_CHUNK:
            self._flush_part()
        return len(chunk)

    def _flush_part(self) -> None:
        if self._upload_id is None:
            self._upload_id = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)[
                "UploadId"
            ]
        number = len(self._parts) + 1
        response = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=bytes(self._buffer),
        )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self._buffer.clear()

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._upload_id is None:
                self._client.put_object(Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer))
            else:
                if self._buffer:
                    self._flush_part()
                self._client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        finally:
            super().close()


def _content_range(header: str | None, received: int) -> tuple[int, int]:
    """(first byte, object size) of a ranged GET's ``Content-Range: bytes first-last/size``; without the
    header the whole object was sent."""
    if not header:
        return 0, received
    span, _, size = header.removeprefix("bytes ").partition("/")
    return int(span.partition("-")[0]), int(size)


def _split(path: str) -> tuple[str, str]:
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket, key


class Boto3S3Handler(pafs.FileSystemHandler):
    """``pyarrow.fs.FileSystemHandler`` that talks to S3 through a boto3 client."""

    def __init__(self, client: Any, versions: Mapping[str, str] | None = None) -> None:
        self._client = client
        self._versions = dict(versions or {})
        # A HEAD that ``get_file_info`` made, kept for the next open of that path only: the file then
        # opened is the version whose size the caller was told (a newer one fails the GET's If-Match).
        self._heads: dict[str, dict[str, Any]] = {}

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Boto3S3Handler) and other._client is self._client
                and other._versions == self._versions)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def get_type_name(self) -> str:
        return "boto3-s3"

    def normalize_path(self, path: str) -> str:
        return path.removeprefix("s3://").lstrip("/")

    def _head(self, path: str) -> dict[str, Any] | None:
        bucket, key = _split(path)
        version = self._versions.get(f"{bucket}/{key}")
        try:
            return self._client.head_object(Bucket=bucket, Key=key, **({"VersionId": version} if version else {}))
        except self._client.exceptions.ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def _info(self, path: str) -> pafs.FileInfo:
        bucket, key = _split(path)
        if key:
            head = self._head(path)
            if head is not None:
                self._heads[path] = head
                return pafs.FileInfo(path, pafs.FileType.File, size=head["ContentLength"])
        listing = self._client.list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/") + "/", MaxKeys=1)
        if listing.get("KeyCount", 0) or not key:
            return pafs.FileInfo(path, pafs.FileType.Directory)
        return pafs.FileInfo(path, pafs.FileType.NotFound)

    def get_file_info(self, paths: Sequence[str]) -> list[pafs.FileInfo]:
        return [self._info(path) for path in paths]

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        bucket, key = _split(selector.base_dir)
        prefix = key.rstrip("/") + "/" if key else ""
        paginator = self._client.get_paginator("list_objects_v2")
        infos: list[pafs.FileInfo] = []
        directories: set[str] = set()
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                relative = entry["Key"][len(prefix) :]
                parts = relative.split("/")
                if not selector.recursive and len(parts) > 1:
                    directories.add(f"{bucket}/{prefix}{parts[0]}")
                    continue
                for depth in range(1, len(parts)):
                    directories.add(f"{bucket}/{prefix}{'/'.join(parts[:depth])}")
                infos.append(pafs.FileInfo(f"{bucket}/{entry['Key']}", pafs.FileType.File, size=entry["Size"]))
        if not infos and not directories and not selector.allow_not_found and key:
            raise FileNotFoundError(f"{path_uri(selector.base_dir)}: no such prefix")
        infos.extend(pafs.FileInfo(path, pafs.FileType.Directory) for path in sorted(directories))
        return infos

    def create_dir(self, path: str, recursive: bool) -> None:
        """S3 has no folders: a prefix exists once an object is written below it."""

    def delete_dir(self, path: str) -> None:
        raise PermissionError("driftloop never deletes S3 prefixes")

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        raise PermissionError("driftloop never deletes S3 prefixes")

    def delete_root_dir_contents(self) -> None:
        raise PermissionError("driftloop never deletes S3 prefixes")

    def delete_file(self, path: str) -> None:
        raise PermissionError("driftloop never deletes S3 objects")

    def move(self, src: str, dest: str) -> None:
        raise PermissionError("driftloop never moves S3 objects (inputs are read-only)")

    def copy_file(self, src: str, dest: str) -> None:
        self._heads.pop(dest, None)
        src_bucket, src_key = _split(src)
        dest_bucket, dest_key = _split(dest)
        version = self._versions.get(f"{src_bucket}/{src_key}")
        self._client.copy_object(
            Bucket=dest_bucket, Key=dest_key,
            CopySource={"Bucket": src_bucket, "Key": src_key, **({"VersionId": version} if version else {})},
        )

    def _reader(self, path: str) -> _RangedS3Reader:
        """A reader of the object at ``path``: after ``get_file_info``, of the version it found; else opened
        by one GET of the object's last ``_WHOLE_OBJECT_LIMIT`` bytes (all of a small object; a Parquet
        file's footer, which is read first, of a large one)."""
        bucket, key = _split(path)
        version = self._versions.get(f"{bucket}/{key}")
        head = self._heads.pop(path, None)
        if head is not None:
            return _RangedS3Reader(self._client, bucket, key, head["ContentLength"], head["ETag"], version)
        try:
            response = self._client.get_object(Bucket=bucket, Key=key, Range=f"bytes=-{_WHOLE_OBJECT_LIMIT}",
                                               **({"VersionId": version} if version else {}))
        except self._client.exceptions.ClientError as error:
            code = error.response["Error"]["Code"]
            if code in ("404", "NoSuchKey", "NotFound", "NoSuchVersion"):
                raise FileNotFoundError(f"{path_uri(path)}: no such object") from error
            if code != "InvalidRange":  # an empty object has no last bytes to send
                raise
            return self._reader_from_head(path)
        tail = response["Body"].read()
        tail_start, size = _content_range(response.get("ContentRange"), len(tail))
        return _RangedS3Reader(self._client, bucket, key, size, response["ETag"], version, (tail_start, tail))

    def _reader_from_head(self, path: str) -> _RangedS3Reader:
        head = self._head(path)
        if head is None:
            raise FileNotFoundError(f"{path_uri(path)}: no such object")
        bucket, key = _split(path)
        return _RangedS3Reader(self._client, bucket, key, head["ContentLength"], head["ETag"],
                               self._versions.get(f"{bucket}/{key}"))

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return pa.PythonFile(io.BufferedReader(self._reader(path), buffer_size=8 * 1024 * 1024), mode="r")

    def open_input_file(self, path: str) -> pa.NativeFile:
        reader = self._reader(path)
        if reader.size <= _WHOLE_OBJECT_LIMIT:
            return pa.BufferReader(reader.read())
        return pa.PythonFile(reader, mode="r")

    def open_output_stream(self, path: str, metadata: dict[str, str] | None = None) -> pa.NativeFile:
        self._heads.pop(path, None)  # about to be replaced: the size asked before is no longer its size
        bucket, key = _split(path)
        return pa.PythonFile(_S3Writer(self._client, bucket, key), mode="w")

    def open_append_stream(self, path: str, metadata: dict[str, str] | None = None) -> pa.NativeFile:
        raise PermissionError("S3 objects cannot be appended to")
