"""PySpark implementation of the engine capabilities (``get_engine("spark")``).

Correctness first: SQL predicates and projections over an Arrow table are evaluated by Spark SQL
on a DataFrame built from that table (the SQL is already Spark's dialect), with a row index so
the result lines up with the input rows whatever Spark does. Spark DataFrames come in as Arrow via
``toArrow()`` (collected on the driver: moderate data; big writes go through the ``lakehouse``
data source instead), and lazy scans are served by that data source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import InvalidArgumentError

from .convert import is_spark_frame, spark_frame_to_reader

_ROW = "__lakehouse_row"


class SparkEngine:
    """Runs the engine capabilities on a SparkSession (the active one unless given)."""

    name = "spark"

    def __init__(self, spark: Any = None) -> None:
        self._spark = spark

    @property
    def spark(self) -> Any:
        if self._spark is None:
            from pyspark.sql import SparkSession

            self._spark = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
        return self._spark

    # ---------------------------------------------------------------- DataIngest
    def to_arrow_stream(self, data: Any) -> pa.RecordBatchReader:
        if is_spark_frame(data):
            return spark_frame_to_reader(data)
        from lakehouse.engine._polars.engine import PolarsEngine

        return PolarsEngine().to_arrow_stream(data)

    # --------------------------------------------------------- ExpressionHandler
    def _frame(self, table: pa.Table) -> Any:
        if _ROW in table.column_names:
            raise InvalidArgumentError(f"column name {_ROW!r} is reserved by the Spark engine")
        indexed = table.append_column(_ROW, pa.array(range(table.num_rows), pa.int64()))
        return self.spark.createDataFrame(indexed)

    def _column(self, e: Any) -> Any:
        from pyspark.sql import Column
        from pyspark.sql import functions as F

        if isinstance(e, Column):
            return e
        if isinstance(e, str):
            return F.expr(e)
        if isinstance(e, bool | int | float) or e is None:
            return F.lit(e)
        raise InvalidArgumentError(
            f"expected a SQL string or a pyspark Column, got {type(e).__name__}")

    def _select(self, table: pa.Table, cols: dict[str, Any], what: Any) -> pa.Table:
        from pyspark.errors import PySparkException

        df = self._frame(table)
        try:
            out = df.select(df[_ROW], *[self._column(e).alias(n) for n, e in cols.items()])
            result = out.toArrow()
        except PySparkException as e:
            raise InvalidArgumentError(f"cannot evaluate {what!r} with Spark SQL: {e}") from e
        if result.num_rows != table.num_rows:  # pragma: no cover - Spark invariant
            raise InvalidArgumentError(f"{what!r} changed the number of rows")
        return result.take(pc.sort_indices(result[_ROW])).drop_columns([_ROW])

    def filter_mask(self, table: pa.Table, predicate: Any) -> pa.Array:
        from pyspark.sql.types import BooleanType

        df = self._frame(table)
        try:
            dtype = df.select(self._column(predicate)).schema.fields[0].dataType
        except Exception as e:
            raise InvalidArgumentError(f"cannot evaluate predicate {predicate!r}: {e}") from e
        if not isinstance(dtype, BooleanType):
            raise InvalidArgumentError(f"predicate {predicate!r} is not boolean (got {dtype})")
        mask = self._select(table, {"m": predicate}, predicate).column("m")
        return pc.fill_null(mask.combine_chunks(), False)

    def project(self, table: pa.Table, exprs: Mapping[str, Any]) -> pa.Table:
        return self._select(table, dict(exprs), dict(exprs))

    # -------------------------------------------------------------- FrameHandler
    def to_frame(self, table: pa.Table) -> Any:
        return self.spark.createDataFrame(table)

    def lazy_scan(self, scan: Any, columns: Any = None) -> Any:
        """A Spark DataFrame over ``scan``'s snapshot (via the ``lakehouse`` data source), with
        its column selection and SQL predicates applied (pruning happens in the source)."""
        import json

        from .source import FORMAT, register

        snap = scan.snapshot

        def load() -> Any:
            reader = self.spark.read.format(FORMAT).option("versionAsOf", snap.version)
            if snap.storage.storage_options:
                reader = reader.option("storage_options", json.dumps(snap.storage.storage_options))
            return reader.load(snap.storage.root)

        try:
            df = load()
        except Exception as e:  # the format is not registered with this session yet
            if "DATA_SOURCE_NOT_FOUND" not in str(e):
                raise
            register(self.spark)
            df = load()
        for sql in scan.predicates:
            df = df.where(sql)
        cols = list(columns) if columns is not None else scan.columns
        return df.select(*cols) if cols is not None else df


__all__ = ["SparkEngine"]
