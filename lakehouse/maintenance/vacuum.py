"""VACUUM: delete files no version inside the retention period still needs.

Time travel keeps old data files alive: a file removed from the table at time ``T`` is still read
by every version before its removal, so it may only be deleted once ``T`` is older than the
retention period (``delta.deletedFileRetentionDuration``, default one week). This module decides
which files those are, following Delta's rules:

* never ``_delta_log`` or any other *hidden* path: a path component starting with ``_`` or ``.``
  hides everything below it, except ``_change_data`` and ``_delta_index`` and partition
  directories whose column name itself starts with ``_``;
* never a file referenced by the current version or by a tombstone still inside the retention
  period, deletion-vector files included;
* never a file younger than the retention period (it may belong to a write still in flight),
  and never anything outside the table root.

*Lite* mode (default) takes its candidates from the log (expired tombstones, plus expired files of
``_change_data``), so it never lists the whole table; *full* mode lists every file and also finds
orphans of failed writes. A real run is bracketed by ``VACUUM START`` / ``VACUUM END`` commits with
Delta's parameters and metrics.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow.compute as pc

from lakehouse.errors import InvalidArgumentError
from lakehouse.log.checkpoint import DEFAULT_DELETED_FILE_RETENTION, parse_interval_ms
from lakehouse.log.features import ensure_writable
from lakehouse.log.snapshot import Snapshot
from lakehouse.maintenance.common import existing_files, is_inside_root, referenced_paths
from lakehouse.txn.transaction import Transaction

if TYPE_CHECKING:
    from lakehouse.io.storage import Storage

__all__ = ["VacuumResult", "deleted_file_retention_ms", "is_hidden_path", "vacuum"]

CHANGE_DATA_DIR = "_change_data"
_DELETE_CHUNK = 1000
_PROGRESS_MIN_FILES = 200


@dataclass(frozen=True, slots=True)
class VacuumResult:
    """What a vacuum deleted (or, on a dry run, would delete).

    Attributes:
        files: root-relative paths, sorted.
        dry_run: nothing was deleted.
        mode: ``"lite"`` or ``"full"``.
        retention_ms: the retention period applied.
        cutoff_ms: files removed (or, in full mode, modified) before this epoch-ms time qualified.
        size_in_bytes: total size of ``files``.
        version: the ``VACUUM END`` version committed (None on a dry run or when nothing was due).
    """

    files: list[str] = field(default_factory=list)
    dry_run: bool = False
    mode: str = "lite"
    retention_ms: int = 0
    cutoff_ms: int = 0
    size_in_bytes: int = 0
    version: int | None = None

    @property
    def num_files(self) -> int:
        return len(self.files)


def deleted_file_retention_ms(config: Mapping[str, str]) -> int:
    """``delta.deletedFileRetentionDuration`` of a table configuration, in ms (default 7 days)."""
    value = config.get("delta.deletedFileRetentionDuration")
    return parse_interval_ms(value or DEFAULT_DELETED_FILE_RETENTION)


def is_hidden_path(path: str, partition_columns: Sequence[str] = ()) -> bool:
    """Whether vacuum must leave ``path`` (root-relative) alone, per Delta's hidden-name rule."""
    prefixes = tuple(f"{c}=" for c in partition_columns)
    for part in path.split("/"):
        if not part.startswith(("_", ".")):
            continue
        if part.startswith((CHANGE_DATA_DIR, "_delta_index")):
            continue
        if prefixes and part.startswith(prefixes):
            continue
        return True
    return False


def _partition_dir_names(snapshot: Snapshot) -> list[str]:
    """Names partition directories may use: logical and (under column mapping) physical."""
    names = list(snapshot.partition_columns)
    if snapshot.column_mapping_mode != "none":
        from lakehouse.log.schema import physical_name

        names += [physical_name(snapshot.schema.field(c)) for c in snapshot.partition_columns]
    return names


def _retention(snapshot: Snapshot, retention_hours: float | None, enforce: bool) -> tuple[int, int]:
    """(retention to apply, table's configured retention), both in ms; checks the safety rule."""
    table_ms = deleted_file_retention_ms(snapshot.configuration)
    if retention_hours is None:
        return table_ms, table_ms
    if retention_hours < 0:
        raise InvalidArgumentError(f"retention_hours must be >= 0, got {retention_hours}")
    wanted = round(float(retention_hours) * 3_600_000)
    if wanted < table_ms:
        hours = table_ms / 3_600_000
        if enforce:
            raise InvalidArgumentError(
                f"retention of {retention_hours:g} hours is shorter than the table's "
                f"delta.deletedFileRetentionDuration ({hours:g} hours): files that concurrent "
                "readers or unfinished writes still need could be deleted, and time travel to "
                "versions inside the retention period would break. Use a longer retention, or pass "
                "enforce_retention=False (CLI: --force) if you are sure nothing uses them."
            )
        warnings.warn(
            f"vacuuming with a retention of {retention_hours:g} hours, shorter than the table's "
            f"{hours:g} hours: time travel to older versions will fail and concurrent readers or "
            "writers may lose files",
            UserWarning,
            stacklevel=4,
        )
    return wanted, table_ms


