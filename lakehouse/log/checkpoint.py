"""Writing checkpoints and cleaning up expired log files.

A checkpoint folds the whole table state at one version into one Parquet file so readers do not
replay every commit. We write the *classic* single-part form ``N.checkpoint.parquet`` (one row per
action, one struct column per action kind), which every Delta reader understands; for tables with
the ``v2Checkpoint`` feature the same file also carries the ``checkpointMetadata`` row that makes it
a valid V2-spec checkpoint under the classic name. File actions are built from the snapshot's Arrow
tables in bulk, never one Python object per file.

Expired log cleanup follows the protocol's *Metadata Cleanup* steps: everything before the newest
checkpoint that is not newer than the retention cut-off commit may go; that checkpoint, its commit
and every later commit stay, so time travel to any version inside the retention window keeps working.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakehouse.errors import InvalidArgumentError, ProtocolError, VersionNotFoundError
from lakehouse.log.paths import LAST_CHECKPOINT, LOG_DIR, LogKind, checkpoint_path
from lakehouse.log.replay import ADD_SCHEMA, REMOVE_SCHEMA, STR_MAP
from lakehouse.log.segment import LogSegment, list_log, read_last_checkpoint_version

if TYPE_CHECKING:
    from lakehouse.io.storage import Storage
    from lakehouse.log.snapshot import Snapshot

__all__ = [
    "CHECKPOINT_SCHEMA",
    "CheckpointInfo",
    "checkpoint_table",
    "cleanup_expired_logs",
    "log_retention_ms",
    "parse_interval_ms",
    "write_checkpoint",
]

log = logging.getLogger(__name__)

_MS = {
    "nanosecond": 1e-6,
    "microsecond": 1e-3,
    "millisecond": 1,
    "second": 1000,
    "minute": 60_000,
    "hour": 3_600_000,
    "day": 86_400_000,
    "week": 604_800_000,
}
_INTERVAL_PART = re.compile(r"(-?\d+)\s*([a-z]+)")
# Temp files of local atomic writes (commit, checkpoint, _last_checkpoint) left by a dead process.
_TEMP_COMMIT = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")
DAY_MS = 86_400_000
DEFAULT_LOG_RETENTION = "interval 30 days"
DEFAULT_DELETED_FILE_RETENTION = "interval 1 week"

METADATA_TYPE = pa.struct([
    ("id", pa.string()),
    ("name", pa.string()),
    ("description", pa.string()),
    ("format", pa.struct([("provider", pa.string()), ("options", STR_MAP)])),
    ("schemaString", pa.string()),
    ("partitionColumns", pa.list_(pa.string())),
    ("configuration", STR_MAP),
    ("createdTime", pa.int64()),
])
PROTOCOL_TYPE = pa.struct([
    ("minReaderVersion", pa.int32()),
    ("minWriterVersion", pa.int32()),
    ("readerFeatures", pa.list_(pa.string())),
    ("writerFeatures", pa.list_(pa.string())),
])
TXN_TYPE = pa.struct([("appId", pa.string()), ("version", pa.int64()), ("lastUpdated", pa.int64())])
DOMAIN_TYPE = pa.struct([
    ("domain", pa.string()), ("configuration", pa.string()), ("removed", pa.bool_()),
])
CHECKPOINT_METADATA_TYPE = pa.struct([("version", pa.int64()), ("tags", STR_MAP)])
ADD_TYPE = pa.struct(list(ADD_SCHEMA))
REMOVE_TYPE = pa.struct(list(REMOVE_SCHEMA))

#: Columns of a classic checkpoint, in the order Spark writes them.
CHECKPOINT_SCHEMA = pa.schema([
    ("txn", TXN_TYPE),
    ("add", ADD_TYPE),
    ("remove", REMOVE_TYPE),
    ("metaData", METADATA_TYPE),
    ("protocol", PROTOCOL_TYPE),
    ("domainMetadata", DOMAIN_TYPE),
])
_V2_SCHEMA = CHECKPOINT_SCHEMA.append(pa.field("checkpointMetadata", CHECKPOINT_METADATA_TYPE))


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """What :func:`write_checkpoint` wrote.

    Attributes:
        version: the table version the checkpoint reconstructs.
        path: checkpoint file path relative to the table root.
        size: number of actions (rows) in the checkpoint, as recorded in ``_last_checkpoint``.
        size_in_bytes: size of the Parquet file.
        num_add_files: active files in the checkpoint.
        num_tombstones: unexpired ``remove`` tombstones kept.
        v2: whether it follows the V2 spec (has a ``checkpointMetadata`` row).
    """

    version: int
    path: str
    size: int
    size_in_bytes: int
    num_add_files: int
    num_tombstones: int
    v2: bool


# ------------------------------------------------------------------------------ interval parsing
def parse_interval_ms(text: str) -> int:
    """Milliseconds in a Delta interval property such as ``"interval 30 days"`` or ``"1 week"``.

    Accepts Spark's calendar-interval spelling (optional ``interval`` prefix, one or more
    ``<n> <unit>`` pairs, singular or plural units from nanoseconds to weeks). Months and years
    are refused, as Delta refuses them for retention durations.
    """
    s = str(text).strip().lower()
    if s.startswith("interval"):
        s = s[len("interval"):].strip()
    parts = _INTERVAL_PART.findall(s)
    leftover = _INTERVAL_PART.sub("", s).strip()
    if not parts or leftover:
        raise InvalidArgumentError(
            f"cannot parse interval {text!r}; use Delta's form, e.g. 'interval 30 days'"
        )
    total = 0.0
    for number, unit in parts:
        base = unit[:-1] if unit.endswith("s") else unit
        if base not in _MS:
            raise InvalidArgumentError(
                f"unsupported unit {unit!r} in interval {text!r}; use one of "
                f"{', '.join(u + 's' for u in _MS)} (months and years are not allowed)"
            )
        total += int(number) * _MS[base]
    if total < 0:
        raise InvalidArgumentError(f"interval {text!r} is negative")
    return int(total)


def _config_interval(config: Mapping[str, str], key: str, default: str) -> int:
    return parse_interval_ms(config.get(key) or default)


def log_retention_ms(config: Mapping[str, str]) -> int:
    """``delta.logRetentionDuration`` in ms (default 30 days)."""
    return _config_interval(config, "delta.logRetentionDuration", DEFAULT_LOG_RETENTION)


# ------------------------------------------------------------------------------------ checkpoint
def _now_ms() -> int:
    return int(time.time() * 1000)


def _section(column: str, values: pa.Array, schema: pa.Schema) -> pa.Table:
    """Rows holding ``values`` in ``column`` and nulls in every other column."""
    n = len(values)
    arrays = [values if f.name == column else pa.nulls(n, f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _struct_from_table(t: pa.Table, schema: pa.Schema) -> pa.StructArray:
    cols = []
    for f in schema:
        col = t[f.name] if f.name in t.column_names else pa.nulls(t.num_rows, f.type)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks() if col.num_chunks else pa.array([], f.type)
        if col.type != f.type:
            col = col.cast(f.type)
        cols.append(col)
    return pa.StructArray.from_arrays(cols, fields=list(schema))


def _metadata_row(snapshot: Snapshot) -> dict[str, Any]:
    m = snapshot.metadata
    return {
        "id": m.id,
        "name": m.name,
        "description": m.description,
        "format": {"provider": m.provider, "options": list(m.format_options.items())},
        "schemaString": m.schema_string,
        "partitionColumns": list(m.partition_columns),
        "configuration": list(m.configuration.items()),
        "createdTime": m.created_time,
    }


def _protocol_row(snapshot: Snapshot) -> dict[str, Any]:
    p = snapshot.protocol
    return {
        "minReaderVersion": p.min_reader_version,
        "minWriterVersion": p.min_writer_version,
        # Protocol: non-null exactly when reader v3 / writer v7 use table features.
        "readerFeatures": sorted(p.reader_features or ()) if p.min_reader_version >= 3 else None,
        "writerFeatures": sorted(p.writer_features or ()) if p.min_writer_version >= 7 else None,
    }


def is_v2_checkpoint_table(snapshot: Snapshot) -> bool:
    """Whether the table supports the ``v2Checkpoint`` feature (checkpoints must follow V2 spec)."""
    return snapshot.protocol.has_writer_feature("v2Checkpoint") or \
        snapshot.protocol.has_reader_feature("v2Checkpoint")


def checkpoint_table(snapshot: Snapshot, *, now_ms: int | None = None) -> pa.Table:
    """The checkpoint rows for ``snapshot`` as one Arrow table (one action per row).

    Tombstones older than ``delta.deletedFileRetentionDuration`` (default one week) are dropped;
    app transactions older than ``delta.setTransactionRetentionDuration`` too, when it is set.
    Stats JSON is omitted when ``delta.checkpoint.writeStatsAsJson`` is ``false``.
    """
    config = snapshot.metadata.configuration
    now = _now_ms() if now_ms is None else now_ms
    v2 = is_v2_checkpoint_table(snapshot)
    schema = _V2_SCHEMA if v2 else CHECKPOINT_SCHEMA

    files = snapshot.files
    if str(config.get("delta.checkpoint.writeStatsAsJson", "true")).lower() == "false":
        files = files.drop_columns(["stats"]) if "stats" in files.column_names else files
    tombstones = snapshot.tombstones
    min_ts = now - _config_interval(
        config, "delta.deletedFileRetentionDuration", DEFAULT_DELETED_FILE_RETENTION)
    if tombstones.num_rows:
        ts = pc.fill_null(tombstones["deletionTimestamp"], 0)
        tombstones = tombstones.filter(pc.greater(ts, min_ts))

    txns = list(snapshot.app_transactions.values())
    txn_retention = config.get("delta.setTransactionRetentionDuration")
    if txn_retention:
        txn_min = now - parse_interval_ms(txn_retention)
        txns = [t for t in txns if t.last_updated is None or t.last_updated > txn_min]

    sections = [
        _section("protocol", pa.array([_protocol_row(snapshot)], PROTOCOL_TYPE), schema),
        _section("metaData", pa.array([_metadata_row(snapshot)], METADATA_TYPE), schema),
    ]
    if v2:
        cp_meta = pa.array([{"version": snapshot.version, "tags": None}], CHECKPOINT_METADATA_TYPE)
        sections.insert(0, _section("checkpointMetadata", cp_meta, schema))
    if txns:
        rows = [{"appId": t.app_id, "version": t.version, "lastUpdated": t.last_updated}
                for t in sorted(txns, key=lambda t: t.app_id)]
        sections.append(_section("txn", pa.array(rows, TXN_TYPE), schema))
    if snapshot.domains:
        rows = [{"domain": d.domain, "configuration": d.configuration, "removed": False}
                for d in sorted(snapshot.domains.values(), key=lambda d: d.domain)]
        sections.append(_section("domainMetadata", pa.array(rows, DOMAIN_TYPE), schema))
    if files.num_rows:
        sections.append(_section("add", _struct_from_table(files, ADD_SCHEMA), schema))
    if tombstones.num_rows:
        sections.append(_section("remove", _struct_from_table(tombstones, REMOVE_SCHEMA), schema))
    return pa.concat_tables(sections)


def write_checkpoint(storage: Storage, snapshot: Snapshot, *, now_ms: int | None = None) -> CheckpointInfo:
    """Write the classic checkpoint ``N.checkpoint.parquet`` for ``snapshot`` and ``_last_checkpoint``.

    The content is deterministic for a version (up to expired tombstones), so overwriting a
    checkpoint another writer raced to produce is harmless, as the protocol allows for classic
    checkpoints. ``_last_checkpoint`` is only moved forward, never back to an older version.
    """
    table = checkpoint_table(snapshot, now_ms=now_ms)
    codec = str(snapshot.metadata.configuration.get("delta.parquet.compression.codec", "zstd"))
    codec = {"uncompressed": "none", "lz4_raw": "lz4"}.get(codec.lower(), codec.lower())
    sink = pa.BufferOutputStream()
    try:
        pq.write_table(table, sink, compression=codec)
    except (pa.ArrowException, ValueError):
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
    data = sink.getvalue().to_pybytes()
    path = checkpoint_path(snapshot.version)
    storage.write_bytes(path, data)

    num_adds = int(pc.sum(pc.is_valid(table["add"])).as_py() or 0)
    num_removes = int(pc.sum(pc.is_valid(table["remove"])).as_py() or 0)
    info = CheckpointInfo(
        version=snapshot.version,
        path=path,
        size=table.num_rows,
        size_in_bytes=len(data),
        num_add_files=num_adds,
        num_tombstones=num_removes,
        v2="checkpointMetadata" in table.column_names,
    )
    current = read_last_checkpoint_version(storage)
    if current is None or current <= snapshot.version:
        hint = {
            "version": info.version,
            "size": info.size,
            "sizeInBytes": info.size_in_bytes,
            "numOfAddFiles": info.num_add_files,
        }
        storage.write_bytes(LAST_CHECKPOINT, json.dumps(hint, separators=(",", ":")).encode())
    return info


# --------------------------------------------------------------------------------------- cleanup
def cleanup_expired_logs(
    storage: Storage,
    snapshot: Snapshot,
    retention_ms: int | None = None,
    *,
    now_ms: int | None = None,
    truncate_to_day: bool = True,
) -> list[str]:
    """Delete log files that no version inside the retention window needs; return their paths.

    Follows the protocol's *Metadata Cleanup*: the cut-off is ``now - retention`` (rounded down to
    midnight UTC when ``truncate_to_day``, as Delta does); the *cut-off commit* is the newest commit
    not newer than it; the *cut-off checkpoint* is the newest complete checkpoint at or before that
    commit. Commits, checkpoints and ``.crc`` files before the cut-off checkpoint's version, and
    compaction files starting at or before it, are deleted. Without such a checkpoint nothing is
    deleted. ``retention_ms`` defaults to the table's ``delta.logRetentionDuration``.
    """
    from lakehouse.log.timetravel import commit_timestamps

    if retention_ms is None:
        retention_ms = log_retention_ms(snapshot.metadata.configuration)
    now = _now_ms() if now_ms is None else now_ms
    cutoff = now - retention_ms
    if truncate_to_day:
        cutoff -= cutoff % DAY_MS
    stamps = [(v, ts) for v, ts in commit_timestamps(storage) if v <= snapshot.version]
    old = [v for v, ts in stamps if ts <= cutoff]
    if not old:
        return []
    cutoff_commit = max(old)
    files = list_log(storage)
    try:
        segment = LogSegment.from_files(files, cutoff_commit, storage.root)
    except (ProtocolError, VersionNotFoundError) as e:
        log.info("skipping log cleanup of %s: %s", storage.root, e)
        return []
    keep_from = segment.checkpoint_version
    if keep_from is None or keep_from == 0:
        return []
    doomed = [
        f.path for f in files
        if (f.kind is LogKind.COMPACTION and f.version <= keep_from)
        or (f.kind is not LogKind.COMPACTION and f.version < keep_from)
    ]
    # Temp files of interrupted local writes, once they are older than the cut-off.
    doomed += [
        i.path for i in storage.list_dir(LOG_DIR)
        if _TEMP_COMMIT.match(i.path.rsplit("/", 1)[-1]) and i.modification_time < cutoff
    ]
    # Oldest first (where deletion is sequential): an interrupted cleanup leaves no gap in
    # front of a surviving older commit.
    doomed.sort()
    storage.delete(doomed)
    log.info("deleted %d expired log files before version %d in %s",
             len(doomed), keep_from, storage.root)
    return doomed
