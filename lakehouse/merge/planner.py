"""Planning a MERGE join and pruning target files before anything is read.

The merge condition is split into conjuncts: ``target_expr = source_expr`` pairs become hash-join
keys, the rest a residual filter over joined pairs. Target files are then pruned without reading
them, with the *exact* set of source key values: a file is kept only if, for every key whose
target side is a plain column, some source key lies within the file's [min, max] statistics
(a sorted search per file, so a 1M-row source costs one sort) or equals its partition value.
Conjuncts that constrain only the target (``target.day = '2024-01-01'``) prune like a scan filter.
The same test, applied to files other writers add concurrently, is the merge's read predicate.

Also here: :func:`negate`, used by DELETE to prove from statistics that *every* row of a file
matches (so the file is removed without being read).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from lakehouse.errors import InvalidArgumentError
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
    parse_predicate,
    parse_sql,
)
from lakehouse.log.snapshot import Snapshot
from lakehouse.merge.resolve import SOURCE, TARGET, Compiled, Scope, compile_sql
from lakehouse.scan import Scan
from lakehouse.scan.pruning import prune_mask
from lakehouse.scan.stats import parse_stats


@dataclass(frozen=True, eq=False)
class JoinKey:
    target: Compiled
    source: Compiled
    target_column: str | None   # the target side is this plain column (prunable)


@dataclass(frozen=True, eq=False)
class JoinPlan:
    """The merge condition as hash-join keys, a residual filter and a target-only filter."""

    text: str
    keys: tuple[JoinKey, ...]
    residual: Compiled | None
    target_filter: str | None   # SQL over plain target column names, for pruning only

    def target_columns(self) -> set[str]:
        out = {r.name for k in self.keys for r in k.target.refs}
        if self.residual is not None:
            out |= {r.name for r in self.residual.refs if r.side == TARGET}
        return out

    def source_columns(self) -> set[str]:
        out = {r.name for k in self.keys for r in k.source.refs}
        if self.residual is not None:
            out |= {r.name for r in self.residual.refs if r.side == SOURCE}
        return out


def _conjuncts(e: exp.Expression) -> list[exp.Expression]:
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, exp.And):
        return _conjuncts(e.this) + _conjuncts(e.expression)
    return [e]


def plan_join(on: str | Sequence[str], scope: Scope) -> JoinPlan:
    """Split the merge condition ``on`` (SQL, or column name(s) equal on both sides)."""
    if isinstance(on, str):
        tree = parse_sql(on)
        if isinstance(tree, exp.Column) and not tree.table:
            on = [tree.name]
    if not isinstance(on, str):
        keys = []
        for name in on:
            t, s = scope.lookup(TARGET, name), scope.lookup(SOURCE, name)
            if t is None or s is None:
                raise InvalidArgumentError(
                    f"on={list(on)!r}: column {name!r} must exist in both target "
                    f"{list(scope.target)} and source {list(scope.source)}"
                )
            tq = f"{scope.target_alias}.`{t}`"
            sq = f"{scope.source_alias}.`{s}`"
            keys.append(JoinKey(compile_sql(tq, scope, "ts"), compile_sql(sq, scope, "ts"), t))
        text = " AND ".join(f"{scope.target_alias}.{n} = {scope.source_alias}.{n}" for n in on)
        return JoinPlan(text, tuple(keys), None, None)

    keys, residual, target_only = [], [], []
    for c in _conjuncts(parse_sql(on)):
        sql = c.sql(dialect="spark")
        whole = compile_sql(sql, scope, "ts")
        sides = {r.side for r in whole.refs}
        if isinstance(c, exp.EQ):
            left = compile_sql(c.this.sql(dialect="spark"), scope, "ts")
            right = compile_sql(c.expression.sql(dialect="spark"), scope, "ts")
            ls, rs = {r.side for r in left.refs}, {r.side for r in right.refs}
            if ls == {SOURCE} and rs == {TARGET}:
                left, right, ls, rs = right, left, rs, ls
            if ls == {TARGET} and rs == {SOURCE}:
                col = left.ref.name if left.ref is not None else None
                keys.append(JoinKey(left, right, col))
                continue
        residual.append(sql)
        if sides == {TARGET}:
            target_only.append(_unqualify(c, scope))
    res = compile_sql(" AND ".join(f"({r})" for r in residual), scope, "ts") if residual else None
    tfilter = " AND ".join(f"({t})" for t in target_only) if target_only else None
    return JoinPlan(on, tuple(keys), res, tfilter)


def _unqualify(c: exp.Expression, scope: Scope) -> str:
    """A target-only conjunct with plain (unqualified) target column names."""
    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column):
            ref, fields = scope.resolve([p.name for p in node.parts], "t", "")
            return exp.column(ref.name, quoted=True) if not fields else exp.Dot.build(
                [exp.column(ref.name, quoted=True), *[exp.to_identifier(f) for f in fields]])
        return node

    return c.copy().transform(fix).sql(dialect="spark")


def supertype(a: pl.DataType, b: pl.DataType) -> pl.DataType:
    """The type both join key sides are compared in (polars' relaxed concatenation rules)."""
    if a == b:
        return a
    try:
        df = pl.concat([pl.DataFrame({"k": pl.Series([], dtype=a)}),
                        pl.DataFrame({"k": pl.Series([], dtype=b)})], how="vertical_relaxed")
    except Exception as e:
        raise InvalidArgumentError(f"merge keys of types {a} and {b} cannot be compared: {e}") from e
    return df.schema["k"]


# ------------------------------------------------------------------------------------ pruning
def _sortable(arr: pa.Array, t: pa.DataType) -> tuple[np.ndarray, np.ndarray] | None:
    """(values, valid mask) as a NumPy array ordered like ``t``'s values, or None."""
    try:
        if pa.types.is_integer(t):
            if pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type):
                arr = arr.cast(pa.float64())
            else:
                arr = arr.cast(pa.int64())
        elif pa.types.is_floating(t):
            arr = arr.cast(pa.float64())
        elif pa.types.is_date(t):
            arr = arr.cast(pa.date32()).cast(pa.int32())
        elif pa.types.is_timestamp(t):
            arr = arr.cast(pa.timestamp("us", t.tz)).cast(pa.int64())
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            arr = arr.cast(pa.string())
        else:
            return None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    valid = np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_string(arr.type):
        values = np.asarray(pc.fill_null(arr, "").to_numpy(zero_copy_only=False), dtype=object)
    else:
        values = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False)
    return values, valid


