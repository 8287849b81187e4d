"""The ``lakehouse`` Spark data source (PySpark's Python Data Source API, Spark 4+).

Why a Python data source: the Delta semantics (log replay, deletion vectors, column mapping,
conflict-checked commits) live in this package, so serving ``spark.read.format("lakehouse")`` and
``df.write.format("lakehouse")`` from it works on any vanilla Spark 4 cluster, no Delta jars.

Spark creates the source on the driver, asks for the schema, pickles the source and later builds
readers/writers from that pickle: :meth:`LakehouseDataSource.schema` therefore fixes the snapshot
version it described, and the reader plans exactly that version.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql.datasource import DataSource, DataSourceReader

from . import options as opt
from .reader import LakehouseReader, PushdownReader, ReadPlanKey
from .writer import LakehouseWriter, plan_write

#: the format name: ``spark.read.format(FORMAT)``
FORMAT = "lakehouse"
PUSHDOWN_CONF = "spark.sql.python.filterPushdown.enabled"


class LakehouseDataSource(DataSource):
    """``spark.read.format("lakehouse")`` / ``df.write.format("lakehouse")``.

    Read options: ``versionAsOf``, ``timestampAsOf``, ``storage_options`` (JSON object),
    ``maxPartitionBytes``, ``openCostInBytes``, ``parallelism`` (input partition sizing).
    Write options: ``partitionBy`` (``"a,b"``), ``mergeSchema``, ``overwriteSchema``,
    ``replaceWhere``, ``txnAppId`` + ``txnVersion``, ``properties`` (JSON object) and ``delta.*``
    table properties for a new table, ``storage_options``.
    """

    _reader_class: type[LakehouseReader] = LakehouseReader

    @classmethod
    def name(cls) -> str:
        return FORMAT

    def _resolve(self) -> Any:
        """The snapshot this read describes (fixed on first use, then reloaded by version)."""
        from lakehouse.log.snapshot import Snapshot

        storage = opt.storage_for(self.options)
        version = getattr(self, "_version", None)
        if version is None:
            version, timestamp = opt.time_travel(self.options)
            snap = Snapshot.load(storage, version=version, timestamp=timestamp)
            self._version = snap.version
            return snap
        return Snapshot.load(storage, version=version)

    def schema(self) -> Any:
        from .convert import spark_schema

        snap = self._resolve()
        return spark_schema(snap.schema)

    def reader(self, schema: Any) -> DataSourceReader:
        snap = self._resolve()
        names = snap.arrow_schema.names
        by_lower = {n.lower(): n for n in names}
        columns = []
        for f in schema.fields:
            name = by_lower.get(f.name.lower())
            if name is None:
                from lakehouse.errors import SchemaMismatchError

                raise SchemaMismatchError(
                    f"column {f.name!r} of the given schema is not in the table "
                    f"{snap.storage.root} "
                    f"(version {snap.version}); its columns are {names}"
                )
            columns.append(name)
        key = ReadPlanKey(snap.storage.root, dict(snap.storage.storage_options), snap.version)
        return self._reader_class(key, columns, schema, dict(self.options))

    def writer(self, schema: Any, overwrite: bool) -> LakehouseWriter:
        return LakehouseWriter(plan_write(self.options, schema, overwrite))


class LakehousePushdownDataSource(LakehouseDataSource):
    """The same source whose reader prunes files with the filters Spark pushes down."""

    _reader_class = PushdownReader


def supports_pushdown() -> bool:
    """Whether this PySpark has data source filter pushdown (``pushFilters``, Spark 4.1+)."""
    return hasattr(DataSourceReader, "pushFilters")


_PY_SOURCE_CLASS = "org.apache.spark.sql.execution.datasources.v2.python.PythonDataSourceV2"


def pushdown_is_safe(spark: Any) -> bool:
    """Whether filter pushdown is safe on this Spark.

    Spark 4.1-4.3 keep the partitions planned while pushing filters on the relation shared by
    every query of a DataFrame (``PythonDataSourceV2.setReadInfo``), so a later query on the same
    DataFrame without pushable filters reuses the pruned file list and silently misses rows.
    Newer Spark keeps that plan per scan; we enable pushdown only when the shared setter is gone.
    """
    if not supports_pushdown():
        return False
    try:
        cls = spark.sparkContext._jvm.java.lang.Class.forName(_PY_SOURCE_CLASS)
        return "setReadInfo" not in {m.getName() for m in cls.getMethods()}
    except Exception:  # Spark Connect (no JVM here) or an unknown layout: stay safe
        return False


def register(spark: Any, *, filter_pushdown: bool | None = None) -> bool:
    """Register the ``lakehouse`` format with ``spark`` (a SparkSession); return whether Spark's
    filters are pushed into file pruning.

    ``filter_pushdown``: ``None`` (default) enables it only where :func:`pushdown_is_safe`;
    ``True`` forces it (then query each loaded DataFrame with filters only, or reload it: see
    :func:`pushdown_is_safe`); ``False`` disables it. Enabling sets
    ``spark.sql.python.filterPushdown.enabled=true`` for the session. Executors need
    ``lakehouse`` installed in the Python that ``PYSPARK_PYTHON`` names.
    """
    if filter_pushdown is None:
        filter_pushdown = pushdown_is_safe(spark)
    if filter_pushdown and supports_pushdown():
        spark.conf.set(PUSHDOWN_CONF, "true")
        spark.dataSource.register(LakehousePushdownDataSource)
        return True
    spark.dataSource.register(LakehouseDataSource)
    return False


__all__ = [
    "FORMAT",
    "LakehouseDataSource",
    "LakehousePushdownDataSource",
    "pushdown_is_safe",
    "register",
    "supports_pushdown",
]
