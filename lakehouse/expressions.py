"""Predicates as a small, engine-neutral AST, parsed from SQL by sqlglot.

Why an AST of our own: file pruning (partition values, min/max stats) must reason about the
structure of a predicate, and the core must not depend on an engine. SQL strings are parsed by
sqlglot (Spark dialect, so backtick identifiers work); engines translate the same SQL for evaluation
(:func:`to_engine_sql` gives a dialect polars' SQL accepts). Anything the pruner does not understand
becomes :class:`Opaque`, which prunes nothing: pruning is only ever an optimisation.

Example:
    >>> from lakehouse.expressions import parse_predicate
    >>> parse_predicate("id >= 10 AND day IN ('a', 'b')")
    And(children=(Compare(op='>=', column='id', value=10), In(column='day', values=('a', 'b'), negated=False)))
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from lakehouse.errors import InvalidArgumentError

if TYPE_CHECKING:
    from sqlglot import exp

DIALECT = "spark"


@dataclass(frozen=True, slots=True)
class Compare:
    """``column <op> literal`` with op one of = != < <= > >=."""

    op: str
    column: str
    value: Any


@dataclass(frozen=True, slots=True)
class In:
    column: str
    values: tuple[Any, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class IsNull:
    column: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Expr


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant TRUE/FALSE predicate."""

    value: bool


@dataclass(frozen=True, slots=True)
class Opaque:
    """A predicate (or part) the pruner cannot reason about; ``sql`` is kept for messages."""

    sql: str


Expr = Compare | In | IsNull | And | Or | Not | Literal | Opaque

_FLIP = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def parse_sql(sql: str) -> exp.Expression:
    """Parse a SQL boolean expression (Spark dialect) or raise InvalidArgumentError.

    Cached: one read parses its filter for validation, pruning, column lookup and evaluation.
    Callers must not mutate the returned tree (none does: sqlglot's ``sql``/``find_all`` read it).
    """
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidArgumentError(f"a predicate must be a non-empty SQL string, got {sql!r}")
    return _parse_cached(sql)


@functools.lru_cache(maxsize=512)
def _parse_cached(sql: str) -> exp.Expression:
    import sqlglot

    try:
        return sqlglot.condition(sql, dialect=DIALECT)
    except sqlglot.errors.ParseError as e:
        raise InvalidArgumentError(f"cannot parse predicate {sql!r}: {e}") from e


def parse_predicate(sql: str, strip_qualifier: str | None = None) -> Expr:
    """SQL predicate -> :data:`Expr`.

    Args:
        sql: e.g. ``"id > 5 AND part = 'x'"``.
        strip_qualifier: a table alias whose qualified columns (``t.id``) count as plain ones;
            columns qualified by any other alias become opaque.
    """
    return from_sqlglot(parse_sql(sql), strip_qualifier)


def to_engine_sql(sql: str) -> str:
    """Rewrite a Spark-dialect predicate in the ANSI-ish dialect polars' SQL parser accepts."""
    return parse_sql(sql).sql(dialect="postgres")


def referenced_columns(sql: str) -> set[str]:
    """Unqualified names of the columns a SQL expression references."""
    from sqlglot import exp

    return {c.name for c in parse_sql(sql).find_all(exp.Column)}


def _column(e: exp.Expression, strip: str | None) -> str | None:
    from sqlglot import exp

    if isinstance(e, exp.Paren):
        return _column(e.this, strip)
    if isinstance(e, exp.Column):
        table = e.table
        if table and table != strip:
            return None
        # nested field access a.b.c is parsed as Dot/Column with catalog/db: keep simple names only
        if e.args.get("db") or e.args.get("catalog"):
            return None
        return e.name
    return None


_NO_VALUE = object()


def _literal(e: exp.Expression) -> Any:
    from sqlglot import exp

    if isinstance(e, exp.Paren):
        return _literal(e.this)
    if isinstance(e, exp.Literal):
        if e.is_string:
            return e.this
        text = e.this
        try:
            return int(text)
        except ValueError:
            try:
                return Decimal(text) if "e" not in text.lower() else float(text)
            except Exception:
                return _NO_VALUE
    if isinstance(e, exp.Boolean):
        return bool(e.this)
    if isinstance(e, exp.Neg):
        v = _literal(e.this)
        return -v if isinstance(v, int | float | Decimal) else _NO_VALUE
    if isinstance(e, exp.Cast) and isinstance(e.this, exp.Literal) and e.this.is_string:
        to = e.to.this
        text = e.this.this
        try:
            if to == exp.DataType.Type.DATE:
                return date.fromisoformat(text)
            if to in (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPTZ,
                      exp.DataType.Type.TIMESTAMPNTZ, exp.DataType.Type.DATETIME):
                return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return _NO_VALUE
    return _NO_VALUE


def from_sqlglot(e: exp.Expression, strip: str | None = None) -> Expr:
    """Convert a parsed sqlglot expression to :data:`Expr` (unknown shapes become Opaque)."""
    from sqlglot import exp

    ops = {exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
    if isinstance(e, exp.Paren):
        return from_sqlglot(e.this, strip)
    if isinstance(e, exp.And):
        return And((from_sqlglot(e.this, strip), from_sqlglot(e.expression, strip)))
    if isinstance(e, exp.Or):
        return Or((from_sqlglot(e.this, strip), from_sqlglot(e.expression, strip)))
    if isinstance(e, exp.Not):
        inner = e.this
        if isinstance(inner, exp.Is):
            r = from_sqlglot(inner, strip)
            return IsNull(r.column, not r.negated) if isinstance(r, IsNull) else Not(r)
        if isinstance(inner, exp.In):
            r = from_sqlglot(inner, strip)
            return In(r.column, r.values, not r.negated) if isinstance(r, In) else Not(r)
        return Not(from_sqlglot(inner, strip))
    if isinstance(e, exp.Boolean):
        return Literal(bool(e.this))
    for cls, op in ops.items():
        if isinstance(e, cls):
            lc, rc = _column(e.this, strip), _column(e.expression, strip)
            if lc is not None and rc is None:
                v = _literal(e.expression)
                if v is not _NO_VALUE and v is not None:
                    return Compare(op, lc, v)
            if rc is not None and lc is None:
                v = _literal(e.this)
                if v is not _NO_VALUE and v is not None:
                    return Compare(_FLIP[op], rc, v)
            return Opaque(e.sql(dialect=DIALECT))
    if isinstance(e, exp.Is) and isinstance(e.expression, exp.Null):
        c = _column(e.this, strip)
        if c is not None:
            return IsNull(c)
    if isinstance(e, exp.In) and not e.args.get("query"):
        c = _column(e.this, strip)
        vals = [_literal(v) for v in e.expressions]
        if c is not None and all(v is not _NO_VALUE for v in vals):
            return In(c, tuple(v for v in vals if v is not None))
    if isinstance(e, exp.Between):
        c = _column(e.this, strip)
        lo, hi = _literal(e.args["low"]), _literal(e.args["high"])
        if c is not None and lo is not _NO_VALUE and hi is not _NO_VALUE:
            return And((Compare(">=", c, lo), Compare("<=", c, hi)))
    return Opaque(e.sql(dialect=DIALECT))


def columns_of(expr: Expr) -> set[str]:
    """Columns an :data:`Expr` constrains (Opaque parts contribute none)."""
    if isinstance(expr, Compare | In | IsNull):
        return {expr.column}
    if isinstance(expr, And | Or):
        out: set[str] = set()
        for c in expr.children:
            out |= columns_of(c)
        return out
    if isinstance(expr, Not):
        return columns_of(expr.child)
    return set()
