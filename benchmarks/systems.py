"""One adapter per benchmarked system, so workloads say *what* to do and never *how* per library.

- ``lakehouse``: this project's public API.
- ``deltalake``: delta-rs through its Python defaults (``to_pyarrow_table``, streamed MERGE).
- ``deltalake-fast``: delta-rs at its fastest settings (reads through the ``QueryBuilder`` SQL
  engine, MERGE with ``streamed_exec=False``); identical to ``deltalake`` for everything else.
- ``pyarrow``: raw Parquet with no table format, the physical limit for writes and reads.

Libraries are imported when an adapter is built, inside the measured subprocess, so a missing or
broken system fails only its own cells.
"""

from __future__ import annotations

import dataclasses
import importlib
import shutil
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa

DV_PROPERTIES: Mapping[str, str] = {"delta.enableDeletionVectors": "true"}
Scalar = int | float | str | bool | None


@dataclass(frozen=True, slots=True)
class Pred:
    """One conjunct of a read filter: ``column op value``."""

    column: str
    op: str
    value: int | float | str | date


def sql_literal(value: int | float | str | date) -> str:
    """``value`` as a SQL literal (dates as ``DATE 'YYYY-MM-DD'``)."""
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def sql_where(preds: Sequence[Pred]) -> str:
    """The conjunction of ``preds`` as a SQL boolean expression."""
    return " and ".join(f"{p.column} {p.op} {sql_literal(p.value)}" for p in preds)


