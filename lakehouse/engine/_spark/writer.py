"""Writing a Spark DataFrame into a lakehouse table: files from the executors, one commit.

``df.write.format("lakehouse").mode("append"|"overwrite").save(uri)``:

1. driver (:func:`plan_write`): read the latest snapshot (or none), decide the table schema after
   this write (enforcement / ``mergeSchema`` / ``overwriteSchema``, column-mapping names for new
   columns) and ship that plan to the executors;
2. executors (:meth:`LakehouseWriter.write`): conform each Arrow batch to the table schema (casts,
   NOT NULL / CHECK / generated columns, ``replaceWhere``) and write Parquet data files; the list of
   written files is the commit message;
3. driver (:meth:`LakehouseWriter.commit`): ONE lakehouse :class:`Transaction` against the snapshot
   read in step 1 (so concurrent writers are checked by Delta's conflict rules) adding the files,
   and for overwrite removing the current ones. If a task fails, :meth:`LakehouseWriter.abort`
   deletes the files written so far and the table is unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
from pyspark.sql.datasource import DataSourceArrowWriter, WriterCommitMessage

from lakehouse.errors import InvalidArgumentError, LakehouseError, SchemaMismatchError
from lakehouse.io.parquet import WrittenFile

from . import options as opt
from .convert import data_arrow_schema


@dataclass
class LakehouseCommitMessage(WriterCommitMessage):
    """The data files one Spark task wrote."""

    files: list[WrittenFile] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WritePlan:
    """Everything executors and the commit need, in picklable form (no Snapshot, no Metadata)."""

    uri: str
    storage_options: dict[str, str]
    read_version: int | None          # None: this write creates the table
    overwrite: bool
    schema_json: str                  # the table schema after this write (with mapping metadata)
    partition_columns: tuple[str, ...]
    configuration: dict[str, str]
    metadata_changed: bool
    where: str | None = None          # replaceWhere
    app_id: str | None = None
    app_version: int | None = None
    skip: bool = False                # idempotent write already applied: write nothing


def plan_write(options: Any, spark_schema: Any, overwrite: bool) -> WritePlan:
    """Step 1 (driver): validate the write against the table as it is now."""
    from lakehouse.log.features import ensure_writable
    from lakehouse.ops.enforce import evolved_metadata, reconcile_schema
    from lakehouse.ops.write import ensure_empty_location, load_or_none, new_table_metadata

    storage = opt.storage_for(options)
    data_schema = data_arrow_schema(spark_schema)
    parts = opt.partition_by(options)
    where = opt.as_str(options, "replaceWhere")
    merge = opt.as_bool(options, "mergeSchema")
    overwrite_schema = opt.as_bool(options, "overwriteSchema")
    if overwrite_schema and not overwrite:
        raise InvalidArgumentError("overwriteSchema=true requires mode('overwrite')")
    if where is not None and not overwrite:
        raise InvalidArgumentError("replaceWhere is only valid with mode('overwrite')")
    schema_mode = "overwrite" if overwrite_schema else ("merge" if merge else None)
    app_id = opt.as_str(options, "txnAppId")
    app_version = opt.as_int(options, "txnVersion")
    if (app_id is None) != (app_version is None):
        raise InvalidArgumentError("pass both txnAppId and txnVersion for an idempotent write")
    common: dict[str, Any] = {"uri": storage.root, "storage_options": dict(storage.storage_options),
              "overwrite": overwrite, "app_id": app_id, "app_version": app_version}

    snap = load_or_none(storage)
    if snap is None:
        ensure_empty_location(storage)
        schema = reconcile_schema(None, data_schema, None)
        md = new_table_metadata(schema, parts, opt.table_properties(options), None, None)
        return WritePlan(read_version=None, schema_json=md.schema_string,
                         partition_columns=tuple(md.partition_columns),
                         configuration=dict(md.configuration), metadata_changed=True, **common)

    if app_id is not None and app_version is not None:
        done = snap.app_version(app_id)
        if done is not None and done >= app_version:
            return WritePlan(read_version=snap.version, schema_json=snap.metadata.schema_string,
                             partition_columns=tuple(snap.partition_columns),
                             configuration=dict(snap.configuration), metadata_changed=False,
                             skip=True, **common)
    ensure_writable(snap.protocol, storage.root)
    if parts and parts != snap.partition_columns and schema_mode != "overwrite":
        raise SchemaMismatchError(f"partitionBy={parts} does not match the table's partition "
                                  f"columns {snap.partition_columns}")
    new_schema = reconcile_schema(snap.schema, data_schema, schema_mode)
    config = dict(snap.configuration)
    schema_json, part_cols, changed = snap.metadata.schema_string, snap.partition_columns, False
    if schema_mode == "overwrite":
        md = new_table_metadata(new_schema, parts or snap.partition_columns, config, None, None)
        schema_json, part_cols = md.schema_string, list(md.partition_columns)
        config = dict(md.configuration)
        changed = True
    elif (evolved := evolved_metadata(snap, new_schema)) is not None:
        schema_json, config, changed = evolved.schema_string, dict(evolved.configuration), True
    return WritePlan(read_version=snap.version, schema_json=schema_json,
                     partition_columns=tuple(part_cols), configuration=config,
                     metadata_changed=changed, where=where, **common)


class LakehouseWriter(DataSourceArrowWriter):
    """Steps 2 and 3 (see the module docstring)."""

    def __init__(self, plan: WritePlan) -> None:
        self.plan = plan

    def _storage(self) -> Any:
        from lakehouse.io.storage import Storage

        return Storage.for_uri(self.plan.uri, self.plan.storage_options)

    # ------------------------------------------------------------------ executors
    def write(self, iterator: Iterator[pa.RecordBatch]) -> LakehouseCommitMessage:
        from lakehouse.engine import get_engine
        from lakehouse.io.parquet import WriterOptions, write_data_files
        from lakehouse.log.schema import StructType, column_mapping_mode
        from lakehouse.ops.enforce import BatchConformer

        p = self.plan
        if p.skip:
            return LakehouseCommitMessage([])
        schema = StructType.from_json(p.schema_json)
        conformer = BatchConformer.for_table(schema, p.configuration, get_engine("polars"),
                                             p.where if p.read_version is not None else None)
        files = write_data_files(
            self._storage(), conformer.conform_all(iterator), schema=schema,
            partition_columns=list(p.partition_columns),
            column_mapping=column_mapping_mode(p.configuration) != "none",
            options=WriterOptions.from_configuration(p.configuration))
        return LakehouseCommitMessage(files)

    # --------------------------------------------------------------------- driver
    def commit(self, messages: list[WriterCommitMessage | None]) -> None:
        p = self.plan
        if p.skip:
            return
        written = [f for m in messages if isinstance(m, LakehouseCommitMessage) for f in m.files]
        new_files = [w.path for w in written]
        storage = self._storage()
        try:
            txn, rewritten = self._transaction(storage, written)
        except BaseException:
            with contextlib.suppress(Exception):
                storage.delete(new_files)
            raise
        new_files += [unquote(a.path) for a in rewritten]
        metrics = {"numFiles": len(written), "numOutputRows": sum(w.num_records for w in written),
                   "numOutputBytes": sum(w.size for w in written)}
        if p.overwrite and p.read_version is not None:
            metrics["numRemovedFiles"] = len(txn.removes)
        try:
            txn.commit(metrics)
        except LakehouseError:
            with contextlib.suppress(Exception):  # the commit surely did not happen
                storage.delete(new_files)
            raise

    def _transaction(self, storage: Any, written: list[WrittenFile]) -> tuple[Any, list[Any]]:
        from lakehouse.engine import get_engine
        from lakehouse.log.actions import Metadata
        from lakehouse.log.features import protocol_for
        from lakehouse.log.snapshot import Snapshot
        from lakehouse.ops.rewrite import adds_from_written, delete_rows
        from lakehouse.ops.write import could_match
        from lakehouse.txn.transaction import Transaction, removes_for_files

        p = self.plan
        params: dict[str, Any] = {"mode": "Overwrite" if p.overwrite else "Append",
                                  "partitionBy": list(p.partition_columns)}
        if p.where:
            params["predicate"] = p.where
        rewritten: list[Any] = []
        if p.read_version is None:
            md = Metadata.new(p.schema_json, p.partition_columns, p.configuration)
            txn = Transaction(storage, None, "WRITE", params)
            txn.set_protocol(protocol_for(md.schema_string, md.configuration))
            txn.set_metadata(md)
        else:
            snap = Snapshot.load(storage, version=p.read_version)
            txn = Transaction(storage, snap, "WRITE", params)
            if p.metadata_changed:
                md = snap.metadata.with_(schema_string=p.schema_json, configuration=p.configuration,
                                         partition_columns=p.partition_columns)
                txn.set_metadata(md)
                proto = protocol_for(md.schema_string, md.configuration, snap.protocol)
                if proto != snap.protocol:
                    txn.set_protocol(proto)
            if p.overwrite and p.where is None:
                txn.read_whole_table()
                txn.remove_files(removes_for_files(snap.files))
            elif p.overwrite and p.where is not None:
                rw = delete_rows(snap, p.where, get_engine("polars"))
                txn.read_files(rw.read_paths)
                txn.read_predicate(could_match(snap, p.where))
                txn.remove_files(rw.removes)
                txn.add_files(rw.adds)
                rewritten = rw.adds
        txn.add_files(adds_from_written(written))
        if p.app_id is not None and p.app_version is not None:
            txn.set_app_transaction(p.app_id, p.app_version)
        return txn, rewritten

    def abort(self, messages: list[WriterCommitMessage | None]) -> None:
        """A task failed: delete every file the successful tasks wrote (failed tasks clean up
        after themselves in ``write_data_files``); the log was never touched."""
        paths = [f.path for m in messages if isinstance(m, LakehouseCommitMessage) for f in m.files]
        if paths:
            with contextlib.suppress(Exception):
                self._storage().delete(paths)


__all__ = ["LakehouseCommitMessage", "LakehouseWriter", "WritePlan", "plan_write"]
