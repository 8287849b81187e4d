"""The one way anything is written to ``_delta_log/``: an optimistic :class:`Transaction`.

A transaction starts from the snapshot it read (or none, to create a table), collects the actions
to commit and what it read (files, predicates, the whole table), then :meth:`Transaction.commit`
writes ``_delta_log/<read version + 1>.json`` with a put-if-absent. When another writer got that
version first, the winning commits are checked with Delta's conflict rules (``conflicts.py``); if
none of them invalidates what we did, the commit is rebased onto the newest version and retried
with a jittered backoff, else the specific :class:`CommitConflictError` is raised. Nothing is ever
partially visible: a failure before the put leaves the table exactly as it was.

Example:
    >>> txn = Transaction(storage, snapshot, "WRITE", {"mode": "Append"})  # doctest: +SKIP
    >>> txn.add_files(new_adds)                                           # doctest: +SKIP
    >>> txn.commit({"numFiles": len(new_adds)}).version                   # doctest: +SKIP
"""

from __future__ import annotations

import functools
import logging
import random
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.errors import InvalidArgumentError, MaxCommitAttemptsError
from lakehouse.log import actions as A
from lakehouse.log.actions import (
    Add,
    Cdc,
    CommitInfo,
    DomainMetadata,
    Metadata,
    Protocol,
    Remove,
    Txn,
    encode_commit,
    now_ms,
)
from lakehouse.log.checkpoint import CheckpointInfo
from lakehouse.log.deletion_vectors import DeletionVectorDescriptor
from lakehouse.log.features import ensure_writable
from lakehouse.log.paths import LogKind, LogPath
from lakehouse.log.replay import canonicalize_paths
from lakehouse.log.segment import list_log
from lakehouse.log.timetravel import ict_enabled
from lakehouse.txn.committer import Committed, Committer, FileSystemCommitter
from lakehouse.txn.conflicts import (
    ISOLATION_LEVELS,
    WRITE_SERIALIZABLE,
    ReadPredicate,
    TransactionSummary,
    WinningCommit,
    check_conflicts,
)
from lakehouse.txn.hooks import run_post_commit_hooks

if TYPE_CHECKING:
    from lakehouse.io.storage import Storage
    from lakehouse.log.snapshot import Snapshot

__all__ = ["CommitResult", "Transaction", "engine_info", "removes_for_files"]

log = logging.getLogger(__name__)

ICT_ENABLEMENT_VERSION = "delta.inCommitTimestampEnablementVersion"
ICT_ENABLEMENT_TIMESTAMP = "delta.inCommitTimestampEnablementTimestamp"


@functools.cache
def engine_info() -> str:
    """``lakehouse/<installed version>``, as written to ``commitInfo.engineInfo``."""
    import lakehouse

    found = getattr(lakehouse, "__version__", None)
    if found is None:
        try:
            from importlib.metadata import version

            found = version("lakehouse")
        except Exception:
            found = "dev"
    return f"lakehouse/{found}"


@dataclass(frozen=True, slots=True)
class CommitResult:
    """Outcome of a successful :meth:`Transaction.commit`.

    Attributes:
        version: the table version this commit created.
        attempts: put-if-absent attempts it took (1 = no contention).
        txn_id: the unique ``commitInfo.txnId``.
        timestamp: ``commitInfo.timestamp`` (equal to the in-commit timestamp when enabled).
        in_commit_timestamp: the in-commit timestamp, when the table has them enabled.
        rebased_over: versions of concurrent commits checked and found compatible.
        checkpoint: the checkpoint the post-commit hook wrote, if one was due and succeeded.
        cleaned_log_files: expired log files deleted after that checkpoint.
    """

    version: int
    attempts: int
    txn_id: str
    timestamp: int
    in_commit_timestamp: int | None = None
    rebased_over: tuple[int, ...] = ()
    checkpoint: CheckpointInfo | None = None
    cleaned_log_files: tuple[str, ...] = ()


