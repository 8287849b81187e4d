"""Reading the change data feed: row-level changes between two versions.

Per the Delta protocol, a commit's changes are its ``cdc`` files when it has any (written by
MERGE/UPDATE/DELETE under ``delta.enableChangeDataFeed=true``, each row tagged ``_change_type``
insert / update_preimage / update_postimage / delete). Commits without ``cdc`` files changed whole
files: rows of ``add`` s with ``dataChange=true`` are inserts and rows of such ``remove`` s are
deletes. When one commit both removes and re-adds the same file with a different deletion
vector, only the rows whose deletion state changed count. Every row gets ``_commit_version`` and
``_commit_timestamp``. Versions where the feed was not enabled are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from lakehouse.errors import InvalidArgumentError, VersionNotFoundError
from lakehouse.log.actions import decode_commit
from lakehouse.log.deletion_vectors import DeletionVectorDescriptor, read_deletion_vector
from lakehouse.log.partitions import parse_partition_values
from lakehouse.log.paths import LogKind
from lakehouse.log.replay import canonicalize_paths
from lakehouse.log.schema import (
    PrimitiveType,
    StructField,
    StructType,
    arrow_read_schema,
    physical_name,
)
from lakehouse.log.segment import list_log
from lakehouse.log.snapshot import Snapshot
from lakehouse.log.timetravel import commit_timestamps
from lakehouse.merge.writer import CHANGE_TYPE, cdf_enabled, with_change_type
from lakehouse.scan.reader import FileTask, ReadSpec, read_file

_META = ("_commit_version", "_commit_timestamp")


def _spec(snap: Snapshot, with_change_type: bool) -> ReadSpec:
    schema = snap.schema
    if with_change_type:
        schema = StructType((*schema.fields, StructField(CHANGE_TYPE, PrimitiveType("string"))))
    mode = snap.column_mapping_mode
    output = arrow_read_schema(schema, physical=False)
    physical = arrow_read_schema(schema, physical=mode != "none")
    parts = set(snap.partition_columns)
    data = [f.name for f in schema.fields if f.name not in parts]
    phys = [physical_name(schema.field(c)) if mode != "none" else c for c in data]
    return ReadSpec(output=output, data_physical=pa.schema([physical.field(n) for n in phys]),
                    physical_to_logical=dict(zip(phys, data, strict=True)),
                    match_by_id=mode == "id" and not with_change_type,
                    needs_rename=mode != "none", schema=schema)


class _Reader:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.data_spec = _spec(snap, False)
        self.cdc_spec = _spec(snap, True)

    def _task(self, action: Mapping[str, Any], dv: Any) -> FileTask:
        snap = self.snap
        path = canonicalize_paths(pa.array([action["path"]], pa.string()),
                                  snap.storage.root)[0].as_py()
        raw = action.get("partitionValues") or {}
        values = {}
        for name in snap.partition_columns:
            f = snap.schema.field(name)
            key = physical_name(f) if snap.column_mapping_mode != "none" else name
            v = raw.get(key, raw.get(name))
            values[name] = parse_partition_values(pa.array([v], pa.string()), f.type)[0]
        return FileTask(path, dv, values)

    def cdc(self, action: Mapping[str, Any]) -> pa.Table:
        return read_file(self.snap.storage, self._task(action, None), self.cdc_spec)

    def rows(self, action: Mapping[str, Any], change_type: str) -> pa.Table:
        t = read_file(self.snap.storage, self._task(action, action.get("deletionVector")),
                      self.data_spec)
        return with_change_type(t, change_type)

    def dv_diff(self, add: Mapping[str, Any], remove: Mapping[str, Any]) -> list[pa.Table]:
        """Rows newly deleted (delete) or revived (insert) by a DV swap on one file."""
        old, new = (_dv_rows(self.snap, a.get("deletionVector")) for a in (remove, add))
        t = read_file(self.snap.storage, self._task(add, None), self.data_spec)
        out = []
        gone = np.setdiff1d(new, old)
        back = np.setdiff1d(old, new)
        if len(gone):
            out.append(with_change_type(t.take(pa.array(gone[gone < t.num_rows])), "delete"))
        if len(back):
            out.append(with_change_type(t.take(pa.array(back[back < t.num_rows])), "insert"))
        return out


def _dv_rows(snap: Snapshot, dv: Any) -> np.ndarray:
    if not dv:
        return np.array([], dtype=np.int64)
    rows = read_deletion_vector(snap.storage, DeletionVectorDescriptor.from_dict(dv))
    return rows.astype(np.int64)


def read_changes(snapshot: Snapshot, start_version: int, end_version: int | None = None) -> pa.Table:
    """Change rows of ``start_version``..``end_version`` (inclusive; default: ``snapshot``'s
    version), in the schema of ``end_version`` plus ``_change_type``, ``_commit_version`` and
    ``_commit_timestamp``."""
    end = snapshot.version if end_version is None else int(end_version)
    start = int(start_version)
    if start < 0 or start > end:
        raise InvalidArgumentError(
            f"changes(): need 0 <= start_version <= end_version, got {start}..{end}"
        )
    storage = snapshot.storage
    end_snap = snapshot if end == snapshot.version else Snapshot.load(storage, version=end)
    commits = {f.version: f for f in list_log(storage, start_version=start)
               if f.kind is LogKind.COMMIT and start <= f.version <= end}
    missing = [v for v in range(start, end + 1) if v not in commits]
    if missing:
        raise VersionNotFoundError(
            f"changes(): commit(s) {missing[:5]} are no longer in the log of {storage.root} "
            "(cleaned up after a checkpoint); read a later range"
        )
    stamps = dict(commit_timestamps(storage))
    config = dict(Snapshot.load(storage, version=start).configuration) if start > 0 else {}
    reader = _Reader(end_snap)
    out_schema = reader.cdc_spec.output
    tables: list[pa.Table] = []
    blobs = storage.read_many([commits[v].path for v in range(start, end + 1)])
    for version, blob in zip(range(start, end + 1), blobs, strict=True):
        actions = decode_commit(blob, commits[version].path)
        for a in actions:
            if "metaData" in a:
                config = dict(a["metaData"].get("configuration") or {})
        if not cdf_enabled(config):
            raise InvalidArgumentError(
                f"changes(): the change data feed was not enabled at version {version} of "
                f"{storage.root}; set delta.enableChangeDataFeed=true (it records changes from "
                "then on) and read versions after that"
            )
        found = _version_changes(reader, actions)
        for t in found:
            t = t.cast(out_schema) if t.schema != out_schema else t
            n = t.num_rows
            t = t.append_column("_commit_version", pa.array(np.full(n, version), pa.int64()))
            t = t.append_column("_commit_timestamp", pa.array(
                np.full(n, stamps.get(version, 0)), pa.int64()).cast(pa.timestamp("ms", "UTC")))
            tables.append(t)
    schema = pa.schema([*out_schema, pa.field("_commit_version", pa.int64()),
                        pa.field("_commit_timestamp", pa.timestamp("ms", "UTC"))])
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables)


def _version_changes(reader: _Reader, actions: list[dict[str, Any]]) -> list[pa.Table]:
    cdc = [a["cdc"] for a in actions if "cdc" in a]
    if cdc:
        return [reader.cdc(c) for c in cdc]
    adds = [a["add"] for a in actions if "add" in a and a["add"].get("dataChange", True)]
    removes = [a["remove"] for a in actions if "remove" in a
               and a["remove"].get("dataChange", True)]
    added_paths = {a["path"]: a for a in adds}
    removed_paths = {r["path"]: r for r in removes}
    out: list[pa.Table] = []
    for r in removes:
        if r["path"] in added_paths:
            out += reader.dv_diff(added_paths[r["path"]], r)
        else:
            out.append(reader.rows(r, "delete"))
    for a in adds:
        if a["path"] not in removed_paths:
            out.append(reader.rows(a, "insert"))
    return out
