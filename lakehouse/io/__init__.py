"""Storage and file I/O: the only layer that talks to fsspec / object stores."""

from __future__ import annotations

from lakehouse.io.storage import FileInfo, Storage

__all__ = ["FileInfo", "Storage"]
