"""Tests for lakehouse.log.partitions: parsing the log's partition strings, serialising values,
and Hive-style partition directory names."""

from __future__ import annotations

import datetime
import json
import math
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse.errors import CorruptLogError, InvalidArgumentError
from lakehouse.log.partitions import (
    HIVE_DEFAULT_PARTITION,
    escape_partition_component,
    parse_partition_values,
    partition_path,
    serialize_partition_column,
    serialize_partition_value,
)
from lakehouse.log.schema import (
    ArrayType,
    DecimalType,
    PrimitiveType,
    StructType,
    physical_name,
    to_arrow,
)

TABLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "delta-tables"
needs_tables = pytest.mark.skipif(not TABLES.is_dir(), reason="shared Delta test tables absent")
UTC = datetime.UTC


def P(name: str) -> PrimitiveType:
    return PrimitiveType(name)


# ------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("dtype", "values", "expected"),
    [
        (P("string"), ["a", "", None, "x/y=z", "ü"], ["a", None, None, "x/y=z", "ü"]),
        (P("long"), ["1", "-9223372036854775808", "", None], [1, -(2**63), None, None]),
        (P("integer"), ["2147483647"], [2147483647]),
        (P("short"), ["-32768"], [-32768]),
        (P("byte"), ["127", ""], [127, None]),
        (P("boolean"), ["true", "false", "", None], [True, False, None, None]),
        (P("date"), ["2021-09-08", "0001-01-01", ""], [datetime.date(2021, 9, 8), datetime.date(1, 1, 1), None]),
        (DecimalType(10, 3), ["1.5", "-0.001", "1E+3", ""], [Decimal("1.500"), Decimal("-0.001"), Decimal("1000.000"), None]),
        (P("binary"), ["\x01\x02\x03", "", "é"], [b"\x01\x02\x03", None, "é".encode()]),
    ],
)  # fmt: skip
def test_parse_simple_types(dtype, values, expected) -> None:
    out = parse_partition_values(values, dtype)
    assert out.type == to_arrow(dtype)
    assert out.to_pylist() == expected


def test_parse_floats_including_java_special_values() -> None:
    out = parse_partition_values(["1.5", "NaN", "Infinity", "-Infinity", "1.0E20", ""], P("double"))
    values = out.to_pylist()
    assert values[0] == 1.5 and math.isnan(values[1])
    assert values[2:5] == [math.inf, -math.inf, 1e20] and values[5] is None
    assert parse_partition_values(["0.1"], P("float")).type == pa.float32()


def test_parse_timestamp_formats_as_utc() -> None:
    values = [
        "2021-01-01 00:00:00",
        "2021-01-01 00:00:00.123456",
        "2021-01-01T00:00:00.5Z",
        "2021-01-01T02:00:00+02:00",
        "2020-12-31T19:00:00-0500",
        "1970-01-01 00:00:00.123456789",  # nanosecond writers: truncated to micros
        "",
        None,
    ]
    out = parse_partition_values(values, P("timestamp"))
    assert out.type == pa.timestamp("us", tz="UTC")
    assert out.to_pylist() == [
        datetime.datetime(2021, 1, 1, tzinfo=UTC),
        datetime.datetime(2021, 1, 1, 0, 0, 0, 123456, tzinfo=UTC),
        datetime.datetime(2021, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
        datetime.datetime(2021, 1, 1, tzinfo=UTC),
        datetime.datetime(2021, 1, 1, tzinfo=UTC),
        datetime.datetime(1970, 1, 1, 0, 0, 0, 123456, tzinfo=UTC),
        None,
        None,
    ]


def test_parse_timestamp_ntz_is_naive() -> None:
    out = parse_partition_values(
        ["2021-01-01 10:11:12", "2021-01-01 10:11:12.000001", "9999-12-31 23:59:59.999999", ""],
        P("timestamp_ntz"),
    )
    assert out.type == pa.timestamp("us")
    assert out.to_pylist() == [
        datetime.datetime(2021, 1, 1, 10, 11, 12),
        datetime.datetime(2021, 1, 1, 10, 11, 12, 1),
        datetime.datetime(9999, 12, 31, 23, 59, 59, 999999),
        None,
    ]


@pytest.mark.parametrize(
    ("dtype", "bad"),
    [
        (P("integer"), "abc"),
        (P("date"), "2021-13-01"),
        (P("boolean"), "yes"),
        (P("timestamp"), "soon"),
    ],
)
def test_unparsable_values_are_corrupt_log(dtype, bad) -> None:
    with pytest.raises(CorruptLogError, match="cannot be parsed"):
        parse_partition_values(["1", bad] if dtype != P("boolean") else ["true", bad], dtype)


def test_non_primitive_partition_types_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="primitive"):
        parse_partition_values(["x"], ArrayType(P("string")))


@needs_tables
def test_every_real_tables_partition_values_parse() -> None:
    checked = 0
    for log_dir in sorted(TABLES.glob("**/_delta_log")):
        schema, seen = None, {}
        for log_file in sorted(log_dir.glob("[0-9]*.json")):
            for line in log_file.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                action = json.loads(line)
                if action.get("metaData", {}).get("schemaString"):
                    schema = StructType.from_json(action["metaData"]["schemaString"])
                for kind in ("add", "remove"):
                    for col, value in (
                        (action.get(kind) or {}).get("partitionValues") or {}
                    ).items():
                        seen.setdefault(col, set()).add(value)
        if schema is None:
            continue
        for col, values in seen.items():
            f = next((f for f in schema if col in (f.name, physical_name(f))), None)
            assert f is not None, (log_dir, col)
            ordered = sorted(values, key=lambda v: (v is None, v or ""))
            out = parse_partition_values(ordered, f.type)
            assert len(out) == len(ordered)
            assert out.null_count == sum(1 for v in ordered if not v)
            checked += 1
    assert checked > 30


