"""Oracle readers for interop tests: deltalake (delta-rs) and DuckDB's delta extension.

Both are test-only dependencies (the ``dev`` extra). The DuckDB extension is loaded offline from
the ``duckdb-extension-delta`` wheel (``INSTALL delta`` would need the network).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa


def connect_duckdb() -> Any:
    """A DuckDB connection with the delta extension loaded; raises RuntimeError if impossible."""
    try:
        import duckdb
        import duckdb_extension_delta
    except ImportError as e:
        raise RuntimeError(f"duckdb / duckdb-extension-delta not installed ({e}); "
                           "pip install -e '.[dev]'") from e
    root = Path(duckdb_extension_delta.__file__).parent
    wanted = root / "extensions" / f"v{duckdb.__version__}" / "delta.duckdb_extension"
    found = [wanted] if wanted.exists() else sorted(root.rglob("delta.duckdb_extension"))
    if not found:
        raise RuntimeError(f"no delta.duckdb_extension under {root}")
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    try:
        con.execute(f"LOAD '{found[-1]}'")
    except Exception as e:
        con.close()
        raise RuntimeError(f"cannot load the DuckDB delta extension {found[-1]}: {e}") from e
    return con


def read_duckdb(con: Any, path: str) -> pa.Table:
    """All rows of the Delta table at ``path`` as read by DuckDB's ``delta_scan``."""
    result = con.execute("select * from delta_scan(?)", [path]).arrow()
    return result.read_all() if isinstance(result, pa.RecordBatchReader) else result


def read_deltalake(path: str, version: int | None = None) -> pa.Table:
    """All rows as read by delta-rs's SQL reader (handles features ``to_pyarrow_table`` lacks)."""
    from deltalake import DeltaTable, QueryBuilder

    dt = DeltaTable(path, version=version)
    return pa.table(QueryBuilder().register("t", dt).execute("select * from t").read_all())
