"""Table maintenance: vacuum, optimize (bin-packing, Z-order), restore, describe.

Each operation takes the latest :class:`~lakehouse.log.snapshot.Snapshot` and commits through a
:class:`~lakehouse.txn.transaction.Transaction` with Delta's operation name; ``Table`` exposes them
as methods and the ``lakehouse`` CLI as commands. (Property and constraint changes live in
``lakehouse.ops.alter``.)
"""

from __future__ import annotations

from lakehouse.maintenance.common import SizeStats
from lakehouse.maintenance.describe import describe
from lakehouse.maintenance.optimize import OptimizeMetrics, optimize
from lakehouse.maintenance.restore import RestoreMetrics, restore
from lakehouse.maintenance.vacuum import VacuumResult, vacuum

__all__ = [
    "OptimizeMetrics",
    "RestoreMetrics",
    "SizeStats",
    "VacuumResult",
    "describe",
    "optimize",
    "restore",
    "vacuum",
]
