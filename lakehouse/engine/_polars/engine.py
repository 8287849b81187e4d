"""Polars implementation of the engine capabilities.

SQL predicates and expressions are evaluated with polars' own SQL expression parser
(``pl.sql_expr``) after sqlglot normalises the dialect; native ``pl.Expr`` values pass through.
Arrow stays the interchange format: results go back as Arrow with the caller's types.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl
import pyarrow as pa

from lakehouse.errors import InvalidArgumentError


def _expr(e: Any) -> pl.Expr:
    if isinstance(e, pl.Expr):
        return e
    if isinstance(e, str):
        from lakehouse.expressions import to_engine_sql

        try:
            return pl.sql_expr(to_engine_sql(e))
        except Exception as err:  # polars raises several types for bad SQL
            raise InvalidArgumentError(f"cannot evaluate SQL expression {e!r}: {err}") from err
    if isinstance(e, bool | int | float | str) or e is None:
        return pl.lit(e)
    raise InvalidArgumentError(f"expected a SQL string or polars expression, got {type(e).__name__}")


def _frame(table: pa.Table) -> pl.DataFrame:
    return pl.from_arrow(table, rechunk=False)  # type: ignore[return-value]


class PolarsEngine:
    """Default engine. Stateless; safe to share across threads."""

    name = "polars"

    # ---------------------------------------------------------------- DataIngest
    def to_arrow_stream(self, data: Any) -> pa.RecordBatchReader:
        if isinstance(data, pa.RecordBatchReader):
            return data
        if isinstance(data, pa.Table):
            return pa.RecordBatchReader.from_batches(data.schema, data.to_batches())
        if isinstance(data, pa.RecordBatch):
            return pa.RecordBatchReader.from_batches(data.schema, [data])
        if isinstance(data, pl.LazyFrame):
            data = data.collect()
        if isinstance(data, pl.DataFrame):
            t = data.to_arrow(compat_level=pl.CompatLevel.oldest())
            return pa.RecordBatchReader.from_batches(t.schema, t.to_batches())
        mod = type(data).__module__
        if mod.startswith("pyspark") and hasattr(data, "toArrow"):
            from lakehouse.engine._spark.convert import spark_frame_to_reader

            return spark_frame_to_reader(data)  # Spark DataFrame: collected via toArrow()
        if mod.startswith("pandas"):
            t = pa.Table.from_pandas(data, preserve_index=False)
            return pa.RecordBatchReader.from_batches(t.schema, t.to_batches())
        if hasattr(data, "__arrow_c_stream__"):
            return pa.RecordBatchReader.from_stream(data)
        if isinstance(data, dict | list):
            t = pa.table(data) if isinstance(data, dict) else pa.Table.from_pylist(data)
            return pa.RecordBatchReader.from_batches(t.schema, t.to_batches())
        raise InvalidArgumentError(
            f"cannot write data of type {type(data).__name__}; pass a pyarrow Table/RecordBatch/"
            "RecordBatchReader, a polars DataFrame/LazyFrame or a pandas DataFrame"
        )

    # --------------------------------------------------------- ExpressionHandler
    def filter_mask(self, table: pa.Table, predicate: Any) -> pa.Array:
        df = _frame(table) if table.num_columns else pl.DataFrame({"__": [None] * table.num_rows})
        try:
            s = df.select(_expr(predicate).alias("__mask")).to_series()
        except InvalidArgumentError:
            raise
        except Exception as e:
            raise InvalidArgumentError(f"cannot evaluate predicate {predicate!r}: {e}") from e
        if s.len() == 1 and table.num_rows != 1:
            s = pl.repeat(s[0], table.num_rows, eager=True)
        if s.dtype != pl.Boolean:
            raise InvalidArgumentError(f"predicate {predicate!r} is not boolean (got {s.dtype})")
        return s.fill_null(False).to_arrow()

    def project(self, table: pa.Table, exprs: Mapping[str, Any]) -> pa.Table:
        df = _frame(table) if table.num_columns else pl.DataFrame({"__": [None] * table.num_rows})
        try:
            out = df.select([_expr(e).alias(name) for name, e in exprs.items()])
        except InvalidArgumentError:
            raise
        except Exception as e:
            raise InvalidArgumentError(f"cannot evaluate {dict(exprs)!r}: {e}") from e
        if out.height == 1 and table.num_rows != 1:
            out = out.select([pl.repeat(pl.col(c).first(), table.num_rows) for c in out.columns])
        return out.to_arrow(compat_level=pl.CompatLevel.oldest())

    # -------------------------------------------------------------- FrameHandler
    def to_frame(self, table: pa.Table) -> pl.DataFrame:
        return _frame(table)

    def lazy_scan(self, scan: Any, columns: Any = None) -> pl.LazyFrame:
        from lakehouse.engine._polars.lazy import lazy_frame

        return lazy_frame(scan)
