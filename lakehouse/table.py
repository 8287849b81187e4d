"""``Table``: the user's handle on one Delta table.

A ``Table`` holds one immutable :class:`Snapshot` and an engine. Reads use that snapshot (a table
opened with ``version=``/``timestamp=`` stays at it); write operations commit against the latest
version and move the handle to the version they committed.

Example:
    >>> import lakehouse, pyarrow as pa
    >>> t = lakehouse.write("memory://doc-table", pa.table({"id": [1, 2, 3]}))
    >>> t.version, t.to_arrow(filter="id > 1").num_rows
    (0, 2)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.engine import Engine, get_engine
from lakehouse.errors import InvalidArgumentError
from lakehouse.io.storage import Storage
from lakehouse.log.actions import Metadata, Protocol
from lakehouse.log.schema import strip_field_metadata
from lakehouse.log.snapshot import Snapshot
from lakehouse.scan import Scan

if TYPE_CHECKING:
    import polars as pl

    from lakehouse.log.checkpoint import CheckpointInfo
    from lakehouse.maintenance import OptimizeMetrics, RestoreMetrics, VacuumResult
    from lakehouse.merge.builder import MergeBuilder
    from lakehouse.merge.metrics import DeleteMetrics, UpdateMetrics
    from lakehouse.ops.alter import TableAlterer


def _strip_delta_metadata(schema: pa.Schema) -> pa.Schema:
    """Drop protocol-internal field metadata (column mapping ids, physical names...)."""
    return strip_field_metadata(
        schema, keep=lambda k: not k.startswith((b"delta.columnMapping", b"PARQUET:field_id")))


class Table:
    """A Delta table at one version, with the operations users run on it."""

    def __init__(self, snapshot: Snapshot, engine: str | Engine | None = None,
                 pinned: bool = False) -> None:
        self._snapshot = snapshot
        self._engine_spec = engine  # resolved on first use: opening a table imports no engine
        self._pinned = pinned

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        uri: str,
        version: int | None = None,
        timestamp: datetime | str | None = None,
        storage_options: Mapping[str, str] | None = None,
        engine: str | Engine | None = None,
    ) -> Table:
        """Open the table at ``uri`` at its latest version, or at ``version`` / ``timestamp``.

        Raises:
            TableNotFoundError: nothing at ``uri`` is a Delta table.
            VersionNotFoundError: the version/timestamp is outside the table's history.
            UnsupportedFeatureError: the table needs a reader feature we do not support.
        """
        storage = Storage.for_uri(uri, storage_options)
        snap = Snapshot.load(storage, version=version, timestamp=timestamp)
        return cls(snap, engine, pinned=version is not None or timestamp is not None)

    # --------------------------------------------------------------- properties
    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def uri(self) -> str:
        return self._snapshot.storage.root

    @property
    def storage(self) -> Storage:
        return self._snapshot.storage

    @property
    def engine(self) -> Engine:
        return get_engine(self._engine_spec)

    @property
    def _engine(self) -> Engine:
        return get_engine(self._engine_spec)

    @property
    def version(self) -> int:
        return self._snapshot.version

    @property
    def schema(self) -> pa.Schema:
        """The table schema as Arrow, logical column names."""
        return _strip_delta_metadata(self._snapshot.arrow_schema)

    @property
    def partition_columns(self) -> list[str]:
        return self._snapshot.partition_columns

    @property
    def protocol(self) -> Protocol:
        return self._snapshot.protocol

    @property
    def metadata(self) -> Metadata:
        return self._snapshot.metadata

    @property
    def properties(self) -> dict[str, str]:
        return dict(self._snapshot.configuration)

    @property
    def alter(self) -> TableAlterer:
        """Schema, property and constraint changes (``t.alter.rename_column("a", "b")``...)."""
        from lakehouse.ops.alter import TableAlterer

        return TableAlterer(self)

    def __repr__(self) -> str:
        return f"Table({self.uri!r}, version={self.version})"

    # --------------------------------------------------------------------- reads
    def files(self, filter: str | None = None) -> pa.Table:
        """Active data files (one row per ``add``); with ``filter``, only files that may match."""
        scan = Scan(self._snapshot)
        if filter is not None:
            scan = scan.filter(filter)
        return scan.files()

    def _scan(self, columns: Sequence[str] | None, filter: Any) -> tuple[Scan, list[str] | None]:
        scan = Scan(self._snapshot)
        if columns is not None:
            scan = scan.select(list(columns))
        read_cols: list[str] | None = None
        if filter is not None:
            if isinstance(filter, str):
                scan = scan.filter(filter)
                from lakehouse.expressions import referenced_columns

                needed = referenced_columns(filter)
            else:
                from lakehouse.engine._polars.lazy import _to_ast

                scan = scan.with_pruning(_to_ast(filter))
                needed = set(filter.meta.root_names())
            names = self._snapshot.arrow_schema.names
            unknown = sorted(n for n in needed if n not in names)
            if unknown:
                raise InvalidArgumentError(
                    f"filter references unknown column(s) {unknown}; the table has {names}"
                )
            if columns is not None:
                read_cols = list(dict.fromkeys([*columns, *[n for n in names if n in needed]]))
        return scan, read_cols

    def to_arrow(self, columns: Sequence[str] | None = None, filter: Any = None) -> pa.Table:
        """Read rows as a pyarrow Table.

        Args:
            columns: logical column names to return (all when None).
            filter: a SQL predicate string (``"id > 5 and day = '2024-01-01'"``) or a polars
                expression; files that cannot match are skipped before reading.
        """
        scan, read_cols = self._scan(columns, filter)
        table = scan.to_arrow(read_cols, row_filter=True)
        if filter is not None:
            table = table.filter(self._engine.filter_mask(table, filter))
            if columns is not None:
                table = table.select(list(columns))
        if table.num_columns == 0:  # cast() of a column-less table would drop the row count
            return table
        return table.cast(_strip_delta_metadata(table.schema))

    def to_polars(self, columns: Sequence[str] | None = None, filter: Any = None) -> pl.DataFrame:
        """Read rows as a polars DataFrame (same arguments as :meth:`to_arrow`)."""
        import polars as pl

        df = pl.from_arrow(self.to_arrow(columns, filter))
        assert isinstance(df, pl.DataFrame)
        return df

    def to_pandas(self, columns: Sequence[str] | None = None, filter: Any = None) -> Any:
        return self.to_arrow(columns, filter).to_pandas()

    def scan(self) -> pl.LazyFrame:
        """A lazy polars frame; projections and filters push down into file pruning."""
        from lakehouse.engine._polars.lazy import lazy_frame

        return lazy_frame(Scan(self._snapshot))

    def count(self, filter: str | None = None) -> int:
        if filter is None:
            return sum(t.num_rows for t in Scan(self._snapshot).iter_tables([]))
        return self.to_arrow(filter=filter).num_rows

    def history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Commits newest first: version, timestamp (ms), operation, parameters, metrics."""
        from lakehouse.log.history import read_history

        return read_history(self.storage, limit, up_to=self.version)

    # -------------------------------------------------------------------- writes
    def _latest_for_write(self) -> Snapshot:
        """Writes commit against the latest version; a time-travelled handle cannot write."""
        if self._pinned:
            raise InvalidArgumentError(
                f"this Table was opened at version {self.version} (time travel) and is read-only; "
                "open it without version=/timestamp= to write, or use restore()"
            )
        return Snapshot.load(self.storage)

    def _advance(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def refresh(self) -> Table:
        """Move this handle to the latest version (no-op for a time-travelled handle)."""
        if not self._pinned:
            self._snapshot = Snapshot.load(self.storage)
        return self

    @classmethod
    def create(cls, uri: str, schema: Any, partition_by: Sequence[str] | None = None,
               properties: Mapping[str, str] | None = None, name: str | None = None,
               description: str | None = None, storage_options: Mapping[str, str] | None = None,
               mode: str = "error", engine: str | Engine | None = None) -> Table:
        """Create an empty table at ``uri`` (version 0) with ``schema`` (pyarrow.Schema).

        Example:
            >>> import pyarrow as pa
            >>> t = Table.create("memory://doc-create", pa.schema([("id", pa.int64())]))
            >>> t.version, t.to_arrow().num_rows
            (0, 0)
        """
        from lakehouse.ops.write import create

        return create(uri, schema, partition_by=partition_by, properties=properties, name=name,
                      description=description, storage_options=storage_options,
                      mode=mode, engine=engine)  # type: ignore[arg-type]

    def append(self, data: Any, **kwargs: Any) -> Table:
        """Append ``data`` (see :func:`lakehouse.write` for keyword arguments); returns self."""
        from lakehouse.ops.write import write

        self._latest_for_write()
        t = write(self.uri, data, mode="append", storage_options=self.storage.storage_options,
                  engine=self._engine, **kwargs)
        self._advance(t.snapshot)
        return self

    def overwrite(self, data: Any, where: str | None = None, **kwargs: Any) -> Table:
        """Replace all rows (or those matching ``where``) with ``data``; returns self."""
        from lakehouse.ops.write import write

        self._latest_for_write()
        t = write(self.uri, data, mode="overwrite", where=where,
                  storage_options=self.storage.storage_options, engine=self._engine, **kwargs)
        self._advance(t.snapshot)
        return self

    # --------------------------------------------------------------- maintenance
    def vacuum(self, retention_hours: float | None = None, dry_run: bool = False,
               enforce_retention: bool = True, full: bool = False,
               progress: bool = False) -> VacuumResult:
        """Delete files no version inside the retention period needs (``.files`` lists them).

        ``retention_hours`` defaults to ``delta.deletedFileRetentionDuration`` (7 days); a shorter
        one is refused unless ``enforce_retention=False``. ``full=True`` lists the whole table
        and also removes orphans of failed writes. See :mod:`lakehouse.maintenance.vacuum`.
        """
        from lakehouse.maintenance.vacuum import vacuum

        res = vacuum(self._latest_for_write(), retention_hours, dry_run=dry_run,
                     enforce_retention=enforce_retention, full=full, progress=progress)
        if res.version is not None:
            self._advance(Snapshot.load(self.storage, version=res.version))
        return res

    def optimize(self, where: str | None = None, target_size: int | None = None,
                 z_order: Sequence[str] | str | None = None,
                 progress: bool = False) -> OptimizeMetrics:
        """Compact small files per partition (``where``: partition predicate), optionally
        Z-ordered by ``z_order`` columns. See :mod:`lakehouse.maintenance.optimize`."""
        from lakehouse.maintenance.optimize import optimize

        m = optimize(self._latest_for_write(), self._engine, where, target_size, z_order,
                     progress=progress)
        if m.version is not None:
            self._advance(Snapshot.load(self.storage, version=m.version))
        return m

    def restore(self, version: int | None = None,
                timestamp: datetime | str | None = None) -> RestoreMetrics:
        """Make the latest version hold what ``version`` (or ``timestamp``) held (RESTORE)."""
        from lakehouse.maintenance.restore import restore

        m = restore(self._latest_for_write(), version, timestamp)
        self._advance(Snapshot.load(self.storage, version=m.version) if m.version is not None
                      else Snapshot.load(self.storage))
        return m

    def checkpoint(self) -> CheckpointInfo:
        """Write a checkpoint of the latest version (readers then skip replaying its commits)."""
        from lakehouse.log.checkpoint import write_checkpoint

        snap = self._latest_for_write()
        info = write_checkpoint(self.storage, snap)
        self._advance(Snapshot.load(self.storage, version=snap.version))
        return info

    def cleanup_log(self) -> list[str]:
        """Delete log files older than ``delta.logRetentionDuration`` that no retained version
        needs (requires a checkpoint); returns their paths."""
        from lakehouse.log.checkpoint import cleanup_expired_logs

        return cleanup_expired_logs(self.storage, self._latest_for_write())

    def describe(self) -> dict[str, Any]:
        """Location, version, protocol, schema, partitioning, properties, file/size/row counts."""
        from lakehouse.maintenance.describe import describe

        return describe(self._snapshot)

    def set_properties(self, props: Mapping[str, Any]) -> Table:
        """Set table properties (SET TBLPROPERTIES); same as ``t.alter.set_properties``."""
        return self.alter.set_properties(props)

    def unset_properties(self, keys: Sequence[str] | str) -> Table:
        """Remove table properties (UNSET TBLPROPERTIES); same as ``t.alter.unset_properties``."""
        return self.alter.unset_properties(keys)

    def add_constraint(self, name: str, expr: str) -> Table:
        """Add a CHECK constraint after validating every existing row (ADD CONSTRAINT)."""
        return self.alter.add_constraint(name, expr)

    def drop_constraint(self, name: str) -> Table:
        """Drop a CHECK constraint (DROP CONSTRAINT)."""
        return self.alter.drop_constraint(name)

    # ------------------------------------------------------------ merge / update / delete
    def merge(self, source: Any, on: str | Sequence[str], source_alias: str = "source",
              target_alias: str = "target", schema_evolution: bool = False) -> MergeBuilder:
        """Start a MERGE of ``source`` (anything :func:`lakehouse.write` accepts) into this table.

        ``on`` is a SQL condition (``"target.id = source.id"``) or column name(s) equal on both
        sides (``"id"``, ``["id", "k"]``). Add ``when_*`` clauses, then ``.execute()``.
        """
        from lakehouse.merge.builder import MergeBuilder

        keys: Any = tuple(on) if isinstance(on, list | tuple) else on
        return MergeBuilder(self, source, keys, source_alias, target_alias, schema_evolution)

    def update(self, set: Mapping[str, Any], where: Any = None) -> UpdateMetrics:
        """Set columns (``{"x": "x + 1"}``, SQL or polars expressions) on rows matching ``where``
        (all rows when None); one commit."""
        from lakehouse.merge.dml import update

        return update(self, set, where)

    def delete(self, where: Any = None) -> DeleteMetrics:
        """Delete rows matching ``where`` (SQL or polars expression; all rows when None)."""
        from lakehouse.merge.dml import delete

        return delete(self, where)

    def changes(self, start_version: int, end_version: int | None = None) -> pa.Table:
        """Change data feed rows of versions ``start_version``..``end_version`` (default: this
        handle's version), with ``_change_type``, ``_commit_version``, ``_commit_timestamp``."""
        from lakehouse.merge.cdf import read_changes

        return read_changes(self._snapshot, start_version, end_version)
