"""``lakehouse.spark.register(spark)``: enable ``format("lakehouse")`` on a SparkSession.

Importing this module does not import PySpark; :func:`register` does (``pip install
'lakehouse[spark]'``, Java 17+).
"""

from __future__ import annotations

from typing import Any


def register(spark: Any, *, filter_pushdown: bool | None = None) -> bool:
    """Register the ``lakehouse`` data source with ``spark``; return whether Spark's filters
    prune files (see :func:`lakehouse.engine._spark.source.register`)."""
    from lakehouse.engine._spark import register as _register

    return _register(spark, filter_pushdown=filter_pushdown)


__all__ = ["register"]
