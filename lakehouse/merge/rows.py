"""Row-level building blocks shared by MERGE, UPDATE and DELETE.

* :func:`choose`: for each row, the first clause whose condition holds (Delta's "first match
  wins"), vectorised over all clauses;
* :func:`build_rows`: the rows a clause produces, in the table's schema. Columns assigned a bare
  column reference are taken from the Arrow data directly (exact types: maps, decimals, nested),
  computed ones from polars; unassigned columns keep the target row's value (update) or are NULL
  (insert). Every value is cast to its column's type, refusing lossy casts with an error that
  names the column and the expression.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from lakehouse.errors import SchemaMismatchError
from lakehouse.merge.resolve import SOURCE, Compiled


def choose(frame: pl.DataFrame, conditions: Sequence[Compiled | None]) -> np.ndarray:
    """Per row of ``frame``, the index of the first condition that is TRUE (None = always),
    or -1 when none is."""
    out = np.full(frame.height, -1, dtype=np.int64)
    for k in range(len(conditions) - 1, -1, -1):
        cond = conditions[k]
        if cond is None:
            out[:] = k
        else:
            mask = cond.evaluate_bool(frame).to_numpy()
            out[mask] = k
    return out


def cast_column(col: pa.Array | pa.ChunkedArray, field: pa.Field, what: str) -> pa.ChunkedArray:
    """``col`` as ``field.type``; a lossy or impossible cast is a SchemaMismatchError."""
    if isinstance(col, pa.Array):
        col = pa.chunked_array([col], type=col.type)
    if col.type == field.type:
        return col
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    try:
        return col.cast(field.type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        raise SchemaMismatchError(
            f"cannot store {what} ({col.type}) in column {field.name!r} of type {field.type} "
            f"without loss: {e}. Cast the value explicitly (e.g. CAST(... AS ...)) or fix the "
            "source data."
        ) from e


def build_rows(
    schema: pa.Schema,
    frame: pl.DataFrame,
    assignments: Mapping[str, Compiled],
    *,
    target: pa.Table | None = None,
    target_rows: np.ndarray | None = None,
    source: pa.Table | None = None,
    source_rows: np.ndarray | None = None,
) -> pa.Table:
    """Rows of ``schema`` for each row of ``frame`` (see module docstring).

    ``target_rows``/``source_rows`` are, per frame row, its row in ``target``/``source``; when
    ``target`` is given, unassigned columns keep the target's values (an update), else NULL.
    """
    n = frame.height
    base = target.take(pa.array(target_rows, pa.int64())) if target is not None else None
    src_take = pa.array(source_rows, pa.int64()) if source_rows is not None else None
    columns = []
    for f in schema:
        a = assignments.get(f.name)
        if a is None:
            if base is not None and f.name in base.column_names:
                col = base.column(f.name)
            else:
                col = pa.chunked_array([pa.nulls(n, f.type)], type=f.type)
        elif a.ref is not None and a.ref.side == SOURCE and source is not None:
            col = source.column(a.ref.name).take(src_take)
        elif a.ref is not None and a.ref.side != SOURCE and base is not None:
            col = base.column(a.ref.name)
        else:
            col = a.evaluate(frame).to_arrow(compat_level=pl.CompatLevel.oldest())
        columns.append(cast_column(col, f, repr(a.text) if a is not None else "NULL"))
    return pa.Table.from_arrays(columns, schema=schema)
