"""DESCRIBE DETAIL: one dictionary with everything worth knowing about a table version.

What the CLI's ``describe`` prints and scripts consume as JSON: where the table is, which version,
when it was created and last changed, its protocol and active features, schema, partitioning,
properties, and the shape of its data (file count, total size, file size distribution, rows).
All of it comes from the snapshot already in memory: no data file is opened.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.log.features import _LEGACY_WRITER, reader_feature_enabled
from lakehouse.log.schema import ArrayType, DecimalType, MapType, PrimitiveType, StructType
from lakehouse.log.snapshot import Snapshot
from lakehouse.maintenance.common import size_stats
from lakehouse.scan.stats import parse_stats

__all__ = ["describe", "iso_ms", "type_string"]


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as an ISO-8601 UTC string (None stays None)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def type_string(t: Any) -> str:
    """A Delta type in Spark's simple-string form: ``bigint``, ``array<string>``, ``struct<a:int>``."""
    if isinstance(t, PrimitiveType):
        return {"long": "bigint", "integer": "int", "short": "smallint",
                "byte": "tinyint"}.get(t.name, t.name)
    if isinstance(t, DecimalType):
        return t.name
    if isinstance(t, ArrayType):
        return f"array<{type_string(t.element_type)}>"
    if isinstance(t, MapType):
        return f"map<{type_string(t.key_type)},{type_string(t.value_type)}>"
    if isinstance(t, StructType):
        return "struct<" + ",".join(f"{f.name}:{type_string(f.type)}" for f in t.fields) + ">"
    return str(t)


def _features(snapshot: Snapshot) -> list[str]:
    """Table features in effect: listed ones (reader v3 / writer v7) or implied by legacy versions."""
    p = snapshot.protocol
    feats: set[str] = set(p.writer_features or ()) | set(p.reader_features or ())
    if p.min_writer_version < 7:
        feats |= {f for f, v in _LEGACY_WRITER.items()
                  if p.min_writer_version >= v and f != "columnMapping"}
    if reader_feature_enabled(p, "columnMapping", 2):
        feats.add("columnMapping")
    return sorted(feats)


def _num_rows(files: pa.Table) -> int | None:
    """Rows per the files' statistics less deletion-vector deletes; None if any file lacks stats."""
    if files.num_rows == 0:
        return 0
    st = parse_stats(files["stats"], {})
    records = st.num_records
    if records.null_count:
        return None
    n = int(pc.sum(records).as_py() or 0)
    dv = files["deletionVector"].combine_chunks()
    if dv.null_count < len(dv):
        n -= int(pc.sum(pc.struct_field(dv, "cardinality")).as_py() or 0)
    return n


def describe(snapshot: Snapshot) -> dict[str, Any]:
    """Details of ``snapshot`` as plain JSON-able values (see module docstring)."""
    md = snapshot.metadata
    p = snapshot.protocol
    files = snapshot.files
    sizes = size_stats(files["size"]) if files.num_rows else size_stats([])
    info = snapshot.commit_info or {}
    return {
        "format": "delta",
        "location": snapshot.storage.root,
        "id": md.id,
        "name": md.name,
        "description": md.description,
        "version": snapshot.version,
        "createdAt": iso_ms(md.created_time),
        "lastModified": iso_ms(snapshot.timestamp),
        "lastOperation": info.get("operation"),
        "protocol": {
            "minReaderVersion": p.min_reader_version,
            "minWriterVersion": p.min_writer_version,
            "readerFeatures": sorted(p.reader_features) if p.reader_features is not None else None,
            "writerFeatures": sorted(p.writer_features) if p.writer_features is not None else None,
        },
        "tableFeatures": _features(snapshot),
        "schema": [{"name": f.name, "type": type_string(f.type), "nullable": f.nullable}
                   for f in snapshot.schema.fields],
        "partitionColumns": list(md.partition_columns),
        "properties": dict(md.configuration),
        "numFiles": files.num_rows,
        "sizeInBytes": sizes.total_size,
        "fileSize": {"min": sizes.min, "p50": sizes.p50, "max": sizes.max, "avg": sizes.avg},
        "numRows": _num_rows(files),
    }
