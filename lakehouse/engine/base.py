"""The engine contract: narrow capabilities the core asks of an execution layer.

The core (log, scan, txn, merge planning) never imports a dataframe library. What it needs from
one is split into small capabilities, each with its contract in the docstring, so an engine (polars
embedded, PySpark distributed) implements exactly these and nothing is implied:

- :class:`DataIngest`: turn user data into an Arrow stream;
- :class:`ExpressionHandler`: evaluate SQL/native predicates and projections over Arrow batches;
- :class:`FrameHandler`: hand results to users as the engine's frames (eager and lazy).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa


@runtime_checkable
class DataIngest(Protocol):
    def to_arrow_stream(self, data: Any) -> pa.RecordBatchReader:
        """Any supported input (Arrow table/batch/reader, engine frame, pandas) as a stream.

        Contract: never materialises a stream input; raises InvalidArgumentError naming the type
        for unsupported inputs.
        """
        ...


@runtime_checkable
class ExpressionHandler(Protocol):
    def filter_mask(self, table: pa.Table, predicate: Any) -> pa.Array:
        """Boolean mask (no nulls: SQL NULL counts as false) of rows satisfying ``predicate``.

        ``predicate`` is a SQL string over ``table``'s column names, or a native expression.
        Raises InvalidArgumentError for an unknown column or invalid SQL.
        """
        ...

    def project(self, table: pa.Table, exprs: Mapping[str, Any]) -> pa.Table:
        """New columns ``name -> expression`` (SQL or native) evaluated over ``table``, in order.

        The result has exactly ``len(table)`` rows and one column per entry of ``exprs``.
        """
        ...


@runtime_checkable
class FrameHandler(Protocol):
    def to_frame(self, table: pa.Table) -> Any:
        """The engine's eager frame for an Arrow table (zero-copy where possible)."""
        ...

    def lazy_scan(self, scan: Any, columns: Any = None) -> Any:
        """A lazy frame over a :class:`~lakehouse.scan.Scan` whose projections and predicates
        the engine pushes down into the scan (file pruning, column selection)."""
        ...


@runtime_checkable
class Engine(DataIngest, ExpressionHandler, FrameHandler, Protocol):
    """An execution engine: all three capabilities under one name."""

    name: str
