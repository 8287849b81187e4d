"""Deletion-vector MERGE/UPDATE read only the row groups holding changed rows — and stay exact.

The table is written with tiny row groups so every file has many of them; the results are
compared with the same operations done on a copy-on-write table and with deltalake's reader.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakehouse
import lakehouse.io.parquet as parquet_io
from lakehouse import Table

N = 5000


def _data() -> pa.Table:
    return pa.table({
        "id": pa.array(range(N), pa.int64()),
        "v": pa.array([float(i) for i in range(N)]),
        "s": pa.array([f"row{i}" for i in range(N)]),
    })


@pytest.fixture
def tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    original = parquet_io.WriterOptions.from_configuration.__func__  # type: ignore[attr-defined]

    def small_row_groups(cls: type, config: object, **overrides: object) -> object:
        return dataclasses.replace(original(cls, config, **overrides), row_group_size=256)

    monkeypatch.setattr(parquet_io.WriterOptions, "from_configuration",
                        classmethod(small_row_groups))  # many row groups per file
    dv = str(tmp_path / "dv")
    cow = str(tmp_path / "cow")
    lakehouse.write(dv, _data(), properties={"delta.enableDeletionVectors": "true"})
    lakehouse.write(cow, _data())
    data_file = next(p for p in Path(dv).glob("*.parquet"))
    assert pq.ParquetFile(data_file).metadata.num_row_groups > 10
    return dv, cow


def _rows(uri: str) -> list[tuple]:
    t = Table.open(uri).to_arrow().sort_by("id")
    return list(zip(*[t.column(c).to_pylist() for c in t.column_names], strict=True))


def test_dv_merge_matches_copy_on_write(tables: tuple[str, str]) -> None:
    dv, cow = tables
    ids = [3, 4, 1500, 2999, 4998, N + 1, N + 2]
    src = pa.table({"id": pa.array(ids, pa.int64()),
                    "v": pa.array([-1.0] * len(ids)),
                    "s": pa.array([f"new{i}" for i in ids])})
    for uri in (dv, cow):
        m = (Table.open(uri).merge(src, "target.id = source.id")
             .when_matched_update_all().when_not_matched_insert_all().execute())
        assert (m.num_target_rows_updated, m.num_target_rows_inserted) == (5, 2)
    assert _rows(dv) == _rows(cow)
    t = Table.open(dv)
    assert t.files()["deletionVector"].null_count < t.files().num_rows  # DVs were used


def test_dv_update_and_delete_match_copy_on_write(tables: tuple[str, str]) -> None:
    dv, cow = tables
    for uri in (dv, cow):
        t = Table.open(uri)
        t.delete(where="id % 97 = 0")
        t.update(set={"v": "v * 10", "s": "'upd'"}, where="id % 13 = 0 OR id > 4900")
    assert _rows(dv) == _rows(cow)
    from deltalake import DeltaTable, QueryBuilder

    oracle = QueryBuilder().register("t", DeltaTable(dv)).execute(
        "select * from t order by id").read_all()
    got = Table.open(dv).to_arrow().sort_by("id")
    assert pa.table(oracle).column("id").to_pylist() == got.column("id").to_pylist()
    assert pa.table(oracle).column("s").to_pylist() == got.column("s").to_pylist()
