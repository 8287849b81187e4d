"""Tests for lakehouse.log.schema: schemaString round-trips on real tables, Arrow conversion,
column mapping renames, and conforming old data files (type widening, added columns)."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.errors import (
    CorruptLogError,
    InvalidArgumentError,
    ProtocolError,
    SchemaMismatchError,
    UnsupportedFeatureError,
)
from lakehouse.log.schema import (
    ArrayType,
    DecimalType,
    MapType,
    PrimitiveType,
    StructField,
    StructType,
    arrow_cast_schema,
    arrow_read_schema,
    assign_column_mapping,
    column_mapping_mode,
    conform_to_schema,
    field_id,
    from_arrow,
    max_column_id,
    physical_name,
    rename_table_to_logical,
    rename_table_to_physical,
    to_arrow,
)

TABLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "delta-tables"
needs_tables = pytest.mark.skipif(not TABLES.is_dir(), reason="shared Delta test tables absent")


def _schema_strings() -> dict[str, str]:
    """Every distinct metaData.schemaString in the shared tables' commits -> one file naming it."""
    found: dict[str, str] = {}
    if not TABLES.is_dir():
        return found
    for log_file in sorted(TABLES.glob("**/_delta_log/*.json")):
        if log_file.name.startswith("._"):  # macOS resource-fork files, not commits
            continue
        for line in log_file.read_text(encoding="utf-8").splitlines():
            if '"metaData"' not in line:
                continue
            schema_string = json.loads(line).get("metaData", {}).get("schemaString")
            if schema_string:
                found.setdefault(schema_string, str(log_file.relative_to(TABLES)))
    return found


def _last_metadata(table_dir: Path) -> dict:
    meta = None
    for log_file in sorted((table_dir / "_delta_log").glob("[0-9]*.json")):
        for line in log_file.read_text(encoding="utf-8").splitlines():
            if '"metaData"' in line:
                meta = json.loads(line)["metaData"]
    assert meta is not None
    return meta


def _without_metadata(t):
    if isinstance(t, StructType):
        return StructType(
            tuple(StructField(f.name, _without_metadata(f.type), f.nullable) for f in t)
        )
    if isinstance(t, ArrayType):
        return ArrayType(_without_metadata(t.element_type), t.contains_null)
    if isinstance(t, MapType):
        return MapType(
            _without_metadata(t.key_type), _without_metadata(t.value_type), t.value_contains_null
        )
    return t


# ------------------------------------------------------------------------------ real schemas


@needs_tables
def test_every_real_schema_string_round_trips_byte_for_byte() -> None:
    strings = _schema_strings()
    assert len(strings) > 50  # the corpus has ~90 distinct schemas
    for text, source in strings.items():
        schema = StructType.from_json(text)
        out = schema.to_json()
        assert json.loads(out) == json.loads(text), source
        assert out == text, source  # Spark/delta-rs/kernel all emit the same compact shape
        assert StructType.from_json(out) == schema
        assert hash(StructType.from_json(out)) == hash(schema)


@needs_tables
def test_every_real_schema_converts_to_arrow_or_names_the_unsupported_type() -> None:
    refused: dict[str, str | None] = {}
    for text, source in _schema_strings().items():
        schema = StructType.from_json(text)
        try:
            logical = to_arrow(schema)
            physical = to_arrow(schema, physical=True)
        except UnsupportedFeatureError as exc:
            refused[source] = exc.feature
            continue
        assert logical.names == schema.field_names
        assert physical.names == [physical_name(f) for f in schema]
        # Converting back gives the same types (metadata aside); void (read as Arrow null)
        # has no way back: a null-typed column cannot be written.
        if '"void"' not in text and '"variant"' not in text:
            assert from_arrow(logical) == _without_metadata(schema), source
    features = set(refused.values())
    assert features == {"geospatial"}


@needs_tables
def test_type_widening_metadata_parses_as_json_values() -> None:
    schema = StructType.from_json(
        _last_metadata(TABLES / "kernel-rs" / "type-widening")["schemaString"]
    )
    changes = schema.field("byte_long").metadata["delta.typeChanges"]
    assert changes[0]["fromType"] == "byte"
    assert changes[0]["toType"] == "long"
    assert schema.field("date_timestamp_ntz").type == PrimitiveType("timestamp_ntz")
    assert schema.field("long_decimal").type == DecimalType(21, 1)


