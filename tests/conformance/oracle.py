"""What deltalake (delta-rs, test-only oracle) sees in a table at a version, cached per session.

Why: the content oracle is deltalake's SQL ``QueryBuilder``; its ``to_pyarrow_table`` refuses
deletion vectors and v2 checkpoints and silently returns NULLs for some column-mapped tables. Each
(table, version) is read once per test process and shared by both test files. Every failure of
deltalake is recorded as text, never raised: a table deltalake cannot read is still checked, just
against fewer figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, QueryBuilder


@dataclass(frozen=True, slots=True)
class OracleSnapshot:
    """deltalake's view of one table version. ``open_error`` set means nothing else is."""

    open_error: str | None
    version: int | None = None
    schema: pa.Schema | None = None
    partition_columns: tuple[str, ...] | None = None
    add_paths: tuple[str, ...] = ()  # as in the log (URL-encoded, usually relative)
    files_present: bool = False
    stats_rows: int | None = None  # sum of add numRecords less deleted rows, when all are known
    contents: pa.Table | None = None
    query_error: str | None = None

    @property
    def readable(self) -> bool:
        return self.contents is not None


def _short(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:300]}"


def _deleted_rows(table: DeltaTable) -> int | None:
    """Rows removed by deletion vectors at this version; None if deltalake cannot tell."""
    try:
        dvs = pa.table(table.deletion_vectors())
    except Exception:
        return None
    if dvs.num_rows == 0:
        return 0
    keep = pc.list_flatten(dvs["selection_vector"])
    return int(len(keep) - pc.sum(keep.cast(pa.int64())).as_py())


def _stats_rows(adds: pa.Table, table: DeltaTable) -> int | None:
    if "num_records" not in adds.column_names:
        return 0 if adds.num_rows == 0 else None
    records = adds["num_records"]
    if records.null_count:
        return None
    deleted = _deleted_rows(table)
    if deleted is None:
        return None
    total = pc.sum(records).as_py() or 0
    return int(total) - deleted


def _local_file(table_path: Path, log_path: str) -> Path:
    if "://" in log_path:
        return Path(unquote(urlparse(log_path).path))
    return table_path / unquote(log_path)


@cache
def snapshot(table_path: Path, version: int | None = None) -> OracleSnapshot:
    """deltalake's reading of ``table_path`` at ``version`` (latest if None)."""
    try:
        table = DeltaTable(str(table_path), version=version)
        schema = pa.schema(table.schema().to_arrow())
        partition_columns = tuple(table.metadata().partition_columns)
        adds = pa.table(table.get_add_actions(flatten=True))
    except Exception as exc:
        return OracleSnapshot(open_error=_short(exc))
    add_paths = tuple(adds["path"].to_pylist())
    files_present = all(_local_file(table_path, p).is_file() for p in add_paths)
    contents: pa.Table | None = None
    query_error: str | None = None
    try:
        reader = QueryBuilder().register("t", table).execute("select * from t")
        contents = pa.table(reader.read_all())
    except Exception as exc:
        query_error = _short(exc)
    return OracleSnapshot(
        open_error=None,
        version=table.version(),
        schema=schema,
        partition_columns=partition_columns,
        add_paths=add_paths,
        files_present=files_present,
        stats_rows=_stats_rows(adds, table),
        contents=contents,
        query_error=query_error,
    )
