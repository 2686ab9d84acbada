"""The capture digest: the Data Capture files one A/B look parsed, so the next look parses only newer ones.

AnalyseAB reads every capture file written since the A/B test started, at every look. Without a digest
a test of K looks fetches and parses the first hours' files K times. Each look therefore writes what it
parsed to ``cache/<run_id>/ab-stage-<stage>-<look>-capture.parquet``
(:func:`driftloop.layout.ab_capture_digest_key`; the bucket expires it after 14 days): per file its
key, its ETag from the listing and what :class:`driftloop.capture.CaptureReader` made of it (rows,
lines, lines skipped per reason with their examples). The next look still lists the capture folders (a
file can land late in any hour folder), reuses the files the digest holds with the same ETag, and
fetches only the others. A file that could not be fetched is not in the digest, so it is fetched again
next look. Counting a reused file gives the same numbers and examples as parsing it again, so the
feedback and its evidence do not depend on the digest (docs/feedback.md).

The digest is a cache: one that is missing, corrupt, of another format or of other variants is ignored,
and every file is read again (the evidence says why).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from driftloop.adapters.s3 import put_bytes
from driftloop.capture import CaptureFile, ServedRecommendation

FORMAT = 1
_METADATA_KEY = b"driftloop.capture_digest"
_TIME = pa.timestamp("us", tz="UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_IDS = pa.list_(pa.string())
ROWS_SCHEMA = pa.schema([("variant", pa.string()), ("event_id", pa.string()), ("served_at", _TIME),
                         ("user_id", pa.string()), ("items", _IDS), ("recent_items", _IDS),
                         ("inference_id", pa.string())])
# What reading a digest that is not one we wrote can raise; it is then rebuilt, never fatal.
UNUSABLE_DIGEST = (ClientError, pa.ArrowException, OSError, ValueError, LookupError, TypeError)


@dataclass(frozen=True)
class DigestKeys:
    """Where a read finds the digest it starts from (None: it starts from nothing) and leaves its own."""

    previous: str | None
    current: str


def variant_names(known_variants: set[str] | None) -> tuple[str, ...] | None:
    """How a digest names the variants its reader knew (sorted; None: every variant)."""
    return None if known_variants is None else tuple(sorted(known_variants))


@dataclass(frozen=True)
class DigestedFile:
    """One capture file as it was parsed, the ETag it had when listed, and (when it was loaded from a digest)
    its rows as stored there, written again as they are."""

    etag: str
    parsed: CaptureFile
    stored: pa.Table | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class CaptureDigest:
    """Capture files already parsed, by key, by a reader of ``known_variants``.

    Example
    -------
    >>> from driftloop.capture import CaptureFile
    >>> digest = CaptureDigest(("champion",), {"a.jsonl": DigestedFile('"e1"', CaptureFile((), 2, {}, {}))})
    >>> CaptureDigest.from_parquet(digest.to_parquet()) == digest
    True
    >>> digest.reusable("a.jsonl", '"e1"') is not None, digest.reusable("a.jsonl", '"e2"')
    (True, None)
    """

    known_variants: tuple[str, ...] | None
    files: dict[str, DigestedFile]

    def reusable(self, key: str, etag: str) -> DigestedFile | None:
        """``key`` as it was parsed when it had ``etag``, or None when it was not parsed with that ETag."""
        kept = self.files.get(key)
        return kept if kept is not None and kept.etag == etag else None

    def to_parquet(self) -> bytes:
        """The digest as Parquet: one row per served recommendation, file after file, and the files (key,
        ETag, rows, counts) in the schema metadata. The same digest always gives the same bytes."""
        pieces, fresh = [], []
        for kept in self.files.values():
            if kept.stored is None:
                fresh.extend(kept.parsed.rows)
                continue
            pieces.extend([_rows_table(fresh), kept.stored] if fresh else [kept.stored])
            fresh = []
        pieces.append(_rows_table(fresh))
        table = pa.concat_tables(pieces).combine_chunks()
        described = {"format": FORMAT, "known_variants": self.known_variants,
                     "files": [{"key": key, "etag": kept.etag, "rows": len(kept.parsed.rows),
                                "lines": kept.parsed.lines, "skipped": kept.parsed.skipped,
                                "examples": {reason: list(lines) for reason, lines in kept.parsed.examples.items()}}
                               for key, kept in self.files.items()]}
        buffer = io.BytesIO()
        pq.write_table(table.replace_schema_metadata({_METADATA_KEY: json.dumps(described, sort_keys=True)}), buffer)
        return buffer.getvalue()

    @classmethod
    def from_parquet(cls, body: bytes) -> CaptureDigest:
        """The digest :meth:`to_parquet` wrote; raises one of ``UNUSABLE_DIGEST`` for anything else."""
        table = pq.read_table(pa.BufferReader(body))
        described = json.loads((table.schema.metadata or {})[_METADATA_KEY])
        if described["format"] != FORMAT:
            raise ValueError(f"digest format {described['format']!r}, this reader knows {FORMAT}")
        if table.schema.remove_metadata() != ROWS_SCHEMA:
            raise ValueError(f"digest columns {table.schema.names} are not {ROWS_SCHEMA.names}")
        table = table.cast(ROWS_SCHEMA)  # Parquet names a list's values "element": written again, the same bytes
        entries = _typed(described["files"], list)
        counts = [_typed(_typed(entry, dict)["rows"], int) for entry in entries]
        if min(counts, default=0) < 0 or sum(counts) != table.num_rows:
            raise ValueError(f"digest files hold {sum(counts)} rows, its table {table.num_rows}")
        rows = _served(table.combine_chunks())
        files, offset = {}, 0
        for entry, count in zip(entries, counts, strict=True):
            files[_typed(entry["key"], str)] = _digested(entry, tuple(rows[offset:offset + count]),
                                                         table.slice(offset, count))
            offset += count
        variants = described["known_variants"]
        return cls(None if variants is None else _strings(variants), files)


def _rows_table(rows: list[ServedRecommendation]) -> pa.Table:
    # Microseconds since the epoch: pyarrow converts aware datetimes one by one, ten times slower.
    moments = [(row.served_at - _EPOCH) // _MICROSECOND for row in rows]
    return pa.table({
        "variant": pa.array([row.variant for row in rows], pa.string()),
        "event_id": pa.array([row.event_id for row in rows], pa.string()),
        "served_at": pa.array(moments, pa.int64()).cast(_TIME),
        "user_id": pa.array([row.user_id for row in rows], pa.string()),
        "items": pa.array([row.items for row in rows], _IDS),
        "recent_items": pa.array([row.recent_items for row in rows], _IDS),
        "inference_id": pa.array([row.inference_id for row in rows], pa.string()),
    }, schema=ROWS_SCHEMA)


def _served(table: pa.Table) -> list[ServedRecommendation]:
    """The rows of a digest's table (one chunk per column) as served recommendations."""
    moments = [_EPOCH + moment * _MICROSECOND for moment in table["served_at"].cast(pa.int64()).to_pylist()]
    return list(map(ServedRecommendation, table["variant"].to_pylist(), table["event_id"].to_pylist(), moments,
                    table["user_id"].to_pylist(), _id_lists(table["items"]), _id_lists(table["recent_items"]),
                    table["inference_id"].to_pylist()))


