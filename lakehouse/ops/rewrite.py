"""Copy-on-write removal of rows: the shared core of DELETE and overwrite-with-``where``.

Files that may hold matching rows (pruned by partition values and stats) are read one at a time;
files where every row matches are simply removed, files where no row matches are left alone, and
the rest are rewritten with the non-matching rows. Memory is bounded by one file at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.io.parquet import WriterOptions, write_data_files
from lakehouse.log.actions import Add, Remove, now_ms
from lakehouse.log.snapshot import Snapshot
from lakehouse.scan import Scan
from lakehouse.scan.stats import live_row_count
from lakehouse.txn.transaction import removes_for_files


@dataclass
class RewriteResult:
    """Actions and counts of a copy-on-write row removal."""

    removes: list[Remove] = field(default_factory=list)
    adds: list[Add] = field(default_factory=list)
    read_paths: list[str] = field(default_factory=list)
    num_deleted_rows: int = 0
    num_copied_rows: int = 0
    num_files_scanned: int = 0
    num_files_skipped: int = 0
    scan_time_ms: int = 0
    rewrite_time_ms: int = 0


def adds_from_written(written: list[Any], data_change: bool = True) -> list[Add]:
    return [Add(path=w.encoded_path, partition_values=w.partition_values, size=w.size,
                modification_time=w.modification_time, data_change=data_change, stats=w.stats)
            for w in written]


def delete_rows(snapshot: Snapshot, predicate: str | None, engine: Any,
                progress: Callable[[int], None] | None = None) -> RewriteResult:
    """Plan and write a copy-on-write removal of rows matching ``predicate`` (all when None)."""
    from lakehouse.log.schema import column_mapping_mode

    res = RewriteResult()
    t0 = time.monotonic()
    scan = Scan(snapshot)
    if predicate is not None:
        scan = scan.filter(predicate)
    candidates = scan.files()
    res.num_files_skipped = snapshot.files.num_rows - candidates.num_rows
    res.num_files_scanned = candidates.num_rows
    ts = now_ms()
    if predicate is not None and candidates.num_rows:
        from lakehouse.expressions import referenced_columns

        if referenced_columns(predicate) <= set(snapshot.partition_columns):
            # Partition-only predicate: exact per file, so whole files go without being read.
            pvals = scan.partition_value_arrays(candidates)
            ptable = pa.table({k: pvals[k] for k in snapshot.partition_columns})
            mask = engine.filter_mask(ptable, predicate)
            doomed = candidates.filter(mask)
            res.removes = removes_for_files(doomed, deletion_timestamp=ts)
            res.read_paths = doomed["canonical_path"].to_pylist()
            res.num_deleted_rows = live_row_count(doomed)
            res.num_files_scanned = 0
            res.num_files_skipped = snapshot.files.num_rows - doomed.num_rows
            res.scan_time_ms = int((time.monotonic() - t0) * 1000)
            return res
    paths = candidates["canonical_path"].to_pylist()
    rewritten: list[int] = []
    options = WriterOptions.from_configuration(snapshot.configuration)
    cm = column_mapping_mode(snapshot.configuration) != "none"
    names = snapshot.arrow_schema.names
    for i, (path, table) in enumerate(zip(paths, scan.iter_tables(names), strict=True)):
        res.read_paths.append(path)
        if predicate is None:
            matched = pa.array([True] * table.num_rows)
        else:
            matched = engine.filter_mask(table, predicate)
        n_match = pc.sum(pc.cast(matched, pa.int64())).as_py() or 0
        if n_match == 0:
            continue
        res.num_deleted_rows += n_match
        rewritten.append(i)
        keep = table.filter(pc.invert(matched))
        if keep.num_rows:
            t1 = time.monotonic()
            res.num_copied_rows += keep.num_rows
            written = write_data_files(snapshot.storage, keep, schema=snapshot.schema,
                                       partition_columns=snapshot.partition_columns,
                                       column_mapping=cm, options=options)
            res.adds.extend(adds_from_written(written))
            res.rewrite_time_ms += int((time.monotonic() - t1) * 1000)
        if progress is not None:
            progress(1)
    res.removes = removes_for_files(candidates.take(pa.array(rewritten, pa.int64())),
                                    deletion_timestamp=ts)
    res.scan_time_ms = int((time.monotonic() - t0) * 1000) - res.rewrite_time_ms
    return res

