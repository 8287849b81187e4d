"""Helpers for write/interop tests: order-insensitive row comparison and on-disk snapshots."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from lakehouse.io.storage import Storage


def _key(value: Any) -> str:
    return json.dumps(value, default=repr, sort_keys=True)


def _plain(value: Any) -> Any:
    """Python value with maps (lists of pairs from Arrow) turned into sorted lists of pairs."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def normalise(table: Any, schema: pa.Schema | None = None) -> pa.Table:
    """A pyarrow Table (from any Arrow producer) cast to ``schema`` when given.

    View types (string_view...) that oracles return are cast to their plain equivalents.
    """
    t = table if isinstance(table, pa.Table) else pa.table(table)
    if schema is not None:
        t = t.select(schema.names).cast(pa.schema([pa.field(f.name, f.type) for f in schema]))
    return t


def rows(table: Any, schema: pa.Schema | None = None) -> list[dict[str, Any]]:
    """Rows as dicts, sorted canonically (compare tables ignoring row order)."""
    t = normalise(table, schema)
    return sorted((_plain(r) for r in t.to_pylist()), key=_key)


def listing(uri: str, storage_options: Mapping[str, str] | None = None) -> dict[str, int]:
    """Every file under a table root with its size (to prove a failed write left no trace)."""
    storage = Storage.for_uri(uri, storage_options)
    try:
        return {f.path: f.size for f in storage.list_recursive("")}
    except FileNotFoundError:
        return {}


def commit_actions(uri: str, version: int,
                   storage_options: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    storage = Storage.for_uri(uri, storage_options)
    data = storage.read_bytes(f"_delta_log/{version:020d}.json")
    return [json.loads(line) for line in data.splitlines() if line.strip()]
