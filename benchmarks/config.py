"""Scale presets: how many rows and operations each benchmark scale uses.

One table of numbers keeps ``ci`` (a one-minute smoke run), ``small`` and ``full`` (the issue-6
workloads at 10M rows) consistent, and lets workloads stay free of scale-specific branches.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scale:
    """Sizes for one benchmark scale."""

    name: str
    rows: int
    """Rows in the base table (W1-W5, W7)."""
    merge_large_rows: int
    """Source rows of the large upsert (half update existing ids, half insert new ones)."""
    merge_small_rows: int
    """Source rows of the small upsert (half update a clustered id range, half insert)."""
    log_commits: int
    """Commits in the W6 log fixture (open latest / time travel / history)."""
    timed_commits: int
    """Small commits timed one after another in W6.commit."""
    concurrent_appends: int
    """Appends per process in W8 (two processes)."""
    append_rows: int
    """Rows per small commit (W6, W8)."""
    repeat: int
    """Default measured repetitions per (case, system)."""
    warmup: int
    """Default discarded warm-up repetitions per (case, system)."""
    timeout_s: float
    """Kill a measurement subprocess after this long."""
    jobs: int = 1
    """Default cases run at once (2 only for the ci smoke run, whose timings are no result)."""

    @property
    def time_travel_version(self) -> int:
        """The version W6.time_travel opens (the middle of the log)."""
        return self.log_commits // 2


SCALES: dict[str, Scale] = {
    "ci": Scale(
        name="ci",
        rows=20_000,
        merge_large_rows=2_000,
        merge_small_rows=100,
        log_commits=30,
        timed_commits=30,
        concurrent_appends=10,
        append_rows=10,
        repeat=1,
        warmup=0,
        timeout_s=180.0,
        jobs=2,
    ),
    "small": Scale(
        name="small",
        rows=1_000_000,
        merge_large_rows=100_000,
        merge_small_rows=1_000,
        log_commits=500,
        timed_commits=200,
        concurrent_appends=50,
        append_rows=10,
        repeat=3,
        warmup=1,
        timeout_s=1_200.0,
    ),
    "full": Scale(
        name="full",
        rows=10_000_000,
        merge_large_rows=1_000_000,
        merge_small_rows=1_000,
        log_commits=2_000,
        timed_commits=200,
        concurrent_appends=50,
        append_rows=10,
        repeat=3,
        warmup=1,
        timeout_s=3_600.0,
    ),
}
