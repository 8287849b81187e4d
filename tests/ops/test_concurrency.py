"""Concurrent writers in real processes (multiprocessing, spawn) on one local table.

* many blind appends: no lost or duplicated rows, contiguous versions;
* racing operations (both commits attempted at the same moment through a barrier) end the way
  Delta's conflict rules say: overwrite vs overwrite -> one ConcurrentAppendError; blind append vs
  anything -> both succeed; replaceWhere on disjoint partitions -> both succeed, on the same
  partition -> ConcurrentAppendError; same app id and version -> ConcurrentTransactionError;
* duplicated streaming jobs with app transactions apply each micro-batch exactly once.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import lakehouse
from lakehouse import Table
from lakehouse.log.paths import LOG_DIR
from tests.ops import _workers
from tests.ops._util import rows

WORKERS = 4
APPENDS_PER_WORKER = 10
TIMEOUT_S = 240

# One xdist worker runs this module, so one process pool serves every test.
pytestmark = pytest.mark.xdist_group("concurrency")


@pytest.fixture(scope="session")
def pool() -> Iterator[Any]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(WORKERS) as p:
        yield p


@pytest.fixture(scope="session")
def manager() -> Iterator[Any]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as m:
        yield m


def _race(pool: Any, manager: Any, uri: str,
          writes: list[tuple[pa.Table, dict[str, Any]]]) -> list[tuple[Any, ...]]:
    barrier = manager.Barrier(len(writes))
    jobs = [pool.apply_async(_workers.write_at_barrier, (uri, barrier, data, kwargs))
            for data, kwargs in writes]
    return [j.get(timeout=TIMEOUT_S) for j in jobs]


def _orphans(uri: str) -> set[str]:
    """Data files on disk that no commit ever added (a failed writer must clean up)."""
    referenced: set[str] = set()
    for commit in sorted((Path(uri) / LOG_DIR).glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                referenced.add(action["add"]["path"])
    from urllib.parse import unquote

    on_disk = {p.relative_to(uri).as_posix() for p in Path(uri).rglob("*.parquet")
               if LOG_DIR not in p.parts}
    return on_disk - {unquote(p) for p in referenced}


def _table(tag: str, n: int = 3, day: str = "d1") -> pa.Table:
    return pa.table({"day": [day] * n, "tag": [tag] * n, "i": pa.array(range(n), pa.int64())})


# ------------------------------------------------------------------------------- many appenders
def test_processes_append_without_loss_or_duplication(tmp_path: Path, pool: Any) -> None:
    uri = str(tmp_path / "t")
    lakehouse.write(uri, pa.table({"worker": pa.array([-1], pa.int32()),
                                   "seq": pa.array([0], pa.int32()),
                                   "k": pa.array([0], pa.int32())}))
    jobs = [pool.apply_async(_workers.append_many, (uri, w, APPENDS_PER_WORKER))
            for w in range(WORKERS)]
    versions = sorted(v for j in jobs for v in j.get(timeout=TIMEOUT_S))
    total = WORKERS * APPENDS_PER_WORKER
    assert versions == list(range(1, total + 1)), "each append got its own version"
    commits = sorted(int(p.name[:20]) for p in (Path(uri) / LOG_DIR).glob("*.json"))
    assert commits == list(range(total + 1)), "versions are contiguous"

    got = Table.open(uri).to_arrow().filter(pc.field("worker") >= 0)
    keys = list(zip(got["worker"].to_pylist(), got["seq"].to_pylist(), got["k"].to_pylist(),
                    strict=True))
    expected = {(w, s, k) for w in range(WORKERS) for s in range(APPENDS_PER_WORKER)
                for k in range(_workers.ROWS_PER_APPEND)}
    assert len(keys) == len(set(keys)), "no duplicated rows"
    assert set(keys) == expected, "no lost rows"
    assert not _orphans(uri)


# ------------------------------------------------------------------------------ racing pairs
def test_overwrite_vs_overwrite_one_fails_with_concurrent_append(tmp_path: Path, pool: Any,
                                                                 manager: Any) -> None:
    uri = str(tmp_path / "t")
    lakehouse.write(uri, _table("seed"))
    a, b = _table("A"), _table("B")
    results = _race(pool, manager, uri, [(a, {"mode": "overwrite"}), (b, {"mode": "overwrite"})])
    outcomes = sorted(r[0] for r in results)
    assert outcomes == ["error", "ok"], results
    err = next(r for r in results if r[0] == "error")
    assert err[1] == "ConcurrentAppendError", err
    winner = a if results[0][0] == "ok" else b
    t = Table.open(uri)
    assert t.version == 1
    assert rows(t.to_arrow()) == rows(winner)
    assert not _orphans(uri), "the losing writer deleted its data files"


def test_blind_append_vs_overwrite_both_succeed(tmp_path: Path, pool: Any, manager: Any) -> None:
    """WriteSerializable: an overwrite lets a concurrent blind append through (and the append
    never conflicts), whichever commits first; the appended rows survive the overwrite."""
    uri = str(tmp_path / "t")
    lakehouse.write(uri, _table("seed"))
    app, ovw = _table("append"), _table("overwrite")
    results = _race(pool, manager, uri, [(app, {"mode": "append"}), (ovw, {"mode": "overwrite"})])
    assert [r[0] for r in results] == ["ok", "ok"], results
    assert sorted(r[1] for r in results) == [1, 2]
    t = Table.open(uri)
    assert rows(t.to_arrow()) == rows(pa.concat_tables([app, ovw]))


def test_replace_where_disjoint_partitions_both_succeed(tmp_path: Path, pool: Any,
                                                        manager: Any) -> None:
    uri = str(tmp_path / "t")
    lakehouse.write(uri, pa.concat_tables([_table("seed", day="d1"), _table("seed", day="d2")]),
                    partition_by="day")
    d1, d2 = _table("new1", day="d1"), _table("new2", day="d2")
    results = _race(pool, manager, uri, [
        (d1, {"mode": "overwrite", "where": "day = 'd1'"}),
        (d2, {"mode": "overwrite", "where": "day = 'd2'"}),
    ])
    assert [r[0] for r in results] == ["ok", "ok"], results
    assert rows(Table.open(uri).to_arrow()) == rows(pa.concat_tables([d1, d2]))


@pytest.mark.parametrize("day", ["d1", "d3"], ids=["existing-partition", "new-partition"])
def test_replace_where_same_partition_conflicts(tmp_path: Path, pool: Any, manager: Any,
                                                day: str) -> None:
    """Each writer's new files match what the other replaced: Delta raises
    ConcurrentAppendError, also when the partition held no files before (nothing was read or
    removed, only the predicate says the two writes overlap)."""
    uri = str(tmp_path / "t")
    seed = _table("seed", day="d1")
    lakehouse.write(uri, pa.concat_tables([seed, _table("keep", day="d2")]), partition_by="day")
    a, b = _table("A", day=day), _table("B", day=day)
    results = _race(pool, manager, uri, [
        (a, {"mode": "overwrite", "where": f"day = '{day}'"}),
        (b, {"mode": "overwrite", "where": f"day = '{day}'"}),
    ])
    assert sorted(r[0] for r in results) == ["error", "ok"], results
    err = next(r for r in results if r[0] == "error")
    assert err[1] == "ConcurrentAppendError", err
    winner = a if results[0][0] == "ok" else b
    kept = [_table("keep", day="d2")] + ([seed] if day != "d1" else [])
    assert rows(Table.open(uri).to_arrow()) == rows(pa.concat_tables([*kept, winner]))
    assert not _orphans(uri)


def test_same_app_transaction_conflicts_then_retry_is_skipped(tmp_path: Path, pool: Any,
                                                              manager: Any) -> None:
    uri = str(tmp_path / "t")
    lakehouse.write(uri, _table("seed"))
    batch = _table("batch-7")
    kwargs = {"mode": "append", "app_id": "job", "app_version": 7}
    results = _race(pool, manager, uri, [(batch, kwargs), (batch, kwargs)])
    assert sorted(r[0] for r in results) == ["error", "ok"], results
    err = next(r for r in results if r[0] == "error")
    assert err[1] == "ConcurrentTransactionError" and "job" in err[2], err
    # the loser retries: the batch is already applied, nothing is written
    t = lakehouse.write(uri, batch, **kwargs)  # type: ignore[arg-type]
    assert t.version == 1 and t.snapshot.app_version("job") == 7
    assert rows(t.to_arrow()) == rows(pa.concat_tables([_table("seed"), batch]))
    assert not _orphans(uri)


def test_duplicated_streaming_jobs_apply_each_batch_once(tmp_path: Path, pool: Any) -> None:
    uri = str(tmp_path / "t")
    lakehouse.write(uri, pa.table({"batch": pa.array([0], pa.int32()),
                                   "k": pa.array([0], pa.int32())}))
    batches = 6
    jobs = [pool.apply_async(_workers.exactly_once_stream, (uri, "stream", batches))
            for _ in range(3)]
    for j in jobs:
        j.get(timeout=TIMEOUT_S)
    t = Table.open(uri)
    assert t.snapshot.app_version("stream") == batches
    assert t.version == batches  # one commit per micro-batch, whoever wrote it
    got = t.to_arrow().filter(pc.field("batch") > 0)
    keys = sorted(zip(got["batch"].to_pylist(), got["k"].to_pylist(), strict=True))
    assert keys == [(b, k) for b in range(1, batches + 1) for k in range(3)]
