"""Data-file writer/reader: layout, casting, stats, file rolling, column mapping, interop."""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from lakehouse.errors import ConstraintViolationError, InvalidArgumentError
from lakehouse.io.parquet import (
    WriterOptions,
    WrittenFile,
    read_data_file,
    write_data_files,
)
from lakehouse.io.stats import StatsCollector, file_stats
from lakehouse.io.storage import Storage
from lakehouse.log.schema import (
    StructType,
    assign_column_mapping,
    from_arrow,
    physical_name,
    to_arrow,
)

UTC = dt.UTC
SPECIAL = ["a/b", "x y", "c:d=e%f", "ümlaut", "q#?*[]{}^", "", None]


def _all_types_table(n: int = 14) -> pa.Table:
    """One column of every supported type, with nulls, plus two partition columns."""
    rng = range(n)

    def nullify(values: list, every: int = 5) -> list:
        return [None if i % every == 3 else v for i, v in enumerate(values)]

    return pa.table(
        {
            "p": pa.array([SPECIAL[i % len(SPECIAL)] for i in rng], pa.string()),
            "day": pa.array(nullify([dt.date(2024, 1, 1 + i % 2) for i in rng], 4), pa.date32()),
            "i8": pa.array(nullify([i - 7 for i in rng]), pa.int8()),
            "i16": pa.array(nullify([i * 300 for i in rng]), pa.int16()),
            "i32": pa.array(nullify([i * 70000 for i in rng]), pa.int32()),
            "i64": pa.array(nullify([i * 2**40 for i in rng]), pa.int64()),
            "f32": pa.array(nullify([i / 4 for i in rng]), pa.float32()),
            "f64": pa.array(nullify([i * 1.5 - 3 for i in rng]), pa.float64()),
            "dec": pa.array(nullify([Decimal(i * 125) / 100 for i in rng]), pa.decimal128(10, 2)),
            "s": pa.array(nullify([f"s{i:03d}" for i in rng]), pa.string()),
            "bin": pa.array(nullify([bytes([i]) * 3 for i in rng]), pa.binary()),
            "b": pa.array(nullify([i % 2 == 0 for i in rng]), pa.bool_()),
            "d": pa.array(
                nullify([dt.date(2020, 1, 1) + dt.timedelta(i) for i in rng]), pa.date32()
            ),
            "ts": pa.array(
                nullify([dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(hours=i) for i in rng]),
                pa.timestamp("us", tz="UTC"),
            ),
            "ntz": pa.array(
                nullify([dt.datetime(2021, 6, 1) + dt.timedelta(minutes=i) for i in rng]),
                pa.timestamp("us"),
            ),
            "st": pa.array(
                nullify([{"x": i, "y": f"y{i}"} for i in rng]),
                pa.struct([("x", pa.int32()), ("y", pa.string())]),
            ),
            "lst": pa.array(nullify([[i, None, i + 1] for i in rng]), pa.list_(pa.int64())),
            "m": pa.array(nullify([[("k", i)] for i in rng]), pa.map_(pa.string(), pa.int32())),
            "id": pa.array(list(rng), pa.int64()),
        }
    )


def _key_rows(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: r["id"])


def _assemble_table(root: Path, schema: StructType, partition_columns: list[str],
                    files: list[WrittenFile], *, protocol: dict | None = None,
                    configuration: dict | None = None) -> None:  # fmt: skip
    """A minimal Delta log (protocol, metaData, adds) for files we wrote."""
    lines = [
        {"protocol": protocol or {"minReaderVersion": 1, "minWriterVersion": 2}},
        {
            "metaData": {
                "id": "00000000-0000-0000-0000-000000000001",
                "format": {"provider": "parquet", "options": {}},
                "schemaString": schema.to_json(),
                "partitionColumns": partition_columns,
                "configuration": configuration or {},
                "createdTime": 0,
            }
        },
    ]
    for f in files:
        lines.append(
            {
                "add": {
                    "path": f.encoded_path,
                    "partitionValues": f.partition_values,
                    "size": f.size,
                    "modificationTime": f.modification_time,
                    "dataChange": True,
                    "stats": f.stats,
                }
            }
        )
    log = root / "_delta_log"
    log.mkdir(parents=True)
    (log / "00000000000000000000.json").write_text(
        "\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8"
    )


