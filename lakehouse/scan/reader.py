"""Reading one data file into logical rows: projection, deletion vectors, partition columns,
column mapping and type widening — the per-file part of a scan, engine-neutral (pure Arrow).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakehouse.errors import LakehouseError, ProtocolError

if TYPE_CHECKING:
    from lakehouse.io.storage import Storage


@dataclass(frozen=True, slots=True, eq=False)
class FileTask:
    """What to read from one file: its path, DV descriptor, and partition column values."""

    path: str
    deletion_vector: Mapping[str, Any] | None
    partition_values: Mapping[str, pa.Scalar]   # logical column -> typed value
    row_groups: tuple[int, ...] | None = None    # read only these row groups (no DV allowed)


@dataclass(frozen=True, slots=True, eq=False)
class ReadSpec:
    """How to turn files into the projected logical schema (shared by all files of a scan)."""

    output: pa.Schema                  # logical output schema (projection order)
    data_physical: pa.Schema           # physical target schema of the data columns to read
    physical_to_logical: Mapping[str, str]
    match_by_id: bool
    needs_rename: bool
    schema: Any                        # the Delta StructType of the table (for renames)
    pushdown: Any = None               # pyarrow dataset expression (superset filter) or None


def read_file(storage: Storage, task: FileTask, spec: ReadSpec) -> pa.Table:
    """Read ``task`` as a table in ``spec.output`` (deleted rows removed)."""
    from lakehouse.log.schema import conform_to_schema

    fs, to_path = storage.arrow_filesystem()
    try:
        with fs.open_input_file(to_path(task.path)) as f:
            pf = pq.ParquetFile(f)
            file_names = set(pf.schema_arrow.names)
            if spec.match_by_id:
                want = None
            else:
                want = [n for n in spec.data_physical.names if n in file_names]
            num_rows = pf.metadata.num_rows
            data = pa.table({})
            if task.row_groups is not None:
                if task.deletion_vector:
                    raise ValueError("row-group reads address rows physically: apply DVs outside")
                groups = list(task.row_groups)
                num_rows = sum(pf.metadata.row_group(g).num_rows for g in groups)
                if want is None or want:
                    data = pf.read_row_groups(groups, columns=want, use_threads=True)
            elif spec.pushdown is not None and not task.deletion_vector and want:
                import pyarrow.dataset as ds

                frag = ds.ParquetFileFormat().make_fragment(to_path(task.path), fs)
                data = frag.to_table(columns=want, filter=spec.pushdown,
                                     schema=pf.schema_arrow, use_threads=True)
                num_rows = data.num_rows
            elif want is None or want:
                data = pf.read(columns=want, use_threads=True)
    except FileNotFoundError as e:
        raise ProtocolError(
            f"data file {task.path} is referenced by the log but missing from storage "
            f"({storage.root}); the table was damaged (e.g. vacuumed too aggressively)"
        ) from e

    if len(spec.data_physical):
        if data.num_columns == 0:  # none of the wanted columns exist in this (older) file
            data = pa.table({"__rows": pa.nulls(num_rows)}).drop_columns(["__rows"])
            data = pa.Table.from_arrays(
                [pa.nulls(num_rows, f.type) for f in spec.data_physical], schema=spec.data_physical)
        data = conform_to_schema(data, spec.data_physical, match_by="id" if spec.match_by_id else "name")
        if spec.needs_rename:
            from lakehouse.log.schema import rename_table_to_logical

            data = rename_table_to_logical(data, spec.schema)

    if task.deletion_vector:
        deleted = _deleted_rows(storage, task.deletion_vector)
        if len(deleted):
            keep = np.ones(num_rows, dtype=bool)
            deleted = deleted[deleted < num_rows]
            keep[deleted.astype(np.int64)] = False
            if len(spec.data_physical):
                data = data.filter(pa.array(keep))
            num_rows = int(keep.sum())

    columns = []
    for f in spec.output:
        if f.name in task.partition_values:
            columns.append(_repeat(task.partition_values[f.name], num_rows, f.type))
        else:
            columns.append(data.column(f.name))
    if not columns:  # e.g. count(*): rows without columns
        return pa.table({"__rows": pa.nulls(num_rows)}).drop_columns(["__rows"])
    return pa.Table.from_arrays(columns, schema=spec.output)


def _repeat(value: pa.Scalar, n: int, t: pa.DataType) -> pa.Array:
    if not value.is_valid:
        return pa.nulls(n, t)
    return pa.repeat(value.cast(t), n)


def _deleted_rows(storage: Storage, dv: Mapping[str, Any]) -> np.ndarray:
    from lakehouse.log.deletion_vectors import DeletionVectorDescriptor, read_deletion_vector

    desc = DeletionVectorDescriptor.from_dict(dv)
    try:
        return read_deletion_vector(storage, desc)
    except FileNotFoundError as e:
        raise ProtocolError(f"deletion vector file for {desc.unique_id} is missing: {e}") from e


def concat(tables: Sequence[pa.Table], schema: pa.Schema) -> pa.Table:
    if len(schema) == 0:  # no columns (e.g. counting): keep the row count
        n = sum(t.num_rows for t in tables)
        return pa.table({"__rows": pa.nulls(n)}).drop_columns(["__rows"])
    tables = [t for t in tables if t.num_rows or t.num_columns]
    if not tables:
        return schema.empty_table()
    try:
        return pa.concat_tables(tables)
    except pa.ArrowInvalid as e:  # pragma: no cover - defensive
        raise LakehouseError(f"cannot combine file reads: {e}") from e


def count_only(tables: Sequence[pa.Table]) -> int:
    return int(sum(t.num_rows for t in tables))


__all__ = ["FileTask", "ReadSpec", "concat", "count_only", "pc", "read_file"]
