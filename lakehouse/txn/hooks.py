"""Work done after a successful commit: periodic checkpoints and expired log cleanup.

These are optimisations, not part of the commit: the commit is durable before they start, and a
failure here is logged and never turned into a failed write. A checkpoint is written when the new
version is a multiple of ``delta.checkpointInterval`` (default 10); expired log cleanup runs right
after it (as in Delta) unless ``delta.enableExpiredLogCleanup`` is ``false``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakehouse.log.checkpoint import CheckpointInfo, cleanup_expired_logs, write_checkpoint

if TYPE_CHECKING:
    from lakehouse.io.storage import Storage

__all__ = [
    "DEFAULT_CHECKPOINT_INTERVAL",
    "PostCommitReport",
    "checkpoint_interval",
    "expired_log_cleanup_enabled",
    "run_post_commit_hooks",
]

log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT_INTERVAL = 10


@dataclass(frozen=True, slots=True)
class PostCommitReport:
    """What the post-commit hooks did: the checkpoint written (if any) and log files deleted."""

    checkpoint: CheckpointInfo | None = None
    cleaned_log_files: tuple[str, ...] = ()


def checkpoint_interval(config: Mapping[str, str]) -> int:
    """``delta.checkpointInterval`` (default 10); invalid or non-positive values use the default."""
    raw = config.get("delta.checkpointInterval")
    try:
        value = int(raw) if raw is not None else DEFAULT_CHECKPOINT_INTERVAL
    except ValueError:
        log.warning("ignoring invalid delta.checkpointInterval=%r", raw)
        return DEFAULT_CHECKPOINT_INTERVAL
    return value if value > 0 else DEFAULT_CHECKPOINT_INTERVAL


def expired_log_cleanup_enabled(config: Mapping[str, str]) -> bool:
    """``delta.enableExpiredLogCleanup`` (default true)."""
    return str(config.get("delta.enableExpiredLogCleanup", "true")).strip().lower() != "false"


def run_post_commit_hooks(storage: Storage, version: int, config: Mapping[str, str]) -> PostCommitReport:
    """Checkpoint ``version`` if it is due, then clean up expired logs. Never raises."""
    if version <= 0 or version % checkpoint_interval(config) != 0:
        return PostCommitReport()
    from lakehouse.log.snapshot import Snapshot

    try:
        snapshot = Snapshot.load(storage, version)
        info = write_checkpoint(storage, snapshot)
    except Exception:
        log.warning("checkpoint of %s at version %d failed; the commit itself succeeded",
                    storage.root, version, exc_info=True)
        return PostCommitReport()
    cleaned: list[str] = []
    if expired_log_cleanup_enabled(snapshot.metadata.configuration):
        try:
            cleaned = cleanup_expired_logs(storage, snapshot)
        except Exception:
            log.warning("expired log cleanup of %s failed; the commit itself succeeded",
                        storage.root, exc_info=True)
    return PostCommitReport(info, tuple(cleaned))