def _deltalake_rows(root: Path) -> pa.Table:
    deltalake = pytest.importorskip("deltalake")
    qb = deltalake.QueryBuilder().register("t", deltalake.DeltaTable(str(root)))
    return pa.table(qb.execute("select * from t").read_all())


# ----------------------------------------------------------------------------------------------
# Layout and round trip
# ----------------------------------------------------------------------------------------------


def test_partitioned_layout_and_content(tmp_path: Path) -> None:
    data = _all_types_table()
    schema = from_arrow(data.schema)
    storage = Storage.for_uri(str(tmp_path))
    files = write_data_files(storage, data, schema=schema, partition_columns=["p", "day"])

    seen_ids: list[int] = []
    for f in files:
        # Path: Hive directories from the partition values, then the file name.
        *dirs, name = f.path.split("/")
        assert name.startswith("part-") and name.endswith("-c000.snappy.parquet")
        assert len(dirs) == 2
        pv = f.partition_values
        assert set(pv) == {"p", "day"}
        expected_p = {
            None: "__HIVE_DEFAULT_PARTITION__",
            "a/b": "a%2Fb",
            "x y": "x y",
            "c:d=e%f": "c%3Ad%3De%25f",
            "ümlaut": "ümlaut",
            "q#?*[]{}^": "q%23%3F%2A%5B%5D%7B}%5E",
        }[pv["p"]]
        assert dirs[0] == f"p={expected_p}"
        assert dirs[1] == f"day={pv['day'] or '__HIVE_DEFAULT_PARTITION__'}"
        # The encoded path decodes back to the path; Hive '%' escapes become '%25'.
        assert unquote(f.encoded_path) == f.path
        if "%" in f.path:
            assert "%25" in f.encoded_path
        on_disk = tmp_path / f.path
        assert on_disk.is_file() and on_disk.stat().st_size == f.size
        # Data files hold only the non-partition columns, in schema order.
        pf = pq.ParquetFile(on_disk)
        assert pf.schema_arrow.names == [n for n in data.column_names if n not in ("p", "day")]
        assert pf.metadata.num_rows == f.num_records == json.loads(f.stats)["numRecords"]
        # Every row in the file has the file's partition values.
        rows = pf.read().column("id").to_pylist()
        seen_ids += rows
        src = data.filter(pc.is_in(data["id"], pa.array(rows)))
        ps = set(src.column("p").to_pylist())
        assert {None if v == "" else v for v in ps} == {pv["p"]}
        assert {str(d) if d else None for d in src.column("day").to_pylist()} == {pv["day"]}
    assert sorted(seen_ids) == list(range(data.num_rows))
    # "" and null both land in the null partition.
    nulls = [f for f in files if f.partition_values["p"] is None]
    assert sum(f.num_records for f in nulls) == sum(1 for v in data["p"].to_pylist() if not v)


def test_physical_types_on_disk(tmp_path: Path) -> None:
    data = _all_types_table()
    # Feed "wrong but safe" Arrow variants: large types, nanosecond and non-UTC timestamps.
    loose = data.set_column(
        data.schema.get_field_index("s"), "s", data["s"].cast(pa.large_string())
    ).set_column(
        data.schema.get_field_index("ts"),
        "ts",
        data["ts"].cast(pa.timestamp("ns", tz="Europe/Paris")),
    )
    schema = from_arrow(data.schema)
    storage = Storage.for_uri(str(tmp_path))
    [f] = write_data_files(storage, loose, schema=schema)
    pf = pq.ParquetFile(tmp_path / f.path)
    arrow = pf.schema_arrow
    assert arrow.field("s").type == pa.string()
    assert arrow.field("ts").type == pa.timestamp("us", tz="UTC")
    assert arrow.field("ntz").type == pa.timestamp("us")
    parquet_schema = pf.metadata.schema
    ts_col = parquet_schema.column(parquet_schema.names.index("ts"))
    assert ts_col.physical_type == "INT64"
    assert "isAdjustedToUTC=true" in str(ts_col.logical_type)
    assert "timeUnit=microseconds" in str(ts_col.logical_type)
    ntz_col = parquet_schema.column(parquet_schema.names.index("ntz"))
    assert "isAdjustedToUTC=false" in str(ntz_col.logical_type)
    back = read_data_file(storage, f.path)
    assert [(x.name, x.type) for x in back.schema] == [(x.name, x.type) for x in to_arrow(schema)]
    assert _key_rows(back) == _key_rows(data)