# ------------------------------------------------------------------------------ model


def test_parse_shapes_and_defaults() -> None:
    schema = StructType.from_json(
        {
            "type": "struct",
            "fields": [
                {"name": "d", "type": "decimal(10, 2)", "nullable": False, "metadata": {}},
                {"name": "plain", "type": "decimal"},
                {"name": "v", "type": "variant", "nullable": True, "metadata": {}},
                {"name": "g", "type": "geography(OGC:CRS84, spherical)", "nullable": True},
                {"name": "i", "type": "interval day to second"},
                {
                    "name": "m",
                    "type": {
                        "type": "map",
                        "keyType": "string",
                        "valueType": {
                            "type": "array",
                            "elementType": "long",
                            "containsNull": False,
                        },
                        "valueContainsNull": True,
                    },
                },
            ],
        }
    )
    assert schema.field("d") == StructField("d", DecimalType(10, 2), nullable=False)
    assert schema.field("plain").type == DecimalType(10, 0)
    assert schema.field("v").type == PrimitiveType("variant")
    assert schema.field("g").type == PrimitiveType("geography(OGC:CRS84, spherical)")
    assert schema.field("m").type == MapType(
        PrimitiveType("string"), ArrayType(PrimitiveType("long"), False), True
    )
    assert schema.field("M") is schema.field("m")  # case-insensitive fallback
    assert "x" not in schema
    assert len(schema) == 6 and [f.name for f in schema] == schema.field_names
    with pytest.raises(InvalidArgumentError, match="no column 'x'"):
        schema.field("x")


@pytest.mark.parametrize(
    "bad",
    [
        "{not json",
        '{"type":"struct","fields":[{"type":"long"}]}',
        '{"type":"struct","fields":[{"name":"a","type":"decimal(40,2)"}]}',
        '{"type":"array","elementType":"long","containsNull":true}',
    ],
)
def test_invalid_schema_json_is_a_corrupt_log(bad: str) -> None:
    with pytest.raises(CorruptLogError):
        StructType.from_json(bad)


def test_duplicate_names_ignoring_case_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="unique ignoring case"):
        StructType(
            (StructField("a", PrimitiveType("long")), StructField("A", PrimitiveType("long")))
        )


def test_metadata_is_immutable_hashable_and_compares_to_dicts() -> None:
    f = StructField("a", PrimitiveType("long"), metadata={"k": [{"x": 1}], "s": "v"})
    assert f.metadata == {"k": [{"x": 1}], "s": "v"}
    assert hash(f) == hash(
        StructField("a", PrimitiveType("long"), metadata={"s": "v", "k": [{"x": 1}]})
    )
    with pytest.raises(TypeError):
        f.metadata["s"] = "w"  # type: ignore[index]
    assert f.json_value()["metadata"] == {"k": [{"x": 1}], "s": "v"}


def test_unsupported_types_raise_with_feature_and_column() -> None:
    schema = StructType(
        (StructField("s", StructType((StructField("g", PrimitiveType("geometry(OGC:CRS84)")),))),)
    )
    with pytest.raises(UnsupportedFeatureError, match=r"'s\.g'") as info:
        to_arrow(schema)
    assert info.value.feature == "geospatial"
    # unshredded variant reads as its binary encoding
    assert to_arrow(PrimitiveType("variant")) == pa.struct(
        [pa.field("metadata", pa.binary(), False), pa.field("value", pa.binary(), False)])
    assert to_arrow(PrimitiveType("void")) == pa.null()  # read as all-null, like deltalake


# ------------------------------------------------------------------------------ Arrow


