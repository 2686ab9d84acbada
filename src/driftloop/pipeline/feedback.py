"""The one reader of the endpoint's feedback log: which recommendations were served, and which converted.

The A/B analysis (:mod:`driftloop.pipeline.rollout`) and the concept-drift check
(:mod:`driftloop.pipeline.drift`) both read it here, so they always see the same rows."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from driftloop.layout import feedback_day, feedback_day_prefix, feedback_prefix
from driftloop.pipeline.services import Services
from driftloop.storage import ParquetSource, is_parquet_name, s3_source

FEEDBACK_SCHEMA = pa.schema([("variant", pa.string()), ("served_at", pa.timestamp("us", tz="UTC")),
                             ("converted", pa.bool_()), ("latency_ms", pa.float64()), ("error", pa.bool_())])


def feedback_keys(services: Services, since: datetime, until: datetime | None = None) -> list[str]:
    """Feedback objects in the ``date=`` partitions that can hold rows served in [``since``, ``until``)."""
    settings = services.settings
    prefix = feedback_prefix(settings.endpoint_name)
    first_day = since.date().isoformat()
    last_day = None if until is None else (until - timedelta(microseconds=1)).date().isoformat()
    keys = []
    pages = services.s3.get_paginator("list_objects_v2").paginate(
        Bucket=settings.data_bucket, Prefix=prefix, StartAfter=feedback_day_prefix(settings.endpoint_name, first_day))
    for page in pages:
        for entry in page.get("Contents", []):
            day = feedback_day(entry["Key"])
            if day is None or not is_parquet_name(entry["Key"]):
                continue
            if last_day is not None and day > last_day:
                return keys
            if day >= first_day:
                keys.append(entry["Key"])
    return keys


def feedback_source(services: Services, since: datetime, until: datetime | None = None) -> ParquetSource:
    """The feedback files that can hold rows served in [``since``, ``until``), to stream."""
    return s3_source(services.s3, services.settings.data_bucket, feedback_keys(services, since, until))


def read_feedback(services: Services, since: datetime, until: datetime | None = None) -> pa.Table:
    """The feedback rows served in [``since``, ``until``), as one table (empty with the log's schema)."""
    source = feedback_source(services, since, until)
    tables = []
    for path in source.paths:
        with source.filesystem.open_input_file(path) as handle:
            tables.append(pq.read_table(handle))
    if not tables:
        return FEEDBACK_SCHEMA.empty_table()
    table = pa.concat_tables(tables, promote_options="permissive")
    served_at = table["served_at"].cast(FEEDBACK_SCHEMA.field("served_at").type)
    keep = pc.greater_equal(served_at, pa.scalar(since, served_at.type))
    if until is not None:
        keep = pc.and_(keep, pc.less(served_at, pa.scalar(until, served_at.type)))
    return table.filter(keep)
