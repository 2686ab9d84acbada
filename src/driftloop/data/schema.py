"""Schema evolution: one target schema for many files, and batches conformed to it.

Every type is first brought to a canonical form (integers to int64, floats to float64, string-like
and dictionary-of-string to string, timestamps to ``timestamp[us, tz=UTC]`` with naive timestamps
read as UTC). Two canonical types then unify when they are equal, when one is the all-null type,
or when one is int64 and the other float64 (widened to float64). Anything else is unsafe.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from driftloop.errors import UnsafeSchemaChangeError

TIMESTAMP = pa.timestamp("us", tz="UTC")


def canonical_type(data_type: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(data_type):
        return canonical_type(data_type.value_type)
    if pa.types.is_timestamp(data_type):
        return TIMESTAMP
    if pa.types.is_integer(data_type) and data_type != pa.uint64():
        return pa.int64()
    if pa.types.is_floating(data_type):
        return pa.float64()
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return pa.string()
    if pa.types.is_large_binary(data_type):
        return pa.binary()
    return data_type


def canonical_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(field.name, canonical_type(field.type)) for field in schema])


def _unify_types(current: pa.DataType, incoming: pa.DataType) -> pa.DataType | None:
    if current == incoming or pa.types.is_null(incoming):
        return current
    if pa.types.is_null(current):
        return incoming
    if {current, incoming} == {pa.int64(), pa.float64()}:
        return pa.float64()
    return None


def unify_schemas(schemas: Sequence[tuple[str, pa.Schema]], base: pa.Schema | None = None) -> pa.Schema:
    """The union of ``schemas`` (labelled by file), in first-seen column order.

    ``base`` (the previous version's schema) comes first. Raises ``UnsafeSchemaChangeError``
    naming the file and the column when a column cannot be widened safely.
    """
    fields: dict[str, pa.DataType] = {}
    origin: dict[str, str] = {}
    labelled = [("the previous version", base)] if base is not None else []
    for label, schema in [*labelled, *schemas]:
        for field in canonical_schema(schema):
            if field.name not in fields:
                fields[field.name], origin[field.name] = field.type, label
                continue
            unified = _unify_types(fields[field.name], field.type)
            if unified is None:
                raise UnsafeSchemaChangeError(
                    f"{label}: column {field.name!r} has type {field.type}, "
                    f"incompatible with {fields[field.name]} (from {origin[field.name]})"
                )
            fields[field.name] = unified
    return pa.schema([pa.field(name, data_type) for name, data_type in fields.items()])


def conform_batch(batch: pa.RecordBatch, target: pa.Schema, label: str) -> pa.RecordBatch:
    """``batch`` with exactly ``target``'s columns: missing ones null, others cast without loss."""
    columns = []
    for field in target:
        index = batch.schema.get_field_index(field.name)
        if index < 0:
            columns.append(pa.nulls(batch.num_rows, field.type))
            continue
        column = batch.column(index)
        if column.type != field.type:
            column = _cast(column, field, label)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=target)


def _cast(column: pa.Array, field: pa.Field, label: str) -> pa.Array:
    try:
        return column.cast(field.type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise UnsafeSchemaChangeError(
            f"{label}: column {field.name!r} cannot be converted from {column.type} to {field.type} "
            f"without loss ({error})"
        ) from error