def _id_lists(column: pa.ChunkedArray) -> list[tuple[str, ...]]:
    """A list<string> column as tuples, sliced from its flat values (faster than converting each list)."""
    (lists,) = column.chunks or [pa.array([], _IDS)]
    values, offsets = lists.values.to_pylist(), lists.offsets.to_pylist()
    return [tuple(values[start:end]) for start, end in zip(offsets, offsets[1:], strict=False)]


def _digested(entry: dict[str, Any], rows: tuple[ServedRecommendation, ...], stored: pa.Table) -> DigestedFile:
    """One file's entry of the digest's metadata, with its rows, checked field by field."""
    skipped = {_typed(reason, str): _typed(count, int) for reason, count in _typed(entry["skipped"], dict).items()}
    examples = {_typed(reason, str): _strings(lines) for reason, lines in _typed(entry["examples"], dict).items()}
    return DigestedFile(_typed(entry["etag"], str), CaptureFile(rows, _typed(entry["lines"], int), skipped, examples),
                        stored)


def _typed(value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"digest field is {type(value).__name__}, not {kind.__name__}")
    return value


def _strings(values: Any) -> tuple[str, ...]:
    return tuple(_typed(value, str) for value in _typed(values, list))


def load_digest(s3: Any, bucket: str, key: str, known_variants: set[str] | None) -> tuple[CaptureDigest | None, str]:
    """The digest at ``key`` when a reader of ``known_variants`` can reuse it, else None and why not."""
    try:
        digest = CaptureDigest.from_parquet(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except UNUSABLE_DIGEST as error:
        return None, f"{type(error).__name__}: {error}"[:300]
    wanted = variant_names(known_variants)
    if digest.known_variants != wanted:
        return None, f"digest of variants {digest.known_variants}, the reader knows {wanted}"
    return digest, ""


def save_digest(s3: Any, bucket: str, key: str, digest: CaptureDigest) -> str:
    """Write ``digest`` to ``key``; its ``s3://`` URI."""
    return put_bytes(s3, bucket, key, digest.to_parquet(), "application/vnd.apache.parquet")