def plain_metrics(obj: object) -> dict[str, Scalar]:
    """The scalar fields of an operation's result (dataclass, mapping or list) as a JSON-able dict."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        items: Mapping[str, Any] = dataclasses.asdict(obj)
    elif isinstance(obj, Mapping):
        items = obj
    elif isinstance(obj, list | tuple):
        return {"count": len(obj)}
    else:
        return {}
    return {
        str(k): v.total_seconds() if hasattr(v, "total_seconds") else v
        for k, v in items.items()
        if isinstance(v, int | float | str | bool) or hasattr(v, "total_seconds")
    }


def as_arrow(obj: object) -> pa.Table:
    """Materialise a read result as a ``pyarrow.Table`` (accepts Arrow C-stream objects)."""
    if isinstance(obj, pa.Table):
        return obj
    if hasattr(obj, "to_arrow"):
        return as_arrow(obj.to_arrow())
    if hasattr(obj, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(obj).read_all()
    raise TypeError(f"read returned {type(obj).__name__}, which is not Arrow data")


def preload(*modules: str) -> None:
    """Import modules a library would import lazily, so no timed section pays for an import."""
    for module in ("pyarrow.compute", "pyarrow.dataset", "pyarrow.parquet", *modules):
        importlib.import_module(module)


class System:
    """Base adapter; an operation a system lacks raises ``NotImplementedError``."""

    name = "abstract"

    def ids(self, uri: str) -> pa.ChunkedArray:
        """The ``id`` column of the latest version (for checking results; never timed)."""
        return self.read(uri, columns=["id"]).column("id")

    def _missing(self, op: str) -> NotImplementedError:
        return NotImplementedError(f"{self.name} has no {op} operation")

    def write(
        self,
        uri: str,
        data: pa.Table,
        *,
        mode: str = "error",
        partition_by: list[str] | None = None,
        deletion_vectors: bool = False,
    ) -> None:
        raise self._missing("write")

    def read(
        self, uri: str, *, columns: list[str] | None = None, where: Sequence[Pred] = ()
    ) -> pa.Table:
        raise self._missing("read")

    def upsert(self, uri: str, source: pa.Table) -> dict[str, Scalar]:
        raise self._missing("merge")

    def update(self, uri: str, set_: dict[str, str], where: str) -> dict[str, Scalar]:
        raise self._missing("update")

    def delete(self, uri: str, where: str) -> dict[str, Scalar]:
        raise self._missing("delete")

    def vacuum(self, uri: str) -> dict[str, Scalar]:
        raise self._missing("vacuum")

    def open(self, uri: str, version: int | None = None) -> dict[str, Scalar]:
        raise self._missing("open")

    def history(self, uri: str) -> int:
        raise self._missing("history")


class Lakehouse(System):
    """This project, through the public API of issues 1-6."""

    name = "lakehouse"

    def __init__(self) -> None:
        import lakehouse

        preload("polars")
        self._lh: Any = lakehouse

    def _open(self, uri: str, version: int | None = None) -> Any:
        if version is None:
            return self._lh.Table.open(uri)
        return self._lh.Table.open(uri, version=version)

    def write(
        self,
        uri: str,
        data: pa.Table,
        *,
        mode: str = "error",
        partition_by: list[str] | None = None,
        deletion_vectors: bool = False,
    ) -> None:
        kwargs: dict[str, Any] = {}
        if mode != "error":
            kwargs["mode"] = mode
        if partition_by:
            kwargs["partition_by"] = partition_by
        if deletion_vectors:
            kwargs["properties"] = dict(DV_PROPERTIES)
        self._lh.write(uri, data, **kwargs)

    def read(
        self, uri: str, *, columns: list[str] | None = None, where: Sequence[Pred] = ()
    ) -> pa.Table:
        kwargs: dict[str, Any] = {}
        if columns is not None:
            kwargs["columns"] = columns
        if where:
            kwargs["filter"] = sql_where(where)
        return as_arrow(self._open(uri).to_arrow(**kwargs))

    def upsert(self, uri: str, source: pa.Table) -> dict[str, Scalar]:
        merger = self._open(uri).merge(source, on="target.id = source.id")
        return plain_metrics(
            merger.when_matched_update_all().when_not_matched_insert_all().execute()
        )

    def update(self, uri: str, set_: dict[str, str], where: str) -> dict[str, Scalar]:
        return plain_metrics(self._open(uri).update(set=set_, where=where))

    def delete(self, uri: str, where: str) -> dict[str, Scalar]:
        return plain_metrics(self._open(uri).delete(where=where))

    def vacuum(self, uri: str) -> dict[str, Scalar]:
        result = self._open(uri).vacuum(retention_hours=0, enforce_retention=False)
        metrics = plain_metrics(result)
        files = getattr(result, "files", None)
        if files is not None:
            metrics["files_deleted"] = len(files)
        return metrics

    def open(self, uri: str, version: int | None = None) -> dict[str, Scalar]:
        table = self._open(uri, version)
        found = getattr(table, "version", None)
        return {"version": found if isinstance(found, int) else None}

    def history(self, uri: str) -> int:
        return len(list(self._open(uri).history()))


class Deltalake(System):
    """delta-rs; ``fast`` switches reads to its SQL engine and MERGE to non-streamed execution."""

    def __init__(self, *, fast: bool) -> None:
        import deltalake

        preload()
        self._dl: Any = deltalake
        self.fast = fast
        self.name = "deltalake-fast" if fast else "deltalake"

    def write(
        self,
        uri: str,
        data: pa.Table,
        *,
        mode: str = "error",
        partition_by: list[str] | None = None,
        deletion_vectors: bool = False,
    ) -> None:
        config = dict(DV_PROPERTIES) if deletion_vectors else None
        self._dl.write_deltalake(
            uri, data, mode=mode, partition_by=partition_by or None, configuration=config
        )

    def read(
        self, uri: str, *, columns: list[str] | None = None, where: Sequence[Pred] = ()
    ) -> pa.Table:
        table = self._dl.DeltaTable(uri)
        if not self.fast:
            filters = [(p.column, p.op, p.value) for p in where] or None
            return table.to_pyarrow_table(columns=columns, filters=filters)
        selected = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        sql = f"SELECT {selected} FROM t" + (f" WHERE {sql_where(where)}" if where else "")
        return as_arrow(self._dl.QueryBuilder().register("t", table).execute(sql))

    def ids(self, uri: str) -> pa.ChunkedArray:
        # The SQL engine also reads tables with deletion vectors, which to_pyarrow_table refuses.
        reader = (
            self._dl.QueryBuilder()
            .register("t", self._dl.DeltaTable(uri))
            .execute("SELECT id FROM t")
        )
        return as_arrow(reader).column("id")

    def upsert(self, uri: str, source: pa.Table) -> dict[str, Scalar]:
        merger = self._dl.DeltaTable(uri).merge(
            source,
            predicate="target.id = source.id",
            source_alias="source",
            target_alias="target",
            streamed_exec=not self.fast,
        )
        return plain_metrics(
            merger.when_matched_update_all().when_not_matched_insert_all().execute()
        )

    def update(self, uri: str, set_: dict[str, str], where: str) -> dict[str, Scalar]:
        return plain_metrics(self._dl.DeltaTable(uri).update(updates=set_, predicate=where))

    def delete(self, uri: str, where: str) -> dict[str, Scalar]:
        return plain_metrics(self._dl.DeltaTable(uri).delete(where))

    def vacuum(self, uri: str) -> dict[str, Scalar]:
        deleted = self._dl.DeltaTable(uri).vacuum(
            retention_hours=0, dry_run=False, enforce_retention_duration=False
        )
        return {"files_deleted": len(deleted)}

    def open(self, uri: str, version: int | None = None) -> dict[str, Scalar]:
        table = self._dl.DeltaTable(uri, version=version)
        return {"version": table.version()}

    def history(self, uri: str) -> int:
        return len(self._dl.DeltaTable(uri).history())


class Pyarrow(System):
    """Raw Parquet files through ``pyarrow.parquet`` / ``pyarrow.dataset``; no log, no ACID."""

    name = "pyarrow"

    def __init__(self) -> None:
        preload()

    def write(
        self,
        uri: str,
        data: pa.Table,
        *,
        mode: str = "error",
        partition_by: list[str] | None = None,
        deletion_vectors: bool = False,
    ) -> None:
        import pyarrow.parquet as pq

        if mode != "error" or deletion_vectors:
            raise self._missing(f"write(mode={mode!r}, deletion_vectors={deletion_vectors})")
        pq.write_to_dataset(data, uri, partition_cols=partition_by or None)

    def read(
        self, uri: str, *, columns: list[str] | None = None, where: Sequence[Pred] = ()
    ) -> pa.Table:
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        partitioning = None
        hive_dirs = [p.name.split("=", 1)[0] for p in Path(uri).iterdir() if "=" in p.name]
        if hive_dirs:
            # Partition values are typed like the column they came from (``day`` is a date).
            types = {"day": pa.date32()}
            fields = [pa.field(n, types.get(n, pa.string())) for n in dict.fromkeys(hive_dirs)]
            partitioning = ds.partitioning(pa.schema(fields), flavor="hive")
        dataset = ds.dataset(uri, format="parquet", partitioning=partitioning)
        expr = None
        ops = {
            "=": lambda f, v: f == v,
            "!=": lambda f, v: f != v,
            "<": lambda f, v: f < v,
            "<=": lambda f, v: f <= v,
            ">": lambda f, v: f > v,
            ">=": lambda f, v: f >= v,
        }
        for p in where:
            term = ops[p.op](pc.field(p.column), pc.scalar(p.value))
            expr = term if expr is None else expr & term
        return dataset.to_table(columns=columns, filter=expr)


def warm_up(system: System, uri: str, operations: Sequence[str]) -> None:
    """Run ``operations`` once on a tiny throwaway table at ``uri``, untimed.

    Libraries import modules and initialise runtimes on first use; doing that here keeps it out of
    the timed section for every system alike. Errors are ignored: the measured operation reports
    them. The table is deleted afterwards.
    """
    from benchmarks.data import small_batch

    batch = small_batch(0, 10)
    steps: dict[str, Callable[[], object]] = {
        "write": lambda: system.write(uri, batch, mode="append"),
        "read": lambda: system.read(uri, columns=["id", "f1"], where=(Pred("id", ">=", 5),)),
        "overwrite": lambda: system.write(uri, batch, mode="overwrite"),
        "open": lambda: system.open(uri),
        "time_travel": lambda: system.open(uri, version=0),
        "history": lambda: system.history(uri),
        "upsert": lambda: system.upsert(uri, small_batch(5, 10)),
        "update": lambda: system.update(uri, {"f1": "f1 + 1"}, "id % 2 = 0"),
        "delete": lambda: system.delete(uri, "id >= 3 and id < 4"),
        "vacuum": lambda: system.vacuum(uri),
    }
    with suppress(Exception):
        system.write(uri, batch)
    for name in operations:
        with suppress(Exception):
            steps[name]()
    shutil.rmtree(uri, ignore_errors=True)


def make_system(name: str) -> System:
    """The adapter for system ``name`` (imports its library)."""
    if name == "lakehouse":
        return Lakehouse()
    if name == "deltalake":
        return Deltalake(fast=False)
    if name == "deltalake-fast":
        return Deltalake(fast=True)
    if name == "pyarrow":
        return Pyarrow()
    raise ValueError(
        f"unknown system {name!r}; choose from lakehouse, deltalake, deltalake-fast, pyarrow"
    )


def fixture_owner(system: str) -> str:
    """Whose on-disk fixtures ``system`` uses (deltalake-fast reads deltalake's own tables)."""
    return "deltalake" if system == "deltalake-fast" else system
