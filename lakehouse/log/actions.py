"""Delta log actions as frozen values, with their wire (JSON) form.

One class per action of the Delta protocol. ``from_dict`` reads the camelCase wire form of a commit
line; ``to_dict`` writes it back. Bulk file actions during replay are held as Arrow tables (see
``replay.py``), not as one object per file; these classes are for commits we write and for the
singletons of a snapshot (protocol, metadata, txn, domain metadata).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from lakehouse.errors import CorruptLogError

# Wire names of the actions (keys of one JSON line in a commit).
ADD = "add"
REMOVE = "remove"
METADATA = "metaData"
PROTOCOL = "protocol"
COMMIT_INFO = "commitInfo"
TXN = "txn"
CDC = "cdc"
DOMAIN_METADATA = "domainMetadata"
CHECKPOINT_METADATA = "checkpointMetadata"
SIDECAR = "sidecar"


def _as_dict(d: Any) -> dict[str, Any]:
    """A JSON object, or a map read from Parquet (a list of key/value pairs), as a dict."""
    if not d:
        return {}
    if isinstance(d, Mapping):
        return dict(d)
    return {k: v for k, v in d}


def _frozen(d: Any) -> Mapping[str, Any]:
    return MappingProxyType(_as_dict(d))


@dataclass(frozen=True, slots=True)
class Protocol:
    """``protocol``: the reader/writer versions, and features for reader v3 / writer v7."""

    min_reader_version: int
    min_writer_version: int
    reader_features: frozenset[str] | None = None
    writer_features: frozenset[str] | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Protocol:
        try:
            rf, wf = d.get("readerFeatures"), d.get("writerFeatures")
            return cls(
                int(d["minReaderVersion"]),
                int(d["minWriterVersion"]),
                frozenset(rf) if rf is not None else None,
                frozenset(wf) if wf is not None else None,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptLogError(f"invalid protocol action {dict(d)!r}: {e}") from e

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "minReaderVersion": self.min_reader_version,
            "minWriterVersion": self.min_writer_version,
        }
        if self.reader_features is not None:
            out["readerFeatures"] = sorted(self.reader_features)
        if self.writer_features is not None:
            out["writerFeatures"] = sorted(self.writer_features)
        return out

    def has_reader_feature(self, name: str) -> bool:
        return self.reader_features is not None and name in self.reader_features

    def has_writer_feature(self, name: str) -> bool:
        return self.writer_features is not None and name in self.writer_features


@dataclass(frozen=True, slots=True)
class Metadata:
    """``metaData``: table id, schema string, partition columns, configuration."""

    id: str
    schema_string: str
    partition_columns: tuple[str, ...] = ()
    configuration: Mapping[str, str] = field(default_factory=lambda: _frozen(None))
    name: str | None = None
    description: str | None = None
    provider: str = "parquet"
    format_options: Mapping[str, str] = field(default_factory=lambda: _frozen(None))
    created_time: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Metadata:
        try:
            fmt = _as_dict(d.get("format"))
            return cls(
                id=str(d["id"]),
                schema_string=d["schemaString"],
                partition_columns=tuple(d.get("partitionColumns") or ()),
                configuration=_frozen(d.get("configuration")),
                name=d.get("name"),
                description=d.get("description"),
                provider=fmt.get("provider", "parquet"),
                format_options=_frozen(fmt.get("options")),
                created_time=d.get("createdTime"),
            )
        except (KeyError, TypeError) as e:
            raise CorruptLogError(f"invalid metaData action: missing {e}") from e

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "format": {"provider": self.provider, "options": dict(self.format_options)},
            "schemaString": self.schema_string,
            "partitionColumns": list(self.partition_columns),
            "configuration": dict(self.configuration),
        }
        if self.name is not None:
            out["name"] = self.name
        if self.description is not None:
            out["description"] = self.description
        if self.created_time is not None:
            out["createdTime"] = self.created_time
        return out

    @classmethod
    def new(cls, schema_string: str, partition_columns: tuple[str, ...] = (),
            configuration: Mapping[str, str] | None = None, name: str | None = None,
            description: str | None = None) -> Metadata:
        """Metadata for a new table: a fresh id and the current time."""
        return cls(str(uuid.uuid4()), schema_string, tuple(partition_columns),
                   _frozen(configuration), name, description, created_time=now_ms())

    def with_(self, **changes: Any) -> Metadata:
        """A copy with ``changes`` (configuration mappings are frozen)."""
        from dataclasses import replace

        if "configuration" in changes:
            changes["configuration"] = _frozen(changes["configuration"])
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Add:
    """``add``: a data file joins the table."""

    path: str
    partition_values: Mapping[str, str | None]
    size: int
    modification_time: int
    data_change: bool = True
    stats: str | None = None
    tags: Mapping[str, str] | None = None
    deletion_vector: Mapping[str, Any] | None = None
    base_row_id: int | None = None
    default_row_commit_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "partitionValues": dict(self.partition_values),
            "size": self.size,
            "modificationTime": self.modification_time,
            "dataChange": self.data_change,
        }
        if self.stats is not None:
            out["stats"] = self.stats
        if self.tags:
            out["tags"] = dict(self.tags)
        if self.deletion_vector is not None:
            out["deletionVector"] = dict(self.deletion_vector)
        if self.base_row_id is not None:
            out["baseRowId"] = self.base_row_id
        if self.default_row_commit_version is not None:
            out["defaultRowCommitVersion"] = self.default_row_commit_version
        return out


@dataclass(frozen=True, slots=True)
class Remove:
    """``remove``: a data file (with a given deletion vector, if any) leaves the table."""

    path: str
    deletion_timestamp: int
    data_change: bool = True
    extended_file_metadata: bool = True
    partition_values: Mapping[str, str | None] | None = None
    size: int | None = None
    deletion_vector: Mapping[str, Any] | None = None
    base_row_id: int | None = None
    default_row_commit_version: int | None = None
    stats: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "deletionTimestamp": self.deletion_timestamp,
            "dataChange": self.data_change,
            "extendedFileMetadata": self.extended_file_metadata,
        }
        if self.partition_values is not None:
            out["partitionValues"] = dict(self.partition_values)
        if self.size is not None:
            out["size"] = self.size
        if self.stats is not None:
            out["stats"] = self.stats
        if self.deletion_vector is not None:
            out["deletionVector"] = dict(self.deletion_vector)
        if self.base_row_id is not None:
            out["baseRowId"] = self.base_row_id
        if self.default_row_commit_version is not None:
            out["defaultRowCommitVersion"] = self.default_row_commit_version
        return out


@dataclass(frozen=True, slots=True)
class Cdc:
    """``cdc``: a change data file under ``_change_data/`` for this commit."""

    path: str
    partition_values: Mapping[str, str | None]
    size: int
    data_change: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "partitionValues": dict(self.partition_values),
                "size": self.size, "dataChange": self.data_change}


@dataclass(frozen=True, slots=True)
class Txn:
    """``txn``: the latest version an application committed (idempotent writes)."""

    app_id: str
    version: int
    last_updated: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Txn:
        return cls(str(d["appId"]), int(d["version"]), d.get("lastUpdated"))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"appId": self.app_id, "version": self.version}
        if self.last_updated is not None:
            out["lastUpdated"] = self.last_updated
        return out


@dataclass(frozen=True, slots=True)
class DomainMetadata:
    """``domainMetadata``: configuration owned by a named domain (e.g. clustering)."""

    domain: str
    configuration: str
    removed: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DomainMetadata:
        return cls(str(d["domain"]), str(d.get("configuration", "")), bool(d.get("removed", False)))

    def to_dict(self) -> dict[str, Any]:
        return {"domain": self.domain, "configuration": self.configuration, "removed": self.removed}


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """``commitInfo``: provenance of a commit; free-form for readers, written by us with Delta's keys."""

    operation: str
    operation_parameters: Mapping[str, Any] = field(default_factory=lambda: _frozen(None))
    timestamp: int = 0
    operation_metrics: Mapping[str, Any] | None = None
    read_version: int | None = None
    isolation_level: str | None = None
    is_blind_append: bool | None = None
    in_commit_timestamp: int | None = None
    txn_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    engine_info: str = "lakehouse"
    user_metadata: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.in_commit_timestamp is not None:
            out["inCommitTimestamp"] = self.in_commit_timestamp
        out["timestamp"] = self.timestamp or now_ms()
        out["operation"] = self.operation
        # Delta writes operationParameters values as JSON strings; readers (history) expect that.
        out["operationParameters"] = {
            k: v if isinstance(v, str) else json.dumps(v) for k, v in self.operation_parameters.items()
        }
        if self.read_version is not None:
            out["readVersion"] = self.read_version
        if self.isolation_level is not None:
            out["isolationLevel"] = self.isolation_level
        if self.is_blind_append is not None:
            out["isBlindAppend"] = self.is_blind_append
        if self.operation_metrics is not None:
            out["operationMetrics"] = {k: str(v) for k, v in self.operation_metrics.items()}
        if self.user_metadata is not None:
            out["userMetadata"] = self.user_metadata
        out["engineInfo"] = self.engine_info
        out["txnId"] = self.txn_id
        return out


def now_ms() -> int:
    """Wall-clock time in milliseconds since the epoch."""
    return int(time.time() * 1000)


def encode_commit(actions: list[tuple[str, Mapping[str, Any]]]) -> bytes:
    """Serialise ``(wire name, body)`` pairs as one newline-delimited JSON commit file."""
    lines = [json.dumps({name: body}, separators=(",", ":")) for name, body in actions]
    return ("\n".join(lines) + "\n").encode()


def decode_commit(data: bytes, path: str = "<commit>") -> list[dict[str, Any]]:
    """Parse a newline-delimited JSON commit into its action objects (blank lines skipped)."""
    out: list[dict[str, Any]] = []
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorruptLogError(f"{path} line {n} is not valid JSON: {e}") from e
        if not isinstance(obj, dict):
            raise CorruptLogError(f"{path} line {n} is not a JSON object")
        out.append(obj)
    return out