def test_read_data_file_columns_and_absolute_path(tmp_path: Path) -> None:
    data = pa.table({"a": [1, 2], "b": ["x", "y"]})
    storage = Storage.for_uri(str(tmp_path))
    [f] = write_data_files(storage, data, schema=from_arrow(data.schema))
    got = read_data_file(storage, f.path, columns=["b", "missing"])
    assert got.column_names == ["b"] and got["b"].to_pylist() == ["x", "y"]
    absolute = read_data_file(storage, str(tmp_path / f.path))
    assert absolute.equals(pq.read_table(tmp_path / f.path))
    with pytest.raises(FileNotFoundError):
        read_data_file(storage, "nope/part-0.parquet")


def test_memory_backend_round_trip() -> None:
    data = pa.table({"k": ["a", "b", "a"], "v": [1, 2, 3]})
    storage = Storage.for_uri("memory://parquet-writer-test/t1")
    files = write_data_files(storage, data, schema=from_arrow(data.schema), partition_columns=["k"])
    assert sorted(f.partition_values["k"] for f in files) == ["a", "b"]
    for f in files:
        assert storage.info(f.path).size == f.size
        got = read_data_file(storage, f.path)
        assert got.column_names == ["v"]
        expected = [r["v"] for r in data.to_pylist() if r["k"] == f.partition_values["k"]]
        assert got["v"].to_pylist() == expected


# ----------------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------------


