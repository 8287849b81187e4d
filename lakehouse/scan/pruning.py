"""File pruning: which files may contain rows matching a predicate.

Two sources of truth, combined per the structure of the predicate:

- partition values are *exact* (every row of the file has them), evaluated with SQL three-valued
  logic, so they also work under NOT;
- min/max/nullCount stats only say a file *may* match; under NOT they prune nothing.

A result of ``True`` means "must read"; a file is skipped only when it provably has no match.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.expressions import (
    And,
    Compare,
    Expr,
    In,
    IsNull,
    Literal,
    Not,
    Opaque,
    Or,
    columns_of,
)
from lakehouse.scan.stats import FileStats

_CMP: dict[str, Callable[..., Any]] = {
    "=": pc.equal, "!=": pc.not_equal, "<": pc.less, "<=": pc.less_equal,
    ">": pc.greater, ">=": pc.greater_equal,
}


@dataclass(frozen=True, slots=True, eq=False)
class _Res:
    mask: pa.Array   # boolean; for exact results it may hold nulls (SQL unknown)
    exact: bool

    def maybe(self) -> pa.Array:
        return pc.fill_null(self.mask, False) if self.exact else self.mask


def _scalar(value: Any, t: pa.DataType) -> pa.Scalar | None:
    try:
        if pa.types.is_timestamp(t):
            from datetime import UTC, date, datetime

            if isinstance(value, str):
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            elif isinstance(value, date) and not isinstance(value, datetime):
                value = datetime(value.year, value.month, value.day)
            if isinstance(value, datetime):
                if t.tz is not None and value.tzinfo is None:
                    value = value.replace(tzinfo=UTC)
                if t.tz is None and value.tzinfo is not None:
                    value = value.astimezone(UTC).replace(tzinfo=None)
            return pa.scalar(value, pa.timestamp("us", t.tz))
        if pa.types.is_date(t) and isinstance(value, str):
            from datetime import date

            return pa.scalar(date.fromisoformat(value), pa.date32())
        if (pa.types.is_string(t) or pa.types.is_large_string(t)) and not isinstance(value, str):
            return None
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            if isinstance(value, str | bool):
                return None
            if pa.types.is_integer(t) and not float(value).is_integer():
                return pa.scalar(float(value), pa.float64())
            return pa.scalar(value).cast(pa.float64() if not pa.types.is_integer(t) else t)
        if pa.types.is_boolean(t) and not isinstance(value, bool):
            return None
        return pa.scalar(value).cast(t)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError, TypeError):
        return None


def _as_cmp(arr: pa.Array, s: pa.Scalar) -> tuple[pa.Array, pa.Scalar]:
    if pa.types.is_decimal(arr.type) or (pa.types.is_integer(arr.type) and pa.types.is_floating(s.type)):
        return arr.cast(pa.float64()), s.cast(pa.float64())
    return arr, s


def prune_mask(
    expr: Expr,
    n: int,
    partition_values: Mapping[str, pa.Array],
    stats: FileStats | None,
    types: Mapping[str, pa.DataType],
) -> pa.Array:
    """Boolean mask over ``n`` files: True where the file may hold matching rows."""
    ones = pa.array([True] * n, pa.bool_())

    def unknown() -> _Res:
        return _Res(ones, False)

    def leaf_part(e: Compare | In | IsNull) -> _Res:
        vals = partition_values[e.column]
        t = vals.type
        if isinstance(e, IsNull):
            m = pc.is_valid(vals) if e.negated else pc.is_null(vals)
            return _Res(m, True)
        if isinstance(e, Compare):
            s = _scalar(e.value, t)
            if s is None:
                return unknown()
            a, s = _as_cmp(vals, s)
            return _Res(_CMP[e.op](a, s), True)
        scalars = [_scalar(v, t) for v in e.values]
        if any(s is None for s in scalars):
            return unknown()
        if not scalars:
            return _Res(pa.array([False] * n), True)
        m = pc.is_in(vals, value_set=pa.array([s.as_py() for s in scalars], t))
        m = pc.if_else(pc.is_null(vals), pa.scalar(None, pa.bool_()), m)
        return _Res(pc.invert(m) if e.negated else m, True)

    def leaf_stats(e: Compare | In | IsNull) -> _Res:
        if stats is None or e.column not in stats.min:
            return unknown()
        mn, mx = stats.min[e.column], stats.max[e.column]
        nulls, num = stats.null_count[e.column], stats.num_records
        if isinstance(e, IsNull):
            if e.negated:
                m = pc.less(nulls, num)
            else:
                m = pc.greater(nulls, 0)
            return _Res(pc.fill_null(m, True), False)
        all_null = pc.fill_null(pc.equal(nulls, num), False)
        t = types[e.column]

        def one(op: str, value: Any) -> pa.Array | None:
            s = _scalar(value, t)
            if s is None:
                return None
            lo, s1 = _as_cmp(mn, s)
            hi, s2 = _as_cmp(mx, s)
            if op == "=":
                m = pc.and_kleene(pc.less_equal(lo, s1), pc.greater_equal(hi, s2))
            elif op == "!=":
                m = pc.invert(pc.and_kleene(pc.equal(lo, s1), pc.equal(hi, s2)))
            elif op in ("<", "<="):
                m = _CMP[op](lo, s1)
            else:
                m = _CMP[op](hi, s2)
            return pc.and_(pc.fill_null(m, True), pc.invert(all_null))

        if isinstance(e, Compare):
            m = one(e.op, e.value)
            return unknown() if m is None else _Res(m, False)
        if e.negated:
            return unknown()
        acc = pa.array([False] * n)
        for v in e.values:
            m = one("=", v)
            if m is None:
                return unknown()
            acc = pc.or_(acc, m)
        return _Res(acc, False)

    def ev(e: Expr) -> _Res:
        if isinstance(e, Literal):
            return _Res(pa.array([e.value] * n, pa.bool_()), True)
        if isinstance(e, Opaque):
            return unknown()
        if isinstance(e, Compare | In | IsNull):
            if e.column in partition_values:
                return leaf_part(e)
            return leaf_stats(e)
        if isinstance(e, And | Or):
            parts = [ev(c) for c in e.children]
            exact = all(p.exact for p in parts)
            # exact parts keep SQL three-valued logic; "may match" masks are plain booleans
            if isinstance(e, And):
                op = pc.and_kleene if exact else pc.and_
            else:
                op = pc.or_kleene if exact else pc.or_
            m = parts[0].mask if exact else parts[0].maybe()
            for p in parts[1:]:
                m = op(m, p.mask if exact else p.maybe())
            return _Res(m, exact)
        if isinstance(e, Not):
            r = ev(e.child)
            if r.exact:
                return _Res(pc.invert(r.mask), True)
            return unknown()
        return unknown()

    if n == 0:
        return pa.array([], pa.bool_())
    return ev(expr).maybe()


def needed_columns(expr: Expr) -> set[str]:
    return columns_of(expr)
