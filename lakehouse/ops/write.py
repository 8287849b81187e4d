"""``lakehouse.write`` and ``Table.create``: data in, a committed Delta version out.

``input -> Arrow stream -> schema enforcement (per batch) -> Parquet data files -> add actions ->
one Transaction -> commit``. Nothing becomes visible before the commit; if anything fails before
it, the table is unchanged (written files are deleted where possible, otherwise they are orphans
that ``vacuum`` removes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

import pyarrow as pa

from lakehouse.errors import (
    InvalidArgumentError,
    LakehouseError,
    SchemaMismatchError,
    TableExistsError,
    TableNotFoundError,
)
from lakehouse.io.parquet import WriterOptions, write_data_files
from lakehouse.io.storage import Storage
from lakehouse.log.actions import Metadata
from lakehouse.log.features import ensure_writable, protocol_for
from lakehouse.log.paths import LOG_DIR
from lakehouse.log.schema import (
    StructType,
    assign_column_mapping,
    column_mapping_mode,
)
from lakehouse.log.snapshot import Snapshot
from lakehouse.ops.enforce import BatchConformer, evolved_metadata, reconcile_schema
from lakehouse.ops.rewrite import adds_from_written, delete_rows
from lakehouse.txn.transaction import Transaction, removes_for_files

if TYPE_CHECKING:
    from lakehouse.table import Table

Mode = Literal["error", "append", "overwrite", "ignore"]
_MODES = ("error", "append", "overwrite", "ignore")


def load_or_none(storage: Storage) -> Snapshot | None:
    try:
        return Snapshot.load(storage)
    except TableNotFoundError:
        return None


def ensure_empty_location(storage: Storage) -> None:
    """Refuse to create a table over existing non-Delta files (they would be silently ignored)."""
    try:
        entries = storage.list_recursive("")
    except (FileNotFoundError, OSError):
        return
    foreign = [e.path for e in entries if not e.path.startswith(LOG_DIR + "/")]
    if foreign:
        raise TableNotFoundError(
            f"{storage.root} is not a Delta table but already holds {len(foreign)} file(s) "
            f"(e.g. {foreign[0]!r}); refusing to create a table over them. Write to an empty "
            "location, or convert the files to Delta first."
        )


def _progress_bar(enabled: bool, description: str) -> Any:
    if not enabled:
        return None
    from rich.progress import Progress, SpinnerColumn, TextColumn

    return Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"),
                    TextColumn("{task.completed:,} rows"))


def write(
    uri: str,
    data: Any,
    mode: Mode = "error",
    *,
    partition_by: str | Sequence[str] | None = None,
    where: str | None = None,
    schema_mode: Literal["merge", "overwrite"] | None = None,
    properties: Mapping[str, str] | None = None,
    name: str | None = None,
    description: str | None = None,
    storage_options: Mapping[str, str] | None = None,
    engine: Any = None,
    app_id: str | None = None,
    app_version: int | None = None,
    progress: bool = False,
    target_file_size: int | None = None,
    operation: str = "WRITE",
) -> Table:
    """Write ``data`` to the Delta table at ``uri`` (creating it when needed); return the table.

    Args:
        data: pyarrow Table/RecordBatch/RecordBatchReader (streamed), polars DataFrame/LazyFrame,
            pandas DataFrame, or any Arrow C stream.
        mode: ``"error"`` (create; fail if it exists), ``"append"``, ``"overwrite"`` (replace all
            rows, or those matching ``where``), ``"ignore"`` (do nothing if it exists).
        partition_by: partition columns for a new table (must match an existing table's).
        where: overwrite only: replace just the rows matching this SQL predicate (replaceWhere);
            every written row must match it.
        schema_mode: ``"merge"`` adds new columns; ``"overwrite"`` replaces the schema (overwrite).
        properties: table properties (``delta.*``) for a new table.
        app_id, app_version: idempotent writes; a version already committed by ``app_id`` is skipped.

    Example:
        >>> import lakehouse, pyarrow as pa
        >>> t = lakehouse.write("memory://doc-write", pa.table({"id": [1, 2]}))
        >>> t = lakehouse.write("memory://doc-write", pa.table({"id": [3]}), mode="append")
        >>> t.version, t.to_arrow().num_rows
        (1, 3)

    Raises:
        TableExistsError, SchemaMismatchError, ConstraintViolationError, InvalidArgumentError,
        CommitConflictError (a subclass naming the conflict).
    """
    from lakehouse.engine import get_engine
    from lakehouse.table import Table

    if mode not in _MODES:
        raise InvalidArgumentError(f"mode must be one of {_MODES}, got {mode!r}")
    if where is not None and mode != "overwrite":
        raise InvalidArgumentError("where= is only valid with mode='overwrite'")
    if schema_mode not in (None, "merge", "overwrite"):
        raise InvalidArgumentError(f"schema_mode must be None, 'merge' or 'overwrite', got {schema_mode!r}")
    if schema_mode == "overwrite" and mode != "overwrite":
        raise InvalidArgumentError("schema_mode='overwrite' requires mode='overwrite'")
    if (app_id is None) != (app_version is None):
        raise InvalidArgumentError("pass both app_id and app_version for an idempotent write")
    eng = get_engine(engine)
    parts = [partition_by] if isinstance(partition_by, str) else list(partition_by or [])
    storage = Storage.for_uri(uri, storage_options)
    snap = load_or_none(storage)

    if snap is not None and mode == "error":
        raise TableExistsError(
            f"a Delta table already exists at {storage.root} (version {snap.version}); use "
            "mode='append' or mode='overwrite'"
        )
    if snap is not None and mode == "ignore":
        return Table(snap, eng)
    if snap is not None and app_id is not None and app_version is not None:
        done = snap.app_version(app_id)
        if done is not None and done >= app_version:
            return Table(snap, eng)  # already applied: exactly-once
    if snap is not None:
        ensure_writable(snap.protocol, storage.root)  # before any data file is written
    reader = eng.to_arrow_stream(data)
    if snap is None:
        ensure_empty_location(storage)
        return Table(_create(storage, reader, parts, properties, name, description, eng,
                             app_id, app_version, progress, target_file_size, operation), eng)
    if parts and parts != snap.partition_columns and schema_mode != "overwrite":
        raise SchemaMismatchError(
            f"partition_by={parts} does not match the table's partition columns "
            f"{snap.partition_columns}"
        )
    return Table(_write_existing(storage, snap, reader, mode, parts, where, schema_mode, eng,
                                 app_id, app_version, progress, target_file_size), eng)


def new_table_metadata(schema: StructType, parts: list[str], properties: Mapping[str, str] | None,
                  name: str | None, description: str | None) -> Metadata:
    config = {str(k): str(v) for k, v in (properties or {}).items()}
    missing = [p for p in parts if p not in schema.field_names]
    if missing:
        raise SchemaMismatchError(
            f"partition column(s) {missing} are not in the data; columns are {schema.field_names}"
        )
    mode = config.get("delta.columnMapping.mode", "none")
    if mode not in ("none", "name", "id"):
        raise InvalidArgumentError(f"delta.columnMapping.mode must be none, name or id, not {mode!r}")
    if mode != "none":
        schema, max_id = assign_column_mapping(schema, 0)
        config["delta.columnMapping.maxColumnId"] = str(max_id)
    return Metadata.new(schema.to_json(), tuple(parts), config, name, description)


def _create(storage: Storage, reader: pa.RecordBatchReader, parts: list[str],
            properties: Mapping[str, str] | None, name: str | None, description: str | None,
            eng: Any, app_id: str | None, app_version: int | None, progress: bool,
            target_file_size: int | None, operation: str) -> Snapshot:
    schema = reconcile_schema(None, reader.schema, None)
    metadata = new_table_metadata(schema, parts, properties, name, description)
    protocol = protocol_for(metadata.schema_string, metadata.configuration)
    table_schema = StructType.from_json(metadata.schema_string)
    txn = Transaction(storage, None, operation, {
        "mode": "ErrorIfExists", "partitionBy": parts,
        **({"properties": dict(metadata.configuration)} if metadata.configuration else {})})
    txn.set_protocol(protocol)
    txn.set_metadata(metadata)
    written = _write_files(storage, reader, table_schema, metadata, eng, None, progress,
                           target_file_size)
    txn.add_files(adds_from_written(written))
    if app_id is not None and app_version is not None:
        txn.set_app_transaction(app_id, app_version)
    result = _commit(txn, _metrics(written), storage, [w.path for w in written])
    return Snapshot.load(storage, version=result.version)


def _write_files(storage: Storage, reader: pa.RecordBatchReader, schema: StructType,
                 metadata: Metadata, eng: Any, where: str | None, progress: bool,
                 target_file_size: int | None) -> list[Any]:
    conformer = BatchConformer.for_table(schema, metadata.configuration, eng, where)
    overrides = {"target_file_size": target_file_size} if target_file_size else {}
    options = WriterOptions.from_configuration(metadata.configuration, **overrides)
    cm = column_mapping_mode(metadata.configuration) != "none"
    bar = _progress_bar(progress, "writing")
    if bar is None:
        return write_data_files(storage, conformer.conform_all(iter(reader)), schema=schema,
                                partition_columns=list(metadata.partition_columns),
                                column_mapping=cm, options=options)
    with bar:
        task = bar.add_task("writing", total=None)
        return write_data_files(storage, conformer.conform_all(iter(reader)), schema=schema,
                                partition_columns=list(metadata.partition_columns),
                                column_mapping=cm, options=options,
                                progress=lambda n: bar.advance(task, n))


def _metrics(written: list[Any]) -> dict[str, int]:
    return {"numFiles": len(written), "numOutputRows": sum(w.num_records for w in written),
            "numOutputBytes": sum(w.size for w in written)}


def _write_existing(storage: Storage, snap: Snapshot, reader: pa.RecordBatchReader, mode: str,
                    parts: list[str], where: str | None, schema_mode: str | None, eng: Any,
                    app_id: str | None, app_version: int | None, progress: bool,
                    target_file_size: int | None) -> Snapshot:
    new_schema = reconcile_schema(snap.schema, reader.schema, schema_mode)
    metadata = snap.metadata
    changed = False
    if schema_mode == "overwrite":
        metadata = new_table_metadata(new_schema, parts or snap.partition_columns,
                                 snap.configuration, snap.metadata.name, snap.metadata.description)
        metadata = metadata.with_(id=snap.metadata.id, created_time=snap.metadata.created_time)
        changed = True
    elif (evolved := evolved_metadata(snap, new_schema)) is not None:
        metadata = evolved
        changed = True
    table_schema = StructType.from_json(metadata.schema_string)
    params: dict[str, Any] = {"mode": "Overwrite" if mode == "overwrite" else "Append",
                              "partitionBy": list(metadata.partition_columns)}
    if where:
        params["predicate"] = where
    txn = Transaction(storage, snap, "WRITE", params)
    if changed:
        txn.set_metadata(metadata)
        new_proto = protocol_for(metadata.schema_string, metadata.configuration, snap.protocol)
        if new_proto != snap.protocol:
            txn.set_protocol(new_proto)
    removed_rows = 0
    rewritten: list[Any] = []
    if mode == "overwrite":
        if where is None:
            txn.read_whole_table()
            txn.remove_files(removes_for_files(snap.files))
        else:
            rw = delete_rows(snap, where, eng)
            txn.read_files(rw.read_paths)
            txn.read_predicate(could_match(snap, where))
            txn.remove_files(rw.removes)
            txn.add_files(rw.adds)
            rewritten = rw.adds
            removed_rows = rw.num_deleted_rows
    try:
        written = _write_files(storage, reader, table_schema, metadata, eng, where, progress,
                               target_file_size)
    except BaseException:  # e.g. a row outside where=: drop the copies delete_rows wrote
        with contextlib.suppress(Exception):
            storage.delete([unquote(a.path) for a in rewritten])
        raise
    txn.add_files(adds_from_written(written))
    if app_id is not None and app_version is not None:
        txn.set_app_transaction(app_id, app_version)
    metrics = _metrics(written)
    if mode == "overwrite":
        metrics["numRemovedFiles"] = len(txn.removes)
        if where is not None:
            metrics["numDeletedRows"] = removed_rows
    new_files = [w.path for w in written] + [unquote(a.path) for a in rewritten]
    result = _commit(txn, metrics, storage, new_files)
    return Snapshot.load(storage, version=result.version)


def _commit(txn: Transaction, metrics: Mapping[str, Any], storage: Storage,
            new_files: list[str]) -> Any:
    """Commit; when the commit definitely did not happen (a conflict, a refused protocol...),
    delete the data files this write created so no orphans are left behind."""
    try:
        return txn.commit(metrics)
    except LakehouseError:
        with contextlib.suppress(Exception):  # best effort: vacuum removes orphans anyway
            storage.delete(new_files)
        raise


def could_match(snap: Snapshot, where: str) -> Any:
    """Read predicate of a replaceWhere: could any of these newly added files hold rows matching
    ``where``? (Pruned like a scan: partition values, then stats; unknown means yes.)"""
    from dataclasses import replace

    from lakehouse.scan import Scan

    def predicate(adds: pa.Table) -> bool:
        return Scan(replace(snap, files=adds)).filter(where).files().num_rows > 0

    return predicate


def create(uri: str, schema: pa.Schema | StructType, *, partition_by: Sequence[str] | None = None,
           properties: Mapping[str, str] | None = None, name: str | None = None,
           description: str | None = None, storage_options: Mapping[str, str] | None = None,
           mode: Literal["error", "ignore"] = "error", engine: Any = None) -> Table:
    """Create an empty table (version 0) with ``schema``."""
    arrow = schema if isinstance(schema, pa.Schema) else _to_arrow(schema)
    return write(uri, arrow.empty_table(), mode=mode, partition_by=partition_by,
                 properties=properties, name=name, description=description,
                 storage_options=storage_options, engine=engine, operation="CREATE TABLE")


def _to_arrow(schema: StructType) -> pa.Schema:
    from lakehouse.log.schema import to_arrow

    return to_arrow(schema)
