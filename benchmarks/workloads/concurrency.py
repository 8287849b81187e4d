"""W8: two processes appending concurrently to one table; throughput and zero lost rows.

Both writer processes start, build their batches and wait at a barrier; the clock starts when they
are released together and stops when both finish. Every id a writer was told was committed must be
in the table exactly once, otherwise the run is recorded as an error, not as a time.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from benchmarks.data import small_batch
from benchmarks.systems import System, make_system, warm_up
from benchmarks.workloads.base import Case, Context

WRITERS = 2
ID_BASE = 1_000_000_000
ID_STRIDE = 100_000_000
READY_TIMEOUT_S = 600.0


def _first_id(writer: int, append: int, rows: int) -> int:
    return ID_BASE + writer * ID_STRIDE + append * rows


def append_worker(
    system_name: str, uri: str, writer: int, appends: int, rows: int, ready: Any, go: Any, out: Any
) -> None:
    """One writer process: ``appends`` small appends, reporting which ones committed."""
    committed: list[int] = []
    errors: list[str] = []
    try:
        system = make_system(system_name)
        warm_up(system, f"{uri}-warm-up-{writer}", ("write",))
        batches = [small_batch(_first_id(writer, i, rows), rows) for i in range(appends)]
    except Exception as exc:
        ready.wait(READY_TIMEOUT_S)
        out.put((writer, committed, [f"setup: {type(exc).__name__}: {exc}"], appends))
        return
    ready.wait(READY_TIMEOUT_S)
    go.wait(READY_TIMEOUT_S)
    for i, batch in enumerate(batches):
        try:
            system.write(uri, batch, mode="append")
            committed.append(i)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    out.put((writer, committed, errors[:3], len(errors)))


def _concurrent_appends(system: System, ctx: Context) -> None:
    rows = ctx.scale.append_rows
    appends = ctx.scale.concurrent_appends
    uri = ctx.scratch_path("table")
    system.write(uri, small_batch(0, rows))
    mp = multiprocessing.get_context("spawn")
    ready, go, out = mp.Barrier(WRITERS + 1), mp.Event(), mp.Queue()
    workers = [
        mp.Process(target=append_worker, args=(system.name, uri, w, appends, rows, ready, go, out))
        for w in range(WRITERS)
    ]
    for worker in workers:
        worker.start()
    try:
        ready.wait(READY_TIMEOUT_S)
        with ctx.timed():
            go.set()
            reports = [out.get(timeout=ctx.scale.timeout_s) for _ in workers]
            for worker in workers:
                worker.join()
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
    committed = sum(len(r[1]) for r in reports)
    failed = sum(r[3] for r in reports)
    ctx.per(committed)
    ctx.metrics.update(
        commits=committed,
        failed_appends=failed,
        commits_per_s=committed / ctx.elapsed if ctx.elapsed else None,
    )
    if failed:
        samples = "; ".join(e for r in reports for e in r[2])
        raise RuntimeError(f"{failed} of {WRITERS * appends} appends failed: {samples}")

    found = system.ids(uri).to_pylist()
    expected = set(range(rows))
    for writer, done, _errors, _failed in reports:
        for i in done:
            start = _first_id(writer, i, rows)
            expected.update(range(start, start + rows))
    lost = len(expected - set(found))
    ctx.metrics.update(lost_rows=lost, duplicate_rows=len(found) - len(set(found)))
    ctx.expect("lost rows", lost, 0)
    ctx.expect("duplicate rows", len(found) - len(set(found)), 0)


CASES: tuple[Case, ...] = (
    Case(
        "W8.concurrent_appends",
        f"{WRITERS} processes appending concurrently",
        _concurrent_appends,
        frozenset({"lakehouse", "deltalake"}),
        unit="per commit",
        details=("commits_per_s", "commits", "lost_rows"),
        warm_up=("write",),
    ),
)
