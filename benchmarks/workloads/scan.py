"""W1 write, W2 scan, W3 selective reads: the table format's overhead over raw Parquet.

These are the only workloads raw pyarrow can run, so they carry the "within 10% of pyarrow" target.
Writes take the cached input already in memory; reads include opening the table, as a user would.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow.parquet as pq

from benchmarks import SYSTEMS
from benchmarks.data import DAYS, day_value
from benchmarks.systems import Pred, System
from benchmarks.workloads.base import Case, Context, count_data_files

ALL = frozenset(SYSTEMS)
NO_FAST = ALL - {"deltalake-fast"}  # deltalake-fast differs from deltalake only in reads and MERGE
PARTITION_INDEX = 15
READ = ("read",)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _write(partitioned: bool) -> Callable[[System, Context], None]:
    def run(system: System, ctx: Context) -> None:
        data = pq.read_table(ctx.data.base)
        uri = ctx.scratch_path("table")
        with ctx.timed():
            system.write(uri, data, partition_by=["day"] if partitioned else None)
        ctx.metrics["files_written"] = count_data_files(uri)
        ctx.expect("rows written", len(system.ids(uri)), ctx.scale.rows)

    return run


def _scan(columns: list[str] | None) -> Callable[[System, Context], None]:
    def run(system: System, ctx: Context) -> None:
        uri = ctx.fixture("base")
        with ctx.timed():
            table = system.read(uri, columns=columns)
        ctx.expect("rows", table.num_rows, ctx.scale.rows)
        if columns is not None:
            ctx.expect("columns", table.column_names, columns)

    return run


def _id_range(system: System, ctx: Context) -> None:
    uri = ctx.fixture("base")
    low = ctx.scale.rows // 2
    high = low + ctx.scale.rows // 100
    with ctx.timed():
        table = system.read(uri, where=(Pred("id", ">=", low), Pred("id", "<", high)))
    ctx.expect("rows", table.num_rows, high - low)


def _partition(system: System, ctx: Context) -> None:
    uri = ctx.fixture("part")
    with ctx.timed():
        table = system.read(uri, where=(Pred("day", "=", day_value(PARTITION_INDEX)),))
    rows = ctx.scale.rows
    # Row id has day index floor(id * DAYS / rows); count the ids that land on PARTITION_INDEX.
    want = _ceil_div((PARTITION_INDEX + 1) * rows, DAYS) - _ceil_div(PARTITION_INDEX * rows, DAYS)
    ctx.expect("rows", table.num_rows, want)


CASES: tuple[Case, ...] = (
    Case(
        "W1.write",
        "Write the base table, unpartitioned",
        _write(False),
        NO_FAST,
        details=("files_written",),
        warm_up=("write",),
    ),
    Case(
        "W1.write_partitioned",
        "Write the base table partitioned by day (30 values)",
        _write(True),
        NO_FAST,
        details=("files_written",),
        warm_up=("write",),
    ),
    Case(
        "W2.scan_full",
        "Open and read every row and column",
        _scan(None),
        ALL,
        ("base",),
        warm_up=READ,
    ),
    Case(
        "W2.scan_2col",
        "Open and read two columns (key, f1)",
        _scan(["key", "f1"]),
        ALL,
        ("base",),
        warm_up=READ,
    ),
    Case(
        "W3.read_id_range",
        "Read a 1% id range (data skipping)",
        _id_range,
        ALL,
        ("base",),
        warm_up=READ,
    ),
    Case(
        "W3.read_partition",
        "Read one day from the partitioned table",
        _partition,
        ALL,
        ("part",),
        warm_up=READ,
    ),
)
