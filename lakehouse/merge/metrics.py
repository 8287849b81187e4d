"""What a MERGE, UPDATE or DELETE did, as frozen values for the caller and Delta's metric names
for ``commitInfo.operationMetrics`` (so ``history()``, Spark and delta-rs show the same figures).

The executors count into a mutable :class:`Counters` while they run and freeze it at the end.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Counters:
    """Running totals shared by the merge/update/delete executors."""

    source_rows: int = 0
    inserted: int = 0
    matched_updated: int = 0
    nmbs_updated: int = 0          # not matched by source, updated
    matched_deleted: int = 0
    nmbs_deleted: int = 0
    copied: int = 0
    files_scanned: int = 0
    files_skipped: int = 0
    files_added: int = 0
    files_removed: int = 0
    change_files_added: int = 0
    dvs_added: int = 0
    dvs_removed: int = 0
    bytes_added: int = 0
    bytes_removed: int = 0
    scan_time_ms: int = 0
    rewrite_time_ms: int = 0

    @property
    def updated(self) -> int:
        return self.matched_updated + self.nmbs_updated

    @property
    def deleted(self) -> int:
        return self.matched_deleted + self.nmbs_deleted


@dataclass(frozen=True, slots=True)
class MergeMetrics:
    """Outcome of :meth:`MergeBuilder.execute`.

    ``num_target_files_scanned`` counts files read at least partly (key columns) and
    ``num_target_files_skipped`` those pruned by partition values and key statistics without
    being opened. ``version`` is the table version the MERGE committed, or the version it read
    when nothing changed (then, as in Delta, no commit is made).
    """

    num_source_rows: int
    num_target_rows_inserted: int
    num_target_rows_updated: int
    num_target_rows_matched_updated: int
    num_target_rows_not_matched_by_source_updated: int
    num_target_rows_deleted: int
    num_target_rows_matched_deleted: int
    num_target_rows_not_matched_by_source_deleted: int
    num_target_rows_copied: int
    num_output_rows: int
    num_target_files_scanned: int
    num_target_files_skipped: int
    num_target_files_added: int
    num_target_files_removed: int
    num_target_change_files_added: int
    num_target_deletion_vectors_added: int
    num_target_deletion_vectors_removed: int
    num_target_bytes_added: int
    num_target_bytes_removed: int
    execution_time_ms: int
    scan_time_ms: int
    rewrite_time_ms: int
    version: int

    @classmethod
    def from_counters(cls, c: Counters, execution_ms: int, version: int = -1) -> MergeMetrics:
        return cls(
            num_source_rows=c.source_rows,
            num_target_rows_inserted=c.inserted,
            num_target_rows_updated=c.updated,
            num_target_rows_matched_updated=c.matched_updated,
            num_target_rows_not_matched_by_source_updated=c.nmbs_updated,
            num_target_rows_deleted=c.deleted,
            num_target_rows_matched_deleted=c.matched_deleted,
            num_target_rows_not_matched_by_source_deleted=c.nmbs_deleted,
            num_target_rows_copied=c.copied,
            num_output_rows=c.inserted + c.updated + c.copied,
            num_target_files_scanned=c.files_scanned,
            num_target_files_skipped=c.files_skipped,
            num_target_files_added=c.files_added,
            num_target_files_removed=c.files_removed,
            num_target_change_files_added=c.change_files_added,
            num_target_deletion_vectors_added=c.dvs_added,
            num_target_deletion_vectors_removed=c.dvs_removed,
            num_target_bytes_added=c.bytes_added,
            num_target_bytes_removed=c.bytes_removed,
            execution_time_ms=execution_ms,
            scan_time_ms=c.scan_time_ms,
            rewrite_time_ms=c.rewrite_time_ms,
            version=version,
        )

    def operation_metrics(self) -> dict[str, int]:
        """Delta's ``operationMetrics`` keys for a MERGE commit."""
        return {
            "numSourceRows": self.num_source_rows,
            "numTargetRowsInserted": self.num_target_rows_inserted,
            "numTargetRowsUpdated": self.num_target_rows_updated,
            "numTargetRowsMatchedUpdated": self.num_target_rows_matched_updated,
            "numTargetRowsNotMatchedBySourceUpdated":
                self.num_target_rows_not_matched_by_source_updated,
            "numTargetRowsDeleted": self.num_target_rows_deleted,
            "numTargetRowsMatchedDeleted": self.num_target_rows_matched_deleted,
            "numTargetRowsNotMatchedBySourceDeleted":
                self.num_target_rows_not_matched_by_source_deleted,
            "numTargetRowsCopied": self.num_target_rows_copied,
            "numOutputRows": self.num_output_rows,
            "numTargetFilesAdded": self.num_target_files_added,
            "numTargetFilesRemoved": self.num_target_files_removed,
            "numTargetChangeFilesAdded": self.num_target_change_files_added,
            "numTargetDeletionVectorsAdded": self.num_target_deletion_vectors_added,
            "numTargetDeletionVectorsRemoved": self.num_target_deletion_vectors_removed,
            "numTargetBytesAdded": self.num_target_bytes_added,
            "numTargetBytesRemoved": self.num_target_bytes_removed,
            "numTargetFilesScanned": self.num_target_files_scanned,
            "numTargetFilesSkipped": self.num_target_files_skipped,
            "executionTimeMs": self.execution_time_ms,
            "scanTimeMs": self.scan_time_ms,
            "rewriteTimeMs": self.rewrite_time_ms,
        }


