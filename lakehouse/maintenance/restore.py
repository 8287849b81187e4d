"""RESTORE: make the latest version hold exactly what an older version held.

Nothing is copied or rewritten: the old version's files that are no longer active are added back
(``dataChange=true``, with their original statistics and deletion vectors), files active now but
not then are removed, and the old version's metadata (schema, properties) comes back too. The
protocol is never downgraded. Files are identified like in log replay, by path *and* deletion
vector, so a file whose deletion vector changed since is swapped back to its old vector.

A restore can only work while the old files still exist: if VACUUM deleted some of them, the
restore is refused up front, naming the missing files, and nothing is committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import InvalidArgumentError, VersionNotFoundError
from lakehouse.log.actions import Add
from lakehouse.log.features import ensure_writable, protocol_for
from lakehouse.log.replay import dv_unique_ids
from lakehouse.log.schema import column_mapping_mode
from lakehouse.log.snapshot import Snapshot
from lakehouse.maintenance.common import existing_files, is_inside_root, referenced_paths
from lakehouse.txn.transaction import Transaction, removes_for_files

__all__ = ["RestoreMetrics", "restore"]

# Properties that describe the table's history rather than its contents: kept as they are now.
_KEEP_CURRENT = ("delta.enableInCommitTimestamps", "delta.inCommitTimestampEnablementVersion",
                 "delta.inCommitTimestampEnablementTimestamp", "delta.columnMapping.maxColumnId")


@dataclass(frozen=True, slots=True)
class RestoreMetrics:
    """What a restore changed (Delta's metric names in :meth:`to_dict`).

    Attributes:
        restored_version: the version whose contents the table now has.
        version: the ``RESTORE`` version committed (None when the table already was that version).
    """

    restored_version: int
    num_restored_files: int = 0
    num_removed_files: int = 0
    restored_files_size: int = 0
    removed_files_size: int = 0
    table_size_after_restore: int = 0
    num_of_files_after_restore: int = 0
    version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "numRestoredFiles": self.num_restored_files,
            "numRemovedFiles": self.num_removed_files,
            "restoredFilesSize": self.restored_files_size,
            "removedFilesSize": self.removed_files_size,
            "tableSizeAfterRestore": self.table_size_after_restore,
            "numOfFilesAfterRestore": self.num_of_files_after_restore,
            "restoredVersion": self.restored_version,
            "version": self.version,
        }


def _keys(files: pa.Table) -> pa.Array:
    if files.num_rows == 0:
        return pa.array([], pa.string())
    canon = files["canonical_path"].combine_chunks()
    return pc.binary_join_element_wise(canon, dv_unique_ids(files["deletionVector"]), "\x00")


def _adds_for(files: pa.Table) -> list[Add]:
    cols = ["path", "partitionValues", "size", "modificationTime", "stats", "tags",
            "deletionVector", "baseRowId", "defaultRowCommitVersion"]
    out = []
    for r in files.select(cols).to_pylist():
        out.append(Add(
            path=r["path"], partition_values=dict(r["partitionValues"] or ()),
            size=int(r["size"] or 0), modification_time=int(r["modificationTime"] or 0),
            data_change=True, stats=r["stats"], tags=dict(r["tags"]) if r["tags"] else None,
            deletion_vector=r["deletionVector"], base_row_id=r["baseRowId"],
            default_row_commit_version=r["defaultRowCommitVersion"],
        ))
    return out


def _check_present(target: Snapshot, files: pa.Table) -> None:
    storage = target.storage
    needed = referenced_paths(files, storage.root)
    inside = {p for p in needed if is_inside_root(p)}
    found = existing_files(storage, inside)
    missing = sorted(p for p in inside if p not in found)
    missing += sorted(p for p in needed - inside if not storage.exists(p))
    if missing:
        raise VersionNotFoundError(
            f"cannot restore {storage.root} to version {target.version}: {len(missing)} file(s) it "
            f"needs no longer exist (deleted by VACUUM?), e.g. {missing[0]!r}. Restore to a newer "
            "version that VACUUM has not cleaned up."
        )


def _target_metadata(target: Snapshot, current: Snapshot) -> Any:
    if column_mapping_mode(target.configuration) != column_mapping_mode(current.configuration):
        raise InvalidArgumentError(
            f"cannot restore to version {target.version}: its column mapping mode "
            f"({column_mapping_mode(target.configuration)}) differs from the current one "
            f"({column_mapping_mode(current.configuration)}); the mode cannot be changed back"
        )
    config = dict(target.configuration)
    for key in _KEEP_CURRENT:
        config.pop(key, None)
        if key in current.configuration:
            config[key] = current.configuration[key]
    return target.metadata.with_(id=current.metadata.id, configuration=config,
                                 created_time=current.metadata.created_time)


def restore(
    current: Snapshot,
    version: int | None = None,
    timestamp: datetime | str | int | None = None,
) -> RestoreMetrics:
    """Commit a RESTORE that makes the table after ``current`` (the latest) equal ``version``.

    Raises:
        InvalidArgumentError: neither or both of ``version``/``timestamp`` given.
        VersionNotFoundError: the version is outside the history, or its files were vacuumed.
    """
    if (version is None) == (timestamp is None):
        raise InvalidArgumentError("restore needs exactly one of version= or timestamp=")
    if version is not None and version < 0:
        raise InvalidArgumentError(f"version must be >= 0, got {version}")
    storage = current.storage
    ensure_writable(current.protocol, storage.root)
    target = Snapshot.load(storage, version=version, timestamp=timestamp)
    if target.version > current.version:
        raise VersionNotFoundError(
            f"cannot restore {storage.root} to version {target.version}: the latest version is "
            f"{current.version}"
        )
    now_keys, then_keys = _keys(current.files), _keys(target.files)
    to_add = target.files.filter(pc.invert(pc.is_in(then_keys, value_set=now_keys))) \
        if target.files.num_rows else target.files
    to_remove = current.files.filter(pc.invert(pc.is_in(now_keys, value_set=then_keys))) \
        if current.files.num_rows else current.files
    after_size = int(pc.sum(target.files["size"]).as_py() or 0) if target.files.num_rows else 0
    metrics = RestoreMetrics(
        restored_version=target.version,
        num_restored_files=to_add.num_rows,
        num_removed_files=to_remove.num_rows,
        restored_files_size=int(pc.sum(to_add["size"]).as_py() or 0) if to_add.num_rows else 0,
        removed_files_size=int(pc.sum(to_remove["size"]).as_py() or 0) if to_remove.num_rows else 0,
        table_size_after_restore=after_size,
        num_of_files_after_restore=target.files.num_rows,
    )
    if target.version == current.version:
        return metrics
    _check_present(target, to_add)
    params: dict[str, Any] = {"version": target.version}
    if timestamp is not None:
        params["timestamp"] = str(timestamp)
    txn = Transaction(storage, current, "RESTORE", params)
    txn.read_whole_table()
    metadata = _target_metadata(target, current)
    if metadata != current.metadata:
        txn.set_metadata(metadata)
    protocol = protocol_for(metadata.schema_string, metadata.configuration, current.protocol)
    if protocol != current.protocol:
        txn.set_protocol(protocol)
    txn.remove_files(removes_for_files(to_remove, data_change=True))
    txn.add_files(_adds_for(to_add))
    result = txn.commit({k: v for k, v in metrics.to_dict().items()
                         if k not in ("restoredVersion", "version")})
    from dataclasses import replace

    return replace(metrics, version=result.version)
