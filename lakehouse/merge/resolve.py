"""Name resolution and compilation of MERGE/UPDATE/DELETE expressions.

Why: clause conditions and assignments are written against two tables (``target.x``,
``source.y``, or unqualified names), but they are evaluated over one joined polars frame whose
columns carry internal names (``__t3`` for target column 3, ``__s0`` for source column 0), so
that equal column names on both sides never collide. SQL strings are parsed with sqlglot (Spark
dialect), every column reference is resolved like Spark does (the alias decides the side; an
unqualified name must exist on exactly one visible side, case-insensitively) and replaced by its
internal name, then evaluated with ``pl.sql_expr``. Native polars expressions are evaluated over
a zero-copy view of the frame whose columns carry the names the user wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from sqlglot import exp

from lakehouse.errors import InvalidArgumentError
from lakehouse.expressions import parse_sql

TARGET = "t"
SOURCE = "s"
_SIDE_NAME = {TARGET: "target", SOURCE: "source"}


@dataclass(frozen=True, slots=True)
class ColumnRef:
    """A resolved column: ``side`` is ``"t"`` (target) or ``"s"`` (source)."""

    side: str
    name: str


@dataclass(frozen=True, eq=False)
class Compiled:
    """An expression ready to evaluate over a frame with internal column names.

    ``ref`` is set when the expression is a bare column (its values can then be taken from the
    Arrow data directly, keeping exact types such as maps); ``expr`` is the polars expression
    over internal names (SQL input); ``native``/``view`` evaluate a user polars expression.
    """

    text: str
    refs: frozenset[ColumnRef]
    expr: pl.Expr | None = None
    ref: ColumnRef | None = None
    native: pl.Expr | None = None
    view: tuple[tuple[str, str], ...] = ()  # (name as written, internal name) for ``native``

    def evaluate(self, frame: pl.DataFrame) -> pl.Series:
        """Values for every row of ``frame`` (literals are broadcast)."""
        try:
            if self.native is not None:
                cols = [pl.col(i).alias(d) for d, i in self.view]
                viewed = frame.select(cols or [pl.col(frame.columns[0]).alias("__dummy")])
                out = viewed.with_columns(self.native.alias("__value"))["__value"]
            else:
                assert self.expr is not None
                out = frame.with_columns(self.expr.alias("__value"))["__value"]
        except InvalidArgumentError:
            raise
        except Exception as e:
            raise InvalidArgumentError(f"cannot evaluate {self.text!r}: {e}") from e
        return out

    def evaluate_bool(self, frame: pl.DataFrame) -> pl.Series:
        """A boolean mask; SQL NULL counts as false."""
        s = self.evaluate(frame)
        if s.dtype == pl.Null:
            s = s.cast(pl.Boolean)
        if s.dtype != pl.Boolean:
            raise InvalidArgumentError(f"condition {self.text!r} is not boolean (it is {s.dtype})")
        return s.fill_null(False)


@dataclass(frozen=True)
class Scope:
    """The columns an expression may see, and the aliases that qualify them."""

    target: Sequence[str]
    source: Sequence[str] = ()
    target_alias: str | None = None
    source_alias: str | None = None
    _t: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _s: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for names, index in ((self.target, self._t), (self.source, self._s)):
            for i, n in enumerate(names):
                index.setdefault(n.lower(), i)
                index[n] = i

    def internal(self, ref: ColumnRef) -> str:
        """The internal frame column name of ``ref``."""
        index = self._t if ref.side == TARGET else self._s
        return f"__{ref.side}{index[ref.name]}"

    def lookup(self, side: str, name: str) -> str | None:
        """The actual column name on ``side`` matching ``name`` (case-insensitively)."""
        names, index = (self.target, self._t) if side == TARGET else (self.source, self._s)
        i = index.get(name, index.get(name.lower()))
        return None if i is None else names[i]

    def alias_side(self, qualifier: str) -> str | None:
        q = qualifier.lower()
        if self.target_alias is not None and q == self.target_alias.lower():
            return TARGET
        if self.source_alias is not None and q == self.source_alias.lower():
            return SOURCE
        return None

    def resolve(self, parts: Sequence[str], sides: str, text: str) -> tuple[ColumnRef, list[str]]:
        """Resolve ``a.b.c`` to a column and the struct fields below it."""
        if len(parts) >= 2:
            side = self.alias_side(parts[0])
            if side is not None:
                if side not in sides:
                    raise InvalidArgumentError(
                        f"{text!r} references {parts[0]}.{parts[1]}, but this clause can only use "
                        f"{' and '.join(_SIDE_NAME[s] for s in sides)} columns "
                        f"(a WHEN NOT MATCHED clause sees only the source, a WHEN NOT MATCHED BY "
                        "SOURCE clause only the target)"
                    )
                actual = self.lookup(side, parts[1])
                if actual is None:
                    names = self.target if side == TARGET else self.source
                    raise InvalidArgumentError(
                        f"{text!r}: the {_SIDE_NAME[side]} has no column {parts[1]!r}; its columns "
                        f"are {list(names)}"
                    )
                return ColumnRef(side, actual), list(parts[2:])
        name = parts[0]
        found = [(s, a) for s in sides if (a := self.lookup(s, name)) is not None]
        if len(found) > 1:
            raise InvalidArgumentError(
                f"{text!r}: column {name!r} is ambiguous (it exists in both target and source); "
                f"qualify it as {self.target_alias}.{name} or {self.source_alias}.{name}"
            )
        if not found:
            visible = {_SIDE_NAME[s]: list(self.target if s == TARGET else self.source)
                       for s in sides}
            raise InvalidArgumentError(f"{text!r}: unknown column {name!r}; visible columns: {visible}")
        side, actual = found[0]
        return ColumnRef(side, actual), list(parts[1:])


def _parts(col: exp.Column) -> list[str]:
    return [p.name for p in col.parts]


def compile_sql(sql: str, scope: Scope, sides: str) -> Compiled:
    """Compile a SQL expression whose columns come from ``sides`` (``"t"``, ``"s"`` or ``"ts"``)."""
    tree = parse_sql(sql)
    refs: set[ColumnRef] = set()
    bare: ColumnRef | None = None

    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
            ref, fields = scope.resolve(_parts(node), sides, sql)
            refs.add(ref)
            col: exp.Expression = exp.column(scope.internal(ref), quoted=True)
            if fields:
                col = exp.Dot.build([col, *[exp.to_identifier(f, quoted=True) for f in fields]])
            return col
        return node

    inner = tree
    while isinstance(inner, exp.Paren):
        inner = inner.this
    if isinstance(inner, exp.Column):
        ref, fields = scope.resolve(_parts(inner), sides, sql)
        if not fields:
            bare = ref
    rewritten = tree.transform(fix)
    try:
        expr = pl.sql_expr(rewritten.sql(dialect="postgres"))
    except Exception as e:
        raise InvalidArgumentError(f"cannot evaluate SQL expression {sql!r}: {e}") from e
    return Compiled(sql, frozenset(refs), expr=expr, ref=bare)


def compile_native(e: pl.Expr, scope: Scope, sides: str) -> Compiled:
    """Compile a polars expression; its column names are resolved like SQL ones."""
    view: list[tuple[str, str]] = []
    refs: set[ColumnRef] = set()
    text = str(e)
    for name in dict.fromkeys(e.meta.root_names()):
        ref, fields = scope.resolve(name.split(".", 1) if scope.alias_side(name.split(".")[0])
                                    else [name], sides, text)
        if fields:
            raise InvalidArgumentError(f"{text!r}: use .struct.field() for nested fields")
        refs.add(ref)
        view.append((name, scope.internal(ref)))
    bare = None
    if e.meta.is_column():
        bare = next(iter(refs))
    return Compiled(text, frozenset(refs), native=e, ref=bare, view=tuple(view))


def compile_any(value: Any, scope: Scope, sides: str) -> Compiled:
    """SQL string, polars expression, or a Python literal."""
    if isinstance(value, str):
        return compile_sql(value, scope, sides)
    if isinstance(value, pl.Expr):
        return compile_native(value, scope, sides)
    if value is None or isinstance(value, bool | int | float):
        return Compiled(repr(value), frozenset(), expr=pl.lit(value))
    raise InvalidArgumentError(
        f"expected a SQL string or a polars expression, got {type(value).__name__}: {value!r}"
    )


def frame(table: Any, scope: Scope, side: str, names: Sequence[str], index: str) -> pl.DataFrame:
    """A polars frame of ``names`` (actual column names of ``side``) under internal names, plus
    a row-index column ``index`` (Int64)."""
    cols = list(dict.fromkeys(names))
    sub = table.select(cols).rename_columns([scope.internal(ColumnRef(side, n)) for n in cols])
    rows = pl.int_range(0, table.num_rows, dtype=pl.Int64, eager=True).alias(index)
    if not cols:
        return pl.DataFrame([rows])
    df = pl.from_arrow(sub, rechunk=False)
    assert isinstance(df, pl.DataFrame)
    return df.with_columns(rows)