def test_to_arrow_types_nullability_and_metadata() -> None:
    schema = StructType(
        (
            StructField("l", PrimitiveType("long"), False, {"delta.identity.start": 1, "c": "x"}),
            StructField("ts", PrimitiveType("timestamp")),
            StructField("ntz", PrimitiveType("timestamp_ntz")),
            StructField("d", DecimalType(38, 10)),
            StructField("a", ArrayType(PrimitiveType("string"), contains_null=False)),
            StructField("m", MapType(PrimitiveType("string"), PrimitiveType("date"), False)),
            StructField("b", PrimitiveType("binary")),
        )
    )
    arrow = to_arrow(schema)
    assert arrow.field("l").type == pa.int64() and not arrow.field("l").nullable
    assert arrow.field("l").metadata == {b"delta.identity.start": b"1", b"c": b"x"}
    assert arrow.field("ts").type == pa.timestamp("us", tz="UTC")
    assert arrow.field("ntz").type == pa.timestamp("us")
    assert arrow.field("d").type == pa.decimal128(38, 10)
    list_type = arrow.field("a").type
    assert list_type.value_field.name == "element" and not list_type.value_field.nullable
    map_type = arrow.field("m").type
    assert map_type.item_type == pa.date32() and not map_type.item_field.nullable
    assert arrow.field("b").type == pa.binary()
    assert to_arrow(PrimitiveType("short")) == pa.int16()


def test_from_arrow_normalises_and_cast_schema_casts_real_data() -> None:
    source = pa.table(
        {
            "s": pa.array(["x", None], pa.large_string()),
            "u8": pa.array([200, 1], pa.uint8()),
            "u32": pa.array([4_000_000_000, 0], pa.uint32()),
            "h": pa.array([1.5, None], pa.float16()),
            "tz": pa.array([1_000_001_000, 0], pa.timestamp("ns", "Europe/Paris")),
            "naive": pa.array([1, 2], pa.timestamp("s")),
            "d64": pa.array([86_400_000, 0], pa.date64()),
            "dict": pa.array(["p", "q"]).dictionary_encode(),
            "fsb": pa.array([b"ab", b"cd"], pa.binary(2)),
            "ll": pa.array([[1], None], pa.large_list(pa.int8())),
            "fsl": pa.array([[1, 2], [3, 4]], pa.list_(pa.int32(), 2)),
            "dec": pa.array([Decimal("1.25"), None], pa.decimal256(12, 2)),
            "st": pa.array(
                [{"x": "a", "m": [("k", 1)]}, None],
                pa.struct([("x", pa.string_view()), ("m", pa.map_(pa.string(), pa.uint16()))]),
            ),
        }
    )
    delta = from_arrow(source.schema)
    assert [str(f.type.json_value()) for f in delta][:12] == [
        "string", "short", "long", "float", "timestamp", "timestamp_ntz", "date", "string",
        "binary", str(ArrayType(PrimitiveType("byte")).json_value()),
        str(ArrayType(PrimitiveType("integer")).json_value()), "decimal(12,2)",
    ]  # fmt: skip
    assert delta.field("st").type == StructType(
        (
            StructField("x", PrimitiveType("string")),
            StructField("m", MapType(PrimitiveType("string"), PrimitiveType("integer"))),
        )
    )
    target = arrow_cast_schema(source.schema)
    cast = source.cast(target)
    assert cast.schema == target
    assert cast.column("u8").to_pylist() == [200, 1] and target.field("u8").type == pa.int16()
    assert cast.column("u32").to_pylist() == [4_000_000_000, 0]
    assert cast.column("tz").type == pa.timestamp("us", "UTC")
    assert cast.column("tz")[0].as_py() == datetime.datetime(
        1970, 1, 1, 0, 0, 1, 1, tzinfo=datetime.UTC
    )
    assert cast.column("d64").to_pylist()[0] == datetime.date(1970, 1, 2)
    assert cast.column("fsl").to_pylist() == [[1, 2], [3, 4]]
    assert cast.column("st").to_pylist()[0] == {"x": "a", "m": [("k", 1)]}


@pytest.mark.parametrize(
    ("arrow_type", "message"),
    [
        (pa.null(), "cast it to a concrete type"),
        (pa.uint64(), "no Delta type"),
        (pa.decimal256(50, 2), "precision <= 38"),
        (pa.time64("us"), "cannot store"),
    ],
)
def test_from_arrow_refuses_types_without_a_delta_equivalent(arrow_type, message) -> None:
    schema = pa.schema([pa.field("outer", pa.struct([pa.field("bad", arrow_type)]))])
    with pytest.raises(SchemaMismatchError, match=message) as info:
        from_arrow(schema)
    assert "outer.bad" in str(info.value)


