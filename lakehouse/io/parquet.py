"""Writing and reading a Delta table's Parquet data files.

Why this module exists: every write path (append, overwrite, merge, optimize, CDF) turns a stream
of Arrow batches into Delta data files, and each file must look exactly as the table's schema
says (so Spark, delta-rs and DuckDB read it), sit in Hive-style partition directories, and come
with the metadata its ``add`` action needs (path, partition values, size, stats). This module does
that in one streaming pass:

* batches are consumed one at a time, cast to the table's Arrow types (microsecond UTC
  timestamps, plain string/binary/list types), split by partition values with Arrow kernels
  (sort + run boundaries; no Python per row), and appended to one open file per partition;
* rows are buffered per file up to a row group (``row_group_size`` rows or ~64 MiB of Arrow
  data), then written; a file is closed once its estimated size reaches ``target_file_size``.
  The estimate is bytes already on storage plus buffered Arrow bytes times the compression ratio
  observed so far, so memory stays near one batch plus one row group per open file (and at most
  ``_MAX_BUFFERED_BYTES`` in total: the biggest buffers are flushed early beyond that);
* data files hold only the non-partition columns; under column mapping they use physical names
  and carry ``PARQUET:field_id``; partition values (keyed by physical name under column mapping,
  as the protocol requires) live in the directory and in :class:`WrittenFile`.

Nothing here touches the log: callers turn :class:`WrittenFile` into ``add``/``cdc`` actions and
commit them. If writing fails, the files written so far are deleted (best effort) and the error
re-raised; leftovers are unreferenced and vacuumable.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakehouse.errors import ConstraintViolationError, InvalidArgumentError, LakehouseError
from lakehouse.io.stats import StatsCollector, parse_column_path
from lakehouse.io.storage import Storage
from lakehouse.log.partitions import partition_path, serialize_partition_column
from lakehouse.log.schema import (
    DecimalType,
    PrimitiveType,
    StructField,
    StructType,
    conform_to_schema,
    physical_name,
    rename_table_to_physical,
    strip_field_metadata,
    to_arrow,
)

__all__ = [
    "WriterOptions",
    "WrittenFile",
    "encode_path",
    "read_data_file",
    "split_stats_columns",
    "write_data_files",
]

_ROW_GROUP_BYTES = 64 * 1024 * 1024  # Arrow bytes buffered per file before a row group is written
_MAX_BUFFERED_BYTES = 256 * 1024 * 1024  # across all open files
_MAX_OPEN_FILES = 256  # beyond this the least recently used partition's file is closed
_CLOSE_FRACTION = 0.9  # a file is done once its written bytes reach this share of the target
_INITIAL_RATIO = 1.0  # Parquet bytes per Arrow byte until measured (errs towards smaller files)
# File-name extension per codec, as Spark names them.
_CODEC_EXT = {
    "snappy": "snappy",
    "gzip": "gz",
    "zstd": "zstd",
    "lz4": "lz4",
    "brotli": "br",
    "none": "",
    "uncompressed": "",
}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


@dataclass(frozen=True, slots=True)
class WriterOptions:
    """How data files are written; :meth:`from_configuration` reads the table properties."""

    target_file_size: int = 128 * 1024 * 1024  # delta.targetFileSize
    row_group_size: int = 262_144  # rows per row group (also capped at ~64 MiB of Arrow data)
    compression: str = "snappy"
    num_indexed_cols: int = 32  # delta.dataSkippingNumIndexedCols (-1 = all)
    stats_columns: tuple[str, ...] | None = None  # delta.dataSkippingStatsColumns
    string_prefix_length: int = 32  # characters kept of string min/max

    def __post_init__(self) -> None:
        if self.target_file_size <= 0:
            raise InvalidArgumentError(
                f"target_file_size must be positive, got {self.target_file_size}"
            )
        if self.row_group_size <= 0:
            raise InvalidArgumentError(
                f"row_group_size must be positive, got {self.row_group_size}"
            )
        codec = self.compression.lower()
        if codec not in _CODEC_EXT:
            raise InvalidArgumentError(
                f"unsupported Parquet compression {self.compression!r}; use one of "
                f"{', '.join(_CODEC_EXT)}"
            )
        object.__setattr__(self, "compression", codec)
        if self.num_indexed_cols < -1:
            raise InvalidArgumentError(
                f"num_indexed_cols must be -1 (all columns) or >= 0, got {self.num_indexed_cols}"
            )
        if self.string_prefix_length < 1:
            raise InvalidArgumentError(
                f"string_prefix_length must be >= 1, got {self.string_prefix_length}"
            )
        if self.stats_columns is not None:
            cols = tuple(self.stats_columns)
            for c in cols:
                parse_column_path(c)  # validates
            object.__setattr__(self, "stats_columns", cols)

    @classmethod
    def from_configuration(cls, config: Mapping[str, str], **overrides: Any) -> WriterOptions:
        """Options from a table's ``metaData.configuration``; ``overrides`` win."""
        kwargs: dict[str, Any] = {}
        value = config.get("delta.targetFileSize")
        if value is not None:
            kwargs["target_file_size"] = _parse_size("delta.targetFileSize", value)
        value = config.get("delta.dataSkippingNumIndexedCols")
        if value is not None:
            try:
                kwargs["num_indexed_cols"] = int(value)
            except ValueError:
                raise InvalidArgumentError(
                    f"delta.dataSkippingNumIndexedCols={value!r} is not an integer; set it to "
                    "-1 (all columns) or a number of leading columns"
                ) from None
        value = config.get("delta.dataSkippingStatsColumns")
        if value is not None:
            kwargs["stats_columns"] = split_stats_columns(value)
        kwargs.update(overrides)
        return cls(**kwargs)


