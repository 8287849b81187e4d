"""Putting one commit file into the log: the single atomic step of a Delta transaction.

A :class:`Committer` tries to create ``_delta_log/<version>.json`` and reports whether it won
(:class:`Committed`) or another writer already holds that version (:class:`Conflicted`). Conflict
resolution and retries live in the transaction; the committer only knows the storage primitive.

:class:`FileSystemCommitter` uses :meth:`Storage.put_if_absent`, which is atomic on every backend
we support. Because a transport may retry a create that had in fact succeeded, a "file exists" or
an ambiguous error is resolved by reading the commit back and looking for our own
``commitInfo.txnId``: if it is there, the commit is ours.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from lakehouse.log.paths import commit_path

if TYPE_CHECKING:
    from lakehouse.io.storage import Storage

__all__ = ["CommitOutcome", "Committed", "Committer", "Conflicted", "FileSystemCommitter", "txn_id_of"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Committed:
    """The commit file for ``version`` is ours."""

    version: int


@dataclass(frozen=True, slots=True)
class Conflicted:
    """Another writer committed ``version`` first."""

    version: int


CommitOutcome = Committed | Conflicted


class Committer(Protocol):
    """Writes one commit file atomically. Implementations must never overwrite an existing one."""

    def commit(self, storage: Storage, version: int, data: bytes) -> CommitOutcome: ...


def txn_id_of(data: bytes) -> str | None:
    """The ``commitInfo.txnId`` of a commit file's content, if its commitInfo carries one."""
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            return None
        info = obj.get("commitInfo") if isinstance(obj, dict) else None
        if isinstance(info, dict):
            tid = info.get("txnId")
            return str(tid) if tid is not None else None
    return None


class FileSystemCommitter:
    """Commit by put-if-absent of the commit file on the table's own storage."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "FileSystemCommitter()"

    def commit(self, storage: Storage, version: int, data: bytes) -> CommitOutcome:
        path = commit_path(version)
        ours = txn_id_of(data)
        try:
            storage.put_if_absent(path, data)
            return Committed(version)
        except FileExistsError:
            try:
                existing = txn_id_of(storage.read_bytes(path))
            except Exception:
                existing = None
            if ours is not None and existing == ours:
                log.info("commit %d already holds our txnId %s (retried request)", version, ours)
                return Committed(version)
            return Conflicted(version)
        except Exception as err:
            # Ambiguous failure: the write may or may not have landed. Look before giving up.
            try:
                existing = txn_id_of(storage.read_bytes(path))
            except Exception:
                raise err from None  # nothing readable there: surface the original error
            if ours is not None and existing == ours:
                log.info("commit %d landed despite an error (txnId %s)", version, ours)
                return Committed(version)
            return Conflicted(version)