# ------------------------------------------------------------------------------ column mapping


def _nested_schema() -> StructType:
    inner = StructType(
        (StructField("x", PrimitiveType("integer")), StructField("y", PrimitiveType("string")))
    )
    return StructType(
        (
            StructField("id", PrimitiveType("long"), nullable=False),
            StructField("s", inner),
            StructField("arr", ArrayType(inner)),
            StructField("m", MapType(PrimitiveType("string"), inner)),
        )
    )


def test_column_mapping_mode() -> None:
    assert column_mapping_mode({}) == "none"
    assert column_mapping_mode({"delta.columnMapping.mode": "Name"}) == "name"
    assert column_mapping_mode({"delta.columnMapping.mode": "id"}) == "id"
    with pytest.raises(ProtocolError):
        column_mapping_mode({"delta.columnMapping.mode": "bogus"})


def test_assign_column_mapping_numbers_every_nested_field() -> None:
    mapped, new_max = assign_column_mapping(_nested_schema(), 0)
    ids, names = [], []

    def walk(t) -> None:
        if isinstance(t, StructType):
            for f in t:
                ids.append(field_id(f))
                names.append(physical_name(f))
                walk(f.type)
        elif isinstance(t, ArrayType):
            walk(t.element_type)
        elif isinstance(t, MapType):
            walk(t.key_type)
            walk(t.value_type)

    walk(mapped)
    assert sorted(ids) == list(range(1, 11))  # 4 top-level + 3 structs x 2 fields
    assert new_max == 10 == max_column_id(mapped)
    assert all(n.startswith("col-") for n in names) and len(set(names)) == 10
    # Idempotent: already-mapped fields keep their ids and names.
    again, again_max = assign_column_mapping(mapped, new_max)
    assert again == mapped and again_max == 10
    # Adding a column continues from the max id.
    grown = StructType((*mapped.fields, StructField("new", PrimitiveType("long"))))
    grown, grown_max = assign_column_mapping(grown, new_max)
    assert grown_max == 11 and field_id(grown.field("new")) == 11
    logical, _ = assign_column_mapping(_nested_schema(), 0, use_logical_names=True)
    assert physical_name(logical.field("s")) == "s"


def test_physical_arrow_schema_uses_physical_names_and_field_ids() -> None:
    mapped, _ = assign_column_mapping(_nested_schema(), 0)
    physical = to_arrow(mapped, physical=True)
    s_field = mapped.field("s")
    arrow_s = physical.field(physical_name(s_field))
    assert arrow_s.metadata == {b"PARQUET:field_id": str(field_id(s_field)).encode()}
    inner_x = s_field.type.field("x")
    assert arrow_s.type.field(physical_name(inner_x)).metadata == {
        b"PARQUET:field_id": str(field_id(inner_x)).encode()
    }
    elem = physical.field(physical_name(mapped.field("arr"))).type.value_type
    assert [elem.field(i).name for i in range(2)] == [
        physical_name(f) for f in mapped.field("arr").type.element_type
    ]


def test_nested_rename_round_trip_through_parquet(tmp_path: Path) -> None:
    mapped, _ = assign_column_mapping(_nested_schema(), 0)
    rows = {
        "id": [1, 2, 3],
        "s": [{"x": 1, "y": "a"}, None, {"x": 3, "y": None}],
        "arr": [[{"x": 10, "y": "p"}], None, []],
        "m": [[("k", {"x": 7, "y": "q"})], [], None],
    }
    logical = pa.table(rows, schema=to_arrow(mapped))
    physical = rename_table_to_physical(logical, mapped)
    assert physical.column_names == [physical_name(f) for f in mapped]
    s_type = physical.schema.field(physical_name(mapped.field("s"))).type
    assert s_type.field(0).name == physical_name(mapped.field("s").type.field("x"))
    pq.write_table(physical, tmp_path / "f.parquet")
    read = pq.read_table(tmp_path / "f.parquet")
    back = rename_table_to_logical(read, mapped)
    assert back.column_names == mapped.field_names
    assert back.to_pylist() == logical.to_pylist()


