"""Commit timestamps and timestamp-based time travel.

Per the protocol, a version's timestamp is its in-commit timestamp (``commitInfo.inCommitTimestamp``)
when ``delta.enableInCommitTimestamps`` is on for that version, else the commit file's modification
time. File times are made monotonic (a commit is never older than its predecessor) as Delta does.
Travelling to a timestamp picks the latest version committed at or before it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lakehouse.errors import InvalidArgumentError, VersionNotFoundError
from lakehouse.log.actions import Metadata
from lakehouse.log.paths import LogKind
from lakehouse.log.segment import LogSegment, list_log

if TYPE_CHECKING:
    from lakehouse.io.storage import Storage


def to_epoch_ms(ts: datetime | str | int | float) -> int:
    """A datetime (naive = UTC), ISO-8601 string, or epoch milliseconds, as epoch milliseconds."""
    if isinstance(ts, int | float):
        return int(ts)
    if isinstance(ts, str):
        try:
            ts = datetime.fromisoformat(ts.strip().replace("Z", "+00:00"))
        except ValueError as e:
            raise InvalidArgumentError(
                f"timestamp {ts!r} is not ISO-8601 (e.g. '2024-05-01T12:00:00Z')"
            ) from e
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return int(ts.timestamp() * 1000)
    raise InvalidArgumentError(f"timestamp must be a datetime, ISO string or epoch ms, not {ts!r}")


def ict_enabled(config: Mapping[str, str]) -> bool:
    return str(config.get("delta.enableInCommitTimestamps", "false")).lower() == "true"


def _first_commit_info(data: bytes) -> Mapping[str, Any] | None:
    for line in data.splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        if "commitInfo" in obj:
            return obj["commitInfo"]
    return None


def commit_timestamps(storage: Storage) -> list[tuple[int, int]]:
    """``(version, timestamp ms)`` for every commit file in the log, ascending and monotonic."""
    commits = [f for f in list_log(storage) if f.kind is LogKind.COMMIT]
    out: list[tuple[int, int]] = []
    if not commits:
        return out
    # In-commit timestamps: read the commits' commitInfo once (they are small JSON files).
    use_ict = False
    try:
        from lakehouse.log.snapshot import Snapshot  # local import: avoids a cycle

        latest = Snapshot.load(storage)
        use_ict = ict_enabled(latest.metadata.configuration)
        ict_from = int(latest.metadata.configuration.get(
            "delta.inCommitTimestampEnablementVersion", "0"))
    except Exception:
        ict_from = 0
    icts: dict[int, int] = {}
    if use_ict:
        wanted = [c for c in commits if c.version >= ict_from]
        for c, blob in zip(wanted, storage.read_many([c.path for c in wanted]), strict=True):
            info = _first_commit_info(blob)
            if info and info.get("inCommitTimestamp") is not None:
                icts[c.version] = int(info["inCommitTimestamp"])
    prev = -1
    for c in commits:
        ts = icts.get(c.version)
        if ts is None:
            ts = max(c.modification_time, prev + 1)
        out.append((c.version, ts))
        prev = ts
    return out


def version_at_timestamp(storage: Storage, ts: datetime | str | int | float) -> int:
    """The latest version committed at or before ``ts``.

    Raises:
        VersionNotFoundError: ``ts`` is before the first available commit or after the latest one.
    """
    want = to_epoch_ms(ts)
    stamps = commit_timestamps(storage)
    if not stamps:
        LogSegment.for_version(storage)  # raises TableNotFoundError
        raise VersionNotFoundError(f"no commit files to resolve a timestamp in {storage.root}")
    if want < stamps[0][1]:
        raise VersionNotFoundError(
            f"timestamp {_fmt(want)} is before the earliest available commit "
            f"(version {stamps[0][0]} at {_fmt(stamps[0][1])})"
        )
    if want > stamps[-1][1] + 999:
        raise VersionNotFoundError(
            f"timestamp {_fmt(want)} is after the latest commit (version {stamps[-1][0]} at "
            f"{_fmt(stamps[-1][1])}); omit timestamp= to read the latest version"
        )
    best = stamps[0][0]
    for v, t in stamps:
        if t <= want:
            best = v
        else:
            break
    return best


def commit_timestamp_of(
    storage: Storage, segment: LogSegment, metadata: Metadata,
    commit_info: Mapping[str, Any] | None,
) -> int:
    """Timestamp (ms) of the segment's version."""
    if commit_info and ict_enabled(metadata.configuration) and commit_info.get("inCommitTimestamp"):
        return int(commit_info["inCommitTimestamp"])
    if segment.commits and segment.commits[-1].version == segment.version:
        return segment.commits[-1].modification_time
    if segment.checkpoint:
        return segment.checkpoint[0].modification_time
    return 0


def _fmt(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()
