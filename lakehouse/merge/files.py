"""Reading target files in bounded batches, keeping each row's physical position.

Why not ``Scan.iter_tables``: row-level DML must know where every surviving row sits in its file
(deletion vectors address rows by physical index) and must be able to read just a subset of
files — a batch at a time, so peak memory is one batch of files plus the source, never the table.
Files are read without their deletion vector applied; the DV is applied here and the positions
of the surviving rows kept alongside them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

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


def _row_group_layout(storage: Any, path: str) -> np.ndarray:
    """Start row of each row group of a data file, plus the total row count at the end."""
    fs, to_path = storage.arrow_filesystem()
    with fs.open_input_file(to_path(path)) as f:
        md = pq.ParquetFile(f).metadata
        counts = [md.row_group(g).num_rows for g in range(md.num_row_groups)]
    return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])


def read_batch(snapshot: Snapshot, files: pa.Table, columns: Sequence[str],
               rows: Mapping[int, np.ndarray] | None = None) -> FileBatch:
    """Read ``columns`` (logical names) of ``files`` with positions; DVs applied here.

    ``rows``: for each file index, the physical row positions the caller needs; only the Parquet
    row groups holding them are read (deletion-vector DML needs just the changed rows, not the
    whole file). ``physical_rows`` stays the file's full row count either way.
    """
    scan = Scan(snapshot)
    spec = scan.read_spec(list(columns))
    base_tasks = scan.tasks(files)
    tasks = base_tasks
    dvs = files["deletionVector"].to_pylist()
    storage = snapshot.storage

    def load(i: int) -> tuple[pa.Table, np.ndarray, np.ndarray | None, int | None]:
        task = FileTask(base_tasks[i].path, None, base_tasks[i].partition_values)
        pos: np.ndarray | None = None
        total: int | None = None
        if rows is not None and i in rows:
            layout = _row_group_layout(storage, task.path)
            total = int(layout[-1])
            wanted = np.asarray(rows[i], dtype=np.int64)
            groups = np.unique(np.searchsorted(layout, wanted, side="right") - 1)
            groups = groups[(groups >= 0) & (groups < len(layout) - 1)]
            task = FileTask(task.path, None, task.partition_values,
                            tuple(int(g) for g in groups))
            pos = np.concatenate([np.arange(layout[g], layout[g + 1], dtype=np.int64)
                                  for g in groups]) if len(groups) else np.zeros(0, np.int64)
        table = read_file(storage, task, spec)
        dv = dvs[i]
        deleted = np.array([], dtype=np.uint64)
        if dv:
            deleted = read_deletion_vector(storage, DeletionVectorDescriptor.from_dict(dv))
        return table, deleted, pos, total

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
    for i, (table, deleted, read_pos, total) in enumerate(loaded):
        n = table.num_rows if total is None else total
        physical[i] = n
        deleted = deleted[deleted < n].astype(np.int64)
        old_deleted.append(deleted)
        all_pos = np.arange(n, dtype=np.int64) if read_pos is None else read_pos
        if len(deleted):
            keep = ~np.isin(all_pos, deleted)
            table = table.filter(pa.array(keep))
            pos = all_pos[keep]
        else:
            pos = all_pos
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


def matched_rows(file_index: np.ndarray, positions: np.ndarray,
                 touched: np.ndarray) -> dict[int, np.ndarray]:
    """Physical positions per file, re-indexed to ``touched`` order (``files.take(touched)``)."""
    out: dict[int, np.ndarray] = {}
    for j, f in enumerate(touched.tolist()):
        out[j] = positions[file_index == f]
    return out
