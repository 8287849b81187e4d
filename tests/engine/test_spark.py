"""The Spark integration: ``format("lakehouse")`` reads/writes and the ``spark`` engine.

One local SparkSession (``local[2]``) serves the whole module (session-scoped fixture, xdist group
``"spark"``). PySpark is installed into this interpreter when missing; a missing Java runtime
fails with a message saying what to install. ``LAKEHOUSE_SKIP_SPARK=1`` skips these tests.
Every result is compared with lakehouse's own local read, and written tables also with delta-rs.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import lakehouse
from lakehouse import Table
from lakehouse.errors import InvalidArgumentError

pytestmark = [
    pytest.mark.spark,
    pytest.mark.xdist_group("spark"),
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

TABLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "delta-tables"
DV_TABLE = "delta-kernel-java/basic-dv-with-checkpoint"  # DVs + checkpoint, 47 versions
CM_TABLES = [
    # column mapping (name) + 11 partition columns of every primitive type, null partition values
    "delta-kernel-java/data-reader-partition-values-column-mapping-name",
    # column mapping (name), partition column with spaces in its name
    "delta-rs/table_with_column_mapping",
    # column mapping (id)
    "delta-kernel-java/column-mapping-id",
    # column mapping (name) with map / array / struct / timestamp_ntz / decimal / binary columns
    "kernel-rs/stats-writing-all-types",
]


def _table(rel: str) -> str:
    path = TABLES / rel
    if not (path / "_delta_log").is_dir():
        pytest.skip(f"conformance table {rel} not found under {TABLES}")
    return str(path.resolve())


@pytest.fixture(scope="session")
def pyspark_installed() -> None:
    """PySpark 4+ importable (installed into this interpreter when missing)."""
    if os.environ.get("LAKEHOUSE_SKIP_SPARK") == "1":
        pytest.skip("LAKEHOUSE_SKIP_SPARK=1")
    try:
        import pyspark
    except ImportError:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "pyspark[sql]>=4"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"pyspark is missing and `{' '.join(cmd)}` failed:\n{done.stderr[-2000:]}",
                        pytrace=False)
        importlib.invalidate_caches()
        import pyspark
    if int(pyspark.__version__.split(".")[0]) < 4:
        pytest.fail(f"pyspark {pyspark.__version__} is installed; the lakehouse data source needs "
                    "PySpark 4+: pip install 'pyspark[sql]>=4'", pytrace=False)


@pytest.fixture(scope="session")
def spark(pyspark_installed: None) -> Iterator[Any]:
    """One local SparkSession for the whole test session, with ``lakehouse`` registered."""
    java_home = os.environ.get("JAVA_HOME")
    has_java = shutil.which("java") or (java_home and (Path(java_home) / "bin" / "java").exists())
    if not has_java:
        pytest.fail("Spark tests need a Java 17+ runtime and none was found (no `java` on PATH, "
                    "no JAVA_HOME): install one (e.g. apt-get install openjdk-17-jre-headless) "
                    "or set LAKEHOUSE_SKIP_SPARK=1 to skip these tests", pytrace=False)
    saved = {k: os.environ.get(k) for k in ("PYSPARK_PYTHON", "SPARK_LOCAL_IP")}
    os.environ["PYSPARK_PYTHON"] = sys.executable  # workers need this interpreter's packages
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("lakehouse-tests")
               .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.sql.session.timeZone", "UTC")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    import lakehouse.spark

    lakehouse.spark.register(session)
    yield session
    session.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as dicts in a canonical order (column order and Arrow type variants ignored)."""
    return sorted(table.to_pylist(), key=lambda r: repr(sorted(r.items())))


def _deltalake_rows(uri: str) -> list[dict[str, Any]]:
    from tests.interop.oracles import read_deltalake

    return _rows(read_deltalake(uri))


def _data_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*.parquet")
            if "_delta_log" not in p.parts}


# ---------------------------------------------------------------------------------- reading
def test_read_table_with_deletion_vectors(spark: Any) -> None:
    uri = _table(DV_TABLE)
    df = spark.read.format("lakehouse").load(uri)
    expected = Table.open(uri).to_arrow()
    assert df.columns == expected.column_names
    got = df.toArrow()
    assert got.num_rows == expected.num_rows == 454  # DV-deleted rows are gone
    assert _rows(got) == _rows(expected)


@pytest.mark.parametrize("rel", CM_TABLES)
def test_read_column_mapping_tables(spark: Any, rel: str) -> None:
    uri = _table(rel)
    got = spark.read.format("lakehouse").load(uri).toArrow()
    expected = Table.open(uri).to_arrow()
    assert got.column_names == expected.column_names
    assert got.num_rows == expected.num_rows > 0
    assert _rows(got) == _rows(expected)