def _parse_size(key: str, value: str) -> int:
    m = _SIZE_RE.match(str(value))
    if not m:
        raise InvalidArgumentError(
            f"{key}={value!r} is not a size; use bytes (134217728) or a unit (128mb)"
        )
    unit = (m.group(2) or "").lower().replace("i", "").rstrip("b") or ""
    return int(m.group(1)) * _SIZE_UNITS[unit]


def split_stats_columns(value: str) -> tuple[str, ...]:
    """Split ``delta.dataSkippingStatsColumns`` on commas outside backquotes."""
    out: list[str] = []
    buf: list[str] = []
    quoted = False
    for ch in value:
        if ch == "`":
            quoted = not quoted
        if ch == "," and not quoted:
            out.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
    out.append("".join(buf).strip())
    return tuple(c for c in out if c)


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """One data file written, with everything its ``add`` (or ``cdc``) action needs."""

    path: str  # relative to the table root, not URL-encoded
    encoded_path: str  # URI-encoded, as add.path requires
    partition_values: dict[str, str | None]  # partition column (physical name) -> protocol string
    size: int
    num_records: int
    stats: str  # add.stats JSON
    modification_time: int  # ms since the epoch


def encode_path(path: str) -> str:
    """URI-encode a relative data-file path for ``add.path`` (``%`` of Hive escapes -> ``%25``)."""
    return quote(path, safe="/=")


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the writer needs from the schema, computed once per call."""

    logical: pa.Schema  # all columns, logical names, table types, no metadata (cast target)
    data_names: tuple[str, ...]  # logical names of the non-partition columns
    partition_fields: tuple[StructField, ...]
    partition_keys: tuple[str, ...]  # keys of partitionValues / directory names
    write_schema: pa.Schema  # the data file's schema
    not_null: tuple[str, ...]  # top-level non-nullable columns (checked per batch)

    @classmethod
    def build(
        cls, schema: StructType, partition_columns: Sequence[str], column_mapping: bool
    ) -> _Plan:
        parts: list[StructField] = []
        for name in partition_columns:
            f = schema.get(name)
            if f is None:
                raise InvalidArgumentError(
                    f"partition column {name!r} is not in the schema; columns are "
                    f"{schema.field_names}"
                )
            if f in parts:
                raise InvalidArgumentError(f"partition column {name!r} is listed twice")
            if not isinstance(f.type, PrimitiveType | DecimalType):
                raise InvalidArgumentError(
                    f"partition column {name!r} is not of a primitive type; partition by a "
                    "string, number, date, timestamp or boolean column instead"
                )
            parts.append(f)
        data_fields = tuple(f for f in schema.fields if f not in parts)
        if not data_fields:
            raise InvalidArgumentError(
                "every column is a partition column; a Delta table needs at least one "
                "non-partition column - partition by fewer columns"
            )
        data_schema = StructType(data_fields)
        if column_mapping:
            write_schema = to_arrow(data_schema, physical=True)
        else:
            write_schema = strip_field_metadata(to_arrow(data_schema))
        logical = strip_field_metadata(to_arrow(schema))
        return cls(
            logical=logical,
            data_names=tuple(f.name for f in data_fields),
            partition_fields=tuple(parts),
            partition_keys=tuple(physical_name(f) if column_mapping else f.name for f in parts),
            write_schema=write_schema,
            not_null=tuple(f.name for f in schema.fields if not f.nullable),
        )


def _batches(
    data: Iterable[pa.RecordBatch] | pa.Table | pa.RecordBatch | pa.RecordBatchReader,
) -> Iterator[pa.RecordBatch]:
    if isinstance(data, pa.Table):
        yield from data.to_batches()
    elif isinstance(data, pa.RecordBatch):
        yield data
    elif isinstance(data, pa.RecordBatchReader):
        yield from data
    elif hasattr(data, "__arrow_c_stream__"):  # polars, duckdb, any Arrow PyCapsule stream
        yield from pa.RecordBatchReader.from_stream(data)
    else:
        for item in data:
            if isinstance(item, pa.Table):
                yield from item.to_batches()
            elif isinstance(item, pa.RecordBatch):
                yield item
            else:
                raise InvalidArgumentError(
                    f"write_data_files expects pyarrow RecordBatches, got {type(item).__name__}"
                )


def _runs(keys: pa.Table) -> pa.Array:
    """Row indices where the key tuple differs from the previous row (always includes 0)."""
    n = keys.num_rows
    changed: pa.Array | None = None
    for chunked in keys.columns:
        col = chunked.combine_chunks()
        a, b = col.slice(1), col.slice(0, n - 1)
        ne = pc.fill_null(pc.not_equal(a, b), pc.xor(pc.is_null(a), pc.is_null(b)))
        changed = ne if changed is None else pc.or_(changed, ne)
    assert changed is not None
    starts = pc.add(pc.indices_nonzero(changed), 1)
    return pa.concat_arrays([pa.array([0], pa.uint64()), starts.cast(pa.uint64())])


@dataclass(slots=True, eq=False)
class _OpenFile:
    path: str
    partition_values: dict[str, str | None]
    sink: BinaryIO
    writer: pq.ParquetWriter
    stats: StatsCollector
    buffer: list[pa.Table] = field(default_factory=list)
    buffered_rows: int = 0
    buffered_bytes: int = 0
    pending: list[Future[None]] = field(default_factory=list)  # stats updates in flight

    def estimated_size(self, ratio: float) -> float:
        return self.sink.tell() + self.buffered_bytes * ratio


class _Writer:
    """The per-call writing state: open files per partition, counters, files done."""

    def __init__(
        self,
        storage: Storage,
        schema: StructType,
        plan: _Plan,
        options: WriterOptions,
        column_mapping: bool,
        prefix: str,
    ) -> None:
        self.storage = storage
        self.schema = schema
        self.plan = plan
        self.options = options
        self.column_mapping = column_mapping
        self.prefix = prefix.strip("/")
        self.name_prefix = "cdc" if self.prefix.startswith("_change_data") else "part"
        ext = _CODEC_EXT[options.compression]
        self.suffix = f"-c000.{ext}.parquet" if ext else "-c000.parquet"
        self.open: dict[tuple[str | None, ...], _OpenFile] = {}
        self.done: list[WrittenFile] = []
        self.started: list[str] = []
        self.counter = 0
        self.dictionary: bool | list[str] | None = None  # decided from the first batch
        self._lock = threading.Lock()
        self._stats_executor: ThreadPoolExecutor | None = None
        self.sink_bytes = 0  # Parquet bytes produced by flushed row groups (all files)
        self.arrow_bytes = 0  # Arrow bytes of those row groups

    @property
    def ratio(self) -> float:
        return self.sink_bytes / self.arrow_bytes if self.arrow_bytes else _INITIAL_RATIO

    # -- input ---------------------------------------------------------------------------------
    def write(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        table = conform_to_schema(pa.Table.from_batches([batch]), self.plan.logical)
        if self.dictionary is None:
            self.dictionary = _dictionary_columns(table, self.plan)
        for name in self.plan.not_null:
            if table.column(name).null_count:
                raise ConstraintViolationError(
                    f"column {name!r} is NOT NULL but the data has "
                    f"{table.column(name).null_count} null value(s); fill or filter them first"
                )
        if not self.plan.partition_fields:
            self._append((), table)
        else:
            self._append_partitioned(table)
        self._limit_memory()

    def _append_partitioned(self, table: pa.Table) -> None:
        plan = self.plan
        names = [f.name for f in plan.partition_fields]
        # Group on dictionary codes: integer sorts and compares are far cheaper than strings'.
        codes = pa.table(
            {
                str(i): table.column(n).combine_chunks().dictionary_encode().indices
                for i, n in enumerate(names)
            }
        )
        starts = _runs(codes)
        if len(starts) > 1:  # several partitions (or runs): bring each partition's rows together
            order = pc.sort_indices(codes, sort_keys=[(c, "ascending") for c in codes.column_names])
            table = table.take(order)
            starts = _runs(codes.take(order))
        first_rows = table.select(names).take(starts)
        serialized = [
            serialize_partition_column(first_rows.column(i), f.type)
            for i, f in enumerate(plan.partition_fields)
        ]
        bounds = [*starts.to_pylist(), table.num_rows]
        data = table.select(list(plan.data_names))
        for g in range(len(bounds) - 1):
            key = tuple(col[g] for col in serialized)
            self._append(key, data.slice(bounds[g], bounds[g + 1] - bounds[g]))

    def _append(self, key: tuple[str | None, ...], table: pa.Table) -> None:
        target = self.options.target_file_size
        while table.num_rows:
            f = self._file_for(key)
            per_row = max(table.nbytes / table.num_rows, 1.0) * self.ratio
            room = target - f.estimated_size(self.ratio)
            take = (
                table.num_rows if room >= per_row * table.num_rows else max(1, int(room // per_row))
            )
            part, table = table.slice(0, take), table.slice(take)
            # Stats run on a helper thread while this thread keeps encoding (pyarrow compute
            # and the Parquet encoder both release the GIL); one worker keeps them in order.
            f.pending.append(self._stats_pool().submit(f.stats.update, part))
            f.buffer.append(part)
            f.buffered_rows += part.num_rows
            f.buffered_bytes += part.nbytes
            if (
                f.buffered_rows >= self.options.row_group_size
                or f.buffered_bytes >= _ROW_GROUP_BYTES
            ):
                self._flush(f)
            if f.estimated_size(self.ratio) >= target:
                # Measure instead of trusting the estimate (the ratio may still be a guess).
                self._flush(f)
                if f.sink.tell() >= target * _CLOSE_FRACTION:
                    self._close(key)

    # -- files ---------------------------------------------------------------------------------
    def _file_for(self, key: tuple[str | None, ...]) -> _OpenFile:
        f = self.open.pop(key, None)
        if f is None:
            if len(self.open) >= _MAX_OPEN_FILES:
                self._close(next(iter(self.open)))
            f = self._new_file(key)
        self.open[key] = f  # most recently used last
        return f

    def _new_file(self, key: tuple[str | None, ...]) -> _OpenFile:
        values = dict(zip(self.plan.partition_keys, key, strict=True))
        directory = partition_path(list(values.items())) if values else ""
        name = f"{self.name_prefix}-{self.counter:05d}-{uuid.uuid4()}{self.suffix}"
        self.counter += 1
        path = "/".join(p for p in (self.prefix, directory, name) if p)
        self.started.append(path)
        sink = self.storage.open_output(path)
        try:
            writer = pq.ParquetWriter(
                sink,
                self.plan.write_schema,
                compression=self.options.compression,
                use_dictionary=True if self.dictionary is None else self.dictionary,
                coerce_timestamps="us",
                use_deprecated_int96_timestamps=False,
                allow_truncated_timestamps=True,
                write_statistics=True,
            )
        except BaseException:
            sink.close()
            raise
        stats = StatsCollector(self.schema, self.options, self.column_mapping, self.plan.data_names)
        return _OpenFile(path, values, sink, writer, stats)

    def _flush(self, f: _OpenFile) -> None:
        if not f.buffer:
            return
        table = pa.concat_tables(f.buffer) if len(f.buffer) > 1 else f.buffer[0]
        if self.column_mapping:
            table = rename_table_to_physical(table, self.schema)
        table = pa.Table.from_arrays(table.columns, schema=self.plan.write_schema)
        before = f.sink.tell()
        f.writer.write_table(table, row_group_size=self.options.row_group_size)
        with self._lock:  # finish() flushes files from worker threads
            self.sink_bytes += f.sink.tell() - before
            self.arrow_bytes += f.buffered_bytes
        f.buffer.clear()
        f.buffered_rows = 0
        f.buffered_bytes = 0

    def _close(self, key: tuple[str | None, ...]) -> None:
        self.done.append(self._finalize(self.open.pop(key)))

    def _finalize(self, f: _OpenFile) -> WrittenFile:
        """Flush, close and (on local disk) fsync one file; safe to run in a worker thread."""
        self._flush(f)
        f.writer.close()
        f.sink.flush()
        fileno = getattr(f.sink, "fileno", None)
        if self.storage.kind == "local" and fileno is not None:
            os.fsync(fileno())  # durable before the caller commits
        size = f.sink.tell()
        f.sink.close()
        return WrittenFile(
            path=f.path,
            encoded_path=encode_path(f.path),
            partition_values=f.partition_values,
            size=size,
            num_records=self._stats_done(f).num_records,
            stats=f.stats.to_json(),
            modification_time=int(time.time() * 1000),
        )

    def _limit_memory(self) -> None:
        total = sum(f.buffered_bytes for f in self.open.values())
        if total <= _MAX_BUFFERED_BYTES:
            return
        for f in sorted(self.open.values(), key=lambda o: o.buffered_bytes, reverse=True):
            total -= f.buffered_bytes
            self._flush(f)
            if total <= _MAX_BUFFERED_BYTES // 2:
                break

    def finish(self) -> list[WrittenFile]:
        files = [self.open.pop(key) for key in list(self.open)]
        if len(files) <= 1:
            self.done.extend(self._finalize(f) for f in files)
            return self.done
        # Many open files (one per partition): encode, write and fsync them concurrently;
        # pyarrow and fsync release the GIL.
        try:
            with ThreadPoolExecutor(min(8, len(files))) as pool:
                self.done.extend(pool.map(self._finalize, files))
        except BaseException:
            for f in files:  # let abort() close and delete whatever is left
                if not f.sink.closed:
                    self.open[(f.path,)] = f
            raise
        return self.done

    def _stats_pool(self) -> ThreadPoolExecutor:
        if self._stats_executor is None:
            self._stats_executor = ThreadPoolExecutor(1, thread_name_prefix="lakehouse-stats")
        return self._stats_executor

    def _stats_done(self, f: _OpenFile) -> StatsCollector:
        for fut in f.pending:
            fut.result()  # re-raises a failed stats update
        f.pending.clear()
        return f.stats

    def shutdown(self) -> None:
        if self._stats_executor is not None:
            self._stats_executor.shutdown(wait=True)
            self._stats_executor = None

    def abort(self) -> None:
        """Best-effort cleanup after an error: close and delete every file started."""
        for f in self.open.values():
            with contextlib.suppress(Exception):
                f.writer.close()
            with contextlib.suppress(Exception):
                f.sink.close()
        self.open.clear()
        with contextlib.suppress(Exception):
            self.storage.delete(self.started)


def write_data_files(
    storage: Storage,
    data: Iterable[pa.RecordBatch] | pa.Table | pa.RecordBatch | pa.RecordBatchReader,
    *,
    schema: StructType,
    partition_columns: Sequence[str] = (),
    column_mapping: bool = False,
    options: WriterOptions = WriterOptions(),
    prefix: str = "",
    progress: Callable[[int], None] | None = None,
) -> list[WrittenFile]:
    """Write ``data`` as Parquet data files of a table with Delta ``schema``; return them.

    ``data`` (logical column names, schema already validated by the caller) is streamed batch
    by batch and cast to the table's types. Files go under ``prefix`` (e.g. ``_change_data``,
    whose files are named ``cdc-...``) and Hive-style partition directories. ``progress`` is
    called with the number of rows of each batch consumed. Returns the files in the order they
    were closed; an empty input writes nothing. On error, files written so far are deleted.
    """
    plan = _Plan.build(schema, partition_columns, column_mapping)
    writer = _Writer(storage, schema, plan, options, column_mapping, prefix)
    try:
        for batch in _batches(data):
            writer.write(batch)
            if progress is not None:
                progress(batch.num_rows)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise
    finally:
        writer.shutdown()


def _dictionary_columns(table: pa.Table, plan: _Plan) -> bool | list[str]:
    """Columns worth dictionary encoding, judged on the first batch.

    Dictionary encoding pays for low-cardinality columns; for nearly unique ones (ids, floats,
    timestamps, free text) the writer fills a dictionary page and then falls back to plain
    encoding in every row group, which costs several times the write time for nothing.
    """
    names = [f.name for f in plan.write_schema]
    if len(names) != len(plan.data_names) or table.num_rows < 1000:
        return True
    chosen = []
    for logical, physical in zip(plan.data_names, names, strict=True):
        col = table.column(logical)
        t = col.type
        if pa.types.is_nested(t):
            return True  # leaf paths of nested columns: keep pyarrow's default for all
        if pa.types.is_boolean(t):
            continue
        sample = col.slice(0, min(len(col), 8192))
        distinct = pc.count_distinct(sample).as_py()
        if distinct <= 0.5 * max(len(sample) - sample.null_count, 1):
            chosen.append(physical)
    return chosen


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------


def read_data_file(storage: Storage, path: str, columns: Sequence[str] | None = None) -> pa.Table:
    """Read one data file (``path`` decoded, relative to the root or absolute).

    ``columns`` are the file's (physical) top-level column names; those the file lacks are
    silently absent from the result, which the caller conforms to the table schema.
    Raises FileNotFoundError if the file is missing.
    """
    fs, to_fs = storage.arrow_filesystem()
    fs_path = to_fs(path)
    try:
        with fs.open_input_file(fs_path) as source:
            pf = pq.ParquetFile(
                source,
                coerce_int96_timestamp_unit="us",
                pre_buffer=storage.kind != "local",  # coalesce ranged reads on object stores
            )
            if columns is not None:
                present = set(pf.schema_arrow.names)
                columns = [c for c in columns if c in present]
            return pf.read(columns=columns, use_threads=True)
    except pa.ArrowInvalid as exc:
        raise LakehouseError(
            f"data file {path!r} under {storage.root} is not a readable Parquet file ({exc}); "
            "it may be corrupt or truncated - restore it or remove it from the table"
        ) from exc
