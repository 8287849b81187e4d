"""The log segment: the minimal set of log files that reconstructs one version.

Invariants of a :class:`LogSegment` (checked when it is built, so replay can trust them):

- ``checkpoint`` holds every part of one complete checkpoint at ``checkpoint_version`` (or nothing);
- ``commits`` are the commit files ``checkpoint_version + 1 .. version`` (or ``0 .. version`` without
  a checkpoint), ascending, with no gaps;
- ``version`` is the version the segment reconstructs.

``_last_checkpoint`` is only a hint that shortens the listing: a missing, corrupt or stale hint falls
back to listing the whole log, never to a guess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakehouse.errors import ProtocolError, TableNotFoundError, VersionNotFoundError
from lakehouse.log.paths import LAST_CHECKPOINT, LOG_DIR, LogKind, LogPath, version_prefix

if TYPE_CHECKING:
    from lakehouse.io.storage import Storage


@dataclass(frozen=True, slots=True)
class LogSegment:
    """Checkpoint files plus the commits after them, up to ``version``."""

    version: int
    checkpoint_version: int | None
    checkpoint: tuple[LogPath, ...]
    commits: tuple[LogPath, ...]

    @classmethod
    def for_version(cls, storage: Storage, version: int | None = None) -> LogSegment:
        """Build the segment for ``version`` (latest when ``None``).

        Raises:
            TableNotFoundError: no ``_delta_log`` commits at the location.
            VersionNotFoundError: ``version`` is newer than the latest or older than the oldest
                reconstructable version.
            ProtocolError: the log has a gap, or starts without a checkpoint.
        """
        if version is not None and version < 0:
            raise VersionNotFoundError(f"version must be >= 0, got {version}")
        hint = read_last_checkpoint_version(storage)
        files: list[LogPath] | None = None
        if hint is not None and (version is None or hint <= version):
            files = list_log(storage, start_version=hint)
            if not _has_complete_checkpoint(files, hint):
                files = None  # stale or broken hint: list everything
        if files is None:
            files = list_log(storage)
        return cls.from_files(files, version, storage.root)

    @classmethod
    def from_files(cls, files: list[LogPath], version: int | None, root: str = "") -> LogSegment:
        """Build the segment for ``version`` from an already-listed, sorted set of log files."""
        commits = {f.version: f for f in files if f.kind is LogKind.COMMIT}
        checkpoints = _complete_checkpoints(files)
        if not commits and not checkpoints:
            raise TableNotFoundError(
                f"no Delta table at {root or 'this location'}: _delta_log has no commits. "
                "Check the URI, or create the table with lakehouse.write(...)."
            )
        latest = max([*commits, *checkpoints])
        if version is None:
            version = latest
        elif version > latest:
            raise VersionNotFoundError(
                f"version {version} does not exist: the latest version of {root} is {latest}"
            )
        usable = [v for v in checkpoints if v <= version]
        cp_version = max(usable) if usable else None
        start = 0 if cp_version is None else cp_version + 1
        wanted = range(start, version + 1)
        missing = [v for v in wanted if v not in commits]
        if missing:
            earliest = min(commits) if commits else None
            if earliest is not None and version < earliest and cp_version is None:
                raise VersionNotFoundError(
                    f"version {version} is no longer reconstructable: the log of {root} starts at "
                    f"version {earliest} (older commits were cleaned up) and has no checkpoint "
                    "at or before it"
                )
            raise ProtocolError(
                f"the log of {root} is missing commit file(s) for version(s) "
                f"{_ranges(missing)} needed to read version {version}"
            )
        return cls(
            version=version,
            checkpoint_version=cp_version,
            checkpoint=checkpoints.get(cp_version, ()) if cp_version is not None else (),
            commits=tuple(commits[v] for v in wanted),
        )


def list_log(storage: Storage, start_version: int | None = None) -> list[LogPath]:
    """List and classify ``_delta_log/`` (from ``start_version`` on), sorted by name."""
    start_after = None if start_version is None else version_prefix(start_version)
    out = []
    for info in storage.list_dir(LOG_DIR, start_after=start_after):
        p = LogPath.parse(info.path, info.size, info.modification_time)
        if p is not None:
            out.append(p)
    return out


def read_last_checkpoint_version(storage: Storage) -> int | None:
    """The version ``_last_checkpoint`` points at, or ``None`` if it is missing or unreadable."""
    try:
        data = json.loads(storage.read_bytes(LAST_CHECKPOINT))
        return int(data["version"])
    except (FileNotFoundError, ValueError, KeyError, TypeError, OSError):
        return None


def _complete_checkpoints(files: list[LogPath]) -> dict[int, tuple[LogPath, ...]]:
    """Map version -> the files of one complete checkpoint at that version.

    Preference at one version: a V2 checkpoint, then a classic one, then a complete multi-part set.
    """
    by_version: dict[int, list[LogPath]] = {}
    for f in files:
        if f.kind.is_checkpoint:
            by_version.setdefault(f.version, []).append(f)
    out: dict[int, tuple[LogPath, ...]] = {}
    for v, fs in by_version.items():
        v2 = [f for f in fs if f.kind is LogKind.V2_CHECKPOINT]
        classic = [f for f in fs if f.kind is LogKind.CHECKPOINT]
        if v2:
            out[v] = (v2[0],)
            continue
        if classic:
            out[v] = (classic[0],)
            continue
        parts: dict[int, dict[int, LogPath]] = {}
        for f in fs:
            if f.kind is LogKind.MULTIPART_CHECKPOINT and f.num_parts and f.part:
                parts.setdefault(f.num_parts, {})[f.part] = f
        for n, got in sorted(parts.items()):
            if len(got) == n and all(i in got for i in range(1, n + 1)):
                out[v] = tuple(got[i] for i in range(1, n + 1))
                break
    return out


def _has_complete_checkpoint(files: list[LogPath], version: int) -> bool:
    return version in _complete_checkpoints(files)


def _ranges(versions: list[int]) -> str:
    if len(versions) > 6:
        return f"{versions[0]}..{versions[-1]} ({len(versions)} files)"
    return ", ".join(map(str, versions))
