"""Real processes racing to append to one local table: no lost, duplicated or torn commits."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

from lakehouse.io.storage import Storage
from lakehouse.log.paths import LogKind
from lakehouse.log.segment import list_log
from lakehouse.log.snapshot import Snapshot
from tests.txn.helpers import appender_process, create_table

WORKERS = 4
PER_WORKER = 25


def test_four_processes_append_concurrently(tmp_path: Path) -> None:
    uri = str(tmp_path / "race")
    storage = Storage.for_uri(uri)
    create_table(storage)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(WORKERS) as pool:
        results = [pool.apply_async(appender_process, (uri, w, PER_WORKER, 200))
                   for w in range(WORKERS)]
        versions = [r.get(timeout=300) for r in results]

    total = WORKERS * PER_WORKER
    committed = sorted(v for vs in versions for v in vs)
    assert committed == list(range(1, total + 1)), "each commit got its own version"
    commits = sorted(f.version for f in list_log(storage) if f.kind is LogKind.COMMIT)
    assert commits == list(range(total + 1)), "versions 0..100 with no gaps"

    snap = Snapshot.load(storage)
    assert snap.version == total
    paths = snap.files["path"].to_pylist()
    assert len(paths) == len(set(paths)) == total
    assert set(paths) == {f"w{w}-{i:03d}.parquet" for w in range(WORKERS) for i in range(PER_WORKER)}
    # Every commit holds exactly one add and a commitInfo with a distinct txnId.
    txn_ids = set()
    for v in range(1, total + 1):
        lines = [json.loads(x) for x in storage.read_bytes(f"_delta_log/{v:020d}.json").splitlines()]
        assert [next(iter(x)) for x in lines] == ["commitInfo", "add"]
        txn_ids.add(lines[0]["commitInfo"]["txnId"])
    assert len(txn_ids) == total
    # Checkpoints were written along the way by whichever process committed v % 10 == 0.
    assert os.path.exists(tmp_path / "race" / "_delta_log" / f"{total:020d}.checkpoint.parquet")
    assert snap.segment.checkpoint_version == total
    # No temp files left behind by put-if-absent.
    assert not [n for n in os.listdir(tmp_path / "race" / "_delta_log") if n.endswith(".tmp")]
