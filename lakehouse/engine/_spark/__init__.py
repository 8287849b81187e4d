"""The Spark engine: PySpark 4+ as a distributed execution layer for lakehouse tables.

Two parts: the ``lakehouse`` Python data source (``spark.read.format("lakehouse")`` and
``df.write.format("lakehouse")``; reads and writes run on the executors, commits on the driver
through lakehouse's transactions) and :class:`SparkEngine`, the engine contract on a
SparkSession (``get_engine("spark")``).

Example:
    >>> import lakehouse.spark                                       # doctest: +SKIP
    >>> lakehouse.spark.register(spark)                              # doctest: +SKIP
    >>> spark.read.format("lakehouse").load("s3://bucket/table")     # doctest: +SKIP
"""

from __future__ import annotations

from lakehouse.engine._spark.engine import SparkEngine
from lakehouse.engine._spark.source import (
    FORMAT,
    LakehouseDataSource,
    LakehousePushdownDataSource,
    register,
)


def create_engine() -> SparkEngine:
    return SparkEngine()


__all__ = [
    "FORMAT",
    "LakehouseDataSource",
    "LakehousePushdownDataSource",
    "SparkEngine",
    "create_engine",
    "register",
]
