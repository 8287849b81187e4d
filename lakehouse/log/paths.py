"""Log file names, parsed once.

Every file under ``_delta_log/`` is classified a single time into a :class:`LogPath` so the rest of
the log code never re-parses names. Kinds follow the Delta protocol's file naming:

- ``00000000000000000010.json``: a commit (delta file) for version 10;
- ``00000000000000000010.checkpoint.parquet``: a classic single-part checkpoint;
- ``00000000000000000010.checkpoint.0000000001.0000000003.parquet``: part 1 of 3 of a multi-part one;
- ``00000000000000000010.checkpoint.<uuid>.json|parquet``: a V2 checkpoint's top-level file;
- ``00000000000000000010.00000000000000000015.compacted.json``: a log compaction file;
- ``00000000000000000010.crc``: a version checksum file.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

LOG_DIR = "_delta_log"
LAST_CHECKPOINT = f"{LOG_DIR}/_last_checkpoint"
SIDECAR_DIR = f"{LOG_DIR}/_sidecars"

_VERSION = r"(\d{20})"
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("commit", re.compile(rf"^{_VERSION}\.json$")),
    ("checkpoint", re.compile(rf"^{_VERSION}\.checkpoint\.parquet$")),
    ("multipart", re.compile(rf"^{_VERSION}\.checkpoint\.(\d{{10}})\.(\d{{10}})\.parquet$")),
    ("v2", re.compile(rf"^{_VERSION}\.checkpoint\.([0-9a-fA-F-]{{36}})\.(json|parquet)$")),
    ("compaction", re.compile(rf"^{_VERSION}\.{_VERSION}\.compacted\.json$")),
    ("crc", re.compile(rf"^{_VERSION}\.crc$")),
)


class LogKind(enum.Enum):
    """What a file in ``_delta_log/`` is."""

    COMMIT = "commit"
    CHECKPOINT = "checkpoint"
    MULTIPART_CHECKPOINT = "multipart"
    V2_CHECKPOINT = "v2"
    COMPACTION = "compaction"
    CRC = "crc"

    @property
    def is_checkpoint(self) -> bool:
        return self in (LogKind.CHECKPOINT, LogKind.MULTIPART_CHECKPOINT, LogKind.V2_CHECKPOINT)


@dataclass(frozen=True, slots=True)
class LogPath:
    """One parsed ``_delta_log`` file name.

    Attributes:
        path: path relative to the table root (``_delta_log/...``).
        version: the version the file belongs to (the start version for compactions).
        kind: what the file is.
        part, num_parts: multi-part checkpoint part number (1-based) and part count.
        end_version: last version covered by a compaction file.
        fmt: ``"json"`` or ``"parquet"``.
        size, modification_time: as listed (bytes, ms since epoch).
    """

    path: str
    version: int
    kind: LogKind
    fmt: str
    part: int | None = None
    num_parts: int | None = None
    end_version: int | None = None
    size: int = 0
    modification_time: int = 0

    @classmethod
    def parse(cls, path: str, size: int = 0, modification_time: int = 0) -> LogPath | None:
        """Classify ``path`` (relative to the table root), or ``None`` when it is not a log file."""
        name = path.rsplit("/", 1)[-1]
        for kind, pattern in _PATTERNS:
            m = pattern.match(name)
            if m is None:
                continue
            version = int(m.group(1))
            common = {"size": size, "modification_time": modification_time}
            if kind == "commit":
                return cls(path, version, LogKind.COMMIT, "json", **common)
            if kind == "checkpoint":
                return cls(path, version, LogKind.CHECKPOINT, "parquet", **common)
            if kind == "multipart":
                return cls(path, version, LogKind.MULTIPART_CHECKPOINT, "parquet",
                           part=int(m.group(2)), num_parts=int(m.group(3)), **common)
            if kind == "v2":
                return cls(path, version, LogKind.V2_CHECKPOINT, m.group(3), **common)
            if kind == "compaction":
                return cls(path, version, LogKind.COMPACTION, "json",
                           end_version=int(m.group(2)), **common)
            return cls(path, version, LogKind.CRC, "json", **common)
        return None


def commit_path(version: int) -> str:
    """The commit file path (relative to the table root) for ``version``."""
    return f"{LOG_DIR}/{version:020d}.json"


def checkpoint_path(version: int) -> str:
    """The classic single-part checkpoint path for ``version``."""
    return f"{LOG_DIR}/{version:020d}.checkpoint.parquet"


def version_prefix(version: int) -> str:
    """A listing start key: every log file of ``version`` or later sorts after it."""
    return f"{LOG_DIR}/{version:020d}"
