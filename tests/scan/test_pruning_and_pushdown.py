"""File pruning and row-group pushdown never change results, only how much is read."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

import lakehouse
from lakehouse import Table
from lakehouse.scan import Scan

PREDICATES = [
    "id >= 100 AND id < 200",
    "id < 10 OR id > 990",
    "NOT (id < 500)",
    "part = 'b' AND id > 400",
    "part IN ('a', 'c') OR id = 7",
    "name IS NULL",
    "name IS NOT NULL AND id <= 3",
    "abs(id - 500) < 3",              # opaque to the pruner: must still be exact
    "NOT (abs(id - 500) < 3)",
    "id BETWEEN 250 AND 260",
    "ts >= TIMESTAMP '2024-01-01 00:00:00.500'",
]


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("pushdown") / "t")
    n = 1000
    data = pa.table({
        "id": pa.array(range(n), pa.int64()),
        "part": pa.array(["abc"[i % 3] for i in range(n)]),
        "name": pa.array([None if i % 7 == 0 else f"n{i}" for i in range(n)]),
        "ts": pa.array([i * 1000 for i in range(n)], pa.timestamp("us", "UTC")).cast(
            pa.timestamp("us", "UTC")),
    })
    # Several small files per partition so that pruning has something to skip.
    for i in range(5):
        chunk = data.slice(i * 200, 200)
        lakehouse.write(path, chunk, mode="append", partition_by=["part"])
    return path


@pytest.mark.parametrize("predicate", PREDICATES)
def test_filtered_read_equals_filter_after_full_read(table_path: str, predicate: str) -> None:
    t = Table.open(table_path)
    full = pl.from_arrow(t.to_arrow())
    if "ts" in predicate:
        expected = full.filter(pl.col("ts") >= pl.datetime(2024, 1, 1, 0, 0, 0, 500000,
                                                           time_zone="UTC"))
    else:
        expected = full.filter(pl.sql_expr(predicate))
    got = pl.from_arrow(t.to_arrow(filter=predicate))
    assert sorted(got["id"].to_list()) == sorted(expected["id"].to_list()), predicate


def test_pruning_skips_files_and_keeps_every_match(table_path: str) -> None:
    t = Table.open(table_path)
    all_files = t.files().num_rows
    kept = t.files(filter="id >= 100 AND id < 150").num_rows
    assert 0 < kept < all_files
    assert t.files(filter="part = 'b'").num_rows == all_files // 3
    assert t.files(filter="id > 100000").num_rows == 0


def test_unfiltered_iteration_returns_whole_files(table_path: str) -> None:
    """Rewrites (DELETE/UPDATE/MERGE) read whole files even when the scan has a predicate."""
    snap = Table.open(table_path).snapshot
    scan = Scan(snap).filter("id = 5")
    tables = list(scan.iter_tables())
    assert len(tables) == scan.files().num_rows >= 1
    assert sum(t.num_rows for t in tables) > 1     # the whole file, not just the matching row
    pushed = list(scan.iter_tables(row_filter=True))
    assert sum(t.num_rows for t in pushed) == 1


def test_polars_expression_filter_and_lazy_scan(table_path: str) -> None:
    t = Table.open(table_path)
    got = t.to_polars(filter=(pl.col("id") > 990) & (pl.col("part") == "a"))
    assert sorted(got["id"].to_list()) == [i for i in range(991, 1000) if i % 3 == 0]
    lazy = t.scan().filter(pl.col("id") < 5).select("id", "part").collect()
    assert sorted(lazy["id"].to_list()) == [0, 1, 2, 3, 4]
    assert lazy.columns == ["id", "part"]


def test_bad_filter_is_a_clear_error(table_path: str) -> None:
    from lakehouse.errors import InvalidArgumentError

    t = Table.open(table_path)
    with pytest.raises(InvalidArgumentError, match="unknown column"):
        t.to_arrow(filter="nope = 1")
    with pytest.raises(InvalidArgumentError):
        t.to_arrow(filter="id = = 1")
