"""Row-group pushdown: a predicate as a pyarrow dataset expression (a superset filter).

Pyarrow skips row groups by their Parquet statistics and drops non-matching rows while decoding.
Only the parts of a predicate we understand are pushed; anything else becomes ``True`` so the
pushed filter never drops a row the full predicate would keep (the engine re-applies the full
predicate afterwards). Only used for files without deletion vectors, whose row positions matter.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.expressions import And, Compare, Expr, In, IsNull, Literal, Not, Opaque, Or
from lakehouse.scan.pruning import _scalar

_TRUE = pc.scalar(True)


def _exact(e: Expr) -> bool:
    if isinstance(e, Opaque):
        return False
    if isinstance(e, And | Or):
        return all(_exact(c) for c in e.children)
    if isinstance(e, Not):
        return _exact(e.child)
    return True


def to_dataset_filter(expr: Expr, types: Mapping[str, pa.DataType],
                      names: Mapping[str, str]) -> pc.Expression | None:
    """``expr`` over file columns (``names``: logical -> physical), or None if nothing to push."""

    def conv(e: Expr) -> pc.Expression:
        if isinstance(e, Literal):
            return pc.scalar(e.value)
        if isinstance(e, Compare | In | IsNull):
            if e.column not in names or e.column not in types:
                return _TRUE
            field = pc.field(names[e.column])
            t = types[e.column]
            if isinstance(e, IsNull):
                return field.is_valid() if e.negated else field.is_null()
            if isinstance(e, Compare):
                s = _scalar(e.value, t)
                if s is None or pa.types.is_decimal(t) or (
                        pa.types.is_integer(t) and pa.types.is_floating(s.type)):
                    return _TRUE
                lit = pc.scalar(s.as_py()) if not pa.types.is_timestamp(t) else pc.scalar(s)
                return {"=": field == lit, "!=": field != lit, "<": field < lit,
                        "<=": field <= lit, ">": field > lit, ">=": field >= lit}[e.op]
            scalars = [_scalar(v, t) for v in e.values]
            if any(s is None for s in scalars) or pa.types.is_decimal(t) or e.negated:
                return _TRUE
            return field.isin(pa.array([s.as_py() for s in scalars], t))
        if isinstance(e, And):
            out = conv(e.children[0])
            for c in e.children[1:]:
                out = out & conv(c)
            return out
        if isinstance(e, Or):
            out = conv(e.children[0])
            for c in e.children[1:]:
                out = out | conv(c)
            return out
        if isinstance(e, Not):
            return ~conv(e.child) if _exact(e.child) else _TRUE
        return _TRUE

    try:
        result = conv(expr)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError):
        return None
    return None if result.equals(_TRUE) else result
