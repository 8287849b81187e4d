"""Helpers shared by the maintenance operations: file sets, existence checks, size statistics.

Vacuum, restore and describe all reason about *which files a table references* (data files and
deletion-vector files) and *which of them exist on storage*; the rules for turning log paths into
root-relative storage paths live here once.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.log.deletion_vectors import DeletionVectorDescriptor
from lakehouse.log.replay import canonicalize_paths

if TYPE_CHECKING:
    from lakehouse.io.storage import FileInfo, Storage

__all__ = [
    "SizeStats",
    "dv_file_paths",
    "existing_files",
    "is_inside_root",
    "referenced_paths",
    "size_stats",
]


def is_inside_root(path: str) -> bool:
    """Whether a canonical path is relative to the table root (absolute ones point elsewhere)."""
    return bool(path) and "://" not in path and not path.startswith("/")


def dv_file_paths(dvs: pa.Array | pa.ChunkedArray, root: str) -> set[str]:
    """Canonical paths of the deletion-vector files named by a ``deletionVector`` column.

    Inline DVs have no file. ``u`` DVs live under the root; ``p`` DVs carry an absolute URI,
    which is made root-relative when it points inside the table.
    """
    if isinstance(dvs, pa.ChunkedArray):
        dvs = dvs.combine_chunks() if dvs.num_chunks else pa.array([], dvs.type)
    if len(dvs) == 0 or dvs.null_count == len(dvs):
        return set()
    valid = dvs.filter(pc.is_valid(dvs))
    kinds = pc.struct_field(valid, "storageType")
    on_file = valid.filter(pc.fill_null(pc.not_equal(kinds, "i"), False))
    if len(on_file) == 0:
        return set()
    pairs = pa.table({"t": pc.struct_field(on_file, "storageType"),
                      "p": pc.struct_field(on_file, "pathOrInlineDv")}).group_by(["t", "p"]).aggregate([])
    out: list[str] = []
    for kind, text in zip(pairs["t"].to_pylist(), pairs["p"].to_pylist(), strict=True):
        if kind is None or text is None:
            continue
        desc = DeletionVectorDescriptor(kind, text, 1, 0, 0)
        absolute = desc.absolute_path(root)
        if absolute is not None:
            out.append(absolute)
    if not out:
        return set()
    return set(canonicalize_paths(pa.array(out, pa.string()), root).to_pylist())


def referenced_paths(files: pa.Table, root: str) -> set[str]:
    """Canonical paths of every data file and DV file referenced by rows of a files table."""
    if files.num_rows == 0:
        return set()
    paths = set(files["canonical_path"].to_pylist())
    paths |= dv_file_paths(files["deletionVector"], root)
    return paths


def existing_files(storage: Storage, paths: Iterable[str]) -> dict[str, FileInfo]:
    """The subset of root-relative ``paths`` that exist, with size and mtime.

    One listing per distinct parent directory instead of one request per file, which on object
    stores is the difference between a handful of calls and thousands.
    """
    by_dir: dict[str, set[str]] = {}
    for p in paths:
        by_dir.setdefault(posixpath.dirname(p), set()).add(p)
    found: dict[str, FileInfo] = {}
    for d, wanted in sorted(by_dir.items()):
        for info in storage.list_dir(d):
            if info.path in wanted:
                found[info.path] = info
    return found


@dataclass(frozen=True, slots=True)
class SizeStats:
    """Size distribution of a set of files (bytes); all zero for no files."""

    total_files: int = 0
    total_size: int = 0
    min: int = 0
    p25: int = 0
    p50: int = 0
    p75: int = 0
    max: int = 0
    avg: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"totalFiles": self.total_files, "totalSize": self.total_size, "min": self.min,
                "p25": self.p25, "p50": self.p50, "p75": self.p75, "max": self.max,
                "avg": self.avg}


def size_stats(sizes: Iterable[int] | pa.Array | pa.ChunkedArray | np.ndarray) -> SizeStats:
    """Count, total, min, quartiles, max and mean of ``sizes``."""
    if isinstance(sizes, pa.ChunkedArray | pa.Array):
        arr = np.asarray(pc.fill_null(sizes, 0).to_numpy(zero_copy_only=False), np.int64) \
            if len(sizes) else np.zeros(0, np.int64)
    else:
        arr = np.asarray(list(sizes) if not isinstance(sizes, np.ndarray) else sizes, np.int64)
    if arr.size == 0:
        return SizeStats()
    q = np.percentile(arr, [25, 50, 75], method="lower")
    return SizeStats(total_files=int(arr.size), total_size=int(arr.sum()), min=int(arr.min()),
                     p25=int(q[0]), p50=int(q[1]), p75=int(q[2]), max=int(arr.max()),
                     avg=float(arr.mean()))


def parse_partition_filter(snapshot: Any, where: str, engine: Any, files: pa.Table) -> pa.Table:
    """Rows of ``files`` whose partition values satisfy ``where`` (partition columns only)."""
    from lakehouse.errors import InvalidArgumentError
    from lakehouse.expressions import referenced_columns
    from lakehouse.scan import Scan

    cols = referenced_columns(where)
    parts = set(snapshot.partition_columns)
    extra = sorted(c for c in cols if c not in parts)
    if extra:
        raise InvalidArgumentError(
            f"where={where!r} references non-partition column(s) {extra}; only partition columns "
            f"({sorted(parts) or 'none - the table is not partitioned'}) may be used here"
        )
    if files.num_rows == 0:
        return files
    pvals = Scan(snapshot).partition_value_arrays(files)
    ptable = pa.table({k: pvals[k] for k in snapshot.partition_columns}) if pvals else \
        pa.table({"__": pa.nulls(files.num_rows)})
    return files.filter(engine.filter_mask(ptable, where))
