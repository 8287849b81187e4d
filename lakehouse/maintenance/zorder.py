"""Z-order keys: sort rows so that rows close in several columns at once end up in the same files.

Each column is mapped to its dense rank (nulls last), scaled to the same number of bits, and the
bits of all columns are interleaved (most significant first) into one unsigned 64-bit key. Sorting
by that key clusters rows along a Morton curve, so min/max statistics of every z-ordered column
become selective at once. Everything is vectorised (Arrow ranks, numpy bit arithmetic).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import InvalidArgumentError

__all__ = ["zorder_indices", "zorder_keys"]


def _normalised_rank(column: pa.ChunkedArray | pa.Array, bits: int, name: str) -> np.ndarray:
    """Dense rank of each value scaled to ``[0, 2**bits - 1]`` as uint64 (nulls rank highest)."""
    try:
        ranks = pc.rank(column, sort_keys="ascending", tiebreaker="dense")
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise InvalidArgumentError(
            f"cannot z-order by column {name!r} of type {column.type}: it has no ordering ({e}); "
            "z-order by primitive (numeric, string, date, timestamp) columns"
        ) from e
    r = ranks.to_numpy(zero_copy_only=False).astype(np.float64) - 1.0  # 0-based
    top = float(r.max()) if r.size else 0.0
    scale = float((1 << bits) - 1)
    if top <= 0:
        return np.zeros(r.size, np.uint64)
    return np.floor(r * (scale / top)).astype(np.uint64)


def zorder_keys(table: pa.Table, columns: Sequence[str]) -> np.ndarray:
    """One uint64 Morton key per row of ``table`` over ``columns``."""
    if not columns:
        raise InvalidArgumentError("z-order needs at least one column")
    if len(columns) > 64:
        raise InvalidArgumentError(f"z-order supports at most 64 columns, got {len(columns)}")
    bits = min(32, 64 // len(columns))
    ranks = [_normalised_rank(table.column(c), bits, c) for c in columns]
    key = np.zeros(table.num_rows, np.uint64)
    one = np.uint64(1)
    for b in range(bits - 1, -1, -1):
        shift = np.uint64(b)
        for r in ranks:
            key = (key << one) | ((r >> shift) & one)
    return key


def zorder_indices(table: pa.Table, columns: Sequence[str]) -> pa.Array:
    """Row order (indices into ``table``) that sorts it by its z-order key, stable."""
    keys = zorder_keys(table, columns)
    return pa.array(np.argsort(keys, kind="stable"), pa.int64())
