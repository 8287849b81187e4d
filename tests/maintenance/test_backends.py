"""Maintenance on every storage backend: listing, existence checks and deletes go through Storage."""

from __future__ import annotations

import warnings

import pyarrow as pa

import lakehouse
from lakehouse import Table
from lakehouse.io.storage import Storage


def _rows(t: Table) -> list[dict]:
    return sorted(t.to_arrow().to_pylist(), key=lambda r: r["id"])


def test_optimize_restore_vacuum(table_uri: str, storage_options: dict[str, str]) -> None:
    t = lakehouse.write(table_uri, pa.table({"id": [1, 2], "p": ["a", "b"]}), partition_by="p",
                        storage_options=storage_options)
    for i in range(3):
        t.append(pa.table({"id": [10 + i], "p": ["a"]}))
    v3 = _rows(t)
    m = t.optimize()
    assert (m.num_files_removed, m.num_files_added) == (4, 1)
    assert _rows(t) == v3
    t.overwrite(pa.table({"id": [99], "p": ["b"]}), where="p = 'b'")
    r = t.restore(version=3)
    assert r.version == t.version and _rows(t) == v3
    storage = Storage.for_uri(table_uri, storage_options)
    orphan = "p=a/orphan.parquet"
    storage.write_bytes(orphan, b"not referenced")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lite = t.vacuum(retention_hours=0, enforce_retention=False)
        full = t.vacuum(retention_hours=0, enforce_retention=False, full=True)
    active = set(t.files()["canonical_path"].to_pylist())
    assert lite.files and orphan not in lite.files and full.files == [orphan]
    remaining = {f.path for f in storage.list_recursive("") if not f.path.startswith("_delta_log/")}
    assert remaining == active
    assert _rows(Table.open(table_uri, storage_options=storage_options)) == v3