def plan_vacuum(snapshot: Snapshot, retention_ms: int, *, full: bool,
                now_ms: int | None = None) -> tuple[dict[str, int], int]:
    """Files to delete (path -> size) and the cut-off time used."""
    storage = snapshot.storage
    root = storage.root
    now = int(time.time() * 1000) if now_ms is None else now_ms
    cutoff = now - retention_ms
    tombs = snapshot.tombstones
    if tombs.num_rows:
        ts = pc.fill_null(tombs["deletionTimestamp"], 0)
        expired = tombs.filter(pc.less(ts, cutoff))
        live_tombs = tombs.filter(pc.greater_equal(ts, cutoff))
    else:
        expired = live_tombs = tombs
    protected = referenced_paths(snapshot.files, root) | referenced_paths(live_tombs, root)
    hidden_ok = _partition_dir_names(snapshot)

    def eligible(p: str) -> bool:
        return is_inside_root(p) and p not in protected and not is_hidden_path(p, hidden_ok)

    doomed: dict[str, int] = {}
    if full:
        for info in storage.list_recursive(""):
            if info.modification_time < cutoff and eligible(info.path):
                doomed[info.path] = info.size
        return doomed, cutoff
    candidates = {p for p in referenced_paths(expired, root) if eligible(p)}
    for path, info in existing_files(storage, candidates).items():
        doomed[path] = info.size
    # Change data files are not in the table state; expired ones are found by listing their dir.
    for info in storage.list_recursive(CHANGE_DATA_DIR):
        if info.modification_time < cutoff and eligible(info.path):
            doomed[info.path] = info.size
    return doomed, cutoff


def vacuum(
    snapshot: Snapshot,
    retention_hours: float | None = None,
    *,
    dry_run: bool = False,
    enforce_retention: bool = True,
    full: bool = False,
    progress: bool = False,
    now_ms: int | None = None,
) -> VacuumResult:
    """Delete (or list, on ``dry_run``) unreferenced files older than the retention period.

    ``snapshot`` must be the latest version. See the module docstring for the rules.

    Raises:
        InvalidArgumentError: the retention is shorter than the table's and ``enforce_retention``.
        UnsupportedFeatureError: the table needs a writer feature lakehouse does not honour.
    """
    ensure_writable(snapshot.protocol, snapshot.storage.root)
    retention_ms, table_ms = _retention(snapshot, retention_hours, enforce_retention)
    doomed, cutoff = plan_vacuum(snapshot, retention_ms, full=full, now_ms=now_ms)
    files = sorted(doomed)
    total = sum(doomed.values())
    mode = "full" if full else "lite"
    result = VacuumResult(files=files, dry_run=dry_run, mode=mode, retention_ms=retention_ms,
                          cutoff_ms=cutoff, size_in_bytes=total)
    if dry_run or not files:
        return result
    storage = snapshot.storage
    params: dict[str, object] = {"retentionCheckEnabled": enforce_retention,
                                 "defaultRetentionMillis": table_ms, "vacuumType": mode.upper()}
    if retention_hours is not None:
        params["specifiedRetentionMillis"] = retention_ms
    start = Transaction(storage, snapshot, "VACUUM START", params)
    started = start.commit({"numFilesToDelete": len(files), "sizeOfDataToDelete": total})
    after_start = Snapshot.load(storage, version=started.version)
    status = "COMPLETED"
    try:
        _delete(storage, files, progress)
    except BaseException:
        status = "FAILED"
        raise
    finally:
        end = Transaction(storage, after_start, "VACUUM END", {"status": status})
        ended = end.commit({"numDeletedFiles": len(files) if status == "COMPLETED" else 0,
                            "numVacuumedDirectories": 0})
    return VacuumResult(files=files, dry_run=False, mode=mode, retention_ms=retention_ms,
                        cutoff_ms=cutoff, size_in_bytes=total, version=ended.version)


def _delete(storage: Storage, files: list[str], progress: bool) -> None:
    bar = None
    if progress and len(files) >= _PROGRESS_MIN_FILES:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        bar = Progress(TextColumn("[bold]deleting files"), BarColumn(), MofNCompleteColumn())
    chunks = [files[i:i + _DELETE_CHUNK] for i in range(0, len(files), _DELETE_CHUNK)]
    if bar is None:
        for chunk in chunks:
            storage.delete(chunk)
        return
    with bar:
        task = bar.add_task("delete", total=len(files))
        for chunk in chunks:
            storage.delete(chunk)
            bar.advance(task, len(chunk))


