"""Scans: from a :class:`Snapshot` to the files to read and their rows.

``Snapshot -> Scan (projection, predicate) -> pruned files -> per-file reads -> Arrow``.
A :class:`Scan` is an immutable plan; ``select``/``filter`` return new scans. Row-level filtering
of the read rows is the engine's job (the SQL is kept on the scan for it); the scan itself only
skips files that provably hold no matching row (partition values, then min/max/null stats).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cached_property

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import InvalidArgumentError
from lakehouse.expressions import And, Expr, parse_predicate
from lakehouse.log.snapshot import Snapshot
from lakehouse.scan.pruning import prune_mask
from lakehouse.scan.reader import FileTask, ReadSpec, concat, read_file
from lakehouse.scan.stats import parse_stats

MAX_READ_THREADS = max(4, min(16, (os.cpu_count() or 2) * 2))


@dataclass(frozen=True, eq=False)
class Scan:
    """An immutable read plan over one snapshot.

    Example:
        >>> scan = Scan(snapshot).select(["id"]).filter("id > 10")   # doctest: +SKIP
        >>> scan.files().num_rows, scan.to_arrow().num_rows           # doctest: +SKIP
    """

    snapshot: Snapshot
    columns: tuple[str, ...] | None = None
    predicates: tuple[str, ...] = ()
    #: extra pruning-only predicates (e.g. translated from an engine's native expression)
    prune_exprs: tuple[Expr, ...] = ()

    def select(self, columns: Sequence[str] | None) -> Scan:
        if columns is not None:
            names = set(self.snapshot.arrow_schema.names)
            bad = [c for c in columns if c not in names]
            if bad:
                raise InvalidArgumentError(
                    f"unknown column(s) {bad}; the table has {self.snapshot.arrow_schema.names}"
                )
            columns = tuple(columns)
        return replace(self, columns=columns)

    def filter(self, sql: str) -> Scan:
        parse_predicate(sql)  # validate early: a bad predicate is the caller's error
        return replace(self, predicates=(*self.predicates, sql))

    def with_pruning(self, expr: Expr) -> Scan:
        """A scan that also prunes files with ``expr`` (rows are filtered by the caller)."""
        return replace(self, prune_exprs=(*self.prune_exprs, expr))

    @cached_property
    def expr(self) -> Expr | None:
        parts = tuple(parse_predicate(p) for p in self.predicates) + self.prune_exprs
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else And(parts)

    @property
    def output_schema(self) -> pa.Schema:
        schema = self.snapshot.arrow_schema
        if self.columns is None:
            return schema
        return pa.schema([schema.field(c) for c in self.columns])

    def partition_value_arrays(self, files: pa.Table) -> dict[str, pa.Array]:
        """Typed partition values per file, keyed by logical partition column name."""
        from lakehouse.log.partitions import parse_partition_values
        from lakehouse.log.schema import physical_name

        snap = self.snapshot
        out: dict[str, pa.Array] = {}
        if not snap.partition_columns:
            return out
        pv = files["partitionValues"].combine_chunks() if files.num_rows else None
        for name in snap.partition_columns:
            field = snap.schema.field(name)
            key = physical_name(field) if snap.column_mapping_mode != "none" else name
            if pv is None:
                raw = pa.array([], pa.string())
            else:
                raw = pc.map_lookup(pv, pa.scalar(key, pa.string()), "first")
                if snap.column_mapping_mode != "none" and key != name:
                    # tolerate writers that used logical names in partitionValues
                    alt = pc.map_lookup(pv, pa.scalar(name, pa.string()), "first")
                    raw = pc.coalesce(raw, alt)
            out[name] = parse_partition_values(raw, field.type)
        return out

    def files(self) -> pa.Table:
        """Active files that may hold matching rows (all when there is no predicate)."""
        files = self.snapshot.files
        expr = self.expr
        if expr is None or files.num_rows == 0:
            return files
        from lakehouse.expressions import columns_of
        from lakehouse.log.schema import physical_name

        snap = self.snapshot
        cols = columns_of(expr)
        pvals = {k: v for k, v in self.partition_value_arrays(files).items() if k in cols}
        arrow_schema = snap.arrow_schema
        types = {c: arrow_schema.field(c).type for c in cols if c in arrow_schema.names}
        stat_cols = {}
        for c in cols:
            if c in types and c not in pvals:
                field = snap.schema.field(c)
                key = physical_name(field) if snap.column_mapping_mode != "none" else c
                stat_cols[c] = (key, types[c])
        stats = parse_stats(files["stats"], stat_cols) if stat_cols else None
        mask = prune_mask(expr, files.num_rows, pvals, stats, types)
        return files.filter(mask)

    def read_spec(self, columns: Sequence[str], row_filter: bool = False) -> ReadSpec:
        """How each file of this scan is turned into ``columns`` (logical names)."""
        from lakehouse.log.schema import arrow_read_schema, physical_name

        snap = self.snapshot
        mode = snap.column_mapping_mode
        schema = snap.schema
        logical = snap.arrow_schema
        output = pa.schema([logical.field(c) for c in columns])
        physical = arrow_read_schema(schema, physical=mode != "none")
        parts = set(snap.partition_columns)
        data_cols = [c for c in columns if c not in parts]
        phys_names = [physical_name(schema.field(c)) if mode != "none" else c for c in data_cols]
        data_physical = pa.schema([physical.field(n) for n in phys_names])
        pushdown = None
        if row_filter and self.expr is not None and mode == "none":
            from lakehouse.scan.pushdown import to_dataset_filter

            types = {n: logical.field(n).type for n in data_cols}
            pushdown = to_dataset_filter(self.expr, types, {n: n for n in data_cols})
        return ReadSpec(
            pushdown=pushdown,
            output=output,
            data_physical=data_physical,
            physical_to_logical=dict(zip(phys_names, data_cols, strict=True)),
            match_by_id=mode == "id",
            needs_rename=mode != "none",
            schema=schema,
        )

    def tasks(self, files: pa.Table | None = None) -> list[FileTask]:
        """One read task per (pruned) file."""
        files = self.files() if files is None else files
        if files.num_rows == 0:
            return []
        pvals = self.partition_value_arrays(files)
        paths = files["canonical_path"].to_pylist()
        dvs = files["deletionVector"].to_pylist()
        per_col = {k: v for k, v in pvals.items()}
        tasks = []
        for i, (p, dv) in enumerate(zip(paths, dvs, strict=True)):
            tasks.append(FileTask(p, dv, {k: v[i] for k, v in per_col.items()}))
        return tasks

    def iter_tables(self, columns: Sequence[str] | None = None,
                    row_filter: bool = False) -> Iterator[pa.Table]:
        """Per-file tables in the projected logical schema, read with a bounded thread pool.

        With ``row_filter`` the scan's predicate is also pushed into the Parquet reader (row groups
        skipped, non-matching rows dropped where it can tell); without it every row of each file
        is returned, which rewrites (DELETE, UPDATE, MERGE) rely on.
        """
        cols = list(columns) if columns is not None else (
            list(self.columns) if self.columns is not None else self.snapshot.arrow_schema.names)
        spec = self.read_spec(cols, row_filter)
        tasks = self.tasks()
        storage = self.snapshot.storage
        if len(tasks) <= 1:
            for t in tasks:
                yield read_file(storage, t, spec)
            return
        with ThreadPoolExecutor(min(MAX_READ_THREADS, len(tasks))) as pool:
            yield from pool.map(lambda t: read_file(storage, t, spec), tasks)

    def to_arrow(self, columns: Sequence[str] | None = None, row_filter: bool = False) -> pa.Table:
        """Rows of the pruned files; the caller's engine applies the exact row filter.

        ``row_filter=True`` lets the Parquet reader drop rows the predicate surely excludes.
        """
        cols = list(columns) if columns is not None else None
        schema = self.read_spec(cols if cols is not None else (
            list(self.columns) if self.columns is not None else self.snapshot.arrow_schema.names)).output
        return concat(list(self.iter_tables(cols, row_filter)), schema)
