"""Delta table schemas: the ``schemaString`` JSON model, and its bridge to Arrow.

Why this module exists: a Delta table's schema lives in the log as Spark-style JSON (see the
protocol's "Schema Serialization Format"), while all our data work happens in Arrow. This module
holds one small, immutable model of Delta types that parses and re-emits that JSON faithfully, maps
it to and from Arrow (normalising the many Arrow types users hand us onto the few Delta has), and
implements the two read/write concerns that are pure schema work:

* column mapping (protocol "Column Mapping"): data files name columns by physical name or field
  id, so tables must be renamed between physical and logical names at every nesting level;
* type widening / schema evolution (protocol "Type Widening"): old files may hold narrower types
  or lack columns added later, so a file's table is conformed to the current table schema.

Renames use ``Array.view`` (zero-copy, same buffers) rather than ``cast``: pyarrow casts struct
fields *by name* and silently yields nulls when the names differ.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union, overload

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import (
    CorruptLogError,
    InvalidArgumentError,
    ProtocolError,
    SchemaMismatchError,
    UnsupportedFeatureError,
)

COLUMN_MAPPING_ID_KEY = "delta.columnMapping.id"
COLUMN_MAPPING_PHYSICAL_NAME_KEY = "delta.columnMapping.physicalName"
COLUMN_MAPPING_MODE_KEY = "delta.columnMapping.mode"
PARQUET_FIELD_ID_KEY = b"PARQUET:field_id"

_ARROW_PRIMITIVES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "long": pa.int64(),
    "integer": pa.int32(),
    "short": pa.int16(),
    "byte": pa.int8(),
    "float": pa.float32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "binary": pa.binary(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "timestamp_ntz": pa.timestamp("us"),
    "void": pa.null(),
    # unshredded variant: the binary encoding as stored in Parquet (what deltalake returns too)
    "variant": pa.struct([pa.field("metadata", pa.binary(), nullable=False),
                          pa.field("value", pa.binary(), nullable=False)]),
}
_DECIMAL_RE = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(-?\d+)\s*\)$")
# Table feature named when refusing a type we can parse but not read/write.
_TYPE_FEATURES = {"variant": "variantType", "geometry": "geospatial", "geography": "geospatial"}


# ----------------------------------------------------------------------------------------------
# Types
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrimitiveType:
    """A named Delta primitive. Unknown names (void, variant, interval..., geometry(...)) parse
    fine so any table's schema can be loaded; :func:`to_arrow` refuses them."""

    name: str

    def json_value(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class DecimalType:
    precision: int
    scale: int

    def __post_init__(self) -> None:
        if not (1 <= self.precision <= 38 and 0 <= self.scale <= self.precision):
            raise InvalidArgumentError(
                f"invalid decimal({self.precision},{self.scale}): Delta needs 1 <= precision <= 38 "
                "and 0 <= scale <= precision"
            )

    @property
    def name(self) -> str:
        return f"decimal({self.precision},{self.scale})"

    def json_value(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class ArrayType:
    element_type: DeltaType
    contains_null: bool = True

    def json_value(self) -> dict[str, Any]:
        return {
            "type": "array",
            "elementType": self.element_type.json_value(),
            "containsNull": self.contains_null,
        }


@dataclass(frozen=True, slots=True)
class MapType:
    key_type: DeltaType
    value_type: DeltaType
    value_contains_null: bool = True

    def json_value(self) -> dict[str, Any]:
        return {
            "type": "map",
            "keyType": self.key_type.json_value(),
            "valueType": self.value_type.json_value(),
            "valueContainsNull": self.value_contains_null,
        }


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return FieldMetadata(value)
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_thaw(v) for v in value]
    return value


class FieldMetadata(Mapping[str, Any]):
    """Immutable, hashable column metadata (arbitrary JSON values; key order is kept for output).

    Nested JSON objects come back as ``FieldMetadata`` and arrays as tuples; ``to_dict()`` gives
    plain JSON values. Equality compares JSON content, so it also equals a plain ``dict``.
    """

    __slots__ = ("_data",)

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = {str(k): _freeze(v) for k, v in (items or {}).items()}

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def to_dict(self) -> dict[str, Any]:
        return _thaw(self._data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return self.to_dict() == _thaw(other)

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __repr__(self) -> str:
        return f"FieldMetadata({self.to_dict()!r})"


@dataclass(frozen=True, slots=True)
class StructField:
    name: str
    type: DeltaType
    nullable: bool = True
    metadata: Mapping[str, Any] = field(default_factory=FieldMetadata)

    def __post_init__(self) -> None:
        if not isinstance(self.metadata, FieldMetadata):
            object.__setattr__(self, "metadata", FieldMetadata(self.metadata))

    def json_value(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.json_value(),
            "nullable": self.nullable,
            "metadata": _thaw(self.metadata),
        }


@dataclass(frozen=True, slots=True)
class StructType:
    fields: tuple[StructField, ...] = ()
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = tuple(self.fields)
        object.__setattr__(self, "fields", fields)
        index: dict[str, int] = {}
        folded: dict[str, str] = {}
        for i, f in enumerate(fields):
            key = f.name.lower()
            if key in folded:
                raise InvalidArgumentError(
                    f"duplicate column name {f.name!r} (clashes with {folded[key]!r}); Delta column "
                    "names must be unique ignoring case - rename one of them"
                )
            folded[key] = f.name
            index[f.name] = i
        object.__setattr__(self, "_index", index)

    # -- access ----------------------------------------------------------------------------
    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def __iter__(self) -> Iterator[StructField]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __contains__(self, name: object) -> bool:
        return self.get(name) is not None if isinstance(name, str) else False

    def get(self, name: str) -> StructField | None:
        """The field called ``name`` (exact match first, then ignoring case), or None."""
        i = self._index.get(name)
        if i is not None:
            return self.fields[i]
        lowered = name.lower()
        for f in self.fields:
            if f.name.lower() == lowered:
                return f
        return None

    def field(self, name: str) -> StructField:
        found = self.get(name)
        if found is None:
            raise InvalidArgumentError(
                f"no column {name!r} in the schema; columns are {self.field_names}"
            )
        return found

    # -- JSON ------------------------------------------------------------------------------
    def json_value(self) -> dict[str, Any]:
        return {"type": "struct", "fields": [f.json_value() for f in self.fields]}

    def to_json(self) -> str:
        """The compact Delta ``schemaString`` form (same key order and spacing as Spark)."""
        return json.dumps(self.json_value(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, value: str | Mapping[str, Any]) -> StructType:
        """Parse a Delta ``schemaString`` (or its decoded JSON object)."""
        try:
            obj = json.loads(value) if isinstance(value, str | bytes) else value
        except ValueError as exc:
            raise CorruptLogError(f"schema is not valid JSON: {exc}") from exc
        parsed = _parse_type(obj, "<schema>")
        if not isinstance(parsed, StructType):
            raise CorruptLogError(f"a table schema must be a struct, got {obj!r:.200}")
        return parsed


DeltaType = Union[PrimitiveType, DecimalType, ArrayType, MapType, StructType]  # noqa: UP007


def _parse_type(obj: Any, path: str) -> DeltaType:
    try:
        if isinstance(obj, str):
            m = _DECIMAL_RE.match(obj)
            if m:
                return DecimalType(int(m.group(1)), int(m.group(2)))
            if obj == "decimal":  # Spark's bare "decimal" means decimal(10,0)
                return DecimalType(10, 0)
            return PrimitiveType(obj)
        kind = obj["type"]
        if kind == "struct":
            return StructType(tuple(_parse_field(f, path) for f in obj["fields"]))
        if kind == "array":
            return ArrayType(
                _parse_type(obj["elementType"], f"{path}.element"),
                bool(obj.get("containsNull", True)),
            )
        if kind == "map":
            return MapType(
                _parse_type(obj["keyType"], f"{path}.key"),
                _parse_type(obj["valueType"], f"{path}.value"),
                bool(obj.get("valueContainsNull", True)),
            )
        if isinstance(kind, str) and not isinstance(obj.get("fields"), list):
            return PrimitiveType(kind)  # e.g. {"type": "variant"}
    except (KeyError, TypeError, InvalidArgumentError) as exc:
        raise CorruptLogError(f"invalid schema type at {path}: {obj!r:.200} ({exc})") from exc
    raise CorruptLogError(f"invalid schema type at {path}: {obj!r:.200}")


def _parse_field(obj: Any, path: str) -> StructField:
    try:
        name = obj["name"]
        return StructField(
            name=name,
            type=_parse_type(obj["type"], f"{path}.{name}" if path != "<schema>" else name),
            nullable=bool(obj.get("nullable", True)),
            metadata=obj.get("metadata") or {},
        )
    except (KeyError, TypeError) as exc:
        raise CorruptLogError(f"invalid schema field under {path}: {obj!r:.200}") from exc


# ----------------------------------------------------------------------------------------------
# Delta -> Arrow
# ----------------------------------------------------------------------------------------------


@overload
def to_arrow(dtype_or_schema: StructType, *, physical: bool = False) -> pa.Schema: ...
@overload
def to_arrow(
    dtype_or_schema: PrimitiveType | DecimalType | ArrayType | MapType, *, physical: bool = False
) -> pa.DataType: ...
def to_arrow(dtype_or_schema: DeltaType, *, physical: bool = False) -> pa.Schema | pa.DataType:
    """Arrow type for a Delta type, or ``pa.Schema`` for a ``StructType``.

    Logical form (default) carries each field's Delta metadata as Arrow field metadata (strings
    verbatim, other JSON values JSON-encoded). ``physical=True`` names every field by its
    column-mapping physical name and carries only ``PARQUET:field_id`` (the column-mapping id),
    i.e. the schema of a data file. Raises UnsupportedFeatureError for types we cannot handle.
    """
    if isinstance(dtype_or_schema, StructType):
        return pa.schema([_arrow_field(f, physical, f.name) for f in dtype_or_schema.fields])
    return _arrow_type(dtype_or_schema, physical, "<type>")


def _arrow_field(f: StructField, physical: bool, path: str) -> pa.Field:
    if physical:
        fid = field_id(f)
        meta = {PARQUET_FIELD_ID_KEY: str(fid).encode()} if fid is not None else None
        name = physical_name(f)
    else:
        meta = {
            k.encode(): (
                v if isinstance(v, str) else json.dumps(_thaw(v), separators=(",", ":"))
            ).encode()
            for k, v in f.metadata.items()
        } or None
        name = f.name
    return pa.field(name, _arrow_type(f.type, physical, path), nullable=f.nullable, metadata=meta)


def _arrow_type(t: DeltaType, physical: bool, path: str) -> pa.DataType:
    if isinstance(t, PrimitiveType):
        found = _ARROW_PRIMITIVES.get(t.name)
        if found is None:
            base = t.name.split("(")[0].split(" ")[0]
            raise UnsupportedFeatureError(
                f"column {path!r} has Delta type {t.name!r}, which lakehouse cannot read or write; "
                "use an engine that supports it (e.g. Spark), or drop/cast the column there",
                feature=_TYPE_FEATURES.get(base, base),
            )
        return found
    if isinstance(t, DecimalType):
        return pa.decimal128(t.precision, t.scale)
    if isinstance(t, ArrayType):
        elem = _arrow_type(t.element_type, physical, f"{path}.element")
        return pa.list_(pa.field("element", elem, nullable=t.contains_null))
    if isinstance(t, MapType):
        return pa.map_(
            pa.field("key", _arrow_type(t.key_type, physical, f"{path}.key"), nullable=False),
            pa.field(
                "value",
                _arrow_type(t.value_type, physical, f"{path}.value"),
                nullable=t.value_contains_null,
            ),
        )
    return pa.struct([_arrow_field(f, physical, f"{path}.{f.name}") for f in t.fields])


# ----------------------------------------------------------------------------------------------
# Arrow -> Delta
# ----------------------------------------------------------------------------------------------


def from_arrow(schema_or_type: pa.Schema | pa.DataType) -> Any:
    """Delta type for an Arrow type (``StructType`` for a ``pa.Schema``), normalising Arrow's
    variants onto Delta's types. Raises SchemaMismatchError for types Delta cannot store."""
    if isinstance(schema_or_type, pa.Schema):
        return StructType(tuple(_from_arrow_field(f, f.name) for f in schema_or_type))
    return _from_arrow_type(schema_or_type, "<type>")


def _from_arrow_field(f: pa.Field, path: str) -> StructField:
    return StructField(f.name, _from_arrow_type(f.type, path), f.nullable)


def _from_arrow_type(t: pa.DataType, path: str) -> DeltaType:
    types = pa.types
    if isinstance(t, pa.BaseExtensionType):
        return _from_arrow_type(t.storage_type, path)
    if types.is_dictionary(t):
        return _from_arrow_type(t.value_type, path)
    if types.is_null(t):
        raise SchemaMismatchError(
            f"column {path!r} has Arrow type null (all values null, no type known); Delta cannot "
            "store an untyped column - cast it to a concrete type (e.g. pa.string()) first"
        )
    if types.is_boolean(t):
        return PrimitiveType("boolean")
    if types.is_integer(t):
        name = {"int8": "byte", "int16": "short", "int32": "integer", "int64": "long",
                "uint8": "short", "uint16": "integer", "uint32": "long"}.get(str(t))  # fmt: skip
        if name is None:
            raise SchemaMismatchError(
                f"column {path!r} is {t}, which has no Delta type holding all its values; cast it "
                "to int64 (if values fit) or to decimal(20,0)"
            )
        return PrimitiveType(name)
    if types.is_floating(t):
        return PrimitiveType("double" if types.is_float64(t) else "float")
    if types.is_string(t) or types.is_large_string(t) or types.is_string_view(t):
        return PrimitiveType("string")
    if (
        types.is_binary(t)
        or types.is_large_binary(t)
        or types.is_binary_view(t)
        or types.is_fixed_size_binary(t)
    ):
        return PrimitiveType("binary")
    if types.is_date(t):
        return PrimitiveType("date")
    if types.is_timestamp(t):
        return PrimitiveType("timestamp" if t.tz is not None else "timestamp_ntz")
    if types.is_decimal(t):
        if t.precision > 38 or t.scale < 0:
            raise SchemaMismatchError(
                f"column {path!r} is {t}; Delta decimals need precision <= 38 and scale >= 0 - "
                "cast it to a narrower decimal or to double"
            )
        return DecimalType(t.precision, t.scale)
    if isinstance(t, pa.MapType):
        return MapType(
            _from_arrow_type(t.key_type, f"{path}.key"),
            _from_arrow_type(t.item_type, f"{path}.value"),
            t.item_field.nullable,
        )
    if isinstance(t, pa.ListType | pa.LargeListType | pa.FixedSizeListType) or (
        types.is_list_view(t) or types.is_large_list_view(t)
    ):
        return ArrayType(_from_arrow_type(t.value_type, f"{path}.element"), t.value_field.nullable)
    if types.is_struct(t):
        return StructType(
            tuple(
                _from_arrow_field(t.field(i), f"{path}.{t.field(i).name}")
                for i in range(t.num_fields)
            )
        )
    raise SchemaMismatchError(
        f"column {path!r} has Arrow type {t}, which Delta cannot store; cast it to a supported "
        "type (e.g. time/duration to int64, or to string)"
    )


def arrow_cast_schema(schema: pa.Schema) -> pa.Schema:
    """The Arrow schema our writer writes for data of ``schema`` (``data.cast(result)`` works)."""
    return to_arrow(from_arrow(schema))


# ----------------------------------------------------------------------------------------------
# Column mapping
# ----------------------------------------------------------------------------------------------


def column_mapping_mode(configuration: Mapping[str, str]) -> Literal["none", "name", "id"]:
    """The table's column mapping mode (caller checks the protocol supports columnMapping)."""
    mode = (configuration.get(COLUMN_MAPPING_MODE_KEY) or "none").strip().lower()
    if mode not in ("none", "name", "id"):
        raise ProtocolError(
            f"unknown {COLUMN_MAPPING_MODE_KEY}={mode!r}; valid modes are none, name and id"
        )
    return mode  # type: ignore[return-value]


def physical_name(f: StructField) -> str:
    name = f.metadata.get(COLUMN_MAPPING_PHYSICAL_NAME_KEY)
    return name if isinstance(name, str) and name else f.name


def field_id(f: StructField) -> int | None:
    value = f.metadata.get(COLUMN_MAPPING_ID_KEY)
    return int(value) if value is not None and not isinstance(value, bool) else None


def _child_structs(t: DeltaType) -> Iterator[StructType]:
    if isinstance(t, StructType):
        yield t
    elif isinstance(t, ArrayType):
        yield from _child_structs(t.element_type)
    elif isinstance(t, MapType):
        yield from _child_structs(t.key_type)
        yield from _child_structs(t.value_type)


def max_column_id(schema: StructType) -> int:
    """Largest ``delta.columnMapping.id`` anywhere in the schema (0 if none)."""
    best = 0
    for f in schema.fields:
        best = max(best, field_id(f) or 0)
        for sub in _child_structs(f.type):
            best = max(best, max_column_id(sub))
    return best


def assign_column_mapping(
    schema: StructType, start_id: int, *, use_logical_names: bool = False
) -> tuple[StructType, int]:
    """Give every field (nested too) lacking them an id above ``start_id`` and a physical name.

    New physical names are ``col-<uuid4>``; ``use_logical_names=True`` uses the current name
    instead (when enabling mapping on an existing table whose files use the names). Returns the
    new schema and the new maximum id (for ``delta.columnMapping.maxColumnId``).
    """
    counter = [max(start_id, max_column_id(schema))]

    def do_type(t: DeltaType) -> DeltaType:
        if isinstance(t, StructType):
            return StructType(tuple(do_field(f) for f in t.fields))
        if isinstance(t, ArrayType):
            return ArrayType(do_type(t.element_type), t.contains_null)
        if isinstance(t, MapType):
            return MapType(do_type(t.key_type), do_type(t.value_type), t.value_contains_null)
        return t

    def do_field(f: StructField) -> StructField:
        meta = dict(f.metadata)
        if field_id(f) is None:
            counter[0] += 1
            meta[COLUMN_MAPPING_ID_KEY] = counter[0]
        if not meta.get(COLUMN_MAPPING_PHYSICAL_NAME_KEY):
            meta[COLUMN_MAPPING_PHYSICAL_NAME_KEY] = (
                f.name if use_logical_names else f"col-{uuid.uuid4()}"
            )
        return StructField(f.name, do_type(f.type), f.nullable, meta)

    result = do_type(schema)
    assert isinstance(result, StructType)
    return result, counter[0]


def _rename_type(t: pa.DataType, d: DeltaType, to_physical: bool) -> pa.DataType:
    """``t`` with struct field names swapped logical<->physical per Delta type ``d``."""
    if pa.types.is_struct(t) and isinstance(d, StructType):
        return pa.struct([_rename_field(t.field(i), d, to_physical) for i in range(t.num_fields)])
    if isinstance(t, pa.ListType) and isinstance(d, ArrayType):
        vf = t.value_field
        return pa.list_(vf.with_type(_rename_type(vf.type, d.element_type, to_physical)))
    if isinstance(t, pa.LargeListType) and isinstance(d, ArrayType):
        vf = t.value_field
        return pa.large_list(vf.with_type(_rename_type(vf.type, d.element_type, to_physical)))
    if isinstance(t, pa.MapType) and isinstance(d, MapType):
        kf, vf = t.key_field, t.item_field
        return pa.map_(
            kf.with_type(_rename_type(kf.type, d.key_type, to_physical)),
            vf.with_type(_rename_type(vf.type, d.value_type, to_physical)),
        )
    return t


def _rename_field(af: pa.Field, parent: StructType, to_physical: bool) -> pa.Field:
    if to_physical:
        df = parent.get(af.name)
        new_name = physical_name(df) if df is not None else af.name
    else:
        df = next((f for f in parent.fields if physical_name(f) == af.name), None)
        new_name = df.name if df is not None else af.name
    new_type = _rename_type(af.type, df.type, to_physical) if df is not None else af.type
    return af.with_name(new_name).with_type(new_type)


def _rename_table(table: pa.Table, schema: StructType, to_physical: bool) -> pa.Table:
    fields, columns = [], []
    for af, col in zip(table.schema, table.columns, strict=True):
        nf = _rename_field(af, schema, to_physical)
        if not _same_type(nf.type, af.type):
            col = pa.chunked_array([c.view(nf.type) for c in col.chunks], type=nf.type)
        fields.append(nf)
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=table.schema.metadata))


def rename_table_to_logical(table: pa.Table, schema: StructType) -> pa.Table:
    """Rename a table read from Parquet (physical names, nested too) to logical names.

    Columns with no counterpart in ``schema`` keep their names. Zero-copy.
    """
    return _rename_table(table, schema, to_physical=False)


def rename_table_to_physical(table: pa.Table, schema: StructType) -> pa.Table:
    """Rename a table with logical names (nested too) to physical names for writing. Zero-copy."""
    return _rename_table(table, schema, to_physical=True)


# ----------------------------------------------------------------------------------------------
# Reading files written under older schemas (type widening, added columns)
# ----------------------------------------------------------------------------------------------


def _drop_void(t: DeltaType) -> DeltaType:
    if isinstance(t, StructType):
        return StructType(
            tuple(
                StructField(f.name, _drop_void(f.type), f.nullable, f.metadata)
                for f in t.fields
                if not (isinstance(f.type, PrimitiveType) and f.type.name == "void")
            )
        )
    if isinstance(t, ArrayType):
        return ArrayType(_drop_void(t.element_type), t.contains_null)
    if isinstance(t, MapType):
        return MapType(_drop_void(t.key_type), _drop_void(t.value_type), t.value_contains_null)
    return t


def arrow_read_schema(schema: StructType, physical: bool) -> pa.Schema:
    """Target Arrow schema for reading data files of a table with ``schema``.

    Like :func:`to_arrow`, but ``void`` columns (legacy Spark, undefined by the protocol) are
    dropped as the protocol recommends. Pass it to :func:`conform_to_schema`.
    """
    # ``void`` (legacy Spark) columns read as all-null columns of Arrow's null type, as
    # deltalake returns them; files never contain them, so conform_to_schema fills nulls.
    return to_arrow(schema, physical=physical)


def _same_type(a: pa.DataType, b: pa.DataType) -> bool:
    # pyarrow's == ignores nested field names (list<item> == list<element>); we need them.
    return a == b and str(a) == str(b)


def _field_key(f: pa.Field, by_id: bool) -> Any:
    if by_id:
        raw = (f.metadata or {}).get(PARQUET_FIELD_ID_KEY)
        return int(raw) if raw is not None else None
    return f.name


def _match(sources: list[pa.Field], target: pa.Field, by_id: bool) -> int | None:
    key = _field_key(target, by_id)
    if key is None:
        return None
    for i, f in enumerate(sources):
        if _field_key(f, by_id) == key:
            return i
    return None


def _missing(n: int, target: pa.Field, path: str) -> pa.Array:
    if not target.nullable:
        raise SchemaMismatchError(
            f"data file lacks non-nullable column {path!r}; the file does not match the table "
            "schema (it may be corrupt or written by a non-conforming writer)"
        )
    return pa.nulls(n, target.type)


def _normalised_offsets(arr: pa.Array) -> tuple[pa.Array, int, int]:
    offsets = arr.offsets
    if offsets.type != pa.int32():
        offsets = offsets.cast(pa.int32())
    start = offsets[0].as_py() if len(offsets) else 0
    end = offsets[-1].as_py() if len(offsets) else 0
    if start or arr.offset:
        offsets = pc.subtract(offsets, pa.scalar(start, pa.int32()))
    return offsets, start, end


def _conform_array(arr: pa.Array, target: pa.DataType, path: str, by_id: bool) -> pa.Array:
    if _same_type(arr.type, target):
        return arr
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    mask = arr.is_null() if arr.null_count else None
    if pa.types.is_struct(target):
        if not pa.types.is_struct(arr.type):
            raise SchemaMismatchError(f"column {path!r} is {arr.type} in the file, not a struct")
        sources = [arr.type.field(i) for i in range(arr.type.num_fields)]
        children = []
        for tf in target:
            i = _match(sources, tf, by_id)
            sub = f"{path}.{tf.name}"
            children.append(
                _missing(len(arr), tf, sub)
                if i is None
                else _conform_array(arr.field(i), tf.type, sub, by_id)
            )
        return pa.StructArray.from_arrays(children, fields=list(target), mask=mask)
    if isinstance(target, pa.ListType):
        if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
            try:
                arr = arr.cast(pa.list_(arr.type.value_field))
            except (pa.ArrowException, AttributeError) as exc:
                raise SchemaMismatchError(f"column {path!r} is {arr.type}, not a list") from exc
        offsets, start, end = _normalised_offsets(arr)
        values = _conform_array(
            arr.values.slice(start, end - start), target.value_type, f"{path}.element", by_id
        )
        return pa.ListArray.from_arrays(offsets, values, type=target, mask=mask)
    if isinstance(target, pa.MapType):
        if not isinstance(arr.type, pa.MapType):
            raise SchemaMismatchError(f"column {path!r} is {arr.type} in the file, not a map")
        offsets, start, end = _normalised_offsets(arr)
        keys = _conform_array(
            arr.keys.slice(start, end - start), target.key_type, f"{path}.key", by_id
        )
        items = _conform_array(
            arr.items.slice(start, end - start), target.item_type, f"{path}.value", by_id
        )
        return pa.MapArray.from_arrays(offsets, keys, items, type=target, mask=mask)
    if arr.type == target:  # equal up to nested names, e.g. list field "item" vs "element"
        return arr.view(target)
    # Leaf: widening casts (int8->int16->int32->int64, float->double, int->double/decimal,
    # decimal precision/scale growth, date->timestamp_ntz) and physical encodings
    # (large_string, INT96 nanosecond timestamps, naive timestamps for `timestamp`).
    safe = not (pa.types.is_timestamp(arr.type) and pa.types.is_timestamp(target))
    try:
        return arr.cast(target, safe=safe)
    except (pa.ArrowException, ValueError) as exc:
        raise SchemaMismatchError(
            f"column {path!r} has type {arr.type} in the data file, which cannot be read as the "
            f"table type {target}: {exc}"
        ) from exc


def conform_to_schema(
    table: pa.Table, target: pa.Schema, *, match_by: Literal["name", "id"] = "name"
) -> pa.Table:
    """Make a data file's table match ``target`` (from :func:`arrow_read_schema`).

    Columns and nested struct fields are matched by name, or by ``PARQUET:field_id`` with
    ``match_by="id"`` (column mapping id mode); they are reordered, missing nullable ones become
    nulls (columns added after the file was written), narrower types are widened, extra columns
    are dropped. Works per column (per chunk), never per row.
    """
    by_id = match_by == "id"
    sources = list(table.schema)
    columns = []
    for tf in target:
        i = _match(sources, tf, by_id)
        if i is None:
            columns.append(pa.chunked_array([_missing(table.num_rows, tf, tf.name)], type=tf.type))
            continue
        col = table.column(i)
        chunks = [_conform_array(c, tf.type, tf.name, by_id) for c in col.chunks]
        columns.append(pa.chunked_array(chunks, type=tf.type))
    return pa.Table.from_arrays(columns, schema=target)


def strip_field_metadata(schema: pa.Schema,
                         keep: Callable[[bytes], bool] | None = None) -> pa.Schema:
    """``schema`` without field metadata at every nesting level (names, types and nullability
    kept). ``keep`` retains the metadata keys it accepts (e.g. user comments)."""

    def field(f: pa.Field) -> pa.Field:
        md = {k: v for k, v in (f.metadata or {}).items() if keep(k)} if keep else None
        return pa.field(f.name, dtype(f.type), f.nullable, md or None)

    def dtype(t: pa.DataType) -> pa.DataType:
        if pa.types.is_struct(t):
            return pa.struct([field(t.field(i)) for i in range(t.num_fields)])
        if pa.types.is_map(t):
            return pa.map_(field(t.key_field), field(t.item_field))
        if pa.types.is_list(t):
            return pa.list_(field(t.value_field))
        return t

    return pa.schema([field(f) for f in schema])
