"""deltalake (QueryBuilder) and DuckDB (delta_scan) read every MERGE/UPDATE/DELETE result
exactly as we do: copy-on-write, deletion vectors, partitions, column mapping, change data."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

import lakehouse
from lakehouse.table import Table
from tests.merge.helpers import deltalake_rows, duckdb_rows, rows

CASES = {
    "cow": ({}, None),
    "dv": ({"delta.enableDeletionVectors": "true"}, None),
    "cow-partitioned": ({}, "part"),
    "dv-partitioned-cdf": ({"delta.enableDeletionVectors": "true",
                            "delta.enableChangeDataFeed": "true"}, "part"),
    "column-mapping-dv": ({"delta.columnMapping.mode": "name",
                           "delta.enableDeletionVectors": "true"}, None),
}


def _data(lo: int, hi: int) -> pa.Table:
    n = hi - lo
    ids = list(range(lo, hi))
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "part": [f"p{i % 3}" for i in ids],
        "name": [f"n{i}" for i in ids],
        "score": pa.array([i / 4 for i in ids], pa.float64()),
        "day": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in ids], pa.date32()),
        "at": pa.array([dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i)
                        for i in ids], pa.timestamp("us", "UTC")),
        "amount": pa.array([Decimal(i) / 100 for i in ids], pa.decimal128(10, 2)),
        "flag": [i % 2 == 0 for i in range(n)],
    })


def _check(uri: str, partitioned_cm: bool) -> None:
    ours = Table.open(uri).to_arrow()
    want = rows(ours)
    assert deltalake_rows(uri, ours.schema) == want
    duck = duckdb_rows(uri, ours.schema)
    if duck is not None and not partitioned_cm:
        assert duck == want


@pytest.mark.parametrize("case", CASES)
def test_oracles_read_merge_update_delete_results(tmp_path: Path, case: str) -> None:
    props, part = CASES[case]
    uri = str(tmp_path / case)
    t = lakehouse.write(uri, _data(0, 40), properties=props, partition_by=part)
    t.append(_data(40, 80))
    check = lambda: _check(uri, bool(part) and "columnMapping" in str(props))  # noqa: E731
    src = _data(30, 50).set_column(2, "name", pa.array([f"m{i}" for i in range(30, 50)]))
    src = pa.concat_tables([src, _data(200, 205)])
    (t.merge(src, "target.id = source.id")
     .when_matched_update_all(condition="source.id % 2 = 0")
     .when_matched_delete()
     .when_not_matched_insert_all()
     .when_not_matched_by_source_update(set={"score": "target.score * 2"},
                                        condition="target.id < 5")
     .execute())
    check()
    t.update({"name": "upper(name)", "amount": "amount + 1"}, where="id >= 70")
    check()
    t.delete("id < 3 OR part = 'p1'")
    check()
    t.delete("flag")
    check()
    got = rows(t)
    assert got and all(r["part"] != "p1" and r["flag"] is False for r in got)


SPARK_DV = Path(__file__).resolve().parents[2] / ".." / "shared" / "delta-tables" / \
    "delta-kernel-java" / "basic-dv-no-checkpoint"


@pytest.mark.skipif(not SPARK_DV.exists(), reason="shared Delta test tables not present")
def test_dml_on_a_spark_written_dv_table(tmp_path: Path) -> None:
    import shutil

    uri = str(tmp_path / "t")
    shutil.copytree(SPARK_DV, uri)
    t = Table.open(uri)
    before = sorted(r["id"] for r in t.to_arrow().to_pylist())
    victim, other = before[0], before[-1]
    t.delete(f"id = {victim}")                       # extends Spark's DV on that file
    t.update({"id": "id + 1000"}, where=f"id = {other}")
    (t.merge(pa.table({"id": pa.array([before[1], 5000], pa.int64())}), "id")
     .when_matched_delete().when_not_matched_insert_all().execute())
    want = sorted([i for i in before if i not in (victim, other, before[1])] + [other + 1000, 5000])
    assert sorted(r["id"] for r in Table.open(uri).to_arrow().to_pylist()) == want
    schema = Table.open(uri).schema
    assert [r["id"] for r in deltalake_rows(uri, schema)] == want
    duck = duckdb_rows(uri, schema)
    assert duck is None or [r["id"] for r in duck] == want
