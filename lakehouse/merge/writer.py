"""Turning row changes into files and log actions, copy-on-write or with deletion vectors.

Executors decide, per batch of target rows, which rows are deleted and what updated rows become;
:class:`ChangeWriter` makes that durable the way the table asks for:

* copy-on-write: every file with a changed row is removed and its unchanged rows are written
  again (counted as copied) next to the updated rows; untouched files are left alone;
* deletion vectors (``delta.enableDeletionVectors=true``): changed rows are marked in a new DV
  (the union with the file's existing one); the file is re-added with that DV and its old
  (path, DV) removed; updated rows go to new files; nothing is rewritten. A file whose rows are
  all deleted is simply removed;
* change data feed (``delta.enableChangeDataFeed=true``): the changed rows are also written under
  ``_change_data/`` with ``_change_type`` (insert / update_preimage / update_postimage / delete).

Output rows are buffered and written in large chunks, so many small batches still make few files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.io.parquet import WriterOptions, WrittenFile, write_data_files
from lakehouse.log.actions import Add, Cdc, Remove, now_ms
from lakehouse.log.deletion_vectors import write_deletion_vectors
from lakehouse.log.schema import PrimitiveType, StructField, StructType, column_mapping_mode
from lakehouse.log.snapshot import Snapshot
from lakehouse.merge.files import FileBatch
from lakehouse.merge.metrics import Counters
from lakehouse.ops.enforce import BatchConformer
from lakehouse.ops.rewrite import adds_from_written
from lakehouse.scan.stats import live_row_count
from lakehouse.txn.transaction import removes_for_files

CHANGE_TYPE = "_change_type"
#: Arrow bytes of output rows buffered before they are written out.
FLUSH_BYTES = 256 * 1024 * 1024


def uses_deletion_vectors(snapshot: Snapshot) -> bool:
    on = str(snapshot.configuration.get("delta.enableDeletionVectors", "false")).lower() == "true"
    return on and snapshot.protocol.has_writer_feature("deletionVectors")


def cdf_enabled(configuration: Mapping[str, str]) -> bool:
    return str(configuration.get("delta.enableChangeDataFeed", "false")).lower() == "true"


def with_change_type(table: pa.Table, change_type: str) -> pa.Table:
    return table.append_column(CHANGE_TYPE, pa.array([change_type] * table.num_rows, pa.string()))


def _wide_bounds(stats: str | None) -> str | None:
    """``stats`` marked ``tightBounds: false``: once a DV hides rows, min/max/nullCount still
    bound the live rows but are no longer exact (readers must not answer aggregates from them)."""
    if not stats:
        return stats
    try:
        parsed = json.loads(stats)
    except ValueError:
        return stats
    if not isinstance(parsed, dict) or parsed.get("tightBounds") is False:
        return stats
    parsed["tightBounds"] = False
    return json.dumps(parsed, separators=(",", ":"))


class _Sink:
    """Buffered writer of one kind of file (data or change data).

    Flushes run on one background thread, so encoding and writing Parquet (which release the
    GIL) overlap with reading and joining the next batch of target files; at most one flush is
    in flight, so memory stays bounded by two buffers.
    """

    def __init__(self, snapshot: Snapshot, schema: StructType, parts: list[str],
                 options: WriterOptions, prefix: str) -> None:
        self.snapshot = snapshot
        self.schema = schema
        self.parts = parts
        self.options = options
        self.prefix = prefix
        self.cm = column_mapping_mode(snapshot.configuration) != "none"
        self.buffer: list[pa.Table] = []
        self.bytes = 0
        self.written: list[WrittenFile] = []
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[list[WrittenFile]] | None = None

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.buffer.append(table)
        self.bytes += table.nbytes
        if self.bytes >= FLUSH_BYTES:
            self.flush(wait=False)

    def _write(self, tables: list[pa.Table]) -> list[WrittenFile]:
        return write_data_files(self.snapshot.storage, tables, schema=self.schema,
                                partition_columns=self.parts, column_mapping=self.cm,
                                options=self.options, prefix=self.prefix)

    def _collect(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self.written += pending.result()

    def flush(self, wait: bool = True) -> None:
        self._collect()  # one flush in flight at most
        if self.buffer:
            tables, self.buffer, self.bytes = self.buffer, [], 0
            if wait:
                self.written += self._write(tables)
            else:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="lakehouse-sink")
                self._pending = self._pool.submit(self._write, tables)
        if wait and self._pool is not None:
            self._pool.shutdown()
            self._pool = None


class ChangeWriter:
    """Collects the files and actions of one DML commit (see module docstring)."""

    def __init__(self, snapshot: Snapshot, schema: StructType, configuration: Mapping[str, str],
                 engine: Any, counters: Counters, deletion_vectors: bool | None = None) -> None:
        self.snapshot = snapshot
        self.schema = schema
        self.counters = counters
        self.dv = uses_deletion_vectors(snapshot) if deletion_vectors is None else deletion_vectors
        self.cdf = cdf_enabled(configuration)
        self.conformer = BatchConformer.for_table(schema, configuration, engine)
        parts = list(snapshot.partition_columns)
        options = WriterOptions.from_configuration(configuration)
        self.data = _Sink(snapshot, schema, parts, options, "")
        cdc_schema = StructType((*schema.fields, StructField(CHANGE_TYPE, PrimitiveType("string"))))
        self.changes = _Sink(snapshot, cdc_schema, parts, options, "_change_data")
        self.adds: list[Add] = []
        self.removes: list[Remove] = []
        self.ts = now_ms()

    # -------------------------------------------------------------------------------- rows
    def conform(self, table: pa.Table, keep_generated: frozenset[str] = frozenset()) -> pa.Table:
        """New/updated rows in the table schema, constraints checked; generated columns not in
        ``keep_generated`` are recomputed from the row."""
        drop = [c for c in self.conformer.generated if c not in keep_generated
                and c in table.column_names]
        if drop:
            table = table.drop_columns(drop)
        out = [self.conformer.conform(b) for b in table.to_batches() if b.num_rows]
        if not out:
            return self.conformer.target.empty_table()
        return pa.concat_tables(out)

    def insert(self, rows: pa.Table) -> None:
        """Write new rows (already conformed)."""
        self.data.add(rows)
        if self.cdf:
            self.changes.add(with_change_type(rows, "insert"))

    def apply(self, batch: FileBatch, deleted: np.ndarray, updated: np.ndarray,
              updated_rows: pa.Table) -> None:
        """Delete rows ``deleted`` and replace rows ``updated`` (indexes into ``batch.table``)
        by ``updated_rows`` (conformed, same order)."""
        changed = np.union1d(deleted.astype(np.int64), updated.astype(np.int64))
        if len(changed) == 0:
            return
        t0 = time.monotonic()
        touched = np.unique(batch.file_index[changed])
        if self.dv:
            self._mark_deleted(batch, changed, touched)
        else:
            in_touched = np.isin(batch.file_index, touched)
            in_touched[changed] = False
            copied = batch.table.filter(pa.array(in_touched))
            self.counters.copied += copied.num_rows
            self.data.add(copied)
            self._remove(batch.files.take(pa.array(touched)))
        self.data.add(updated_rows)
        if self.cdf:
            if len(deleted):
                self.changes.add(with_change_type(batch.table.take(pa.array(deleted)), "delete"))
            if len(updated):
                self.changes.add(with_change_type(batch.table.take(pa.array(updated)),
                                                  "update_preimage"))
                self.changes.add(with_change_type(updated_rows, "update_postimage"))
        self.counters.rewrite_time_ms += int((time.monotonic() - t0) * 1000)

    def remove_whole_files(self, files: pa.Table) -> int:
        """Remove ``files`` without reading them (every row deleted); returns their live rows."""
        self._remove(files)
        return live_row_count(files)

    # ------------------------------------------------------------------------------ files
    def _remove(self, files: pa.Table) -> None:
        self.removes += removes_for_files(files, deletion_timestamp=self.ts)
        self.counters.files_removed += files.num_rows
        self.counters.bytes_removed += int(pc.sum(files["size"]).as_py() or 0)
        self.counters.dvs_removed += files.num_rows - files["deletionVector"].null_count

    def _mark_deleted(self, batch: FileBatch, changed: np.ndarray, touched: np.ndarray) -> None:
        fidx = batch.file_index[changed]
        order = np.argsort(fidx, kind="stable")
        fidx_sorted = fidx[order]
        pos_sorted = batch.positions[changed][order]
        bounds = np.searchsorted(fidx_sorted, touched, side="left")
        ends = np.searchsorted(fidx_sorted, touched, side="right")
        whole: list[int] = []
        partial: list[int] = []
        dv_rows: list[np.ndarray] = []
        for f, lo, hi in zip(touched.tolist(), bounds.tolist(), ends.tolist(), strict=True):
            rows = np.union1d(batch.old_deleted[f], pos_sorted[lo:hi])
            if len(rows) >= batch.physical_rows[f]:
                whole.append(f)
            else:
                partial.append(f)
                dv_rows.append(rows.astype(np.uint64))
        if whole:
            self._remove(batch.files.take(pa.array(whole, pa.int64())))
        if not partial:
            return
        descriptors = write_deletion_vectors(self.snapshot.storage, dv_rows)
        touched = batch.files.take(pa.array(partial, pa.int64()))
        self.removes += removes_for_files(touched, deletion_timestamp=self.ts)
        self.counters.dvs_removed += touched.num_rows - touched["deletionVector"].null_count
        for row, desc in zip(touched.to_pylist(), descriptors, strict=True):
            pv = row.get("partitionValues")
            self.adds.append(Add(
                path=row["path"], partition_values=dict(pv) if pv else {}, size=row["size"],
                modification_time=row["modificationTime"], data_change=True,
                stats=_wide_bounds(row.get("stats")), tags=dict(row["tags"]) if row.get("tags") else None,
                deletion_vector=desc.to_dict(), base_row_id=row.get("baseRowId"),
                default_row_commit_version=row.get("defaultRowCommitVersion")))
            self.counters.dvs_added += 1

    def finish(self) -> tuple[list[Add], list[Remove], list[Cdc]]:
        """Flush buffers; the commit's adds, removes and cdc actions."""
        t0 = time.monotonic()
        self.data.flush()
        self.changes.flush()
        self.counters.rewrite_time_ms += int((time.monotonic() - t0) * 1000)
        new = adds_from_written(self.data.written)
        self.counters.files_added += len(new)
        self.counters.bytes_added += sum(a.size for a in new)
        cdc = [Cdc(path=w.encoded_path, partition_values=w.partition_values, size=w.size,
                   data_change=False) for w in self.changes.written]
        self.counters.change_files_added += len(cdc)
        return [*self.adds, *new], self.removes, cdc
