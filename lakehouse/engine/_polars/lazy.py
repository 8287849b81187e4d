"""``Table.scan()``: a polars LazyFrame backed by a lakehouse :class:`Scan`.

Registered as a polars IO source, so polars hands us the projection and the predicate it wants to
push down. The projection narrows the columns read; the predicate is translated (best effort) into
the engine-neutral AST to prune files by partition values and stats, and polars still applies it to
the rows, so an untranslatable predicate costs speed, never correctness.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import polars as pl

from lakehouse.expressions import And, Compare, Expr, IsNull, Opaque, Or
from lakehouse.scan import Scan

_OPS = {"Eq": "=", "NotEq": "!=", "Lt": "<", "LtEq": "<=", "Gt": ">", "GtEq": ">="}
_FLIP = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _lit(node: Any) -> Any:
    if not isinstance(node, dict) or "Literal" not in node:
        raise ValueError
    lit = node["Literal"]
    for kind in ("Dyn", "Scalar"):
        if kind in lit and isinstance(lit[kind], dict) and len(lit[kind]) == 1:
            (typ, val), = lit[kind].items()
            if typ in ("Int", "Float", "String", "Boolean") or typ.startswith(("Int", "UInt", "Float")):
                if isinstance(val, int | float | str | bool):
                    return val
    raise ValueError


def _col(node: Any) -> str:
    if isinstance(node, dict) and isinstance(node.get("Column"), str):
        return node["Column"]
    raise ValueError


def from_polars(tree: Any) -> Expr:
    """Translate a serialised polars expression tree; unknown shapes become Opaque."""
    try:
        if "BinaryExpr" in tree:
            b = tree["BinaryExpr"]
            op = b["op"]
            if op in ("And", "LogicalAnd"):
                return And((from_polars(b["left"]), from_polars(b["right"])))
            if op in ("Or", "LogicalOr"):
                return Or((from_polars(b["left"]), from_polars(b["right"])))
            if op in _OPS:
                try:
                    return Compare(_OPS[op], _col(b["left"]), _lit(b["right"]))
                except ValueError:
                    return Compare(_FLIP[_OPS[op]], _col(b["right"]), _lit(b["left"]))
        if "Function" in tree:
            f = tree["Function"]
            fn = f.get("function", {}).get("Boolean")
            if fn in ("IsNull", "IsNotNull") and len(f["input"]) == 1:
                return IsNull(_col(f["input"][0]), negated=fn == "IsNotNull")
    except (ValueError, KeyError, TypeError):
        pass
    return Opaque("<polars expression>")


def _to_ast(predicate: pl.Expr) -> Expr:
    try:
        return from_polars(json.loads(predicate.meta.serialize(format="json")))
    except Exception:
        return Opaque("<polars expression>")


def lazy_frame(scan: Scan) -> pl.LazyFrame:
    arrow_schema = scan.output_schema
    schema = pl.from_arrow(arrow_schema.empty_table()).schema  # type: ignore[union-attr]

    def source(with_columns: list[str] | None, predicate: pl.Expr | None,
               n_rows: int | None, batch_size: int | None) -> Iterator[pl.DataFrame]:
        s = scan
        if predicate is not None:
            s = s.with_pruning(_to_ast(predicate))
        cols = with_columns if with_columns is not None else arrow_schema.names
        if predicate is not None:
            needed = set(predicate.meta.root_names())
            cols_read = list(dict.fromkeys([*cols, *[c for c in arrow_schema.names if c in needed]]))
        else:
            cols_read = list(cols)
        remaining = n_rows
        for t in s.iter_tables(cols_read, row_filter=True):
            df = pl.from_arrow(t, rechunk=False)
            assert isinstance(df, pl.DataFrame)
            if predicate is not None:
                df = df.filter(predicate)
            df = df.select(cols)
            if remaining is not None:
                df = df.head(remaining)
                remaining -= df.height
            yield df
            if remaining is not None and remaining <= 0:
                return

    from polars.io.plugins import register_io_source

    return register_io_source(source, schema=schema)