def test_read_column_mapping_with_deletion_vectors(spark: Any, tmp_path: Path) -> None:
    # No shared table has both active DVs and column mapping; make one (partitioned, too).
    uri = str(tmp_path / "cm_dv")
    data = pa.table({"id": pa.array(range(40), pa.int64()), "p": ["a", "b"] * 20,
                     "v": [i * 0.5 for i in range(40)]})
    t = lakehouse.write(uri, data, partition_by="p", properties={
        "delta.columnMapping.mode": "name", "delta.enableDeletionVectors": "true"})
    t.delete("id % 3 = 0")
    assert any(dv is not None for dv in Table.open(uri).files()["deletionVector"].to_pylist())
    got = spark.read.format("lakehouse").load(uri).toArrow()
    assert _rows(got) == _rows(Table.open(uri).to_arrow())
    assert sorted(got["id"].to_pylist()) == [i for i in range(40) if i % 3]


def test_time_travel(spark: Any, tmp_path: Path) -> None:
    uri = _table(DV_TABLE)
    v1 = spark.read.format("lakehouse").option("versionAsOf", 1).load(uri).toArrow()
    assert _rows(v1) == _rows(Table.open(uri, version=1).to_arrow())
    assert v1.num_rows == 499

    local = str(tmp_path / "tt")
    lakehouse.write(local, pa.table({"id": [1, 2]}))
    lakehouse.write(local, pa.table({"id": [3]}), mode="append")
    ts = Table.open(local, version=0).snapshot.timestamp
    from datetime import UTC, datetime

    iso = datetime.fromtimestamp(ts / 1000, UTC).isoformat()
    df = spark.read.format("lakehouse").option("timestampAsOf", iso).load(local)
    assert sorted(r.id for r in df.collect()) == [1, 2]
    assert spark.read.format("lakehouse").load(local).count() == 3


def _partitioned(root: Path) -> str:
    data = pa.table({"id": pa.array(range(30), pa.int64()), "p": ["a", "b", "c"] * 10})
    lakehouse.write(str(root), data, partition_by="p")
    return str(root)


def test_reusing_a_dataframe_after_a_filtered_query_sees_all_rows(spark: Any,
                                                                  tmp_path: Path) -> None:
    # Spark 4.1-4.3 leak the file list pruned for one query into the next unfiltered query of
    # the same DataFrame; register() must only enable pushdown where that cannot happen.
    df = spark.read.format("lakehouse").load(_partitioned(tmp_path / "reuse"))
    assert df.where("p = 'a'").count() == 10
    assert df.count() == 30
    assert len(df.collect()) == 30


def test_pushed_filters_prune_files(spark: Any, tmp_path: Path) -> None:
    from lakehouse.engine._spark.source import register, supports_pushdown

    if not supports_pushdown():
        pytest.skip("this PySpark has no data source filter pushdown (needs 4.1+)")
    root = tmp_path / "pruned"
    uri = _partitioned(root)
    # Remove partition c's file: a read that still opens it fails, so success proves pruning.
    (victim,) = [f for f in _data_files(root) if f.startswith("p=c/")]
    (root / victim).unlink()
    assert register(spark, filter_pushdown=True)
    try:
        load = spark.read.format("lakehouse").load  # a fresh DataFrame per query (see register)
        got = load(uri).where("p = 'a' and id >= 10").toArrow()
        assert sorted(got["id"].to_pylist()) == [i for i in range(10, 30) if i % 3 == 0]
        assert load(uri).where("p in ('a', 'b')").count() == 20
        with pytest.raises(Exception, match="missing from storage"):
            load(uri).count()
    finally:
        register(spark)


def test_pushdown_reader_plans_only_matching_files(pyspark_installed: None,
                                                   tmp_path: Path) -> None:
    from pyspark.sql import datasource as ds

    from lakehouse.engine._spark.reader import PushdownReader, ReadPlanKey

    uri = _partitioned(tmp_path / "plan")
    snap = Table.open(uri).snapshot
    key = ReadPlanKey(snap.storage.root, {}, snap.version)
    reader = PushdownReader(key, ["id", "p"], None, {"parallelism": "1"})
    filters = [ds.EqualTo(("p",), "b"), ds.GreaterThan(("id",), 3)]
    assert reader.pushFilters(filters) == filters  # all handed back: Spark re-checks rows
    (part,) = reader.partitions()
    assert [dict(t.partition_values)["p"].as_py() for t in part.tasks] == ["b"]
    reader = PushdownReader(key, ["id", "p"], None, {"parallelism": "1"})
    assert sum(len(p.tasks) for p in reader.partitions()) == 3  # no filters: every file


def test_memory_uri_is_refused(spark: Any) -> None:
    with pytest.raises(Exception, match="memory://"):
        spark.read.format("lakehouse").load("memory://nope").collect()


