"""Delta's conflict rules: can our transaction still commit on top of a commit that beat it?

Optimistic concurrency: a transaction reads snapshot ``v``, prepares its actions, and tries to write
``v + 1``. When another writer got there first, each *winning* commit is checked against what our
transaction read and what it writes. If nothing it did could change our result, we rebase onto it
and retry; otherwise a specific :class:`CommitConflictError` subclass says why retrying cannot help.

The rules follow Delta's ``ConflictChecker``, in its order:

1. a winning ``protocol`` change, or a winning table creation while we also create, conflicts
   (:class:`ProtocolChangedError`);
2. a winning ``metaData`` change conflicts (:class:`MetadataChangedError`);
3. a winning ``domainMetadata`` for a domain we also write, or a winning ``txn`` for an app id we
   also write, conflicts (:class:`ConcurrentTransactionError`);
4. winning *data-changing* ``add`` s that our reads (whole table, or a read predicate) would have
   seen conflict (:class:`ConcurrentAppendError`), except that under ``WriteSerializable`` files added
   by a winning blind append do not (unless we change the metadata). A blind append of ours (reads
   nothing, only adds) never conflicts on data. ``add`` s with ``dataChange=false`` (compaction)
   hold no new rows and never conflict here;
5. winning ``remove`` s of files we read, or of anything when we read the whole table, conflict
   (:class:`ConcurrentDeleteReadError`), whether or not they change data (an OPTIMIZE that rewrote
   a file we read still invalidates what we read);
6. winning ``remove`` s of files we also remove conflict (:class:`ConcurrentDeleteDeleteError`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import (
    ConcurrentAppendError,
    ConcurrentDeleteDeleteError,
    ConcurrentDeleteReadError,
    ConcurrentTransactionError,
    CorruptLogError,
    InvalidArgumentError,
    MetadataChangedError,
    ProtocolChangedError,
)
from lakehouse.log import actions as A
from lakehouse.log.actions import Metadata, Protocol, decode_commit
from lakehouse.log.replay import ADD_SCHEMA, canonicalize_paths

__all__ = [
    "ISOLATION_LEVELS",
    "ReadPredicate",
    "TransactionSummary",
    "WinningCommit",
    "check_conflicts",
]

SERIALIZABLE = "Serializable"
WRITE_SERIALIZABLE = "WriteSerializable"
ISOLATION_LEVELS = (SERIALIZABLE, WRITE_SERIALIZABLE)

#: Says whether any of the given newly added files (``ADD_SCHEMA`` + ``canonical_path``) could
#: hold rows matching what the transaction read.
ReadPredicate = Callable[[pa.Table], bool]


@dataclass(frozen=True, slots=True, eq=False)
class WinningCommit:
    """What conflict checking needs from one commit that beat us.

    Attributes:
        adds: the commit's ``add`` actions, ``ADD_SCHEMA`` columns plus ``canonical_path``.
        removed_paths: canonical paths of the commit's ``remove`` actions (any ``dataChange``).
        timestamp: the commit's in-commit timestamp, else its file modification time (ms).
    """

    version: int
    commit_info: Mapping[str, Any] | None
    protocol: Protocol | None
    metadata: Metadata | None
    app_ids: frozenset[str]
    domains: frozenset[str]
    adds: pa.Table
    removed_paths: frozenset[str]
    timestamp: int

    @classmethod
    def from_bytes(cls, version: int, data: bytes, root: str, modification_time: int = 0) -> WinningCommit:
        """Parse the commit file content of ``version`` (``root`` canonicalises file paths)."""
        actions = decode_commit(data, f"commit {version}")
        info: Mapping[str, Any] | None = None
        protocol = metadata = None
        app_ids: set[str] = set()
        domains: set[str] = set()
        add_rows: list[dict[str, Any]] = []
        remove_rows: list[str] = []
        for action in actions:
            if (body := action.get(A.ADD)) is not None:
                add_rows.append(body)
            elif (body := action.get(A.REMOVE)) is not None:
                remove_rows.append(body.get("path"))
            elif (body := action.get(A.COMMIT_INFO)) is not None:
                info = body
            elif (body := action.get(A.PROTOCOL)) is not None:
                protocol = Protocol.from_dict(body)
            elif (body := action.get(A.METADATA)) is not None:
                metadata = Metadata.from_dict(body)
            elif (body := action.get(A.TXN)) is not None:
                app_ids.add(str(body.get("appId")))
            elif (body := action.get(A.DOMAIN_METADATA)) is not None:
                domains.add(str(body.get("domain")))
        try:
            adds = pa.Table.from_pylist(add_rows, schema=ADD_SCHEMA) if add_rows \
                else ADD_SCHEMA.empty_table()
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as e:
            raise CorruptLogError(f"invalid add action in commit {version}: {e}") from e
        canon = canonicalize_paths(adds["path"], root) if adds.num_rows \
            else pa.array([], pa.string())
        adds = adds.append_column("canonical_path", canon)
        removed: frozenset[str] = frozenset()
        if remove_rows:
            arr = canonicalize_paths(pa.array(remove_rows, pa.string()), root)
            removed = frozenset(p for p in arr.to_pylist() if p is not None)
        ts = modification_time
        if info is not None and info.get("inCommitTimestamp") is not None:
            ts = int(info["inCommitTimestamp"])
        return cls(version, info, protocol, metadata, frozenset(app_ids), frozenset(domains),
                   adds, removed, ts)

    @property
    def txn_id(self) -> str | None:
        """The winner's ``commitInfo.txnId`` (used to recognise our own earlier attempt)."""
        tid = (self.commit_info or {}).get("txnId")
        return None if tid is None else str(tid)

    @property
    def operation(self) -> str:
        return str((self.commit_info or {}).get("operation", "an unknown operation"))

    @property
    def is_blind_append(self) -> bool:
        """As the winner declared it in ``commitInfo.isBlindAppend`` (absent = not blind)."""
        return bool((self.commit_info or {}).get("isBlindAppend", False))


