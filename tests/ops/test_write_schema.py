"""Schema enforcement and evolution on write; NOT NULL, CHECK and generated columns.

Every refused write must name what is wrong and leave the table exactly as it was (same version,
same files on disk).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

import lakehouse
from lakehouse import Table
from lakehouse.engine import Engine
from lakehouse.errors import ConstraintViolationError, InvalidArgumentError, SchemaMismatchError
from tests.ops._util import commit_actions, listing, rows


def _base(uri: str, **kwargs: object) -> Table:
    data = pa.table({
        "id": pa.array([1, 2], pa.int64()),
        "name": pa.array(["a", "b"], pa.string()),
        "score": pa.array([0.5, 1.5], pa.float64()),
    })
    return lakehouse.write(uri, data, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- enforcement
def test_mismatch_names_every_offending_column(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    _base(uri)
    before = listing(uri)
    bad = pa.table({
        "id": pa.array(["x"], pa.string()),          # wrong type
        "name": pa.array([1.5], pa.float64()),       # wrong type
        "extra": pa.array([1], pa.int64()),          # not in the table
        "score": pa.array([1.0], pa.float64()),      # fine
    })
    with pytest.raises(SchemaMismatchError) as err:
        lakehouse.write(uri, bad, mode="append")
    msg = str(err.value)
    assert "'id'" in msg and "long" in msg and "string" in msg
    assert "'name'" in msg and "double" in msg
    assert "'extra'" in msg and 'schema_mode="merge"' in msg
    assert "'score'" not in msg
    assert listing(uri) == before


def test_case_only_difference_is_refused(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    _base(uri)
    with pytest.raises(SchemaMismatchError, match="differs only in case"):
        lakehouse.write(uri, pa.table({"ID": pa.array([3], pa.int64())}), mode="append")


def test_missing_nullable_columns_are_filled_with_nulls(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    t = _base(uri)
    t.append(pa.table({"score": [9.0], "id": pa.array([3], pa.int64())}))  # other order, subset
    assert rows(t.to_arrow()) == rows(pa.table({
        "id": [1, 2, 3], "name": ["a", "b", None], "score": [0.5, 1.5, 9.0]}))


@pytest.mark.parametrize(("table_type", "data", "expected"), [
    (pa.int64(), pa.array([1, -2], pa.int32()), [1, -2]),
    (pa.int64(), pa.array([7], pa.int8()), [7]),
    (pa.int32(), pa.array([3], pa.int16()), [3]),
    (pa.float64(), pa.array([1.5], pa.float32()), [1.5]),
    (pa.float64(), pa.array([4], pa.int32()), [4.0]),
    (pa.string(), pa.array(["x", None], pa.large_string()), ["x", None]),
    (pa.binary(), pa.array([b"\x00\x01"], pa.large_binary()), [b"\x00\x01"]),
    (pa.decimal128(10, 2), pa.array([Decimal("1.5")], pa.decimal128(5, 1)), [Decimal("1.50")]),
    (pa.timestamp("us", tz="UTC"),
     pa.array([datetime(2024, 1, 1, 12, tzinfo=ZoneInfo("America/New_York"))],
              pa.timestamp("ns", tz="America/New_York")),
     [datetime(2024, 1, 1, 17, tzinfo=UTC)]),
    (pa.timestamp("us", tz="UTC"),
     pa.array([datetime(2024, 1, 1, 12, tzinfo=UTC)], pa.timestamp("ms", tz="UTC")),
     [datetime(2024, 1, 1, 12, tzinfo=UTC)]),
    (pa.timestamp("us"), pa.array([datetime(2024, 1, 1, 12, 30)], pa.timestamp("s")),
     [datetime(2024, 1, 1, 12, 30)]),
], ids=["int32>long", "int8>long", "int16>int", "float>double", "int>double",
        "large_string>string", "large_binary>binary", "decimal-widen", "ns-NY>us-UTC",
        "ms-UTC>us-UTC", "s-ntz>us-ntz"])
def test_safe_implicit_casts(tmp_path: Path, table_type: pa.DataType, data: pa.Array,
                             expected: list[object]) -> None:
    uri = str(tmp_path / "t")
    t = Table.create(uri, pa.schema([("v", table_type)]))
    declared = t.schema.field("v").type
    t.append(pa.table({"v": data}))
    got = t.to_arrow()
    assert got.schema.field("v").type == declared  # the table type, not the data's
    values = got["v"].to_pylist()
    if isinstance(expected[0], datetime) and expected[0].tzinfo is not None:
        values = [v.astimezone(UTC) for v in values]
    assert values == expected


@pytest.mark.parametrize(("table_type", "data"), [
    (pa.int32(), pa.array([1], pa.int64())),                          # narrowing
    (pa.int64(), pa.array([1.0], pa.float64())),                      # float -> int
    (pa.timestamp("us", tz="UTC"), pa.array([0], pa.timestamp("us"))),  # ntz -> tz
    (pa.timestamp("us"), pa.array([0], pa.timestamp("us", tz="UTC"))),  # tz -> ntz
    (pa.string(), pa.array([1], pa.int64())),
    (pa.decimal128(5, 2), pa.array([Decimal("1.5")], pa.decimal128(10, 1))),
    (pa.date32(), pa.array([datetime(2024, 1, 1)], pa.timestamp("us"))),
], ids=["long>int", "double>long", "ntz>tz", "tz>ntz", "long>string", "decimal-narrow",
        "timestamp>date"])
def test_unsafe_casts_are_refused(tmp_path: Path, table_type: pa.DataType, data: pa.Array) -> None:
    uri = str(tmp_path / "t")
    Table.create(uri, pa.schema([("v", table_type)]))
    before = listing(uri)
    with pytest.raises(SchemaMismatchError, match="'v'"):
        lakehouse.write(uri, pa.table({"v": data}), mode="append")
    assert listing(uri) == before


@pytest.mark.parametrize(("arrow_type", "hint"), [
    (pa.uint64(), "decimal"), (pa.null(), "untyped"), (pa.decimal256(50, 2), "precision"),
    (pa.duration("s"), "cannot store"),
])
def test_unsupported_types_are_refused(tmp_path: Path, arrow_type: pa.DataType,
                                       hint: str) -> None:
    uri = str(tmp_path / "t")
    with pytest.raises(SchemaMismatchError, match=hint):
        lakehouse.write(uri, pa.table({"id": [1], "v": pa.nulls(1, arrow_type)}))
    assert listing(uri) == {}


# ------------------------------------------------------------------------------------ evolution
def test_schema_merge_adds_columns_top_level_and_nested(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    s1 = pa.struct([("x", pa.int64())])
    t = lakehouse.write(uri, pa.table({"id": pa.array([1], pa.int64()),
                                       "s": pa.array([{"x": 1}], s1)}))
    s2 = pa.struct([("x", pa.int32()), ("y", pa.string())])
    more = pa.table({"id": pa.array([2], pa.int64()), "s": pa.array([{"x": 2, "y": "b"}], s2),
                     "new": ["n"]})
    with pytest.raises(SchemaMismatchError) as err:
        t.append(more)
    assert "'new'" in str(err.value) and "'s.y'" in str(err.value)
    t.append(more, schema_mode="merge")
    assert t.version == 1
    assert t.schema.names == ["id", "s", "new"]
    assert t.schema.field("s").type == pa.struct([("x", pa.int64()), ("y", pa.string())])
    assert rows(t.to_arrow()) == [
        {"id": 1, "s": {"x": 1, "y": None}, "new": None},
        {"id": 2, "s": {"x": 2, "y": "b"}, "new": "n"},
    ]
    meta = [a for a in commit_actions(uri, 1) if "metaData" in a]
    assert len(meta) == 1  # the schema change is part of the same commit as the data
    # merge never drops columns: data lacking them is null-filled
    t.append(pa.table({"id": pa.array([3], pa.int64())}), schema_mode="merge")
    assert t.schema.names == ["id", "s", "new"] and t.to_arrow().num_rows == 3


def test_schema_merge_with_column_mapping_assigns_physical_names(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    t = lakehouse.write(uri, pa.table({"a": [1]}),
                        properties={"delta.columnMapping.mode": "name"})
    t.append(pa.table({"a": [2], "b": ["x"]}), schema_mode="merge")
    fields = {f.name: f for f in t.snapshot.schema.fields}
    assert fields["b"].metadata["delta.columnMapping.id"] == 2
    assert str(fields["b"].metadata["delta.columnMapping.physicalName"]).startswith("col-")
    assert t.properties["delta.columnMapping.maxColumnId"] == "2"
    assert rows(t.to_arrow()) == [{"a": 1, "b": None}, {"a": 2, "b": "x"}]


def test_schema_overwrite_replaces_schema_and_partitioning(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    t = _base(uri, partition_by="name")
    new = pa.table({"k": ["p", "q"], "v": pa.array([1.0, 2.0])})
    with pytest.raises(SchemaMismatchError):
        t.overwrite(new)
    t.overwrite(new, schema_mode="overwrite", partition_by="k")
    assert t.version == 1
    assert t.schema.names == ["k", "v"] and t.partition_columns == ["k"]
    assert rows(t.to_arrow()) == rows(new)
    old = Table.open(uri, version=0)
    assert old.schema.names == ["id", "name", "score"] and old.to_arrow().num_rows == 2
    assert t.metadata.id == old.metadata.id  # same table, new schema


# ---------------------------------------------------------------------------------- constraints
def test_not_null_violation(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("v", pa.string())])
    t = Table.create(uri, schema)
    assert t.schema.field("id").nullable is False
    t.append(pa.table({"id": pa.array([1], pa.int64()), "v": ["ok"]}))
    before = listing(uri)
    with pytest.raises(ConstraintViolationError, match=r"NOT NULL.*'id'"):
        t.append(pa.table({"id": pa.array([2, None], pa.int64()), "v": ["a", "b"]}))
    with pytest.raises(SchemaMismatchError, match="NOT NULL"):
        t.append(pa.table({"v": ["missing id"]}))
    assert listing(uri) == before and Table.open(uri).version == 1


def test_check_constraint_from_properties(tmp_path: Path, engine: Engine) -> None:
    uri = str(tmp_path / "t")
    t = lakehouse.write(uri, pa.table({"id": pa.array([1, 2], pa.int64()), "v": [10, 20]}),
                        properties={"delta.constraints.v_range": "v between 0 and 100",
                                    "delta.constraints.id_pos": "id > 0"}, engine=engine)
    assert t.protocol.min_writer_version >= 3
    version, before = t.version, listing(uri)
    for bad, name in [({"id": [3], "v": [101]}, "v_range"), ({"id": [-3], "v": [1]}, "id_pos"),
                      ({"id": [4], "v": [None]}, "v_range")]:  # NULL does not satisfy a CHECK
        with pytest.raises(ConstraintViolationError, match=name) as err:
            t.append(pa.table({"id": pa.array(bad["id"], pa.int64()),
                               "v": pa.array(bad["v"], pa.int64())}))
        assert "nothing was written" in str(err.value)
    assert listing(uri) == before and Table.open(uri).version == version
    t.append(pa.table({"id": pa.array([5], pa.int64()), "v": [100]}))
    assert t.version == version + 1


def test_legacy_invariants_are_enforced(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    inv = json.dumps({"expression": {"expression": "x > 3"}})
    schema = pa.schema([pa.field("x", pa.int64(), metadata={"delta.invariants": inv})])
    t = Table.create(uri, schema)
    assert t.protocol.min_writer_version >= 2
    t.append(pa.table({"x": pa.array([4], pa.int64())}))
    with pytest.raises(ConstraintViolationError, match="x > 3"):
        t.append(pa.table({"x": pa.array([5, 1], pa.int64())}))
    assert Table.open(uri).to_arrow()["x"].to_pylist() == [4]


def test_generated_columns(tmp_path: Path, engine: Engine) -> None:
    uri = str(tmp_path / "t")
    schema = pa.schema([
        ("ts", pa.timestamp("us", tz="UTC")),
        ("amount", pa.int64()),
        pa.field("day", pa.date32(), metadata={"delta.generationExpression": "CAST(ts AS DATE)"}),
        pa.field("double_amount", pa.int64(),
                 metadata={"delta.generationExpression": "amount * 2"}),
    ])
    t = Table.create(uri, schema, partition_by=["day"], engine=engine)
    assert t.protocol.min_writer_version >= 4
    field = t.snapshot.schema.field("double_amount")
    assert field.metadata["delta.generationExpression"] == "amount * 2"
    ts = datetime(2024, 3, 1, 10, tzinfo=UTC)
    t.append(pa.table({"ts": pa.array([ts, ts + timedelta(days=1)], pa.timestamp("us", tz="UTC")),
                       "amount": pa.array([5, 7], pa.int64())}))
    assert rows(t.to_arrow(columns=["day", "double_amount"])) == [
        {"day": date(2024, 3, 1), "double_amount": 10},
        {"day": date(2024, 3, 2), "double_amount": 14},
    ]
    assert sorted(dict(pv)["day"] for pv in t.files()["partitionValues"].to_pylist()) == \
        ["2024-03-01", "2024-03-02"]
    # Supplying the generated value is allowed when it matches, refused when it does not.
    t.append(pa.table({"ts": pa.array([ts], pa.timestamp("us", tz="UTC")),
                       "amount": pa.array([1], pa.int64()),
                       "double_amount": pa.array([2], pa.int64())}))
    before = listing(uri)
    with pytest.raises(ConstraintViolationError, match="double_amount"):
        t.append(pa.table({"ts": pa.array([ts], pa.timestamp("us", tz="UTC")),
                           "amount": pa.array([1], pa.int64()),
                           "double_amount": pa.array([3], pa.int64())}))
    assert listing(uri) == before


def test_bad_column_mapping_mode_property(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"columnMapping\.mode"):
        _base(str(tmp_path / "t"), properties={"delta.columnMapping.mode": "bogus"})
