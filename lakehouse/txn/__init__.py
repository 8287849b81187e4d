"""Transactions: the only code that writes ``_delta_log/`` (commits, conflict resolution, retries)."""

from __future__ import annotations

from lakehouse.txn.committer import (
    CommitOutcome,
    Committed,
    Committer,
    Conflicted,
    FileSystemCommitter,
)
from lakehouse.txn.conflicts import TransactionSummary, WinningCommit, check_conflicts
from lakehouse.txn.hooks import PostCommitReport, run_post_commit_hooks
from lakehouse.txn.transaction import CommitResult, Transaction, removes_for_files

__all__ = [
    "CommitOutcome",
    "CommitResult",
    "Committed",
    "Committer",
    "Conflicted",
    "FileSystemCommitter",
    "PostCommitReport",
    "Transaction",
    "TransactionSummary",
    "WinningCommit",
    "check_conflicts",
    "removes_for_files",
    "run_post_commit_hooks",
]
