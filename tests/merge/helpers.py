"""Shared helpers for the merge/update/delete tests: sorted row lists and the two test-only
oracles (deltalake's SQL QueryBuilder, DuckDB's delta_scan) reading a table we wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from lakehouse.table import Table


def rows(table: Table | pa.Table, key: str = "id") -> list[dict[str, Any]]:
    """All rows as dicts, sorted by ``key`` (NULLs first) then by their repr."""
    t = table.to_arrow() if isinstance(table, Table) else table
    return sorted(t.to_pylist(), key=lambda r: (r[key] is not None, r[key], repr(r)))


def deltalake_rows(path: Path | str, schema: pa.Schema) -> list[dict[str, Any]]:
    """deltalake's reading (QueryBuilder: the reader that supports deletion vectors)."""
    from deltalake import DeltaTable, QueryBuilder

    cols = ", ".join(f'"{c}"' for c in schema.names)
    reader = QueryBuilder().register("t", DeltaTable(str(path))).execute(f"select {cols} from t")
    return rows(pa.table(reader.read_all()).select(schema.names).cast(schema), schema.names[0])


def duckdb_rows(path: Path | str, schema: pa.Schema) -> list[dict[str, Any]] | None:
    """DuckDB's reading, or None when the delta extension cannot be loaded here."""
    try:
        import duckdb
        import duckdb_extension_delta

        ext = next(Path(duckdb_extension_delta.__file__).parent.glob(
            "extensions/*/delta.duckdb_extension"))
        con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
        con.execute(f"LOAD '{ext}'")
    except Exception:
        return None
    cols = ", ".join(f'"{c}"' for c in schema.names)
    result = con.execute(f"select {cols} from delta_scan('{path}')").arrow()
    table = result.read_all() if isinstance(result, pa.RecordBatchReader) else pa.table(result)
    return rows(table.select(schema.names).cast(schema), schema.names[0])
