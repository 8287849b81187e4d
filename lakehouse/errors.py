"""The one error hierarchy of lakehouse.

Every error a user can see derives from :class:`LakehouseError`. Each class's docstring says what
went wrong and what to do about it.
"""

from __future__ import annotations


class LakehouseError(Exception):
    """Base class of every lakehouse error."""


class TableNotFoundError(LakehouseError):
    """No Delta table (no ``_delta_log`` with commits) at the given location. Check the URI, or create it."""


class TableExistsError(LakehouseError):
    """A table already exists where ``mode="error"`` asked to create one. Use mode="append"/"overwrite"."""


class ProtocolError(LakehouseError):
    """The table's log breaks the Delta protocol (version gap, missing protocol/metaData, bad action)."""


class CorruptLogError(ProtocolError):
    """A log or checkpoint file cannot be parsed. The table needs repair by its writer."""


class UnsupportedFeatureError(LakehouseError):
    """The table uses a reader/writer feature this version of lakehouse does not support.

    Attributes:
        feature: the Delta table feature (or protocol version) named in the message.
    """

    def __init__(self, message: str, feature: str | None = None) -> None:
        super().__init__(message)
        self.feature = feature


class SchemaMismatchError(LakehouseError):
    """Data does not match the table schema. Cast the data, or pass schema_mode="merge"/"overwrite"."""


class ConstraintViolationError(LakehouseError):
    """A NOT NULL or CHECK constraint was violated by the data being written. Nothing was committed."""


class InvalidArgumentError(LakehouseError, ValueError):
    """An argument is invalid (unknown mode, bad predicate, negative version...). Fix the call."""


class VersionNotFoundError(LakehouseError):
    """The requested version or timestamp is outside the table's available history."""


class MergeCardinalityError(LakehouseError):
    """Several source rows matched one target row in a MERGE update/delete. Deduplicate the source."""


class CommitConflictError(LakehouseError):
    """A concurrent commit conflicts with this transaction and retrying cannot help.

    Attributes:
        version: the version the conflicting (winning) commit took, when known.
    """

    def __init__(self, message: str, version: int | None = None) -> None:
        super().__init__(message)
        self.version = version


class ConcurrentAppendError(CommitConflictError):
    """Files were added by a concurrent commit to data this transaction read. Re-run the operation."""


class ConcurrentDeleteReadError(CommitConflictError):
    """A concurrent commit removed a file this transaction read. Re-run the operation."""


class ConcurrentDeleteDeleteError(CommitConflictError):
    """A concurrent commit removed a file this transaction also removes. Re-run the operation."""


class MetadataChangedError(CommitConflictError):
    """A concurrent commit changed the table metadata (schema, properties). Re-run the operation."""


class ProtocolChangedError(CommitConflictError):
    """A concurrent commit changed the protocol, or created the table. Re-run the operation."""


class ConcurrentTransactionError(CommitConflictError):
    """A concurrent commit used the same application transaction id (``txn`` app_id)."""


class MaxCommitAttemptsError(CommitConflictError):
    """The commit lost the race more times than the configured maximum. Retry later."""