def key_mask(snapshot: Snapshot, files: pa.Table, column: str, keys: pa.Array) -> pa.Array:
    """True where a file may hold a row whose ``column`` equals one of ``keys``."""
    n = files.num_rows
    keys = keys.drop_null() if keys.null_count else keys
    if n == 0:
        return pa.array([], pa.bool_())
    if len(keys) == 0:
        return pa.array([False] * n)
    field_type = snapshot.arrow_schema.field(column).type
    if column in snapshot.partition_columns:
        pv = Scan(snapshot).partition_value_arrays(files)[column]
        try:
            wanted = keys.cast(pv.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return pa.array([True] * n)
        return pc.fill_null(pc.is_in(pv, value_set=pc.unique(wanted)), False)
    if pa.types.is_floating(keys.type) and pc.any(pc.is_nan(keys)).as_py():
        return pa.array([True] * n)
    from lakehouse.log.schema import physical_name

    stat_key = column
    if snapshot.column_mapping_mode != "none":
        stat_key = physical_name(snapshot.schema.field(column))
    stats = parse_stats(files["stats"], {column: (stat_key, field_type)})
    if column not in stats.min:
        return pa.array([True] * n)
    if pa.types.is_integer(field_type) and (pa.types.is_floating(keys.type)
                                             or pa.types.is_decimal(keys.type)):
        field_type = pa.float64()
    k = _sortable(keys, field_type)
    lo = _sortable(stats.min[column], field_type)
    hi = _sortable(stats.max[column], field_type)
    if k is None or lo is None or hi is None:
        return pa.array([True] * n)
    kv = np.sort(k[0][k[1]])
    kv = kv[np.concatenate(([True], kv[1:] != kv[:-1]))] if len(kv) else kv
    idx = np.searchsorted(kv, lo[0], side="left")
    inside = idx < len(kv)
    first = kv[np.minimum(idx, len(kv) - 1)]
    hit = inside & (first <= hi[0]) if len(kv) else np.zeros(n, dtype=bool)
    unknown = ~lo[1] | ~hi[1]
    all_null = np.asarray(pc.fill_null(pc.equal(stats.null_count[column], stats.num_records),
                                       False).to_numpy(zero_copy_only=False), dtype=bool)
    return pa.array((hit | unknown) & ~all_null)


def expr_mask(snapshot: Snapshot, expr: Expr, files: pa.Table) -> pa.Array:
    """``prune_mask`` of ``expr`` over any table of add rows (not just the snapshot's)."""
    from lakehouse.log.schema import physical_name

    if files.num_rows == 0:
        return pa.array([], pa.bool_())
    cols = columns_of(expr)
    pvals = {k: v for k, v in Scan(snapshot).partition_value_arrays(files).items() if k in cols}
    arrow_schema = snapshot.arrow_schema
    types = {c: arrow_schema.field(c).type for c in cols if c in arrow_schema.names}
    stat_cols = {}
    for c in types:
        if c not in pvals:
            key = c if snapshot.column_mapping_mode == "none" else physical_name(
                snapshot.schema.field(c))
            stat_cols[c] = (key, types[c])
    stats = parse_stats(files["stats"], stat_cols) if stat_cols else None
    return prune_mask(expr, files.num_rows, pvals, stats, types)


@dataclass(frozen=True, eq=False)
class Pruner:
    """Which files a merge must read: key sets per target column plus a target-only filter."""

    snapshot: Snapshot
    keys: tuple[tuple[str, pa.Array], ...]
    target_filter: Expr | None

    @classmethod
    def build(cls, snapshot: Snapshot, plan: JoinPlan, source_keys: pl.DataFrame) -> Pruner:
        keys = []
        for i, k in enumerate(plan.keys):
            if k.target_column is not None:
                arr = source_keys[f"__k{i}"].to_arrow(compat_level=pl.CompatLevel.oldest())
                if isinstance(arr, pa.ChunkedArray):
                    arr = arr.combine_chunks()
                keys.append((k.target_column, arr))
        tf = parse_predicate(plan.target_filter) if plan.target_filter else None
        return cls(snapshot, tuple(keys), tf)

    def mask(self, files: pa.Table) -> pa.Array:
        m = pa.array([True] * files.num_rows, pa.bool_())
        for column, values in self.keys:
            m = pc.and_(m, key_mask(self.snapshot, files, column, values))
        if self.target_filter is not None:
            m = pc.and_(m, expr_mask(self.snapshot, self.target_filter, files))
        return m

    def may_match(self, adds: pa.Table) -> bool:
        """Read predicate for conflict detection: could any of ``adds`` hold a matching row?"""
        if adds.num_rows == 0:
            return False
        return bool(pc.any(self.mask(adds)).as_py())


# ----------------------------------------------------------------------------------- negation
_NEGATED = {"=": "!=", "!=": "=", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}


def negate(e: Expr) -> Expr:
    """A predicate true (or unknown) wherever ``e`` is not TRUE (false or NULL).

    If statistics prove a file has no row where ``negate(e)`` may hold, every row satisfies ``e``.
    Parts the pruner cannot reason about become ``TRUE`` (nothing is proven).
    """
    if isinstance(e, Compare):
        return Or((Compare(_NEGATED[e.op], e.column, e.value), IsNull(e.column)))
    if isinstance(e, In):
        return Or((In(e.column, e.values, not e.negated), IsNull(e.column)))
    if isinstance(e, IsNull):
        return IsNull(e.column, not e.negated)
    if isinstance(e, And):
        return Or(tuple(negate(c) for c in e.children))
    if isinstance(e, Or):
        return And(tuple(negate(c) for c in e.children))
    if isinstance(e, Not):
        return _not_false(e.child)
    if isinstance(e, Literal):
        return Literal(not e.value)
    assert isinstance(e, Opaque)
    return Literal(True)


def _not_false(e: Expr) -> Expr:
    """A predicate true (or unknown) wherever ``e`` is TRUE or NULL."""
    if isinstance(e, Compare | In):
        return Or((e, IsNull(e.column)))
    if isinstance(e, IsNull | Literal):
        return e
    if isinstance(e, And):
        return And(tuple(_not_false(c) for c in e.children))
    if isinstance(e, Or):
        return Or(tuple(_not_false(c) for c in e.children))
    if isinstance(e, Not):
        return negate(e.child)
    return Literal(True)


def all_rows_match(snapshot: Snapshot, expr: Expr, files: pa.Table) -> pa.Array:
    """True where partition values/stats prove every row of the file satisfies ``expr``."""
    if files.num_rows == 0:
        return pa.array([], pa.bool_())
    return pc.invert(expr_mask(snapshot, negate(expr), files))
