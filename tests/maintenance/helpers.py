"""Helpers for maintenance tests: deltalake as the read oracle, file listings, old mtimes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from lakehouse.io.storage import Storage
from lakehouse.log.actions import Remove
from lakehouse.log.snapshot import Snapshot
from lakehouse.txn.transaction import Transaction, removes_for_files

DAY_MS = 86_400_000


def oracle_rows(path: Path | str, order: str = "id") -> list[dict[str, Any]]:
    """Rows deltalake (delta-rs, test-only oracle) reads at the latest version, sorted."""
    from deltalake import DeltaTable, QueryBuilder

    qb = QueryBuilder().register("t", DeltaTable(str(path)))
    return pa.table(qb.execute(f"select * from t order by {order}").read_all()).to_pylist()


def data_files(root: Path) -> set[str]:
    """Every file under ``root`` outside ``_delta_log``, root-relative with '/'."""
    out = set()
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            rel = os.path.relpath(os.path.join(dirpath, n), root).replace(os.sep, "/")
            if not rel.startswith("_delta_log/"):
                out.add(rel)
    return out


def log_files(root: Path) -> set[str]:
    return set(os.listdir(root / "_delta_log"))


def age(path: Path, days: float) -> None:
    """Set the modification time of ``path`` ``days`` days into the past."""
    t = time.time() - days * 86400
    os.utime(path, (t, t))


def remove_at(storage: Storage, paths: list[str], deletion_timestamp: int) -> int:
    """Commit a DELETE removing the active files at ``paths`` with a chosen deletion time."""
    snap = Snapshot.load(storage)
    files = snap.files.filter(pa.compute.is_in(snap.files["canonical_path"],
                                               value_set=pa.array(paths)))
    assert files.num_rows == len(paths)
    txn = Transaction(storage, snap, "DELETE", {"predicate": json.dumps([])})
    txn.read_files(files["canonical_path"])
    txn.remove_files(removes_for_files(files, deletion_timestamp=deletion_timestamp))
    return txn.commit().version


def commit_removes(storage: Storage, removes: list[Remove]) -> int:
    snap = Snapshot.load(storage)
    txn = Transaction(storage, snap, "DELETE", {})
    txn.remove_files(removes)
    return txn.commit().version


def commit_infos(root: Path) -> list[dict[str, Any]]:
    """commitInfo of every commit, oldest first."""
    out = []
    for name in sorted(log_files(root)):
        if name.endswith(".json") and not name.startswith("_"):
            for line in (root / "_delta_log" / name).read_text().splitlines():
                obj = json.loads(line)
                if "commitInfo" in obj:
                    out.append(obj["commitInfo"])
    return out