@dataclass(frozen=True, slots=True)
class UpdateMetrics:
    """Outcome of ``Table.update``."""

    num_updated_rows: int
    num_copied_rows: int
    num_added_files: int
    num_removed_files: int
    num_added_change_files: int
    num_deletion_vectors_added: int
    num_deletion_vectors_removed: int
    num_added_bytes: int
    num_removed_bytes: int
    num_files_scanned: int
    num_files_skipped: int
    execution_time_ms: int
    scan_time_ms: int
    rewrite_time_ms: int
    version: int

    @classmethod
    def from_counters(cls, c: Counters, execution_ms: int, version: int = -1) -> UpdateMetrics:
        return cls(c.updated, c.copied, c.files_added, c.files_removed, c.change_files_added,
                   c.dvs_added, c.dvs_removed, c.bytes_added, c.bytes_removed, c.files_scanned,
                   c.files_skipped, execution_ms, c.scan_time_ms, c.rewrite_time_ms, version)

    def operation_metrics(self) -> dict[str, int]:
        return {
            "numUpdatedRows": self.num_updated_rows,
            "numCopiedRows": self.num_copied_rows,
            **_file_metrics(self),
        }


@dataclass(frozen=True, slots=True)
class DeleteMetrics:
    """Outcome of ``Table.delete``."""

    num_deleted_rows: int
    num_copied_rows: int
    num_added_files: int
    num_removed_files: int
    num_added_change_files: int
    num_deletion_vectors_added: int
    num_deletion_vectors_removed: int
    num_added_bytes: int
    num_removed_bytes: int
    num_files_scanned: int
    num_files_skipped: int
    execution_time_ms: int
    scan_time_ms: int
    rewrite_time_ms: int
    version: int

    @classmethod
    def from_counters(cls, c: Counters, execution_ms: int, version: int = -1) -> DeleteMetrics:
        return cls(c.deleted, c.copied, c.files_added, c.files_removed, c.change_files_added,
                   c.dvs_added, c.dvs_removed, c.bytes_added, c.bytes_removed, c.files_scanned,
                   c.files_skipped, execution_ms, c.scan_time_ms, c.rewrite_time_ms, version)

    def operation_metrics(self) -> dict[str, int]:
        return {
            "numDeletedRows": self.num_deleted_rows,
            "numCopiedRows": self.num_copied_rows,
            **_file_metrics(self),
        }


def _file_metrics(m: UpdateMetrics | DeleteMetrics) -> dict[str, int]:
    return {
        "numAddedFiles": m.num_added_files,
        "numRemovedFiles": m.num_removed_files,
        "numAddedChangeFiles": m.num_added_change_files,
        "numDeletionVectorsAdded": m.num_deletion_vectors_added,
        "numDeletionVectorsRemoved": m.num_deletion_vectors_removed,
        "numAddedBytes": m.num_added_bytes,
        "numRemovedBytes": m.num_removed_bytes,
        "numFilesScanned": m.num_files_scanned,
        "numFilesSkipped": m.num_files_skipped,
        "executionTimeMs": m.execution_time_ms,
        "scanTimeMs": m.scan_time_ms,
        "rewriteTimeMs": m.rewrite_time_ms,
    }


