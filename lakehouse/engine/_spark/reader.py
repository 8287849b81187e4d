"""Reading a lakehouse table from Spark: plan on the driver, read files on the executors.

The driver (``partitions``) replays the log at the version fixed when the schema was resolved,
prunes files with the filters Spark pushed (partition values, then min/max stats) and packs the
remaining file tasks into input partitions. Each executor reads its files with lakehouse's own
per-file reader (:func:`lakehouse.scan.reader.read_file`), so deletion vectors, column mapping,
partition columns and type widening behave exactly as in a local read, and yields Arrow batches.

Pushed filters are only used to skip files and row groups (a superset); every filter is handed
back to Spark, which still evaluates it on the rows, so pushdown can never change a result.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
from pyspark.sql.datasource import DataSourceReader, InputPartition

from lakehouse.expressions import And, Compare, Expr, In, IsNull, Not
from lakehouse.scan.reader import FileTask, ReadSpec

from . import options as opt

#: Spark's own defaults for file sources (spark.sql.files.*).
DEFAULT_MAX_PARTITION_BYTES = 128 * 1024 * 1024
DEFAULT_OPEN_COST_BYTES = 4 * 1024 * 1024
#: Rows per Arrow batch handed to Spark (spark.sql.execution.arrow.maxRecordsPerBatch default).
BATCH_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class ReadPlanKey:
    """What the reader needs to rebuild the snapshot anywhere: location and exact version."""

    uri: str
    storage_options: dict[str, str]
    version: int


class FilesPartition(InputPartition):
    """One Spark input partition: a group of file read tasks (picklable)."""

    def __init__(self, tasks: Sequence[FileTask], spec: ReadSpec) -> None:
        super().__init__(len(tasks))
        self.tasks = list(tasks)
        self.spec = spec


# ------------------------------------------------------------------------------- filters
_SIMPLE = (str, int, float, bool, date, Decimal)


def _value_ok(v: Any) -> bool:
    # Timestamps arrive as naive datetimes in the session time zone: skip them rather than guess.
    return isinstance(v, _SIMPLE) and not isinstance(v, datetime)


def filter_to_expr(f: Any, columns: set[str]) -> Expr | None:
    """A Spark data source ``Filter`` as a lakehouse predicate, or None if not expressible."""
    from pyspark.sql import datasource as ds

    attr = getattr(f, "attribute", None)
    if attr is not None and (len(attr) != 1 or attr[0] not in columns):
        return None
    col = attr[0] if attr is not None else ""
    ops: dict[type, str] = {ds.EqualTo: "=", ds.GreaterThan: ">", ds.GreaterThanOrEqual: ">=",
                            ds.LessThan: "<", ds.LessThanOrEqual: "<="}
    op = ops.get(type(f))
    if op is not None:
        value = getattr(f, "value", None)
        return Compare(op, col, value) if _value_ok(value) else None
    if isinstance(f, ds.EqualNullSafe):
        if f.value is None:
            return IsNull(col)
        return Compare("=", col, f.value) if _value_ok(f.value) else None
    if isinstance(f, ds.In):
        values = tuple(v for v in f.value if v is not None)
        return In(col, values) if values and all(_value_ok(v) for v in values) else None
    if isinstance(f, ds.IsNull):
        return IsNull(col)
    if isinstance(f, ds.IsNotNull):
        return IsNull(col, negated=True)
    if isinstance(f, ds.Not):
        child = filter_to_expr(f.child, columns)
        return Not(child) if child is not None else None
    return None


# ------------------------------------------------------------------------------ planning
def pack_tasks(tasks: Sequence[FileTask], sizes: Sequence[int], *, parallelism: int,
               max_bytes: int = DEFAULT_MAX_PARTITION_BYTES,
               open_cost: int = DEFAULT_OPEN_COST_BYTES) -> list[list[FileTask]]:
    """Group file tasks into partitions the way Spark splits file sources (whole files only):
    each group holds files up to ``min(max_bytes, max(open_cost, bytes per core))``, counting
    ``open_cost`` per file, in file order."""
    if not tasks:
        return []
    total = sum(sizes) + open_cost * len(sizes)
    split = min(max_bytes, max(open_cost, math.ceil(total / max(1, parallelism))))
    groups: list[list[FileTask]] = []
    current: list[FileTask] = []
    current_bytes = 0
    for task, size in zip(tasks, sizes, strict=True):
        cost = size + open_cost
        if current and current_bytes + cost > split:
            groups.append(current)
            current, current_bytes = [], 0
        current.append(task)
        current_bytes += cost
    groups.append(current)
    return groups


class LakehouseReader(DataSourceReader):
    """Plans (driver) and reads (executors) one snapshot of a table."""

    def __init__(self, key: ReadPlanKey, columns: list[str], spark_schema: Any,
                 options: dict[str, str]) -> None:
        self.key = key
        self.columns = columns
        self.spark_schema = spark_schema
        self.options = options
        self.pruning: list[Expr] = []

    def _snapshot(self) -> Any:
        from lakehouse.io.storage import Storage
        from lakehouse.log.snapshot import Snapshot

        storage = Storage.for_uri(self.key.uri, self.key.storage_options)
        return Snapshot.load(storage, version=self.key.version)

    def partitions(self) -> list[InputPartition]:
        from lakehouse.scan import Scan

        scan = Scan(self._snapshot())
        for e in self.pruning:
            scan = scan.with_pruning(e)
        files = scan.files()
        tasks = scan.tasks(files)
        # row-group pushdown applies the same (superset) filters inside each file. The spec
        # travels with each partition: Spark pickles the reader before calling partitions().
        spec = scan.read_spec(self.columns, row_filter=bool(self.pruning))
        sizes = [int(s or 0) for s in files["size"].to_pylist()] if files.num_rows else []
        parallelism = opt.as_int(self.options, "parallelism", os.cpu_count() or 2) or 1
        groups = pack_tasks(
            tasks, sizes, parallelism=parallelism,
            max_bytes=opt.as_int(self.options, "maxPartitionBytes", DEFAULT_MAX_PARTITION_BYTES)
            or DEFAULT_MAX_PARTITION_BYTES,
            open_cost=opt.as_int(self.options, "openCostInBytes", DEFAULT_OPEN_COST_BYTES) or 0)
        return [FilesPartition(g, spec) for g in groups]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        from lakehouse.io.storage import Storage
        from lakehouse.scan.reader import read_file

        from .convert import cast_for_spark, spark_arrow_schema

        if not isinstance(partition, FilesPartition):
            return  # the empty table: Spark's single default partition
        storage = Storage.for_uri(self.key.uri, self.key.storage_options)
        target = spark_arrow_schema(self.spark_schema)
        for task in partition.tasks:
            table = cast_for_spark(read_file(storage, task, partition.spec), target)
            yield from table.to_batches(max_chunksize=BATCH_ROWS)


class PushdownReader(LakehouseReader):
    """A :class:`LakehouseReader` that also prunes with the filters Spark pushes down
    (needs ``spark.sql.python.filterPushdown.enabled``, which :func:`register` sets)."""

    def pushFilters(self, filters: list[Any]) -> list[Any]:
        cols = set(self.columns)
        exprs = [e for e in (filter_to_expr(f, cols) for f in filters) if e is not None]
        if exprs:
            self.pruning = [exprs[0] if len(exprs) == 1 else And(tuple(exprs))]
        # Everything goes back to Spark: pruning is a superset, Spark filters the rows exactly.
        return list(filters)


__all__ = [
    "FilesPartition",
    "LakehouseReader",
    "PushdownReader",
    "ReadPlanKey",
    "filter_to_expr",
    "pack_tasks",
]
