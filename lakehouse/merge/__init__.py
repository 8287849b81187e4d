"""MERGE, UPDATE and DELETE with Delta's semantics, pruned, in bounded memory, copy-on-write or
with deletion vectors, writing the change data feed when enabled.

Entry points are ``Table.merge`` / ``Table.update`` / ``Table.delete`` / ``Table.changes``.
"""

from __future__ import annotations

from lakehouse.merge.builder import Clause, MergeBuilder
from lakehouse.merge.metrics import DeleteMetrics, MergeMetrics, UpdateMetrics

__all__ = ["Clause", "DeleteMetrics", "MergeBuilder", "MergeMetrics", "UpdateMetrics"]
