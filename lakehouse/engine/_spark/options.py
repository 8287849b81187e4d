"""Options of the ``lakehouse`` Spark data source, parsed once with messages naming the option.

Spark hands Python data sources their options in a case-insensitive dict with lower-cased keys,
so ``.option("versionAsOf", 1)`` arrives as ``versionasof`` and Delta property names arrive
lower-cased: :data:`DELTA_PROPERTIES` restores the case the protocol requires.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lakehouse.errors import InvalidArgumentError
from lakehouse.io.storage import Storage

from .convert import parse_json_option

#: Table properties accepted as ``.option("delta.<name>", value)`` on a write creating a table.
DELTA_PROPERTIES = (
    "delta.appendOnly", "delta.autoOptimize.autoCompact", "delta.autoOptimize.optimizeWrite",
    "delta.checkpoint.writeStatsAsJson", "delta.checkpoint.writeStatsAsStruct",
    "delta.checkpointInterval", "delta.checkpointPolicy", "delta.columnMapping.mode",
    "delta.dataSkippingNumIndexedCols", "delta.dataSkippingStatsColumns",
    "delta.deletedFileRetentionDuration", "delta.enableChangeDataFeed",
    "delta.enableDeletionVectors", "delta.enableInCommitTimestamps", "delta.enableRowTracking",
    "delta.enableTypeWidening", "delta.isolationLevel", "delta.logRetentionDuration",
    "delta.minReaderVersion", "delta.minWriterVersion", "delta.randomizeFilePrefixes",
    "delta.setTransactionRetentionDuration", "delta.targetFileSize",
    "delta.tuneFileSizesForRewrites",
)
_BY_LOWER = {p.lower(): p for p in DELTA_PROPERTIES}


def _get(options: Mapping[str, Any], key: str) -> Any:
    value = options.get(key.lower())
    return value if value not in ("", None) else None


def table_uri(options: Mapping[str, Any]) -> str:
    path = _get(options, "path")
    if path is None:
        raise InvalidArgumentError(
            "no table location: pass it as .load(uri) / .save(uri) (or .option('path', uri))"
        )
    return str(path)


def storage_for(options: Mapping[str, Any]) -> Storage:
    """The table's storage; refuses ``memory://`` (executors run in other processes)."""
    storage = Storage.for_uri(table_uri(options), parse_json_option(options, "storage_options"))
    if storage.kind == "memory":
        raise InvalidArgumentError(
            f"{storage.root} is an in-process memory:// table; Spark reads and writes it from "
            "other processes that cannot see it - use a local path or an object-store URI"
        )
    return storage


def as_bool(options: Mapping[str, Any], key: str) -> bool:
    value = _get(options, key)
    if value is None:
        return False
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise InvalidArgumentError(f"option {key!r} must be true or false, got {value!r}")
    return text == "true"


def as_int(options: Mapping[str, Any], key: str, default: int | None = None) -> int | None:
    value = _get(options, key)
    if value is None:
        return default
    try:
        return int(str(value).strip())
    except ValueError:
        raise InvalidArgumentError(f"option {key!r} must be an integer, got {value!r}") from None


def as_str(options: Mapping[str, Any], key: str) -> str | None:
    value = _get(options, key)
    return None if value is None else str(value)


def time_travel(options: Mapping[str, Any]) -> tuple[int | None, str | None]:
    """``(versionAsOf, timestampAsOf)`` (at most one of them set)."""
    version = as_int(options, "versionAsOf")
    timestamp = as_str(options, "timestampAsOf")
    if version is not None and timestamp is not None:
        raise InvalidArgumentError("pass either versionAsOf or timestampAsOf, not both")
    if version is not None and version < 0:
        raise InvalidArgumentError(f"versionAsOf must be >= 0, got {version}")
    return version, timestamp


def partition_by(options: Mapping[str, Any]) -> list[str]:
    """``partitionBy``: ``"a,b"`` or a JSON list ``'["a", "b"]'``."""
    raw = as_str(options, "partitionBy")
    if raw is None:
        return []
    raw = raw.strip()
    if raw.startswith("["):
        try:
            cols = json.loads(raw)
        except ValueError as e:
            raise InvalidArgumentError(f"option 'partitionBy' is not a JSON list: {raw!r}") from e
        if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
            raise InvalidArgumentError(f"option 'partitionBy' must list column names, got {raw!r}")
        return cols
    return [c.strip() for c in raw.split(",") if c.strip()]


def table_properties(options: Mapping[str, Any]) -> dict[str, str]:
    """Properties for a new table: the ``properties`` JSON object plus ``delta.*`` options."""
    props = parse_json_option(options, "properties")
    for key, value in options.items():
        lower = str(key).lower()
        if not lower.startswith("delta."):
            continue
        name = _BY_LOWER.get(lower)
        if name is None:
            raise InvalidArgumentError(
                f"unknown table property option {key!r}; Spark lower-cases option names, so pass "
                "other properties as .option('properties', json.dumps({...}))"
            )
        props[name] = str(value)
    return props


__all__ = [
    "DELTA_PROPERTIES",
    "as_bool",
    "as_int",
    "as_str",
    "partition_by",
    "storage_for",
    "table_properties",
    "table_uri",
    "time_travel",
]