def removes_for_files(files: pa.Table, *, data_change: bool = True,
                      deletion_timestamp: int | None = None) -> list[Remove]:
    """``remove`` actions for rows of a snapshot's ``files`` table (all fields carried over)."""
    ts = now_ms() if deletion_timestamp is None else deletion_timestamp
    cols = [c for c in ("path", "partitionValues", "size", "deletionVector", "baseRowId",
                        "defaultRowCommitVersion", "stats") if c in files.column_names]
    out = []
    for r in files.select(cols).to_pylist():
        pv = r.get("partitionValues")
        out.append(Remove(
            path=r["path"], deletion_timestamp=ts, data_change=data_change,
            extended_file_metadata=True, partition_values=dict(pv) if pv else {},
            size=r.get("size"), deletion_vector=r.get("deletionVector"),
            base_row_id=r.get("baseRowId"),
            default_row_commit_version=r.get("defaultRowCommitVersion"), stats=r.get("stats"),
        ))
    return out


class Transaction:
    """Collects actions and read dependencies, then commits them atomically (see module doc).

    Args:
        storage: the table root.
        read_snapshot: the snapshot the transaction read; ``None`` to create a new table.
        operation: Delta's operation name (``"WRITE"``, ``"MERGE"``, ``"CREATE TABLE"``...).
        parameters: ``commitInfo.operationParameters`` (non-string values are JSON-encoded).
        isolation_level: ``"WriteSerializable"`` (default) or ``"Serializable"``.
        committer: how the commit file is put (default: put-if-absent on ``storage``).
        max_attempts: commit attempts before :class:`MaxCommitAttemptsError`.
        backoff_base_ms, backoff_max_ms: exponential backoff with full jitter between attempts.
        post_commit: run the checkpoint / log cleanup hooks after committing.
    """

    def __init__(
        self,
        storage: Storage,
        read_snapshot: Snapshot | None,
        operation: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        isolation_level: str = WRITE_SERIALIZABLE,
        committer: Committer | None = None,
        max_attempts: int = 50,
        backoff_base_ms: float = 10.0,
        backoff_max_ms: float = 1000.0,
        user_metadata: str | None = None,
        post_commit: bool = True,
    ) -> None:
        if isolation_level not in ISOLATION_LEVELS:
            raise InvalidArgumentError(
                f"isolation_level {isolation_level!r} is not supported; use one of "
                f"{', '.join(ISOLATION_LEVELS)}"
            )
        if max_attempts < 1:
            raise InvalidArgumentError(f"max_attempts must be >= 1, got {max_attempts}")
        if not operation:
            raise InvalidArgumentError("operation must be a Delta operation name such as 'WRITE'")
        self.storage = storage
        self.read_snapshot = read_snapshot
        self.operation = operation
        self.parameters: dict[str, Any] = dict(parameters or {})
        self.isolation_level = isolation_level
        self.committer: Committer = committer if committer is not None else FileSystemCommitter()
        self.max_attempts = max_attempts
        self.backoff_base_ms = backoff_base_ms
        self.backoff_max_ms = backoff_max_ms
        self.user_metadata = user_metadata
        self.post_commit = post_commit
        self.txn_id = str(uuid.uuid4())
        self._protocol: Protocol | None = None
        self._metadata: Metadata | None = None
        self._adds: list[Add] = []
        self._removes: list[Remove] = []
        self._cdc: list[Cdc] = []
        self._domains: dict[str, DomainMetadata] = {}
        self._txns: dict[str, Txn] = {}
        self._read_files: set[str] = set()
        self._read_predicates: list[ReadPredicate] = []
        self._read_whole_table = False
        self._metrics: dict[str, Any] | None = None
        self._result: CommitResult | None = None

    # ------------------------------------------------------------------------------ properties
    @property
    def read_version(self) -> int | None:
        return None if self.read_snapshot is None else self.read_snapshot.version

    @property
    def protocol(self) -> Protocol | None:
        """The protocol after this transaction (new one if set, else the read snapshot's)."""
        if self._protocol is not None:
            return self._protocol
        return None if self.read_snapshot is None else self.read_snapshot.protocol

    @property
    def metadata(self) -> Metadata | None:
        """The metadata after this transaction (new one if set, else the read snapshot's)."""
        if self._metadata is not None:
            return self._metadata
        return None if self.read_snapshot is None else self.read_snapshot.metadata

    @property
    def adds(self) -> tuple[Add, ...]:
        """The ``add`` actions collected so far."""
        return tuple(self._adds)

    @property
    def removes(self) -> tuple[Remove, ...]:
        """The ``remove`` actions collected so far."""
        return tuple(self._removes)

    @property
    def result(self) -> CommitResult | None:
        """The commit result once :meth:`commit` succeeded, else ``None``."""
        return self._result

    @property
    def is_blind_append(self) -> bool:
        """Reads nothing and only adds data files (Delta's definition)."""
        reads = bool(self._read_files or self._read_predicates or self._read_whole_table)
        return not reads and not self._removes and not self._cdc

    # ------------------------------------------------------------------------------- building
    def set_protocol(self, protocol: Protocol) -> None:
        self._protocol = protocol

    def set_metadata(self, metadata: Metadata) -> None:
        self._metadata = metadata

    def add_files(self, adds: Iterable[Add]) -> None:
        self._adds.extend(adds)

    def remove_files(self, removes: Iterable[Remove]) -> None:
        self._removes.extend(removes)

    def add_actions(self, actions: Iterable[Cdc | DomainMetadata | Add | Remove | Txn]) -> None:
        """Add ``cdc`` and ``domainMetadata`` actions (file and txn actions are accepted too)."""
        for a in actions:
            if isinstance(a, Cdc):
                self._cdc.append(a)
            elif isinstance(a, DomainMetadata):
                self._domains[a.domain] = a
            elif isinstance(a, Add):
                self._adds.append(a)
            elif isinstance(a, Remove):
                self._removes.append(a)
            elif isinstance(a, Txn):
                self._txns[a.app_id] = a
            else:
                raise InvalidArgumentError(f"unsupported action for add_actions: {a!r}")

    def set_app_transaction(self, app_id: str, version: int) -> None:
        """Record that application ``app_id`` committed its ``version`` (idempotent writes)."""
        self._txns[app_id] = Txn(app_id, int(version), now_ms())

    def read_files(self, paths: Iterable[str] | pa.Array | pa.ChunkedArray) -> None:
        """Declare files (canonical paths, as in ``Snapshot.files['canonical_path']``) as read."""
        if isinstance(paths, pa.Array | pa.ChunkedArray):
            paths = paths.to_pylist()
        self._read_files.update(p for p in paths if p is not None)

    def read_predicate(self, predicate: ReadPredicate) -> None:
        """Declare a read: ``predicate(adds)`` says whether any of those new files could match it."""
        self._read_predicates.append(predicate)

    def read_whole_table(self) -> None:
        """Declare that the result depends on every row of the table."""
        self._read_whole_table = True

    # -------------------------------------------------------------------------------- commit
    def commit(self, operation_metrics: Mapping[str, Any] | None = None) -> CommitResult:
        """Validate, then commit with conflict checks and retries (see module doc).

        Raises:
            InvalidArgumentError: the transaction is invalid (or was already committed).
            UnsupportedFeatureError: the table needs a writer feature lakehouse does not honour.
            CommitConflictError: a subclass naming the concurrent change that cannot be rebased.
            MaxCommitAttemptsError: too many lost races in a row.
        """
        if self._result is not None:
            raise InvalidArgumentError("this transaction was already committed; start a new one")
        self._validate()
        self._metrics = dict(operation_metrics) if operation_metrics is not None else None
        summary = self._summary()
        body = self._encode_body()
        ict_on = ict_enabled(self.metadata.configuration if self.metadata else {})
        prev_ts = self.read_snapshot.timestamp if self.read_snapshot is not None else None
        base = -1 if self.read_version is None else self.read_version
        version = base + 1
        rebased: list[int] = []
        for attempt in range(1, self.max_attempts + 1):
            now = now_ms()
            ict = max(now, prev_ts + 1) if ict_on and prev_ts is not None else (now if ict_on else None)
            data = self._encode_header(version, now if ict is None else ict, ict) + body
            outcome = self.committer.commit(self.storage, version, data)
            if isinstance(outcome, Committed):
                return self._finish(outcome.version, attempt, now if ict is None else ict, ict,
                                    rebased)
            winners = self._read_winners(base + 1)
            for w in winners:
                if w.txn_id == self.txn_id:
                    # Our own earlier attempt landed although the committer could not tell:
                    # never commit the same actions twice.
                    ts = int((w.commit_info or {}).get("timestamp") or w.timestamp)
                    return self._finish(w.version, attempt, ts,
                                        w.timestamp if ict_on else None, rebased)
                check_conflicts(summary, w)
                rebased.append(w.version)
                if prev_ts is None or w.timestamp > prev_ts:
                    prev_ts = w.timestamp
            if winners:
                base = winners[-1].version
                version = base + 1
            log.debug("commit attempt %d lost version %s; rebased to %d", attempt,
                      outcome.version, version)
            if attempt < self.max_attempts:
                self._backoff(attempt, progressed=bool(winners))
        raise MaxCommitAttemptsError(
            f"gave up committing to {self.storage.root} after {self.max_attempts} attempts: "
            "other writers kept committing first. Retry later, or raise max_attempts.",
            version,
        )

    # ----------------------------------------------------------------------------- internals
    def _validate(self) -> None:
        root = self.storage.root
        if self.read_snapshot is None and (self._protocol is None or self._metadata is None):
            raise InvalidArgumentError(
                f"creating the table at {root} needs both set_protocol() and set_metadata()"
            )
        protocol = self.protocol
        assert protocol is not None
        if protocol.min_reader_version >= 3 and protocol.min_writer_version < 7:
            raise InvalidArgumentError(
                f"protocol reader version {protocol.min_reader_version} requires writer version 7, "
                f"got {protocol.min_writer_version}"
            )
        ensure_writable(protocol, root)
        if self._domains and not protocol.has_writer_feature("domainMetadata"):
            raise InvalidArgumentError(
                "domainMetadata actions need the 'domainMetadata' writer feature in the table "
                "protocol; add it with set_protocol() in this or an earlier commit"
            )
        if any(r.data_change for r in self._removes):
            configs = [self._metadata.configuration] if self._metadata is not None else []
            if self.read_snapshot is not None:
                configs.append(self.read_snapshot.metadata.configuration)
            if any(str(c.get("delta.appendOnly", "false")).lower() == "true" for c in configs):
                raise InvalidArgumentError(
                    f"table {root} is append-only (delta.appendOnly=true): this {self.operation} "
                    "would remove or change data. Only appends are allowed; set "
                    "delta.appendOnly=false first if the data really must change."
                )
        seen: set[tuple[str, str]] = set()
        for kind, acts in (("add", self._adds), ("remove", self._removes)):
            for a in acts:
                key = (a.path, DeletionVectorDescriptor.from_dict(a.deletion_vector).unique_id
                       if a.deletion_vector else "")
                if key in seen:
                    raise InvalidArgumentError(
                        f"file {a.path!r} appears more than once among this commit's adds/removes "
                        f"(second time as {kind}); each (path, deletion vector) may appear once"
                    )
                seen.add(key)

    def _summary(self) -> TransactionSummary:
        removed: frozenset[str] = frozenset()
        if self._removes:
            canon = canonicalize_paths(pa.array([r.path for r in self._removes], pa.string()),
                                       self.storage.root)
            removed = frozenset(canon.to_pylist())
        return TransactionSummary(
            read_version=self.read_version,
            isolation_level=self.isolation_level,
            changes_protocol=self._protocol is not None,
            changes_metadata=self._metadata is not None,
            app_ids=frozenset(self._txns),
            domains=frozenset(self._domains),
            read_files=frozenset(self._read_files),
            read_predicates=tuple(self._read_predicates),
            read_whole_table=self._read_whole_table,
            removed_paths=removed,
            is_blind_append=self.is_blind_append,
        )

    def _encode_body(self) -> bytes:
        """Every action after protocol/metaData; identical for all attempts, so encoded once."""
        acts: list[tuple[str, Mapping[str, Any]]] = []
        acts += [(A.TXN, t.to_dict()) for t in self._txns.values()]
        acts += [(A.DOMAIN_METADATA, d.to_dict()) for d in self._domains.values()]
        acts += [(A.REMOVE, r.to_dict()) for r in self._removes]
        acts += [(A.ADD, a.to_dict()) for a in self._adds]
        acts += [(A.CDC, c.to_dict()) for c in self._cdc]
        return encode_commit(acts) if acts else b""

    def _encode_header(self, version: int, timestamp: int, ict: int | None) -> bytes:
        info = CommitInfo(
            operation=self.operation,
            operation_parameters=self.parameters,
            timestamp=timestamp,
            operation_metrics=self._metrics,
            read_version=self.read_version,
            isolation_level=self.isolation_level,
            is_blind_append=self.is_blind_append,
            in_commit_timestamp=ict,
            txn_id=self.txn_id,
            engine_info=engine_info(),
            user_metadata=self.user_metadata,
        )
        acts: list[tuple[str, Mapping[str, Any]]] = [(A.COMMIT_INFO, info.to_dict())]
        if self._protocol is not None:
            acts.append((A.PROTOCOL, self._protocol.to_dict()))
        metadata = self._metadata
        if metadata is not None and ict is not None and version > 0 and self.read_snapshot is not None \
                and not ict_enabled(self.read_snapshot.metadata.configuration):
            # ICT switched on for an existing table: record where the ICT history starts.
            metadata = metadata.with_(configuration={
                **metadata.configuration,
                ICT_ENABLEMENT_VERSION: str(version),
                ICT_ENABLEMENT_TIMESTAMP: str(ict),
            })
        if metadata is not None:
            acts.append((A.METADATA, metadata.to_dict()))
        return encode_commit(acts)

    def _read_winners(self, from_version: int) -> list[WinningCommit]:
        """The contiguous commits from ``from_version`` on, parsed for conflict checking."""
        commits = sorted(
            (f for f in list_log(self.storage, start_version=from_version)
             if f.kind is LogKind.COMMIT and f.version >= from_version),
            key=lambda f: f.version,
        )
        run: list[LogPath] = []
        for f in commits:
            if f.version != from_version + len(run):
                break
            run.append(f)
        blobs = self.storage.read_many([f.path for f in run])
        return [WinningCommit.from_bytes(f.version, b, self.storage.root, f.modification_time)
                for f, b in zip(run, blobs, strict=True)]

    def _backoff(self, attempt: int, *, progressed: bool) -> None:
        """Jittered pause before the next attempt.

        After a successful rebase the pause stays short (up to ``backoff_base_ms``): growing it
        would hand the next version to writers that started later and starve this one. Only when
        the winning commit could not be seen yet (listing lag) does it grow exponentially.
        """
        if progressed:
            cap = self.backoff_base_ms / attempt
        else:
            cap = min(self.backoff_max_ms, self.backoff_base_ms * (2 ** (attempt - 1)))
        time.sleep(random.uniform(0, cap) / 1000.0)

    def _finish(self, version: int, attempts: int, timestamp: int, ict: int | None,
                rebased: list[int]) -> CommitResult:
        log.info("committed %s version %d (%s, %d attempt(s))", self.storage.root, version,
                 self.operation, attempts)
        report = None
        if self.post_commit:
            metadata = self.metadata
            report = run_post_commit_hooks(self.storage, version,
                                           metadata.configuration if metadata else {})
        self._result = CommitResult(
            version=version,
            attempts=attempts,
            txn_id=self.txn_id,
            timestamp=timestamp,
            in_commit_timestamp=ict,
            rebased_over=tuple(rebased),
            checkpoint=report.checkpoint if report else None,
            cleaned_log_files=report.cleaned_log_files if report else (),
        )
        return self._result
