"""Round trips with the reference readers: what we write, deltalake and DuckDB read identically;
what deltalake writes, we read identically.

Comparisons ignore row order and cast the oracle's result to our table's Arrow schema (oracles
return view types such as ``string_view`` and local-zone timestamps for the same values).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import lakehouse
from lakehouse import Table
from lakehouse.log.paths import LOG_DIR
from tests.interop.oracles import read_deltalake, read_duckdb
from tests.ops._util import rows


def assert_all_readers_agree(uri: str, duckdb_conn: Any, expected: pa.Table | None = None,
                             *, duckdb_columns: list[str] | None = None) -> pa.Table:
    """Our read == deltalake's == DuckDB's (== ``expected`` when given); returns our read."""
    ours = Table.open(uri).to_arrow()
    schema = ours.schema
    if expected is not None:
        assert rows(ours) == rows(expected, schema), "lakehouse read differs from what was written"
    assert rows(read_deltalake(uri), schema) == rows(ours), "deltalake disagrees"
    duck = read_duckdb(duckdb_conn, uri)
    if duckdb_columns is None:
        assert rows(duck, schema) == rows(ours), "duckdb disagrees"
    else:
        sub = pa.schema([schema.field(c) for c in duckdb_columns])
        assert rows(duck, sub) == rows(ours, sub), "duckdb disagrees"
    return ours


def _all_types(n: int = 6) -> pa.Table:
    """Every Arrow type lakehouse writes (some normalised on write), with nulls in each column."""
    def nulls_every(values: list[Any], k: int = 3) -> list[Any]:
        return [None if i % k == k - 1 else v for i, v in enumerate(values)]

    idx = list(range(n))
    return pa.table({
        "id": pa.array(idx, pa.int64()),
        "b": pa.array(nulls_every([i % 2 == 0 for i in idx]), pa.bool_()),
        "i8": pa.array(nulls_every([i - 3 for i in idx]), pa.int8()),
        "i16": pa.array(nulls_every([i * 1000 for i in idx]), pa.int16()),
        "i32": pa.array(nulls_every([-(2**31) + i for i in idx]), pa.int32()),
        "i64": pa.array(nulls_every([2**62 + i for i in idx]), pa.int64()),
        "u32": pa.array(nulls_every([2**32 - 1 - i for i in idx]), pa.uint32()),
        "f32": pa.array(nulls_every([i / 4 for i in idx]), pa.float32()),
        "f64": pa.array(nulls_every([i * 1.1 - 2 for i in idx]), pa.float64()),
        "dec": pa.array(nulls_every([Decimal(f"{i}.{i:02d}") for i in idx]), pa.decimal128(10, 2)),
        "dec38": pa.array(nulls_every([Decimal(f"-{i}1234567890.123456789") for i in idx]),
                          pa.decimal128(38, 9)),
        "s": pa.array(nulls_every([f"str-{i}-é✓" for i in idx]), pa.string()),
        "ls": pa.array(nulls_every([f"large-{i}" for i in idx]), pa.large_string()),
        "bin": pa.array(nulls_every([bytes([i, 0, 255]) for i in idx]), pa.binary()),
        "d": pa.array(nulls_every([date(2024, 1, 1 + i) for i in idx]), pa.date32()),
        "ts": pa.array(nulls_every([datetime(2024, 5, 1, 12, i, 7, 123456, tzinfo=UTC)
                                    for i in idx]), pa.timestamp("us", tz="UTC")),
        "ntz": pa.array(nulls_every([datetime(1999, 12, 31, 23, 59, i) for i in idx]),
                        pa.timestamp("us")),
        "lst": pa.array(nulls_every([[i, None, i + 1] if i % 2 else [] for i in idx]),
                        pa.list_(pa.int64())),
        "lst_s": pa.array(nulls_every([["a", f"b{i}"] for i in idx]), pa.list_(pa.string())),
        "st": pa.array(nulls_every([{"x": i, "y": f"y{i}", "z": [i]} for i in idx]),
                       pa.struct([("x", pa.int32()), ("y", pa.string()),
                                  ("z", pa.list_(pa.int64()))])),
        "mp": pa.array(nulls_every([[("k", i), ("j", None)] for i in idx]),
                       pa.map_(pa.string(), pa.int64())),
        "lst_st": pa.array(nulls_every([[{"q": float(i)}] for i in idx]),
                           pa.list_(pa.struct([("q", pa.float64())]))),
    })


# ------------------------------------------------------------------------ we write, they read
def test_all_types_with_nulls(tmp_path: Path, duckdb_conn: Any) -> None:
    uri = str(tmp_path / "t")
    data = _all_types()
    t = lakehouse.write(uri, data)
    assert t.protocol.has_reader_feature("timestampNtz")
    assert_all_readers_agree(uri, duckdb_conn, data)


def test_partitioned_special_characters_and_nulls(tmp_path: Path, duckdb_conn: Any) -> None:
    uri = str(tmp_path / "t")
    names = ["a/b", "c d", "é=%", "x:y#?&+", "semi;colon", "per%20cent", None, "plain"]
    data = pa.table({
        "id": pa.array(range(len(names)), pa.int64()),
        "p": names,
        "n": pa.array([1, None, 1, 2, None, 3, 1, 2], pa.int32()),
        "day": pa.array([date(2024, 1, 1), None] * 4, pa.date32()),
        "v": [f"v{i}" for i in range(len(names))],
    })
    lakehouse.write(uri, data, partition_by=["p", "n", "day"])
    lakehouse.write(uri, data.slice(0, 3), mode="append")
    assert_all_readers_agree(uri, duckdb_conn, pa.concat_tables([data, data.slice(0, 3)]))


def test_unpartitioned_appends_overwrite_and_replace_where(tmp_path: Path,
                                                           duckdb_conn: Any) -> None:
    uri = str(tmp_path / "t")
    base = pa.table({"id": pa.array(range(10), pa.int64()), "g": ["a", "b"] * 5})
    t = lakehouse.write(uri, base)
    t.append(base.slice(0, 2))
    t.overwrite(pa.table({"id": pa.array([100], pa.int64()), "g": ["b"]}), where="g = 'b'")
    expected = pa.table({"id": pa.array([0, 2, 4, 6, 8, 0, 100], pa.int64()),
                         "g": ["a"] * 6 + ["b"]})
    assert_all_readers_agree(uri, duckdb_conn, expected)


def test_schema_evolution(tmp_path: Path, duckdb_conn: Any) -> None:
    uri = str(tmp_path / "t")
    st1 = pa.struct([("x", pa.int64())])
    st2 = pa.struct([("x", pa.int64()), ("y", pa.string())])
    t = lakehouse.write(uri, pa.table({"id": pa.array([1], pa.int64()),
                                       "s": pa.array([{"x": 1}], st1)}))
    t.append(pa.table({"id": pa.array([2], pa.int64()), "s": pa.array([{"x": 2, "y": "b"}], st2),
                       "extra": [True]}), schema_mode="merge")
    t.alter.add_columns(pa.field("later", pa.float64()))
    expected = pa.table({
        "id": pa.array([1, 2], pa.int64()),
        "s": pa.array([{"x": 1, "y": None}, {"x": 2, "y": "b"}], st2),
        "extra": [None, True], "later": pa.array([None, None], pa.float64())})
    assert_all_readers_agree(uri, duckdb_conn, expected)


def test_column_mapping(tmp_path: Path, duckdb_conn: Any) -> None:
    uri = str(tmp_path / "t")
    data = pa.table({"a": pa.array([1, 2], pa.int64()), "c": ["x", "y"],
                     "s": pa.array([{"x": 1}, {"x": 2}], pa.struct([("x", pa.int64())]))})
    t = lakehouse.write(uri, data, properties={"delta.columnMapping.mode": "name"})
    t.alter.rename_column("a", "b")
    t.alter.drop_column("c")
    t.alter.rename_column("s.x", "renamed")
    t.alter.add_columns(pa.field("d", pa.string()))
    t.append(pa.table({"b": pa.array([3], pa.int64()), "d": ["new"],
                       "s": pa.array([{"renamed": 3}], pa.struct([("renamed", pa.int64())]))}))
    expected = pa.table({
        "b": pa.array([1, 2, 3], pa.int64()),
        "s": pa.array([{"renamed": 1}, {"renamed": 2}, {"renamed": 3}],
                      pa.struct([("renamed", pa.int64())])),
        "d": [None, None, "new"]})
    assert_all_readers_agree(uri, duckdb_conn, expected)


def test_column_mapping_partitioned(tmp_path: Path, duckdb_conn: Any) -> None:
    """DuckDB's delta_scan returns NULL partition values on column-mapped tables unless the
    partition columns come first (duckdb/duckdb-delta#343, #50): it is compared on the data
    columns only; deltalake on everything."""
    uri = str(tmp_path / "t")
    data = pa.table({"a": pa.array([1, 2, 3], pa.int64()), "p": ["k", "l", None],
                     "c": ["x", "y", "z"]})
    t = lakehouse.write(uri, data, partition_by="p",
                        properties={"delta.columnMapping.mode": "name"})
    t.alter.rename_column("p", "part")
    t.alter.rename_column("a", "b")
    t.append(pa.table({"b": pa.array([4], pa.int64()), "part": ["m"], "c": ["w"]}))
    pv_keys = {k for pv in t.files()["partitionValues"].to_pylist() for k, _ in pv}
    assert pv_keys == {t.snapshot.schema.field("part").metadata[
        "delta.columnMapping.physicalName"]}  # partition values keyed by physical name
    expected = pa.table({"b": pa.array([1, 2, 3, 4], pa.int64()), "part": ["k", "l", None, "m"],
                         "c": ["x", "y", "z", "w"]})
    assert_all_readers_agree(uri, duckdb_conn, expected, duckdb_columns=["b", "c"])


def test_checkpoints(tmp_path: Path, duckdb_conn: Any) -> None:
    uri = str(tmp_path / "t")
    props = {"delta.checkpointInterval": "2"}
    batch = pa.table({"id": pa.array([0], pa.int64()), "p": ["a"], "v": [0.0]})
    t = lakehouse.write(uri, batch, partition_by="p", properties=props)
    for i in range(1, 6):
        t.append(pa.table({"id": pa.array([i], pa.int64()), "p": ["ab"[i % 2]], "v": [i / 2]}))
    t.overwrite(pa.table({"id": pa.array([99], pa.int64()), "p": ["a"], "v": [9.9]}),
                where="p = 'a'")
    assert t.version == 6
    log = Path(uri) / LOG_DIR
    checkpoints = sorted(p.name for p in log.glob("*.checkpoint.parquet"))
    assert checkpoints == [f"{v:020d}.checkpoint.parquet" for v in (2, 4, 6)]
    last = json.loads((log / "_last_checkpoint").read_text())
    assert last["version"] == 6
    expected = pa.table({"id": pa.array([1, 3, 5, 99], pa.int64()), "p": ["b", "b", "b", "a"],
                         "v": [0.5, 1.5, 2.5, 9.9]})
    assert_all_readers_agree(uri, duckdb_conn, expected)
    # Readers must really use the checkpoint: drop every commit it covers.
    for v in range(0, 7):
        (log / f"{v:020d}.json").unlink()
    assert Table.open(uri).snapshot.segment.checkpoint_version == 6
    assert_all_readers_agree(uri, duckdb_conn, expected)
    t = Table.open(uri)
    t.append(pa.table({"id": pa.array([7], pa.int64()), "p": ["c"], "v": [7.0]}))
    assert_all_readers_agree(uri, duckdb_conn, pa.concat_tables([expected, pa.table({
        "id": pa.array([7], pa.int64()), "p": ["c"], "v": [7.0]})]))


def test_constraints_and_generated_columns_tables(tmp_path: Path, duckdb_conn: Any) -> None:
    uri = str(tmp_path / "t")
    schema = pa.schema([pa.field("a", pa.int64(), nullable=False),
                        pa.field("b", pa.int64(),
                                 metadata={"delta.generationExpression": "a + 1"})])
    t = Table.create(uri, schema, properties={"delta.constraints.a_pos": "a > 0"})
    t.append(pa.table({"a": pa.array([1, 2], pa.int64())}))
    expected = pa.table({"a": pa.array([1, 2], pa.int64()), "b": pa.array([2, 3], pa.int64())})
    assert_all_readers_agree(uri, duckdb_conn, expected)


# ------------------------------------------------------------------------ deltalake writes, we read
def _deltalake_equal(uri: str, version: int | None = None) -> None:
    ours = Table.open(uri, version=version).to_arrow()
    assert rows(read_deltalake(uri, version), ours.schema) == rows(ours)


def test_read_tables_deltalake_writes(tmp_path: Path) -> None:
    from deltalake import DeltaTable, write_deltalake

    data = _all_types().drop_columns(["u32", "ls"])  # types delta-rs writes as-is
    plain = str(tmp_path / "plain")
    write_deltalake(plain, data)
    write_deltalake(plain, data.slice(0, 2), mode="append")
    assert rows(Table.open(plain).to_arrow(), data.schema) == \
        rows(pa.concat_tables([data, data.slice(0, 2)]))
    _deltalake_equal(plain)
    write_deltalake(plain, data.slice(3, 2), mode="overwrite")
    _deltalake_equal(plain)
    _deltalake_equal(plain, version=1)
    assert Table.open(plain).to_arrow().num_rows == 2

    part = str(tmp_path / "part")
    pdata = pa.table({"id": pa.array(range(6), pa.int64()),
                      "p": ["a/b", "c d", "é=%", None, "x", "x"],
                      "n": pa.array([1, 2, None, 1, 2, 3], pa.int64())})
    write_deltalake(part, pdata, partition_by=["p", "n"])
    write_deltalake(part, pdata.slice(4), mode="append")
    _deltalake_equal(part)
    assert Table.open(part).to_arrow(filter="p = 'é=%'")["id"].to_pylist() == [2]
    assert sorted(Table.open(part).to_arrow(filter="p is null")["id"].to_pylist()) == [3]

    dt = DeltaTable(part)
    for _ in range(3):
        write_deltalake(part, pdata.slice(0, 1), mode="append")
    dt = DeltaTable(part)
    dt.create_checkpoint()
    assert Table.open(part).snapshot.segment.checkpoint_version == dt.version()
    _deltalake_equal(part)
    write_deltalake(part, pdata.slice(1, 1), mode="append")  # commits after the checkpoint
    _deltalake_equal(part)


def test_deltalake_and_lakehouse_interleaved(tmp_path: Path, duckdb_conn: Any) -> None:
    from deltalake import write_deltalake

    uri = str(tmp_path / "t")
    data = pa.table({"id": pa.array([1, 2], pa.int64()), "p": ["x", "y"]})
    write_deltalake(uri, data, partition_by=["p"])
    lakehouse.write(uri, pa.table({"id": pa.array([3], pa.int64()), "p": ["x"]}), mode="append")
    write_deltalake(uri, pa.table({"id": pa.array([4], pa.int64()), "p": ["z"]}), mode="append")
    t = Table.open(uri)
    t.overwrite(pa.table({"id": pa.array([5], pa.int64()), "p": ["y"]}), where="p = 'y'")
    expected = pa.table({"id": pa.array([1, 3, 4, 5], pa.int64()), "p": ["x", "x", "z", "y"]})
    assert_all_readers_agree(uri, duckdb_conn, expected)


@pytest.mark.parametrize("mode", ["append", "overwrite"])
def test_deltalake_writes_after_us(tmp_path: Path, mode: str) -> None:
    from deltalake import write_deltalake

    uri = str(tmp_path / "t")
    data = pa.table({"id": pa.array([1, 2], pa.int64()), "s": ["a", None]})
    lakehouse.write(uri, data, properties={"delta.constraints.id_pos": "id > 0"})
    write_deltalake(uri, pa.table({"id": pa.array([3], pa.int64()), "s": ["c"]}), mode=mode)
    expected = [1, 2, 3] if mode == "append" else [3]
    assert sorted(Table.open(uri).to_arrow()["id"].to_pylist()) == expected
    _deltalake_equal(uri)
