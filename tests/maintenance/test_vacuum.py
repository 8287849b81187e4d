"""VACUUM: exactly the unreferenced files older than the retention go, nothing else."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakehouse
from lakehouse import Table
from lakehouse.errors import InvalidArgumentError
from lakehouse.log.actions import Add, Remove, now_ms
from lakehouse.log.deletion_vectors import write_deletion_vector
from lakehouse.log.snapshot import Snapshot
from lakehouse.maintenance.vacuum import is_hidden_path
from lakehouse.txn.transaction import Transaction, removes_for_files
from tests.maintenance.helpers import (
    DAY_MS,
    age,
    commit_infos,
    commit_removes,
    data_files,
    log_files,
    oracle_rows,
    remove_at,
)


def _table(root: Path) -> Table:
    t = lakehouse.write(str(root), pa.table({"id": [1, 2, 3, 4], "part": ["a", "a", "b", "b"]}),
                        partition_by="part")
    t.append(pa.table({"id": [5, 6], "part": ["a", "b"]}))
    return t


def _touch(root: Path, rel: str, days: float) -> str:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")
    age(p, days)
    return rel


def test_hidden_path_rule() -> None:
    assert is_hidden_path("_delta_log/00000000000000000000.json")
    assert is_hidden_path(".hidden.parquet")
    assert is_hidden_path("part=a/_SUCCESS")
    assert is_hidden_path("part=a/.f.parquet.crc")
    assert is_hidden_path("_tmp/part=a/x.parquet")
    assert not is_hidden_path("part=a/x.parquet")
    assert not is_hidden_path("_change_data/cdc-1.parquet")
    assert not is_hidden_path("_delta_index/x")
    assert not is_hidden_path("_p=1/x.parquet", ["_p"])
    assert is_hidden_path("_p=1/x.parquet", ["p"])
    assert is_hidden_path("_p=1/_x.parquet", ["_p"])


def test_lite_then_full_delete_exactly_the_expired_unreferenced_files(tmp_path: Path) -> None:
    root = tmp_path / "t"
    t = _table(root)
    v0 = sorted(Snapshot.load(t.storage, version=0).files["canonical_path"].to_pylist())
    old, recent = v0  # part=a and part=b files of version 0
    remove_at(t.storage, [old], now_ms() - 10 * DAY_MS)
    remove_at(t.storage, [recent], now_ms() - 3_600_000)
    hidden = {_touch(root, r, 30) for r in ("_hidden/x.parquet", ".hidden.parquet",
                                            "part=a/_SUCCESS", "part=a/.x.parquet.crc")}
    old_orphans = {_touch(root, r, 30) for r in ("orphan.parquet", "part=a/orphan2.parquet")}
    young_orphan = _touch(root, "part=b/young.parquet", 1)
    _touch(root, "_delta_log/leftover.tmp", 30)
    active = set(t.refresh().files()["canonical_path"].to_pylist())
    logs_before = log_files(root)
    expected_rows = sorted(t.to_arrow().to_pylist(), key=lambda r: r["id"])

    # lite, default retention (7 days): only the tombstone removed 10 days ago
    res = t.vacuum()
    assert res.files == [old] and res.mode == "lite" and not res.dry_run
    assert not (root / old).exists()
    assert data_files(root) == (set(v0) - {old}) | active | hidden | old_orphans | {young_orphan}
    assert logs_before < log_files(root)  # two commits added, nothing removed
    start, end = commit_infos(root)[-2:]
    assert start["operation"] == "VACUUM START" and end["operation"] == "VACUUM END"
    assert start["operationParameters"]["defaultRetentionMillis"] == str(7 * DAY_MS)
    assert "specifiedRetentionMillis" not in start["operationParameters"]
    assert start["operationMetrics"] == {"numFilesToDelete": "1",
                                         "sizeOfDataToDelete": str(res.size_in_bytes)}
    assert end["operationParameters"] == {"status": "COMPLETED"}
    assert end["operationMetrics"]["numDeletedFiles"] == "1"
    assert t.version == res.version == Snapshot.load(t.storage).version

    # again: nothing left to do, nothing committed
    version = t.version
    assert t.vacuum().files == [] and t.refresh().version == version

    # full, default retention: old orphans too, never hidden, young or referenced files
    res = t.vacuum(full=True)
    assert set(res.files) == old_orphans
    assert data_files(root) == {recent, young_orphan} | active | hidden

    # full, zero retention (forced): the recently removed file and the young orphan
    with pytest.warns(UserWarning, match="shorter than the table"):
        dry = t.vacuum(retention_hours=0, enforce_retention=False, full=True, dry_run=True)
    assert set(dry.files) == {recent, young_orphan}
    assert (root / recent).exists() and t.refresh().version == t.version
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = t.vacuum(retention_hours=0, enforce_retention=False, full=True)
    assert set(res.files) == {recent, young_orphan}
    assert data_files(root) == active | hidden
    assert (root / "_delta_log" / "leftover.tmp").exists()
    assert oracle_rows(root) == expected_rows
    assert sorted(t.to_arrow().to_pylist(), key=lambda r: r["id"]) == expected_rows


def test_retention_is_enforced(tmp_path: Path) -> None:
    t = _table(tmp_path / "t")
    with pytest.raises(InvalidArgumentError, match="shorter than the table"):
        t.vacuum(retention_hours=1)
    with pytest.raises(InvalidArgumentError):
        t.vacuum(retention_hours=-1, enforce_retention=False)
    t.alter.set_properties({"delta.deletedFileRetentionDuration": "interval 1 hour"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert t.vacuum(retention_hours=1).files == []
    with pytest.raises(InvalidArgumentError, match="read-only"):
        Table.open(t.uri, version=0).vacuum()


def test_deletion_vector_files(tmp_path: Path) -> None:
    root = tmp_path / "dv"
    t = lakehouse.write(str(root), pa.table({"id": list(range(10))}),
                        properties={"delta.enableDeletionVectors": "true"})
    storage = t.storage
    old = now_ms() - 10 * DAY_MS

    def swap_dv(rows: list[int]) -> str:
        snap = Snapshot.load(storage)
        row = snap.files.to_pylist()[0]
        dv = write_deletion_vector(storage, np.array(rows, np.uint64))
        txn = Transaction(storage, snap, "DELETE", {})
        txn.read_files(snap.files["canonical_path"])
        txn.remove_files(removes_for_files(snap.files, deletion_timestamp=old))
        txn.add_files([Add(row["path"], {}, row["size"], row["modificationTime"], True,
                           stats=row["stats"], deletion_vector=dv.to_dict())])
        txn.commit()
        absolute = dv.absolute_path(storage.root)
        assert absolute is not None
        return absolute[len(storage.root) + 1:]

    dv1 = swap_dv([0, 1])
    dv2 = swap_dv([0, 1, 2])
    data = t.refresh().files()["canonical_path"].to_pylist()
    assert data_files(root) == {dv1, dv2, *data}
    res = t.vacuum()
    assert res.files == [dv1]  # the data file and the current DV are still referenced
    assert data_files(root) == {dv2, *data}
    assert [r["id"] for r in oracle_rows(root)] == list(range(3, 10))
    assert t.to_arrow()["id"].to_pylist() == list(range(3, 10))


def test_change_data_and_outside_root(tmp_path: Path) -> None:
    root = tmp_path / "cdf"
    t = lakehouse.write(str(root), pa.table({"id": [1, 2]}))
    for name, days in (("cdc-old.parquet", 10), ("cdc-new.parquet", 1)):
        p = root / "_change_data" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"id": [1]}), p)
        age(p, days)
    outside = tmp_path / "outside.parquet"
    pq.write_table(pa.table({"id": [9]}), outside)
    commit_removes(t.storage, [Remove(f"file://{outside}", now_ms() - 30 * DAY_MS)])
    assert t.refresh().vacuum().files == ["_change_data/cdc-old.parquet"]
    assert (root / "_change_data" / "cdc-new.parquet").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = t.vacuum(retention_hours=0, enforce_retention=False, full=True)
    assert res.files == ["_change_data/cdc-new.parquet"]
    assert outside.exists()
    assert oracle_rows(root) == [{"id": 1}, {"id": 2}]


def test_progress_bars_do_not_change_results(tmp_path: Path) -> None:
    from lakehouse.io.storage import Storage
    from lakehouse.maintenance.vacuum import _delete

    storage = Storage.for_uri(str(tmp_path / "many"))
    paths = [f"d/f{i:04d}.bin" for i in range(250)]
    for p in paths[:10]:
        storage.write_bytes(p, b"x")
    _delete(storage, paths, progress=True)
    assert storage.list_recursive("") == []
    t = _table(tmp_path / "p")
    assert t.optimize(progress=True).num_files_added == 2
