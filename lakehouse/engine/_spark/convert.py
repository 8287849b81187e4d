"""Type and data conversions between lakehouse (Delta schema, Arrow) and Spark.

Why: the Delta schema JSON is Spark's own StructType JSON, so the Spark schema of a table is that
JSON minus the protocol-internal field metadata (column-mapping ids and physical names). Arrow
batches handed to Spark must match ``to_arrow_schema(spark_schema)`` exactly (nullability and the
list/map child names included), so every batch goes through :func:`cast_for_spark`. In the other
direction, data coming from Spark is made nullable, as Delta does when a DataFrame creates a
table: Spark marks many derived columns non-nullable, which would otherwise become NOT NULL
constraints of the new table.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from lakehouse.errors import InvalidArgumentError, SchemaMismatchError
from lakehouse.log.schema import StructType as DeltaStruct

#: Field metadata kept on the Spark schema (everything else is protocol-internal).
_KEPT_METADATA = ("comment",)


def _strip_type(t: Any) -> Any:
    if isinstance(t, dict):
        kind = t.get("type")
        if kind == "struct":
            return {"type": "struct", "fields": [_strip_field(f) for f in t["fields"]]}
        if kind == "array":
            return {**t, "elementType": _strip_type(t["elementType"])}
        if kind == "map":
            return {**t, "keyType": _strip_type(t["keyType"]),
                    "valueType": _strip_type(t["valueType"])}
    return t


def _strip_field(f: dict[str, Any]) -> dict[str, Any]:
    md = {k: v for k, v in (f.get("metadata") or {}).items() if k in _KEPT_METADATA}
    return {"name": f["name"], "type": _strip_type(f["type"]), "nullable": f.get("nullable", True),
            "metadata": md}


def spark_schema(schema: DeltaStruct, columns: list[str] | None = None) -> Any:
    """The Spark ``StructType`` of a Delta schema (optionally only ``columns``, in that order)."""
    from pyspark.sql.types import StructType

    obj = schema.json_value()
    fields = obj["fields"]
    if columns is not None:
        by_name = {f["name"]: f for f in fields}
        fields = [by_name[c] for c in columns]
    return StructType.fromJson({"type": "struct", "fields": [_strip_field(f) for f in fields]})


def spark_arrow_schema(schema: Any) -> pa.Schema:
    """The Arrow schema Spark expects for batches of the Spark ``StructType`` ``schema``."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(schema, timezone="UTC")


def cast_for_spark(table: pa.Table, target: pa.Schema) -> pa.Table:
    """``table`` (lakehouse's logical Arrow types) as exactly ``target`` (Spark's Arrow types)."""
    table = table.select(target.names)
    if table.schema.equals(target):
        return table
    try:
        return table.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        raise SchemaMismatchError(
            f"cannot hand rows to Spark as {target}: {e}; the table uses a type this Spark "
            "version cannot represent"
        ) from e


def _nullable_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_struct(t):
        return pa.struct([_nullable_field(t.field(i)) for i in range(t.num_fields)])
    if pa.types.is_large_list(t):
        return pa.large_list(_nullable_field(t.value_field))
    if pa.types.is_list(t):
        return pa.list_(_nullable_field(t.value_field))
    if pa.types.is_map(t):
        return pa.map_(pa.field(t.key_field.name, _nullable_type(t.key_type), False),
                       _nullable_field(t.item_field))
    return t


def _nullable_field(f: pa.Field) -> pa.Field:
    return pa.field(f.name, _nullable_type(f.type), True, f.metadata)


def as_nullable(schema: pa.Schema) -> pa.Schema:
    """``schema`` with every field (nested ones too, map keys excepted) nullable."""
    return pa.schema([_nullable_field(f) for f in schema], metadata=schema.metadata)


def data_arrow_schema(schema: Any) -> pa.Schema:
    """The Arrow schema of data written from a Spark frame of ``StructType`` ``schema``."""
    from pyspark.sql.types import StructType

    if not isinstance(schema, StructType):
        raise InvalidArgumentError(f"expected a Spark StructType, got {type(schema).__name__}")
    try:
        return as_nullable(spark_arrow_schema(schema))
    except Exception as e:  # pyspark raises its own error types for unsupported types
        raise SchemaMismatchError(
            f"the Spark schema {schema.simpleString()} cannot be stored in a Delta table: {e}"
        ) from e


def is_spark_frame(data: Any) -> bool:
    """Whether ``data`` is a PySpark DataFrame (classic or Spark Connect)."""
    return type(data).__module__.startswith("pyspark") and hasattr(data, "toArrow")


def spark_frame_to_reader(df: Any) -> pa.RecordBatchReader:
    """A Spark DataFrame's rows as an Arrow stream, collected on the driver (``toArrow``).

    Moderate data only: for large frames write with ``df.write.format("lakehouse")``, which
    writes from the executors. Columns become nullable, as in Delta.
    """
    table: pa.Table = df.toArrow()
    table = table.cast(as_nullable(table.schema))
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())


def parse_json_option(options: Any, key: str) -> dict[str, str]:
    """A JSON-object option (e.g. ``storage_options``) as a dict of strings."""
    raw = options.get(key) if options is not None else None
    if raw in (None, ""):
        return {}
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise InvalidArgumentError(
            f"option {key!r} must be a JSON object, e.g. '{{\"key\": \"value\"}}'; got {raw!r}"
        ) from e
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"option {key!r} must be a JSON object, got {raw!r}")
    return {str(k): str(v) for k, v in value.items()}


__all__ = [
    "as_nullable",
    "cast_for_spark",
    "data_arrow_schema",
    "is_spark_frame",
    "parse_json_option",
    "spark_arrow_schema",
    "spark_frame_to_reader",
    "spark_schema",
]
