"""OPTIMIZE: compact small files into target-size files, optionally Z-ordered.

Small files make every scan slow (one request and one footer per file); appends and streaming
writes produce them. Optimize rewrites them per partition into files of about
``delta.targetFileSize`` (default 128 MiB), without changing a single row: the commit's ``add`` and
``remove`` actions carry ``dataChange=false``, so readers of the change feed and streaming readers
ignore it. The transaction declares the files it rewrote as read, so a concurrent DELETE/UPDATE of
one of them makes the optimize fail (and retry later) while concurrent appends simply rebase.

Bin-packing takes, per partition, the files smaller than the target (and files carrying deletion
vectors, whose deleted rows are purged on the way) and groups them greedily by size; a bin of one
file without deletion vector is left alone. Z-order rewrites *every* file of each selected
partition, sorted by the interleaved ranks of the given columns (see ``zorder.py``), so that min/max
statistics of all those columns prune well.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import InvalidArgumentError
from lakehouse.io.parquet import WriterOptions, write_data_files
from lakehouse.log.features import ensure_writable
from lakehouse.log.schema import column_mapping_mode
from lakehouse.log.snapshot import Snapshot
from lakehouse.maintenance.common import SizeStats, parse_partition_filter, size_stats
from lakehouse.maintenance.zorder import zorder_indices
from lakehouse.ops.rewrite import adds_from_written
from lakehouse.scan import Scan
from lakehouse.txn.transaction import Transaction, removes_for_files

__all__ = ["OptimizeMetrics", "optimize", "plan_bins"]


@dataclass(frozen=True, slots=True)
class OptimizeMetrics:
    """Outcome of an optimize (delta-rs' metric names in :meth:`to_dict`).

    Attributes:
        version: the ``OPTIMIZE`` version committed, or None when there was nothing to do.
    """

    num_files_added: int = 0
    num_files_removed: int = 0
    files_added: SizeStats = field(default_factory=SizeStats)
    files_removed: SizeStats = field(default_factory=SizeStats)
    partitions_optimized: int = 0
    num_batches: int = 0
    total_considered_files: int = 0
    total_files_skipped: int = 0
    num_deletion_vectors_removed: int = 0
    z_order_by: tuple[str, ...] = ()
    version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "numFilesAdded": self.num_files_added,
            "numFilesRemoved": self.num_files_removed,
            "filesAdded": self.files_added.to_dict(),
            "filesRemoved": self.files_removed.to_dict(),
            "partitionsOptimized": self.partitions_optimized,
            "numBatches": self.num_batches,
            "totalConsideredFiles": self.total_considered_files,
            "totalFilesSkipped": self.total_files_skipped,
            "numDeletionVectorsRemoved": self.num_deletion_vectors_removed,
            "zOrderBy": list(self.z_order_by),
            "preserveInsertionOrder": not self.z_order_by,
            "version": self.version,
        }


def _partition_keys(files: pa.Table) -> list[tuple[tuple[str, str | None], ...]]:
    return [tuple(sorted(pv or ())) for pv in files["partitionValues"].to_pylist()]


def _has_dv(files: pa.Table) -> list[bool]:
    dv = files["deletionVector"].combine_chunks() if files.num_rows else None
    if dv is None:
        return []
    card = pc.fill_null(pc.struct_field(dv, "cardinality"), 0)
    return pc.and_(pc.is_valid(dv), pc.greater(card, 0)).to_pylist()  # type: ignore[no-any-return]


def plan_bins(files: pa.Table, target_size: int, z_order: bool) -> list[list[int]]:
    """Row indices of ``files`` grouped into rewrite bins (see module docstring)."""
    groups: dict[tuple[tuple[str, str | None], ...], list[int]] = {}
    for i, key in enumerate(_partition_keys(files)):
        groups.setdefault(key, []).append(i)
    sizes = files["size"].to_pylist()
    has_dv = _has_dv(files)
    bins: list[list[int]] = []
    for _key, idx in sorted(groups.items(), key=lambda kv: [(k, v or "") for k, v in kv[0]]):
        if z_order:
            bins.append(idx)
            continue
        small = sorted((i for i in idx if (sizes[i] or 0) < target_size or has_dv[i]),
                       key=lambda i: (sizes[i] or 0, i))
        current: list[int] = []
        current_size = 0
        for i in small:
            s = sizes[i] or 0
            if current and current_size + s > target_size:
                bins.append(current)
                current, current_size = [], 0
            current.append(i)
            current_size += s
        if current:
            bins.append(current)
    return [b for b in bins if z_order or len(b) > 1 or has_dv[b[0]]]


def _bin_batches(snapshot: Snapshot, files: pa.Table, names: list[str],
                 z_order: Sequence[str]) -> Iterator[pa.RecordBatch]:
    sub = dataclasses.replace(snapshot, files=files)
    tables = Scan(sub).iter_tables(names)
    if not z_order:
        for t in tables:
            yield from t.to_batches()
        return
    data = pa.concat_tables(list(tables))
    if data.num_rows:
        data = data.take(zorder_indices(data, z_order))
    yield from data.to_batches()


def _validate_z_order(snapshot: Snapshot, z_order: Sequence[str]) -> list[str]:
    cols = [c.strip() for c in z_order if c and c.strip()]
    names = snapshot.arrow_schema.names
    unknown = [c for c in cols if c not in names]
    if unknown:
        raise InvalidArgumentError(f"z-order column(s) {unknown} are not in the table; columns "
                                   f"are {names}")
    parts = [c for c in cols if c in snapshot.partition_columns]
    if parts:
        raise InvalidArgumentError(
            f"cannot z-order by partition column(s) {parts}: every file holds one value of them "
            "already; z-order by data columns instead"
        )
    if len(set(cols)) != len(cols):
        raise InvalidArgumentError(f"z-order columns {cols} contain duplicates")
    return cols


def optimize(
    snapshot: Snapshot,
    engine: Any,
    where: str | None = None,
    target_size: int | None = None,
    z_order: Sequence[str] | str | None = None,
    *,
    progress: bool = False,
) -> OptimizeMetrics:
    """Compact (and optionally Z-order) the files of the latest ``snapshot``; commit OPTIMIZE.

    Args:
        where: a predicate on partition columns selecting the partitions to optimize.
        target_size: bytes per output file (default ``delta.targetFileSize``, else 128 MiB).
        z_order: data columns to Z-order by (rewrites every file of each selected partition).
    """
    ensure_writable(snapshot.protocol, snapshot.storage.root)
    if isinstance(z_order, str):
        z_order = z_order.split(",")
    zcols = _validate_z_order(snapshot, z_order or [])
    if target_size is not None and target_size <= 0:
        raise InvalidArgumentError(f"target_size must be a positive number of bytes, got {target_size}")
    overrides = {"target_file_size": int(target_size)} if target_size else {}
    options = WriterOptions.from_configuration(snapshot.configuration, **overrides)
    files = snapshot.files
    if where is not None:
        files = parse_partition_filter(snapshot, where, engine, files)
    bins = plan_bins(files, options.target_file_size, bool(zcols)) if files.num_rows else []
    considered = files.num_rows
    rewritten = sum(len(b) for b in bins)
    if not bins:
        return OptimizeMetrics(total_considered_files=considered, total_files_skipped=considered,
                               z_order_by=tuple(zcols))
    storage = snapshot.storage
    names = snapshot.arrow_schema.names
    cm = column_mapping_mode(snapshot.configuration) != "none"
    written: list[Any] = []
    removed: list[pa.Table] = []
    bar = _bar(progress, len(bins))
    t0 = time.monotonic()
    try:
        if bar is not None:
            bar.start()
            task = bar.add_task("optimize", total=len(bins))
        for b in bins:
            bin_files = files.take(pa.array(b, pa.int64()))
            written += write_data_files(storage, _bin_batches(snapshot, bin_files, names, zcols),
                                        schema=snapshot.schema,
                                        partition_columns=snapshot.partition_columns,
                                        column_mapping=cm, options=options)
            removed.append(bin_files)
            if bar is not None:
                bar.advance(task, 1)
        if bar is not None:
            bar.stop()
        gone = pa.concat_tables(removed)
        metrics = _build_metrics(gone, written, bins, zcols, considered, rewritten)
        params = {"predicate": [where] if where else [], "zOrderBy": zcols, "auto": False,
                  "targetSize": options.target_file_size}
        txn = Transaction(storage, snapshot, "OPTIMIZE", params)
        txn.read_files(gone["canonical_path"])
        txn.remove_files(removes_for_files(gone, data_change=False))
        txn.add_files(adds_from_written(written, data_change=False))
        result = txn.commit(_commit_metrics(metrics, int((time.monotonic() - t0) * 1000)))
    except BaseException:
        if bar is not None:
            bar.stop()
        storage.delete([w.path for w in written])  # orphans otherwise (vacuum would find them)
        raise
    return dataclasses.replace(metrics, version=result.version)


def _bar(progress: bool, total: int) -> Any:
    if not progress:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(TextColumn("[bold]optimizing (bins)"), BarColumn(), MofNCompleteColumn())


def _build_metrics(gone: pa.Table, written: list[Any], bins: list[list[int]],
                   zcols: list[str], considered: int, rewritten: int) -> OptimizeMetrics:
    parts = {tuple(sorted(pv or ())) for pv in gone["partitionValues"].to_pylist()}
    dvs = sum(_has_dv(gone))
    return OptimizeMetrics(
        num_files_added=len(written),
        num_files_removed=gone.num_rows,
        files_added=size_stats([w.size for w in written]),
        files_removed=size_stats(gone["size"]),
        partitions_optimized=len(parts),
        num_batches=len(bins),
        total_considered_files=considered,
        total_files_skipped=considered - rewritten,
        num_deletion_vectors_removed=dvs,
        z_order_by=tuple(zcols),
    )


def _commit_metrics(m: OptimizeMetrics, duration_ms: int) -> dict[str, Any]:
    """``operationMetrics`` with Delta (Spark) OPTIMIZE's names."""
    a = m.files_added
    return {
        "numRemovedFiles": m.num_files_removed,
        "numAddedFiles": m.num_files_added,
        "numRemovedBytes": m.files_removed.total_size,
        "numAddedBytes": a.total_size,
        "minFileSize": a.min,
        "p25FileSize": a.p25,
        "p50FileSize": a.p50,
        "p75FileSize": a.p75,
        "maxFileSize": a.max,
        "numDeletionVectorsRemoved": m.num_deletion_vectors_removed,
        "numBatches": m.num_batches,
        "totalConsideredFiles": m.total_considered_files,
        "totalFilesSkipped": m.total_files_skipped,
        "partitionsOptimized": m.partitions_optimized,
        "executionTimeMs": duration_ms,
    }