# ---------------------------------------------------------------------------------- writing
def _source(spark: Any, start: int, n: int) -> Any:
    return spark.range(start, start + n, numPartitions=2).selectExpr(
        "id", "cast(id % 3 as string) as p", "cast(id as double) / 4 as v",
        "case when id % 7 = 0 then null else concat('s', cast(id as string)) end as s",
        "date_add(date'2024-01-01', cast(id as int)) as d",
        "timestamp_seconds(1700000000 + id) as ts")


def test_write_append_overwrite_partitioned(spark: Any, tmp_path: Path) -> None:
    uri = str(tmp_path / "written")
    first, second, third = _source(spark, 0, 50), _source(spark, 50, 30), _source(spark, 100, 20)
    first_rows, second_rows, third_rows = (df.toArrow() for df in (first, second, third))
    first.write.format("lakehouse").mode("append").option("partitionBy", "p").save(uri)
    t = Table.open(uri)
    assert t.version == 0 and t.partition_columns == ["p"]
    assert all(f.nullable for f in t.schema)  # Spark frames create nullable columns, as Delta
    assert _rows(t.to_arrow()) == _rows(first_rows) == _deltalake_rows(uri)

    second.write.format("lakehouse").mode("append").save(uri)
    expected = _rows(pa.concat_tables([first_rows, second_rows]))
    assert Table.open(uri).version == 1
    assert _rows(Table.open(uri).to_arrow()) == expected == _deltalake_rows(uri)

    third.write.format("lakehouse").mode("overwrite").save(uri)
    t = Table.open(uri)
    assert t.version == 2 and t.history(1)[0]["operationParameters"]["mode"] == "Overwrite"
    assert _rows(t.to_arrow()) == _rows(third_rows) == _deltalake_rows(uri)
    # and Spark reads back what it wrote
    assert _rows(spark.read.format("lakehouse").load(uri).toArrow()) == _rows(third_rows)


def test_write_into_column_mapped_table_with_replace_where(spark: Any, tmp_path: Path) -> None:
    uri = str(tmp_path / "cm")
    base = pa.table({"id": pa.array(range(10), pa.int64()), "p": ["x", "y"] * 5})
    lakehouse.write(uri, base, partition_by="p", properties={"delta.columnMapping.mode": "name"})
    new = spark.createDataFrame([(100, "x"), (101, "x")], "id long, p string")
    new.write.format("lakehouse").mode("overwrite").option("replaceWhere", "p = 'x'").save(uri)
    expected = [{"id": i, "p": "y"} for i in range(1, 10, 2)] + [
        {"id": 100, "p": "x"}, {"id": 101, "p": "x"}]
    assert _rows(Table.open(uri).to_arrow()) == _rows(pa.Table.from_pylist(expected))
    assert _deltalake_rows(uri) == _rows(pa.Table.from_pylist(expected))


def test_idempotent_write_with_txn_app_id(spark: Any, tmp_path: Path) -> None:
    uri = str(tmp_path / "idem")
    df = spark.createDataFrame([(1,), (2,)], "id long")
    for _ in range(2):
        (df.write.format("lakehouse").mode("append").option("txnAppId", "job")
         .option("txnVersion", 7).save(uri))
    t = Table.open(uri)
    assert t.version == 0 and t.to_arrow().num_rows == 2 and t.snapshot.app_version("job") == 7


def test_failed_write_leaves_table_unchanged(spark: Any, tmp_path: Path) -> None:
    root = tmp_path / "guarded"
    lakehouse.write(str(root), pa.table({"id": pa.array([1, 2], pa.int64())}),
                    properties={"delta.constraints.positive": "id > 0"})
    before = _data_files(root)
    # valid rows first, then a violating one, in one task: files it started must be removed
    bad = spark.createDataFrame([(i,) for i in range(1, 2000)] + [(-1,)], "id long").coalesce(1)
    with pytest.raises(Exception, match="CHECK constraint"):
        bad.write.format("lakehouse").mode("append").save(str(root))
    t = Table.open(str(root))
    assert t.version == 0 and sorted(t.to_arrow()["id"].to_pylist()) == [1, 2]
    assert _data_files(root) == before


def test_abort_deletes_files_of_successful_tasks(pyspark_installed: None,
                                                 tmp_path: Path) -> None:
    from pyspark.sql.types import LongType, StructField, StructType

    from lakehouse.engine._spark.writer import LakehouseWriter, plan_write

    root = tmp_path / "aborted"
    lakehouse.write(str(root), pa.table({"id": pa.array([1], pa.int64())}))
    before = _data_files(root)
    schema = StructType([StructField("id", LongType(), False)])
    writer = LakehouseWriter(plan_write({"path": str(root)}, schema, False))
    message = writer.write(iter(pa.table({"id": pa.array([5, 6], pa.int64())}).to_batches()))
    assert len(message.files) == 1 and _data_files(root) != before
    writer.abort([message, None])  # the second task failed
    assert _data_files(root) == before and Table.open(str(root)).version == 0