@needs_tables
def test_real_partition_values_of_every_type() -> None:
    table = TABLES / "delta-kernel-java" / "data-reader-partition-values-column-mapping-name"
    schema, values = None, {}
    for log_file in sorted((table / "_delta_log").glob("[0-9]*.json")):
        for line in log_file.read_text(encoding="utf-8").splitlines():
            action = json.loads(line)
            if "metaData" in action:
                schema = StructType.from_json(action["metaData"]["schemaString"])
            if "add" in action:
                for col, v in action["add"]["partitionValues"].items():
                    values.setdefault(col, []).append(v)
    assert schema is not None
    parsed = {}
    for f in schema:
        if physical_name(f) in values:
            parsed[f.name] = parse_partition_values(values[physical_name(f)], f.type).to_pylist()
    assert datetime.datetime(2021, 9, 8, 11, 11, 11, tzinfo=UTC) in parsed["as_timestamp"]
    assert datetime.date(2021, 9, 8) in parsed["as_date"]
    assert None in parsed["as_int"]  # a null partition
    assert {True, False} <= set(parsed["as_boolean"])


# ------------------------------------------------------------------------------ serialising


@pytest.mark.parametrize(
    ("value", "dtype", "expected"),
    [
        (None, P("long"), None),
        ("", P("string"), None),
        ("a/b", P("string"), "a/b"),
        (-5, P("byte"), "-5"),
        (2**63 - 1, P("long"), "9223372036854775807"),
        (True, P("boolean"), "true"),
        (False, P("boolean"), "false"),
        (0.1, P("float"), "0.1"),
        (2.5, P("double"), "2.5"),
        (float("nan"), P("double"), "NaN"),
        (float("inf"), P("float"), "Infinity"),
        (float("-inf"), P("double"), "-Infinity"),
        (Decimal("1.5"), DecimalType(5, 2), "1.50"),
        (datetime.date(2021, 2, 3), P("date"), "2021-02-03"),
        (b"\x01\x02", P("binary"), "\x01\x02"),
        (
            datetime.datetime(2021, 1, 2, 3, 4, 5, 6),
            P("timestamp_ntz"),
            "2021-01-02 03:04:05.000006",
        ),
        (datetime.datetime(2021, 1, 2, 3, 4, 5), P("timestamp"), "2021-01-02 03:04:05.000000"),
        (
            datetime.datetime(
                2021, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=5))
            ),
            P("timestamp"),
            "2021-01-01 22:04:05.000000",
        ),
    ],
)
def test_serialize_value(value, dtype, expected) -> None:
    assert serialize_partition_value(value, dtype) == expected


@pytest.mark.parametrize(
    ("dtype", "array"),
    [
        (P("string"), pa.array(["a", None, "", "é/="])),
        (P("integer"), pa.array([1, None, -7], pa.int32())),
        (P("double"), pa.array([1.25, None, float("inf"), -0.0])),
        (DecimalType(10, 4), pa.array([Decimal("3.1416"), None], pa.decimal128(10, 4))),
        (P("date"), pa.array([datetime.date(1, 1, 1), datetime.date(9999, 12, 31), None])),
        (P("timestamp"), pa.array([0, 1_600_000_000_123_456, None], pa.timestamp("us", "UTC"))),
        (P("timestamp_ntz"), pa.array([0, -1, None], pa.timestamp("us"))),
        (P("boolean"), pa.array([True, False, None])),
        (P("binary"), pa.array([b"abc", None, b""])),
    ],
)
def test_serialize_then_parse_round_trips(dtype, array) -> None:
    strings = serialize_partition_column(pa.chunked_array([array]), dtype)
    assert all(s is None or isinstance(s, str) for s in strings)
    back = parse_partition_values(strings, dtype)
    expected = [None if v in ("", b"") else v for v in array.to_pylist()]
    assert back.to_pylist() == expected


def test_serialize_refuses_bad_values() -> None:
    with pytest.raises(InvalidArgumentError):
        serialize_partition_value("not a number", P("integer"))
    with pytest.raises(InvalidArgumentError, match="UTF-8"):
        serialize_partition_value(b"\xff", P("binary"))


# ------------------------------------------------------------------------------ paths


def test_partition_path_examples() -> None:
    assert partition_path([("a", "1"), ("b", "x/y")]) == "a=1/b=x%2Fy"
    assert partition_path([("d", None), ("e", "")]) == (
        f"d={HIVE_DEFAULT_PARTITION}/e={HIVE_DEFAULT_PARTITION}"
    )
    assert partition_path([("ts", "2021-01-01 00:00:00")]) == "ts=2021-01-01 00%3A00%3A00"
    assert partition_path([("a=b", "c")]) == "a%3Db=c"
    assert partition_path([]) == ""


def test_escape_exactly_hive_characters() -> None:
    special = "\"#%'*/:=?\\\x7f{[]^"
    assert escape_partition_component(special) == ("%22%23%25%27%2A%2F%3A%3D%3F%5C%7F%7B%5B%5D%5E")
    controls = "".join(chr(c) for c in range(1, 32))
    assert escape_partition_component(controls) == "".join(f"%{c:02X}" for c in range(1, 32))
    # Not escaped: space, other punctuation, non-ASCII.
    kept = " !$&()+,-.;<>@_`|}~aZ09üé日本"
    assert escape_partition_component(kept) == kept
