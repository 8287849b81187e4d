"""Schema evolution and transaction setup shared by MERGE, UPDATE and DELETE.

A schema-evolving MERGE adds source columns to the target: the new schema is decided once, up
front, by :func:`lakehouse.ops.enforce.reconcile_schema` (``schema_mode="merge"``), with column
mapping ids assigned to the new fields when the table uses column mapping, and committed as a
``metaData`` action (plus a protocol upgrade if the new schema needs one) in the same commit as
the data.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from lakehouse.log.actions import Metadata, Protocol
from lakehouse.log.features import protocol_for
from lakehouse.log.schema import (
    StructType,
    to_arrow,
)
from lakehouse.log.snapshot import Snapshot
from lakehouse.ops.enforce import evolved_metadata, reconcile_schema
from lakehouse.txn.conflicts import ISOLATION_LEVELS
from lakehouse.txn.transaction import Transaction


def plain_schema(schema: StructType) -> pa.Schema:
    """The logical Arrow schema without field metadata (the shape of rows we build)."""
    from lakehouse.log.schema import strip_field_metadata

    return strip_field_metadata(to_arrow(schema))


def evolve_schema(snap: Snapshot, new_fields: pa.Schema) -> tuple[StructType, Metadata | None,
                                                                   Protocol | None]:
    """The table schema with ``new_fields`` added, and the metadata/protocol to commit (None when
    unchanged)."""
    if not len(new_fields):
        return snap.schema, None, None
    required = [f for f in to_arrow(snap.schema) if not f.nullable]
    merged = reconcile_schema(snap.schema, pa.schema([*required, *new_fields]), "merge")
    metadata = evolved_metadata(snap, merged)
    if metadata is None:
        return snap.schema, None, None
    merged = StructType.from_json(metadata.schema_string)
    protocol = protocol_for(metadata.schema_string, metadata.configuration, snap.protocol)
    return merged, metadata, protocol if protocol != snap.protocol else None


def start_transaction(snap: Snapshot, operation: str, parameters: dict[str, Any],
                      metadata: Metadata | None = None,
                      protocol: Protocol | None = None) -> Transaction:
    """A transaction at the table's ``delta.isolationLevel`` (default WriteSerializable)."""
    level = str(snap.configuration.get("delta.isolationLevel", "WriteSerializable"))
    if level not in ISOLATION_LEVELS:
        level = "WriteSerializable"
    txn = Transaction(snap.storage, snap, operation, parameters, isolation_level=level)
    if metadata is not None:
        txn.set_metadata(metadata)
    if protocol is not None:
        txn.set_protocol(protocol)
    return txn
