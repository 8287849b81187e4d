"""W6 small commits and log reading (open latest, time travel, history) and W7 vacuum.

The log fixture is built by each system with its own appends, so it carries that system's own
checkpoint policy; W6.commit times a fresh run of small appends, one commit each.
"""

from __future__ import annotations

from benchmarks.data import small_batch
from benchmarks.systems import System
from benchmarks.workloads.base import Case, Context

TABLE = frozenset({"lakehouse", "deltalake"})


def _commits(system: System, ctx: Context) -> None:
    rows = ctx.scale.append_rows
    count = ctx.scale.timed_commits
    batches = [small_batch(i * rows, rows) for i in range(count + 1)]
    uri = ctx.scratch_path("table")
    system.write(uri, batches[0])
    with ctx.timed():
        for batch in batches[1:]:
            system.write(uri, batch, mode="append")
    ctx.per(count)
    ctx.expect("rows", len(system.ids(uri)), (count + 1) * rows)


def _open_latest(system: System, ctx: Context) -> None:
    uri = ctx.fixture("log")
    with ctx.timed():
        info = system.open(uri)
    if info.get("version") is not None:
        ctx.expect("version", info["version"], ctx.scale.log_commits - 1)


def _time_travel(system: System, ctx: Context) -> None:
    uri = ctx.fixture("log")
    version = ctx.scale.time_travel_version
    with ctx.timed():
        info = system.open(uri, version=version)
    if info.get("version") is not None:
        ctx.expect("version", info["version"], version)


def _history(system: System, ctx: Context) -> None:
    uri = ctx.fixture("log")
    with ctx.timed():
        entries = system.history(uri)
    ctx.expect("history entries", entries, ctx.scale.log_commits)


def _vacuum(system: System, ctx: Context) -> None:
    uri = ctx.fixture_copy("overwritten")
    with ctx.timed():
        ctx.metrics.update(system.vacuum(uri))
    ctx.expect("rows after vacuum", len(system.ids(uri)), ctx.scale.rows)


CASES: tuple[Case, ...] = (
    Case(
        "W6.commit",
        "Small append commits, one after another",
        _commits,
        TABLE,
        unit="per commit",
        warm_up=("write",),
    ),
    Case(
        "W6.open_latest",
        "Open the latest version of the commit log",
        _open_latest,
        TABLE,
        ("log",),
        warm_up=("open",),
    ),
    Case(
        "W6.time_travel",
        "Open the log's middle version",
        _time_travel,
        TABLE,
        ("log",),
        warm_up=("write", "time_travel"),
    ),
    Case(
        "W6.history",
        "Open and list the full history",
        _history,
        TABLE,
        ("log",),
        warm_up=("history",),
    ),
    Case(
        "W7.vacuum",
        "Vacuum (retention 0) after a full overwrite",
        _vacuum,
        TABLE,
        ("overwritten",),
        details=("files_deleted",),
        warm_up=("overwrite", "vacuum"),
    ),
)