def test_stats_exact_values() -> None:
    t = pa.table(
        {
            "i": pa.array([3, None, -2], pa.int32()),
            "f": pa.array([1.5, None, -0.25], pa.float64()),
            "nan": pa.array([1.0, float("nan"), 2.0], pa.float64()),
            "inf": pa.array([1.0, float("inf"), 2.0], pa.float64()),
            "dec": pa.array([Decimal("1.50"), Decimal("-12.25"), None], pa.decimal128(6, 2)),
            "s": pa.array(["b" * 40, "a", None]),
            "bin": pa.array([b"x", None, b"y"]),
            "b": pa.array([True, None, False]),
            "d": pa.array([dt.date(2024, 2, 29), dt.date(1999, 12, 31), None]),
            "ts": pa.array(
                [
                    dt.datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=UTC),
                    dt.datetime(2024, 1, 1, 0, 0, 0, 999500, tzinfo=UTC),
                    None,
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "ntz": pa.array(
                [
                    dt.datetime(2020, 5, 5, 1, 2, 3, 4000),
                    dt.datetime(2020, 5, 5, 1, 2, 3, 4001),
                    None,
                ],
                pa.timestamp("us"),
            ),
            "st": pa.array(
                [{"x": 1, "y": {"z": "q"}}, None, {"x": None, "y": {"z": "r"}}],
                pa.struct([("x", pa.int64()), ("y", pa.struct([("z", pa.string())]))]),
            ),
            "lst": pa.array([[1], None, []], pa.list_(pa.int64())),
            "m": pa.array([None, [("a", 1)], None], pa.map_(pa.string(), pa.int64())),
            "allnull": pa.array([None, None, None], pa.int64()),
        }
    )
    schema = from_arrow(t.schema)
    raw = file_stats(t, schema, WriterOptions(), column_mapping=False)
    stats = json.loads(raw, parse_float=Decimal)
    assert stats["numRecords"] == 3
    assert stats["minValues"] == {
        "i": -2,
        "f": Decimal("-0.25"),
        "inf": Decimal("1.0"),
        "dec": Decimal("-12.25"),
        "s": "a",
        "d": "1999-12-31",
        "ts": "2024-01-01T00:00:00.123Z",  # truncated down
        "ntz": "2020-05-05T01:02:03.004",  # no zone for timestamp_ntz
        "st": {"x": 1, "y": {"z": "q"}},
    }
    assert stats["maxValues"] == {  # no "inf": +inf has no JSON form, so max is omitted
        "i": 3,
        "f": Decimal("1.5"),
        "dec": Decimal("1.50"),
        "s": "b" * 32 + "\U0010fffd",  # cut and bumped so it still bounds "b" * 40
        "d": "2024-02-29",
        "ts": "2024-01-01T00:00:01.000Z",  # .999500 rounded up
        "ntz": "2020-05-05T01:02:03.005",  # .004001 rounded up
        "st": {"x": 1, "y": {"z": "r"}},
    }
    assert "nan" not in stats["minValues"] and "nan" not in stats["maxValues"]
    assert '"dec":1.50' in raw and '"dec":-12.25' in raw  # decimals as numbers, scale kept
    assert stats["nullCount"] == {
        "i": 1, "f": 1, "nan": 0, "inf": 0, "dec": 1, "s": 1, "bin": 1, "b": 1, "d": 1,
        "ts": 1, "ntz": 1, "st": {"x": 2, "y": {"z": 1}}, "lst": 1, "m": 2, "allnull": 3,
    }  # fmt: skip


def test_stats_string_upper_bound_edge_cases() -> None:
    schema = from_arrow(pa.schema([("s", pa.string())]))
    opts = WriterOptions(string_prefix_length=3)

    def maxval(values: list[str]) -> str | None:
        t = pa.table({"s": pa.array(values, pa.string())})
        return json.loads(file_stats(t, schema, opts, False))["maxValues"].get("s")

    assert maxval(["abc"]) == "abc"  # not cut: exact
    assert maxval(["abcd"]) == "abc\U0010fffd"
    # Cut text starting above the tie-breaker: bump an earlier character instead.
    value = "ab\U0010ffff\U0010ffffz"
    top = maxval([value])
    assert top == "a\U0010fffd" and top > value
    assert maxval(["\U0010ffff" * 5]) is None  # no bound possible: omitted
    # Multi-byte characters are cut on character boundaries and the min is a plain prefix.
    t = pa.table({"s": pa.array(["ééééé", "éa", "€€€€"])})
    stats = json.loads(file_stats(t, schema, opts, False))
    assert stats["minValues"]["s"] == "éa" and stats["maxValues"]["s"] == "€€€\U0010fffd"
    t = pa.table({"s": pa.array(["ééééé"])})
    stats = json.loads(file_stats(t, schema, opts, False))
    assert stats["minValues"]["s"] == "ééé"


def test_stats_indexed_columns_and_stats_columns() -> None:
    t = pa.table(
        {
            "a": [1, 2],
            "st": pa.array([{"x": 1, "y": 2}, {"x": 3, "y": 4}]),
            "c": [5, 6],
        }
    )
    schema = from_arrow(t.schema)
    two = json.loads(file_stats(t, schema, WriterOptions(num_indexed_cols=2), False))
    assert two["nullCount"] == {"a": 0, "st": {"x": 0}}  # nested leaves count one by one
    assert two["minValues"] == {"a": 1, "st": {"x": 1}}
    none = json.loads(file_stats(t, schema, WriterOptions(num_indexed_cols=0), False))
    assert none == {"numRecords": 2, "minValues": {}, "maxValues": {}, "nullCount": {}}
    chosen = WriterOptions.from_configuration(
        {"delta.dataSkippingStatsColumns": "c, `st`.y", "delta.dataSkippingNumIndexedCols": "1"}
    )
    picked = json.loads(file_stats(t, schema, chosen, False))
    assert picked["maxValues"] == {"st": {"y": 4}, "c": 6}  # schema order, overrides num cols
    everything = json.loads(file_stats(t, schema, WriterOptions(num_indexed_cols=-1), False))
    assert everything["maxValues"] == {"a": 2, "st": {"x": 3, "y": 4}, "c": 6}


def test_stats_accumulate_over_batches_match_single_pass() -> None:
    data = _all_types_table(40).drop_columns(["p", "day"])
    schema = from_arrow(data.schema)
    collector = StatsCollector(schema, WriterOptions(), False, present=data.column_names)
    for batch in data.to_batches(max_chunksize=7):
        collector.update(batch)
    assert collector.to_json() == file_stats(data, schema, WriterOptions(), False)


def test_writer_options_from_configuration() -> None:
    o = WriterOptions.from_configuration(
        {"delta.targetFileSize": "64mb", "delta.dataSkippingNumIndexedCols": "-1"},
        compression="zstd",
    )
    assert (o.target_file_size, o.num_indexed_cols, o.compression) == (64 * 2**20, -1, "zstd")
    assert (
        WriterOptions.from_configuration({"delta.targetFileSize": "1048576"}).target_file_size
        == 2**20
    )
    assert WriterOptions.from_configuration(
        {"delta.dataSkippingStatsColumns": "a,`b,c`.d"}
    ).stats_columns == ("a", "`b,c`.d")
    for bad in ({"delta.targetFileSize": "big"}, {"delta.dataSkippingNumIndexedCols": "x"}):
        with pytest.raises(InvalidArgumentError):
            WriterOptions.from_configuration(bad)
    with pytest.raises(InvalidArgumentError):
        WriterOptions(compression="lzma")


# ----------------------------------------------------------------------------------------------
# Streaming and file rolling
# ----------------------------------------------------------------------------------------------


def test_target_file_size_rolls_files(tmp_path: Path) -> None:
    n = 60_000
    ids = pa.array(range(n), pa.int64())
    data = pa.table(
        {
            "part": pc.if_else(pc.less(ids, 20_000), "small", "big"),
            "id": ids,
            "payload": pc.binary_join_element_wise(ids.cast(pa.string()), "-payload-", ""),
        }
    )
    schema = from_arrow(data.schema)
    storage = Storage.for_uri(str(tmp_path))
    seen: list[int] = []
    target = 64 * 1024
    files = write_data_files(
        storage,
        data.to_reader(max_chunksize=5_000),
        schema=schema,
        partition_columns=["part"],
        options=WriterOptions(target_file_size=target, row_group_size=4_000),
        progress=seen.append,
    )
    assert sum(seen) == n and len(seen) == n // 5_000
    by_part = {p: [f for f in files if f.partition_values["part"] == p] for p in ("small", "big")}
    assert len(by_part["small"]) >= 2 and len(by_part["big"]) > len(by_part["small"])
    assert len({f.path for f in files}) == len(files)
    got = pa.concat_tables(read_data_file(storage, f.path) for f in files)
    assert sorted(got["id"].to_pylist()) == list(range(n))  # every row exactly once
    for f in files:
        assert os.path.getsize(tmp_path / f.path) == f.size
        assert f.size < target * 2  # the estimate keeps files near the target
        assert json.loads(f.stats)["numRecords"] == f.num_records
        assert pq.ParquetFile(tmp_path / f.path).metadata.num_row_groups >= 1
    # Most files get close to the target (all but each partition's last).
    full = sorted(f.size for f in files)[:-2]
    assert min(full) > target / 4


def test_empty_input_writes_nothing(tmp_path: Path) -> None:
    schema = from_arrow(pa.schema([("a", pa.int64())]))
    storage = Storage.for_uri(str(tmp_path))
    assert write_data_files(storage, iter([]), schema=schema) == []
    assert list(tmp_path.iterdir()) == []


def test_change_data_prefix(tmp_path: Path) -> None:
    data = pa.table({"p": ["x"], "v": [1]})
    storage = Storage.for_uri(str(tmp_path))
    [f] = write_data_files(
        storage,
        data,
        schema=from_arrow(data.schema),
        partition_columns=["p"],
        prefix="_change_data",
    )
    assert f.path.startswith("_change_data/p=x/cdc-00000-")
    assert (tmp_path / f.path).is_file()


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------


def test_not_null_violation_leaves_no_files(tmp_path: Path) -> None:
    schema = StructType.from_json(
        '{"type":"struct","fields":[{"name":"a","type":"long","nullable":false,"metadata":{}},'
        '{"name":"p","type":"string","nullable":true,"metadata":{}}]}'
    )
    good = pa.record_batch({"a": [1, 2], "p": ["x", "y"]})
    bad = pa.record_batch({"a": [3, None], "p": ["x", "z"]})
    storage = Storage.for_uri(str(tmp_path))
    with pytest.raises(ConstraintViolationError, match="'a'"):
        write_data_files(storage, [good, bad], schema=schema, partition_columns=["p"])
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_bad_partition_columns(tmp_path: Path) -> None:
    schema = from_arrow(pa.schema([("a", pa.int64()), ("b", pa.int64())]))
    storage = Storage.for_uri(str(tmp_path))
    data = pa.table({"a": [1], "b": [2]})
    with pytest.raises(InvalidArgumentError, match="not in the schema"):
        write_data_files(storage, data, schema=schema, partition_columns=["zz"])
    with pytest.raises(InvalidArgumentError, match="every column"):
        write_data_files(storage, data, schema=schema, partition_columns=["a", "b"])


# ----------------------------------------------------------------------------------------------
# Column mapping
# ----------------------------------------------------------------------------------------------


def test_column_mapping_physical_names_and_field_ids(tmp_path: Path) -> None:
    data = pa.table(
        {
            "part": ["u", "v", "u"],
            "value": [1, 2, 3],
            "nested": pa.array([{"inner": "a"}, {"inner": "b"}, None]),
        }
    )
    schema, _max_id = assign_column_mapping(from_arrow(data.schema), 0)
    storage = Storage.for_uri(str(tmp_path))
    files = write_data_files(
        storage, data, schema=schema, partition_columns=["part"], column_mapping=True
    )
    part_f, value_f, nested_f = schema.fields
    inner_f = nested_f.type.fields[0]  # type: ignore[union-attr]
    for f in files:
        assert set(f.partition_values) == {physical_name(part_f)}  # keys are physical names
        assert f.path.startswith(f"{physical_name(part_f)}=")
        pf = pq.ParquetFile(tmp_path / f.path)
        arrow = pf.schema_arrow
        assert arrow.names == [physical_name(value_f), physical_name(nested_f)]
        ids = {
            arrow.field(i).name: int(arrow.field(i).metadata[b"PARQUET:field_id"])
            for i in range(len(arrow))
        }
        assert ids == {
            physical_name(value_f): value_f.metadata["delta.columnMapping.id"],
            physical_name(nested_f): nested_f.metadata["delta.columnMapping.id"],
        }
        inner = arrow.field(physical_name(nested_f)).type.field(0)
        assert inner.name == physical_name(inner_f)
        assert (
            int(inner.metadata[b"PARQUET:field_id"]) == inner_f.metadata["delta.columnMapping.id"]
        )
        assert f"field_id={inner_f.metadata['delta.columnMapping.id']}" in str(pf.schema)
        stats = json.loads(f.stats)
        assert set(stats["nullCount"]) == {physical_name(value_f), physical_name(nested_f)}
        assert set(stats["nullCount"][physical_name(nested_f)]) == {physical_name(inner_f)}

    _assemble_table(
        tmp_path,
        schema,
        ["part"],
        files,
        protocol={"minReaderVersion": 2, "minWriterVersion": 5},
        configuration={
            "delta.columnMapping.mode": "name",
            "delta.columnMapping.maxColumnId": str(_max_id),
        },
    )
    got = _deltalake_rows(tmp_path)
    assert sorted(got.to_pylist(), key=lambda r: r["value"]) == sorted(
        data.to_pylist(), key=lambda r: r["value"]
    )


# ----------------------------------------------------------------------------------------------
# Interop: deltalake reads a table assembled from our files
# ----------------------------------------------------------------------------------------------


def test_deltalake_reads_assembled_table(tmp_path: Path) -> None:
    data = _all_types_table(30)
    schema = from_arrow(data.schema)
    storage = Storage.for_uri(str(tmp_path))
    files = write_data_files(
        storage,
        data.to_batches(max_chunksize=8),
        schema=schema,
        partition_columns=["p", "day"],
        options=WriterOptions(target_file_size=1),  # one file per batch and partition
    )
    assert len(files) > len({tuple(f.partition_values.items()) for f in files})
    _assemble_table(
        tmp_path,
        schema,
        ["p", "day"],
        files,
        protocol={
            "minReaderVersion": 3,
            "minWriterVersion": 7,
            "readerFeatures": ["timestampNtz"],
            "writerFeatures": ["timestampNtz"],
        },
    )
    got = _deltalake_rows(tmp_path).select(data.column_names)
    expected = data.set_column(
        0, "p", pc.if_else(pc.equal(data["p"], ""), pa.scalar(None, pa.string()), data["p"])
    )
    got_rows, want_rows = _key_rows(got), _key_rows(expected)
    assert got_rows == want_rows
    # deltalake parses our stats: per-file row counts and a stats-driven filter agree.
    deltalake = pytest.importorskip("deltalake")
    dt_ = deltalake.DeltaTable(str(tmp_path))
    actions = pa.table(dt_.get_add_actions(flatten=True))
    assert sum(actions["num_records"].to_pylist()) == data.num_rows
    qb = deltalake.QueryBuilder().register("t", dt_)
    few = pa.table(qb.execute("select id from t where i64 > 17592186044416").read_all())
    assert sorted(few["id"].to_pylist()) == sorted(
        r["id"] for r in data.to_pylist() if r["i64"] is not None and r["i64"] > 2**44
    )


def test_duckdb_reads_assembled_table(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    ext_pkg = pytest.importorskip("duckdb_extension_delta")
    [ext] = sorted(Path(ext_pkg.__file__).parent.glob("extensions/*/delta.duckdb_extension"))
    data = _all_types_table(21).drop_columns(["ntz"])  # keep protocol (1, 2)
    schema = from_arrow(data.schema)
    storage = Storage.for_uri(str(tmp_path))
    files = write_data_files(storage, data, schema=schema, partition_columns=["p", "day"])
    _assemble_table(tmp_path, schema, ["p", "day"], files)
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{ext}'")
    got = con.execute(f"select p, day, id, s, dec, ts from delta_scan('{tmp_path}')").arrow()
    got = got.read_all() if hasattr(got, "read_all") else got
    want = data.select(["p", "day", "id", "s", "dec", "ts"])
    want = want.set_column(
        0, "p", pc.if_else(pc.equal(want["p"], ""), pa.scalar(None, pa.string()), want["p"])
    )
    norm = [
        {**r, "ts": r["ts"].astimezone(UTC) if r["ts"] else None} for r in _key_rows(pa.table(got))
    ]
    assert norm == _key_rows(want)


def test_input_is_consumed_one_batch_at_a_time(tmp_path: Path) -> None:
    schema = from_arrow(pa.schema([("k", pa.string()), ("v", pa.int64())]))
    produced: list[int] = []
    consumed_at: list[int] = []

    def batches():  # a generator: the writer must pull, not collect
        for i in range(6):
            produced.append(i)
            yield pa.record_batch({"k": [f"k{i % 2}"] * 10, "v": list(range(i * 10, i * 10 + 10))})

    files = write_data_files(
        Storage.for_uri(str(tmp_path)),
        batches(),
        schema=schema,
        partition_columns=["k"],
        progress=lambda n: consumed_at.append(len(produced)),
    )
    assert consumed_at == [1, 2, 3, 4, 5, 6]  # each batch written before the next is pulled
    assert sorted(f.partition_values["k"] for f in files) == ["k0", "k1"]
    assert sum(f.num_records for f in files) == 60


def test_polars_and_bad_partition_type(tmp_path: Path) -> None:
    pl = pytest.importorskip("polars")
    df = pl.DataFrame({"k": ["a", "b", "a"], "v": [1, 2, 3], "l": [[1], [2], [3]]})
    schema = from_arrow(df.to_arrow().schema)
    storage = Storage.for_uri(str(tmp_path))
    files = write_data_files(storage, df, schema=schema, partition_columns=["k"])
    assert {f.partition_values["k"]: f.num_records for f in files} == {"a": 2, "b": 1}
    with pytest.raises(InvalidArgumentError, match="primitive"):
        write_data_files(storage, df, schema=schema, partition_columns=["l"])
