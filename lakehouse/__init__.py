"""lakehouse: ACID Delta Lake tables on object storage, from Python.

Example:
    >>> import lakehouse, pyarrow as pa
    >>> t = lakehouse.write("memory://doc-init", pa.table({"id": [1, 2]}))
    >>> lakehouse.Table.open("memory://doc-init").to_arrow().num_rows
    2
"""

from __future__ import annotations

from lakehouse.errors import (
    CommitConflictError,
    LakehouseError,
    ProtocolError,
    SchemaMismatchError,
    TableNotFoundError,
    UnsupportedFeatureError,
)
from lakehouse.ops.write import write
from lakehouse.table import Table

__version__ = "0.1.0"

__all__ = [
    "CommitConflictError",
    "LakehouseError",
    "ProtocolError",
    "SchemaMismatchError",
    "Table",
    "TableNotFoundError",
    "UnsupportedFeatureError",
    "__version__",
    "write",
]