def test_rename_keeps_unknown_columns() -> None:
    schema, _ = assign_column_mapping(StructType((StructField("a", PrimitiveType("long")),)), 0)
    table = pa.table({physical_name(schema.field("a")): [1], "extra": ["x"]})
    assert rename_table_to_logical(table, schema).column_names == ["a", "extra"]


@needs_tables
def test_real_name_mode_table_reads_with_logical_nested_names() -> None:
    table_dir = TABLES / "kernel-rs" / "stats-writing-all-types"
    meta = _last_metadata(table_dir)
    schema = StructType.from_json(meta["schemaString"])
    assert column_mapping_mode(meta["configuration"]) == "name"
    data = pq.read_table(
        table_dir / "part-00000-374afe34-4ff6-46e8-a860-1948aadc744f-c000.snappy.parquet"
    )
    by_name = conform_to_schema(data, arrow_read_schema(schema, physical=True))
    by_id = conform_to_schema(data, arrow_read_schema(schema, physical=True), match_by="id")
    assert by_name.equals(by_id)
    logical = rename_table_to_logical(by_name, schema)
    assert logical.column_names == schema.field_names
    first = logical.slice(0, 1).to_pylist()[0]
    assert first["byte_col"] == 1 and first["string_col"] == "alpha"
    assert first["nested_struct"] == {
        "inner_int": 10,
        "inner_string": "nested_a",
        "inner_double": 1.1,
    }
    assert first["map_col"] == [("key1", 100)] and first["array_col"] == [1, 2, 3]
    # The file stores the timestamp as nanoseconds; the table type is microseconds UTC.
    assert logical.schema.field("timestamp_col").type == pa.timestamp("us", "UTC")
    assert first["timestamp_col"] == datetime.datetime(2023, 6, 15, 12, 30, tzinfo=datetime.UTC)
    assert rename_table_to_physical(logical, schema).equals(by_name)


@needs_tables
def test_real_id_mode_table_matches_columns_by_field_id() -> None:
    table_dir = TABLES / "delta-kernel-java" / "column-mapping-id"
    meta = _last_metadata(table_dir)
    schema = StructType.from_json(meta["schemaString"])
    assert column_mapping_mode(meta["configuration"]) == "id"
    data = pq.read_table(next(table_dir.glob("*.parquet")))
    # Rename the file's column: id mode must still find it by field id.
    data = data.rename_columns(["renamed_in_file"])
    target = arrow_read_schema(schema, physical=True)
    by_id = conform_to_schema(data, target, match_by="id")
    assert by_id.column(0).null_count == 0 and by_id.num_rows == data.num_rows
    by_name = conform_to_schema(data, target)
    assert by_name.column(0).null_count == by_name.num_rows  # no column of that name: nulls


# ------------------------------------------------------------------------------ widening


@needs_tables
def test_real_type_widening_table_old_file_reads_as_table_types() -> None:
    table_dir = TABLES / "kernel-rs" / "type-widening"
    schema = StructType.from_json(_last_metadata(table_dir)["schemaString"])
    old = pq.read_table(
        table_dir / "part-00000-f6dbc649-d5bc-42b1-984c-4376799a50d9-c000.snappy.parquet"
    )
    assert old.schema.field("byte_long").type == pa.int8()  # really an old, narrow file
    target = arrow_read_schema(schema, physical=False)
    row = conform_to_schema(old, target).to_pylist()[0]
    assert row == {
        "byte_long": 1,
        "int_long": 2,
        "float_double": pytest.approx(3.4000000953674316),
        "byte_double": 5.0,
        "short_double": 6.0,
        "int_double": 7.0,
        "decimal_decimal_same_scale": Decimal("123.45"),
        "decimal_decimal_greater_scale": Decimal("67.89000"),
        "byte_decimal": Decimal("1.0"),
        "short_decimal": Decimal("2.0"),
        "int_decimal": Decimal("3.0"),
        "long_decimal": Decimal("4.0"),
        "date_timestamp_ntz": datetime.datetime(2024, 9, 9),
    }
    assert conform_to_schema(old, target).schema == target


