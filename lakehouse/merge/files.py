"""Reading target files in bounded batches, keeping each row's physical position.

Why not ``Scan.iter_tables``: row-level DML must know where every surviving row sits in its file
(deletion vectors address rows by physical index) and must be able to read just a subset of
files — a batch at a time, so peak memory is one batch of files plus the source, never the table.
Files are read without their deletion vector applied; the DV is applied here and the positions
of the surviving rows kept alongside them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lakehouse.log.deletion_vectors import DeletionVectorDescriptor, read_deletion_vector
from lakehouse.log.snapshot import Snapshot
from lakehouse.scan import MAX_READ_THREADS, Scan
from lakehouse.scan.reader import FileTask, read_file

#: Parquet bytes of target files read per batch (their Arrow form is typically 2-5x larger).
BATCH_BYTES = 128 * 1024 * 1024
#: At most this many files per batch (many tiny files still make bounded batches).
BATCH_FILES = 256


@dataclass(frozen=True, eq=False)
class FileBatch:
    """Rows of some target files.

    Attributes:
        files: the files' rows of ``Snapshot.files``.
        table: their live rows (deletion-vector-deleted rows removed), logical column names.
        file_index: per row, the index of its file in ``files``.
        positions: per row, its physical row index within its file.
        physical_rows: per file, the number of rows in the Parquet file.
        old_deleted: per file, the row indexes its current deletion vector deletes.
    """

    files: pa.Table
    table: pa.Table
    file_index: np.ndarray
    positions: np.ndarray
    physical_rows: np.ndarray
    old_deleted: list[np.ndarray]


def plan_batches(files: pa.Table, max_bytes: int | None = None,
                 max_files: int | None = None) -> Iterator[pa.Table]:
    """Consecutive slices of ``files`` of at most ``max_bytes`` and ``max_files`` (defaults
    :data:`BATCH_BYTES`, :data:`BATCH_FILES`), at least one file each."""
    limit = BATCH_BYTES if max_bytes is None else max_bytes
    max_files = BATCH_FILES if max_files is None else max_files
    sizes = files["size"].to_numpy(zero_copy_only=False) if files.num_rows else np.array([])
    start, acc = 0, 0
    for i, size in enumerate(sizes):
        if i > start and (acc + int(size) > limit or i - start >= max_files):
            yield files.slice(start, i - start)
            start, acc = i, 0
        acc += int(size)
    if start < files.num_rows:
        yield files.slice(start, files.num_rows - start)


def read_batch(snapshot: Snapshot, files: pa.Table, columns: Sequence[str]) -> FileBatch:
    """Read ``columns`` (logical names) of ``files`` with positions; DVs applied here."""
    scan = Scan(snapshot)
    spec = scan._spec(list(columns))
    tasks = [FileTask(t.path, None, t.partition_values) for t in scan.tasks(files)]
    dvs = files["deletionVector"].to_pylist()
    storage = snapshot.storage

    def load(i: int) -> tuple[pa.Table, np.ndarray]:
        table = read_file(storage, tasks[i], spec)
        dv = dvs[i]
        deleted = np.array([], dtype=np.uint64)
        if dv:
            deleted = read_deletion_vector(storage, DeletionVectorDescriptor.from_dict(dv))
        return table, deleted

    if len(tasks) <= 1:
        loaded = [load(i) for i in range(len(tasks))]
    else:
        with ThreadPoolExecutor(min(MAX_READ_THREADS, len(tasks))) as pool:
            loaded = list(pool.map(load, range(len(tasks))))

    parts: list[pa.Table] = []
    file_index: list[np.ndarray] = []
    positions: list[np.ndarray] = []
    physical = np.zeros(len(tasks), dtype=np.int64)
    old_deleted: list[np.ndarray] = []
    for i, (table, deleted) in enumerate(loaded):
        n = table.num_rows
        physical[i] = n
        deleted = deleted[deleted < n].astype(np.int64)
        old_deleted.append(deleted)
        if len(deleted):
            keep = np.ones(n, dtype=bool)
            keep[deleted] = False
            table = table.filter(pa.array(keep))
            pos = np.flatnonzero(keep).astype(np.int64)
        else:
            pos = np.arange(n, dtype=np.int64)
        parts.append(table)
        positions.append(pos)
        file_index.append(np.full(len(pos), i, dtype=np.int32))
    if parts and spec.output.names:
        table = pa.concat_tables(parts)
    else:
        total = int(sum(len(p) for p in positions))
        table = pa.table({"__n": pa.nulls(total)}).drop_columns(["__n"])
    return FileBatch(
        files=files,
        table=table,
        file_index=np.concatenate(file_index) if file_index else np.array([], np.int32),
        positions=np.concatenate(positions) if positions else np.array([], np.int64),
        physical_rows=physical,
        old_deleted=old_deleted,
    )
