"""The benchmark cases W1-W8 (issue 6), in report order, and selection by ``--only``."""

from __future__ import annotations

from benchmarks.workloads import concurrency, dml, log, scan
from benchmarks.workloads.base import Case

CASES: tuple[Case, ...] = (*scan.CASES, *dml.CASES, *log.CASES, *concurrency.CASES)
CASES_BY_ID: dict[str, Case] = {case.id: case for case in CASES}


def select_cases(only: list[str] | None) -> list[Case]:
    """Cases whose workload (``W4``) or full id (``W4.merge_small``) is in ``only`` (all if empty)."""
    if not only:
        return list(CASES)
    wanted = {w.strip().upper() for w in only if w.strip()}
    chosen = [c for c in CASES if c.workload.upper() in wanted or c.id.upper() in wanted]
    known = {c.workload.upper() for c in CASES} | {c.id.upper() for c in CASES}
    unknown = sorted(wanted - known)
    if unknown:
        raise ValueError(f"unknown workload(s) {', '.join(unknown)}; known: W1-W8 or a case id")
    return chosen