def test_conform_reorders_fills_nested_missing_fields_and_drops_extras() -> None:
    target_schema = StructType(
        (
            StructField("a", PrimitiveType("long")),
            StructField("s", StructType((StructField("x", PrimitiveType("integer")), StructField("added", PrimitiveType("string"))))),
            StructField("l", ArrayType(StructType((StructField("p", PrimitiveType("double")), StructField("q", PrimitiveType("date")))))),
            StructField("m", MapType(PrimitiveType("string"), StructType((StructField("v", PrimitiveType("long")), StructField("w", PrimitiveType("boolean")))))),
            StructField("new_col", PrimitiveType("timestamp")),
        )
    )  # fmt: skip
    file_table = pa.table(
        {
            "extra": ["dropped", "dropped", "dropped"],
            "m": pa.array(
                [[("k", {"v": 1})], None, []], pa.map_(pa.string(), pa.struct([("v", pa.int8())]))
            ),
            "l": pa.array(
                [[{"p": 1.5}], None, [{"p": None}, {"p": 2.0}]],
                pa.large_list(pa.struct([("p", pa.float32())])),
            ),
            "s": pa.array([{"x": 1}, None, {"x": 3}], pa.struct([("x", pa.int16())])),
            "a": pa.array([1, 2, None], pa.int32()),
        }
    )
    target = arrow_read_schema(target_schema, physical=False)
    for table in (
        file_table,
        file_table.slice(1, 2),
        pa.concat_tables([file_table.slice(0, 1), file_table.slice(1)]),
    ):
        out = conform_to_schema(table, target)
        assert out.schema == target
        expected = [
            {"a": 1, "s": {"x": 1, "added": None}, "l": [{"p": 1.5, "q": None}],
             "m": [("k", {"v": 1, "w": None})], "new_col": None},
            {"a": 2, "s": None, "l": None, "m": None, "new_col": None},
            {"a": None, "s": {"x": 3, "added": None}, "l": [{"p": None, "q": None}, {"p": 2.0, "q": None}],
             "m": [], "new_col": None},
        ]  # fmt: skip
        assert out.to_pylist() == expected[3 - table.num_rows :]


def test_conform_refuses_impossible_casts_and_missing_required_columns() -> None:
    target = pa.schema([pa.field("a", pa.int32())])
    with pytest.raises(SchemaMismatchError, match="'a'"):
        conform_to_schema(pa.table({"a": pa.array([2**40], pa.int64())}), target)
    required = pa.schema([pa.field("b", pa.int32(), nullable=False)])
    with pytest.raises(SchemaMismatchError, match="non-nullable column 'b'"):
        conform_to_schema(pa.table({"a": [1]}), required)


def test_conform_fixes_legacy_timestamp_encodings() -> None:
    target = pa.schema([pa.field("t", pa.timestamp("us", "UTC")), pa.field("s", pa.string())])
    table = pa.table(
        {
            "t": pa.array([1_500], pa.timestamp("ns")),  # INT96-style nanoseconds, no zone
            "s": pa.array(["x"]).dictionary_encode(),
        }
    )
    out = conform_to_schema(table, target)
    assert out.schema == target
    assert out.column("t").to_pylist()[0] == datetime.datetime(
        1970, 1, 1, 0, 0, 0, 1, tzinfo=datetime.UTC
    )
    assert out.column("s").to_pylist() == ["x"]


def test_arrow_read_schema_reads_void_columns_as_nulls() -> None:
    schema = StructType(
        (
            StructField("a", PrimitiveType("long")),
            StructField("v", PrimitiveType("void")),
            StructField("s", StructType((StructField("v2", PrimitiveType("void")), StructField("b", PrimitiveType("byte"))))),
        )
    )  # fmt: skip
    read = arrow_read_schema(schema, physical=False)
    assert read.names == ["a", "v", "s"]
    assert read.field("v").type == pa.null()
    assert read.field("s").type == pa.struct([pa.field("v2", pa.null()), pa.field("b", pa.int8())])
