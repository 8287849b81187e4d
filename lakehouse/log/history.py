"""Table history: the ``commitInfo`` of each commit, newest first (what ``DESCRIBE HISTORY`` shows)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from lakehouse.log.paths import LogKind
from lakehouse.log.segment import list_log

if TYPE_CHECKING:
    from lakehouse.io.storage import Storage


def _maybe_json(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def read_history(storage: Storage, limit: int | None = None, up_to: int | None = None) -> list[dict[str, Any]]:
    """Newest-first commit entries: version, timestamp (ms), operation, parameters, metrics, ...

    Versions whose commit files were cleaned up are absent (as in Delta).
    """
    commits = [f for f in list_log(storage) if f.kind is LogKind.COMMIT]
    if up_to is not None:
        commits = [c for c in commits if c.version <= up_to]
    commits.sort(key=lambda c: c.version, reverse=True)
    if limit is not None:
        commits = commits[: max(limit, 0)]
    blobs = storage.read_many([c.path for c in commits])
    out = []
    for c, blob in zip(commits, blobs, strict=True):
        info: dict[str, Any] = {}
        for line in blob.splitlines():
            if line.strip():
                obj = json.loads(line)
                if "commitInfo" in obj:
                    info = obj["commitInfo"]
                    break
        ts = info.get("inCommitTimestamp") or info.get("timestamp") or c.modification_time
        entry = {
            "version": c.version,
            "timestamp": int(ts),
            "operation": info.get("operation"),
            "operationParameters": {
                k: _maybe_json(v) for k, v in (info.get("operationParameters") or {}).items()
            },
            "operationMetrics": {
                k: _maybe_json(v) for k, v in (info.get("operationMetrics") or {}).items()
            },
            "readVersion": info.get("readVersion"),
            "isolationLevel": info.get("isolationLevel"),
            "isBlindAppend": info.get("isBlindAppend"),
            "engineInfo": info.get("engineInfo") or info.get("clientVersion"),
            "userMetadata": info.get("userMetadata"),
        }
        out.append(entry)
    return out
