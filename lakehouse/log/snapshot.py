"""The immutable :class:`Snapshot`: the table state at exactly one version.

A snapshot is built once from a :class:`LogSegment` by replay and never changes; time travel builds
another snapshot. Everything downstream (scans, transactions, maintenance) starts from one.

Example:
    >>> from lakehouse.io.storage import Storage
    >>> snap = Snapshot.load(Storage.for_uri("memory://doc-snapshot"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.log.actions import DomainMetadata, Metadata, Protocol, Txn
from lakehouse.log.features import ensure_readable, reader_feature_enabled
from lakehouse.log.replay import BaseState, replay
from lakehouse.log.segment import LogSegment
from lakehouse.log.timetravel import commit_timestamp_of, version_at_timestamp

if TYPE_CHECKING:
    from lakehouse.io.storage import Storage
    from lakehouse.log.schema import StructType


@dataclass(frozen=True, eq=False)
class Snapshot:
    """Table state at ``version``: protocol, metadata, active files (Arrow), app txns, domains.

    Attributes:
        files: one row per active ``add`` (columns as on the wire, plus ``canonical_path``).
        tombstones: ``remove`` actions still in the state (for vacuum and checkpoints).
        timestamp: commit timestamp of ``version`` in ms (in-commit timestamp when enabled).
    """

    storage: Storage
    segment: LogSegment
    version: int
    protocol: Protocol
    metadata: Metadata
    files: pa.Table
    tombstones: pa.Table
    app_transactions: Mapping[str, Txn]
    domains: Mapping[str, DomainMetadata]
    timestamp: int
    commit_info: Mapping[str, Any] | None

    @classmethod
    def load(
        cls,
        storage: Storage,
        version: int | None = None,
        timestamp: datetime | str | int | None = None,
        base: Snapshot | None = None,
    ) -> Snapshot:
        """Replay the log of ``storage`` at ``version`` or ``timestamp`` (latest if neither).

        ``base``: an earlier snapshot of the same table; when the log still holds every commit
        after it, only those commits are replayed on top of it instead of the checkpoint. The most
        recent snapshot loaded per table in this process is used as a base automatically; it is
        trusted only if its last commit file is still the same file (size and modification time).

        Raises:
            TableNotFoundError, VersionNotFoundError, ProtocolError, UnsupportedFeatureError.
        """
        if version is not None and timestamp is not None:
            from lakehouse.errors import InvalidArgumentError

            raise InvalidArgumentError("pass either version= or timestamp=, not both")
        if timestamp is not None:
            version = version_at_timestamp(storage, timestamp)
        segment = LogSegment.for_version(storage, version)
        if base is None:
            base = _LATEST.get(storage.root)
        incremental = _incremental(base, segment) if base is not None else None
        if incremental is not None and base is not None:
            if incremental.version == base.version:
                return base
            state = replay(storage, incremental, BaseState(
                base.files, base.tombstones, base.protocol, base.metadata,
                list(base.app_transactions.values()), list(base.domains.values())))
        else:
            state = replay(storage, segment)
        ensure_readable(state.protocol, storage.root)
        ts = commit_timestamp_of(storage, segment, state.metadata, state.latest_commit_info)
        snap = cls(
            storage=storage,
            segment=segment,
            version=segment.version,
            protocol=state.protocol,
            metadata=state.metadata,
            files=state.files,
            tombstones=state.tombstones,
            app_transactions=state.app_versions,
            domains=state.domains,
            timestamp=ts,
            commit_info=state.latest_commit_info,
        )
        cached = _LATEST.get(storage.root)
        if cached is None or cached.version <= snap.version:
            _LATEST.pop(storage.root, None)
            _LATEST[storage.root] = snap
            while len(_LATEST) > _LATEST_MAX:
                _LATEST.pop(next(iter(_LATEST)))
        return snap

    @cached_property
    def schema(self) -> StructType:
        """The Delta schema (logical names, column-mapping metadata kept)."""
        from lakehouse.log.schema import StructType

        return StructType.from_json(self.metadata.schema_string)

    @cached_property
    def arrow_schema(self) -> pa.Schema:
        """The table schema as Arrow, with logical column names."""
        from lakehouse.log.schema import arrow_read_schema

        return arrow_read_schema(self.schema, physical=False)

    @property
    def partition_columns(self) -> list[str]:
        return list(self.metadata.partition_columns)

    @property
    def configuration(self) -> Mapping[str, str]:
        return self.metadata.configuration

    @property
    def column_mapping_mode(self) -> str:
        from lakehouse.log.schema import column_mapping_mode

        if not reader_feature_enabled(self.protocol, "columnMapping", 2):
            return "none"
        return column_mapping_mode(self.metadata.configuration)

    @property
    def num_files(self) -> int:
        return self.files.num_rows

    def app_version(self, app_id: str) -> int | None:
        """The last version application ``app_id`` committed (``txn`` action), if any."""
        t = self.app_transactions.get(app_id)
        return None if t is None else t.version


#: The newest snapshot loaded per table root in this process (a base for incremental loads).
_LATEST: dict[str, Snapshot] = {}
_LATEST_MAX = 16


def _last_commit(segment: LogSegment) -> tuple[int, int, int] | None:
    if not segment.commits:
        return None
    c = segment.commits[-1]
    return (c.version, c.size, c.modification_time)


def _incremental(base: Snapshot, segment: LogSegment) -> LogSegment | None:
    """The part of ``segment`` after ``base``, if ``base`` is a valid starting point for it."""
    if base.version > segment.version:
        return None
    mine = _last_commit(base.segment)
    if mine is None:
        return None
    # The base's own last commit must be in the new listing, unchanged (same file).
    listed = {c.version: c for c in segment.commits}
    same = listed.get(base.version)
    if same is None:
        if segment.checkpoint_version is None or segment.checkpoint_version < base.version:
            return None
        return None  # the segment starts after base (a newer checkpoint): replay normally
    if (same.size, same.modification_time) != (mine[1], mine[2]):
        return None
    newer = tuple(c for c in segment.commits if c.version > base.version)
    return LogSegment(segment.version, base.version, (), newer)
