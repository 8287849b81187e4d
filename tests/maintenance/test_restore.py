"""RESTORE, DESCRIBE, checkpoint and log cleanup through the Table API."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pyarrow as pa
import pytest

import lakehouse
from lakehouse import Table
from lakehouse.errors import InvalidArgumentError, VersionNotFoundError
from lakehouse.log.snapshot import Snapshot
from tests.maintenance.helpers import age, commit_infos, log_files, oracle_rows


def _rows(t: Table) -> list[dict]:
    return sorted(t.to_arrow().to_pylist(), key=lambda r: r["id"])


def _history_table(root: Path) -> Table:
    t = lakehouse.write(str(root), pa.table({"id": [1, 2, 3], "part": ["a", "b", "a"]}),
                        partition_by="part")                                  # v0
    t.append(pa.table({"id": [4], "part": ["b"]}))                            # v1
    t.overwrite(pa.table({"id": [10], "part": ["a"]}), where="part = 'a'")    # v2
    t.append(pa.table({"id": [5, 6], "part": ["c", "c"]}))                    # v3
    return t


def test_restore_reproduces_old_version(tmp_path: Path) -> None:
    root = tmp_path / "r"
    t = _history_table(root)
    v1 = _rows(Table.open(str(root), version=1))
    v1_files = set(Snapshot.load(t.storage, version=1).files["canonical_path"].to_pylist())
    m = t.restore(version=1)
    assert m.version == t.version == 4 and m.restored_version == 1
    assert _rows(t) == v1 == oracle_rows(root)
    assert set(t.files()["canonical_path"].to_pylist()) == v1_files
    assert (m.num_restored_files, m.num_removed_files) == (1, 2)  # part=a v0 back; v2, v3 out
    assert m.num_of_files_after_restore == len(v1_files)
    assert m.table_size_after_restore == sum(t.files()["size"].to_pylist())
    info = commit_infos(root)[-1]
    assert info["operation"] == "RESTORE"
    assert info["operationParameters"] == {"version": "1"}
    assert info["operationMetrics"]["numRestoredFiles"] == "1"
    assert info["operationMetrics"]["numRemovedFiles"] == "2"
    # restoring the current contents again commits nothing
    assert t.restore(version=4).version is None and t.version == 4
    # by timestamp: the latest version committed at or before it
    ts = t.history()[-1]["timestamp"]  # version 0
    m0 = t.restore(timestamp=ts)
    assert m0.restored_version == 0
    assert _rows(t) == _rows(Table.open(str(root), version=0)) == oracle_rows(root)
    with pytest.raises(InvalidArgumentError):
        t.restore()
    with pytest.raises(VersionNotFoundError):
        t.restore(version=99)


def test_restore_brings_back_the_old_schema(tmp_path: Path) -> None:
    root = tmp_path / "s"
    t = lakehouse.write(str(root), pa.table({"id": [1]}))
    t.append(pa.table({"id": [2], "extra": ["x"]}), schema_mode="merge")
    assert t.schema.names == ["id", "extra"]
    t.restore(version=0)
    assert t.schema.names == ["id"]
    assert oracle_rows(root) == [{"id": 1}]


def test_restore_refuses_when_files_were_vacuumed(tmp_path: Path) -> None:
    root = tmp_path / "v"
    t = _history_table(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gone = t.vacuum(retention_hours=0, enforce_retention=False).files
    assert gone
    version = t.version
    with pytest.raises(VersionNotFoundError, match="no longer exist"):
        t.restore(version=0)
    assert Snapshot.load(t.storage).version == version  # nothing committed


def test_describe(tmp_path: Path) -> None:
    root = tmp_path / "d"
    t = _history_table(root)
    t.alter.set_properties({"delta.logRetentionDuration": "interval 60 days"})
    d = t.describe()
    assert d["location"] == t.uri and d["version"] == t.version == 4
    assert d["partitionColumns"] == ["part"]
    assert d["schema"] == [{"name": "id", "type": "bigint", "nullable": True},
                           {"name": "part", "type": "string", "nullable": True}]
    assert d["properties"] == {"delta.logRetentionDuration": "interval 60 days"}
    sizes = sorted(t.files()["size"].to_pylist())
    assert d["numFiles"] == len(sizes) and d["sizeInBytes"] == sum(sizes)
    assert (d["fileSize"]["min"], d["fileSize"]["max"]) == (sizes[0], sizes[-1])
    assert d["numRows"] == t.to_arrow().num_rows == 5
    assert d["protocol"]["minReaderVersion"] >= 1 and d["lastOperation"] == "SET TBLPROPERTIES"
    json.dumps(d)  # JSON-able as is
    old = Table.open(str(root), version=0).describe()
    assert old["version"] == 0 and old["numRows"] == 3 and old["properties"] == {}


def test_checkpoint_and_cleanup_log(tmp_path: Path) -> None:
    root = tmp_path / "c"
    t = _history_table(root)                     # versions 0..3
    info = t.checkpoint()
    assert info.version == 3 and (root / info.path).exists()
    assert Snapshot.load(t.storage).segment.checkpoint_version == 3
    assert t.cleanup_log() == []                 # nothing older than 30 days yet
    for v in range(4):
        age(root / "_delta_log" / f"{v:020d}.json", 40)
    t.append(pa.table({"id": [7], "part": ["c"]}))  # version 4, fresh
    deleted = t.cleanup_log()
    assert sorted(os.path.basename(p) for p in deleted) == [f"{v:020d}.json" for v in range(3)]
    assert f"{3:020d}.json" in log_files(root)
    assert _rows(t) == oracle_rows(root)
    with pytest.raises(VersionNotFoundError):
        Table.open(str(root), version=1)