# --------------------------------------------------------------------------- planning units
def test_pack_tasks_like_spark_file_splits(pyspark_installed: None) -> None:
    from lakehouse.engine._spark.reader import pack_tasks

    tasks = [object() for _ in range(10)]
    mb = 1024 * 1024
    # small files, parallelism 2: split = total/2, so two groups
    groups = pack_tasks(tasks, [mb] * 10, parallelism=2)  # type: ignore[arg-type]
    assert [len(g) for g in groups] == [5, 5]
    # big files: never more than max_bytes per group, never split a file
    groups = pack_tasks(tasks, [100 * mb] * 10, parallelism=2)  # type: ignore[arg-type]
    assert [len(g) for g in groups] == [1] * 10
    assert pack_tasks([], [], parallelism=2) == []


def test_spark_filters_to_pruning_predicates(pyspark_installed: None) -> None:
    from datetime import datetime

    from pyspark.sql import datasource as ds

    from lakehouse.engine._spark.reader import filter_to_expr
    from lakehouse.expressions import Compare, In, IsNull, Not

    cols = {"a", "b"}
    assert filter_to_expr(ds.EqualTo(("a",), 1), cols) == Compare("=", "a", 1)
    assert filter_to_expr(ds.GreaterThanOrEqual(("b",), "x"), cols) == Compare(">=", "b", "x")
    assert filter_to_expr(ds.In(("a",), (1, 2)), cols) == In("a", (1, 2))
    assert filter_to_expr(ds.IsNotNull(("a",)), cols) == IsNull("a", negated=True)
    assert filter_to_expr(ds.Not(ds.EqualTo(("a",), 1)), cols) == Not(Compare("=", "a", 1))
    # not expressible: other columns, nested fields, naive timestamps, string patterns
    assert filter_to_expr(ds.EqualTo(("c",), 1), cols) is None
    assert filter_to_expr(ds.EqualTo(("a", "x"), 1), cols) is None
    assert filter_to_expr(ds.LessThan(("a",), datetime(2024, 1, 1)), cols) is None
    assert filter_to_expr(ds.StringStartsWith(("b",), "x"), cols) is None


# ----------------------------------------------------------------------------------- engine
def test_lakehouse_write_accepts_spark_frames(spark: Any, tmp_path: Path) -> None:
    uri = str(tmp_path / "from_frame")
    df = _source(spark, 0, 12)
    t = lakehouse.write(uri, df)  # default (polars) engine
    assert _rows(t.to_arrow()) == _rows(df.toArrow())
    t = lakehouse.write(uri, df, mode="append", engine="spark")
    assert t.to_arrow().num_rows == 24


def test_spark_engine_matches_polars_engine(spark: Any, tmp_path: Path) -> None:
    from lakehouse.engine import get_engine
    from lakehouse.engine._spark import SparkEngine

    eng = SparkEngine(spark)
    polars = get_engine("polars")
    table = pa.table({"id": pa.array([3, 1, None, 2], pa.int64()), "s": ["a", "b", "c", None]})
    for pred in ["id > 1", "s = 'b' or id is null", "s in ('a', 'c')"]:
        expected = polars.filter_mask(table, pred).to_pylist()
        assert eng.filter_mask(table, pred).to_pylist() == expected
    out = eng.project(table, {"twice": "id * 2", "up": "upper(s)", "one": "1"})
    assert out.column_names == ["twice", "up", "one"]
    assert out["twice"].to_pylist() == [6, 2, None, 4]
    assert out["up"].to_pylist() == ["A", "B", "C", None]
    assert out["one"].to_pylist() == [1, 1, 1, 1]
    with pytest.raises(InvalidArgumentError):
        eng.filter_mask(table, "id + 1")  # not boolean
    with pytest.raises(InvalidArgumentError):
        eng.filter_mask(table, "nope > 1")

    uri = str(tmp_path / "engine")
    lakehouse.write(uri, pa.table({"id": pa.array(range(6), pa.int64()), "p": ["a", "b"] * 3}),
                    partition_by="p")
    t = Table.open(uri, engine=eng)
    assert sorted(t.to_arrow(filter="id >= 3 and p = 'b'")["id"].to_pylist()) == [3, 5]
    from lakehouse.scan import Scan

    lazy = eng.lazy_scan(Scan(t.snapshot).select(["id"]).filter("p = 'a'"))
    assert sorted(r.id for r in lazy.collect()) == [0, 2, 4]
    assert json.loads(lazy.schema.json())["fields"][0]["name"] == "id"
