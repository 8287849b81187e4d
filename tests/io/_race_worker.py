"""Child-process body for the multi-process put-if-absent race (kept import-light for spawn)."""

from __future__ import annotations

import sys
from typing import Any

from lakehouse.io import Storage

ERROR = 4


def payload(writer: int, key: str) -> bytes:
    return f"writer-{writer}-{key}|".encode() * 2048


def race(root: str, keys: list[str], writer: int, barrier: Any) -> None:
    """Try to create every key; record each key won as an empty marker file ``winners/<key>.<writer>``."""
    storage = Storage.for_uri(root)
    barrier.wait(timeout=60)
    won = []
    for key in keys:
        try:
            storage.put_if_absent(key, payload(writer, key))
            won.append(key)
        except FileExistsError:
            pass
        except Exception as e:  # pragma: no cover - reported through the exit code
            print(f"writer {writer}: {e!r}", file=sys.stderr)
            sys.exit(ERROR)
    for key in won:
        storage.put_if_absent(f"winners/{key.replace('/', '_')}.{writer}", b"")
    sys.exit(0)