@dataclass(frozen=True, slots=True, eq=False)
class TransactionSummary:
    """What our transaction read and what it is about to write.

    Attributes:
        read_version: the snapshot version it read, ``None`` when it creates the table.
        read_files: canonical paths of the files it read.
        read_predicates: callables saying whether new files could match what it read.
        read_whole_table: it depends on every row of the table.
        removed_paths: canonical paths of the files it removes.
        is_blind_append: it read nothing and only adds files.
    """

    read_version: int | None
    isolation_level: str = WRITE_SERIALIZABLE
    changes_protocol: bool = False
    changes_metadata: bool = False
    app_ids: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    read_files: frozenset[str] = frozenset()
    read_predicates: tuple[ReadPredicate, ...] = field(default=())
    read_whole_table: bool = False
    removed_paths: frozenset[str] = frozenset()
    is_blind_append: bool = True

    @property
    def creates_table(self) -> bool:
        return self.read_version is None


def _where(w: WinningCommit) -> str:
    return f"version {w.version} ({w.operation})"


def check_conflicts(ours: TransactionSummary, winner: WinningCommit) -> None:
    """Raise the :class:`CommitConflictError` subclass for the first rule ``winner`` breaks.

    Returns normally when our transaction can be rebased on top of ``winner``.
    """
    if ours.isolation_level not in ISOLATION_LEVELS:
        raise InvalidArgumentError(
            f"isolation level {ours.isolation_level!r} is not supported; use one of "
            f"{', '.join(ISOLATION_LEVELS)}"
        )
    check_protocol(ours, winner)
    check_metadata(ours, winner)
    check_domains(ours, winner)
    check_app_transactions(ours, winner)
    check_added_files(ours, winner)
    check_deleted_read(ours, winner)
    check_deleted_deleted(ours, winner)


def check_protocol(ours: TransactionSummary, winner: WinningCommit) -> None:
    if ours.creates_table:
        raise ProtocolChangedError(
            f"the table was created concurrently (commit {_where(winner)}) while this transaction "
            "was creating it. Open the existing table and append to it, or retry with mode='overwrite'.",
            winner.version,
        )
    if winner.protocol is not None:
        raise ProtocolChangedError(
            f"the table protocol was changed by a concurrent commit at {_where(winner)}. "
            "Re-read the table and re-run the operation.",
            winner.version,
        )


def check_metadata(ours: TransactionSummary, winner: WinningCommit) -> None:
    if winner.metadata is not None:
        raise MetadataChangedError(
            f"the table metadata (schema, partitioning or properties) was changed by a concurrent "
            f"commit at {_where(winner)}. Re-read the table and re-run the operation.",
            winner.version,
        )


def check_domains(ours: TransactionSummary, winner: WinningCommit) -> None:
    both = sorted(ours.domains & winner.domains)
    if both:
        raise ConcurrentTransactionError(
            f"metadata domain(s) {', '.join(both)} were also written by the concurrent commit at "
            f"{_where(winner)}. Re-read the table and re-run the operation.",
            winner.version,
        )


def check_app_transactions(ours: TransactionSummary, winner: WinningCommit) -> None:
    both = sorted(ours.app_ids & winner.app_ids)
    if both:
        raise ConcurrentTransactionError(
            f"application transaction id(s) {', '.join(both)} were committed concurrently at "
            f"{_where(winner)}: two instances of the same application are writing. Stop the "
            "duplicate writer; re-check the app version before re-running.",
            winner.version,
        )


def check_added_files(ours: TransactionSummary, winner: WinningCommit) -> None:
    if ours.is_blind_append or winner.adds.num_rows == 0:
        return
    if (ours.isolation_level == WRITE_SERIALIZABLE and not ours.changes_metadata
            and winner.is_blind_append):
        return  # WriteSerializable lets concurrent blind appends through
    changed = winner.adds.filter(pc.fill_null(winner.adds["dataChange"], True))
    if changed.num_rows == 0:
        return
    hit = ours.read_whole_table or any(bool(pred(changed)) for pred in ours.read_predicates)
    if hit:
        what = "the whole table" if ours.read_whole_table else "data this transaction read"
        raise ConcurrentAppendError(
            f"files were added to {what} by the concurrent commit at {_where(winner)} "
            f"({ours.isolation_level} isolation). Re-run the operation on the new version.",
            winner.version,
        )


def check_deleted_read(ours: TransactionSummary, winner: WinningCommit) -> None:
    if not winner.removed_paths:
        return
    overlap = ours.read_files & winner.removed_paths
    if overlap:
        raise ConcurrentDeleteReadError(
            f"file {min(overlap)!r} read by this transaction was removed by the concurrent "
            f"commit at {_where(winner)}. Re-run the operation on the new version.",
            winner.version,
        )
    if ours.read_whole_table:
        raise ConcurrentDeleteReadError(
            f"this transaction read the whole table and the concurrent commit at "
            f"{_where(winner)} removed files from it. Re-run the operation on the new version.",
            winner.version,
        )


def check_deleted_deleted(ours: TransactionSummary, winner: WinningCommit) -> None:
    overlap = ours.removed_paths & winner.removed_paths
    if overlap:
        raise ConcurrentDeleteDeleteError(
            f"file {min(overlap)!r} removed by this transaction was already removed by the "
            f"concurrent commit at {_where(winner)}. Re-run the operation on the new version.",
            winner.version,
        )
