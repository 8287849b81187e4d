"""OPTIMIZE: fewer files, same rows, dataChange=false, Z-order sorts, safe with concurrency."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakehouse
from lakehouse import Table
from lakehouse.engine import get_engine
from lakehouse.errors import CommitConflictError, InvalidArgumentError
from lakehouse.maintenance.optimize import optimize
from lakehouse.maintenance.zorder import zorder_keys
from tests.maintenance.helpers import commit_infos, data_files, oracle_rows


def _rows(t: Table) -> list[dict]:
    return sorted(t.to_arrow().to_pylist(), key=lambda r: r["id"])


def _many_files(root: Path, batches: int = 4) -> Table:
    t = lakehouse.write(str(root), pa.table({"id": [0, 1, 2], "part": ["a", "b", "c"]}),
                        partition_by="part")
    for i in range(1, batches):
        t.append(pa.table({"id": [3 * i, 3 * i + 1, 3 * i + 2], "part": ["a", "b", "a"]}))
    return t


def _last_commit(root: Path, version: int) -> list[dict]:
    text = (root / "_delta_log" / f"{version:020d}.json").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_bin_packing_preserves_rows_and_reduces_files(tmp_path: Path) -> None:
    root = tmp_path / "t"
    t = _many_files(root)
    before = _rows(t)
    files_before = t.files()
    per_part = {p: [dict(pv)["part"] for pv in files_before["partitionValues"].to_pylist()
                    ].count(p) for p in "abc"}
    assert per_part == {"a": 4, "b": 4, "c": 1}
    m = t.optimize()
    assert m.version == t.version == 4
    assert (m.num_files_removed, m.num_files_added, m.partitions_optimized) == (8, 2, 2)
    assert m.total_considered_files == 9 and m.total_files_skipped == 1  # part=c has one file
    parts = [dict(pv)["part"] for pv in files_before["partitionValues"].to_pylist()]
    sizes = files_before["size"].to_pylist()
    assert m.files_removed.total_size == sum(s for s, p in zip(sizes, parts, strict=True)
                                             if p != "c")
    assert t.files().num_rows == 3
    assert _rows(t) == before
    assert oracle_rows(root) == before
    actions = _last_commit(root, m.version)
    info = actions[0]["commitInfo"]
    assert info["operation"] == "OPTIMIZE"
    assert info["operationMetrics"]["numRemovedFiles"] == "8"
    assert info["operationMetrics"]["numAddedFiles"] == "2"
    assert json.loads(info["operationParameters"]["zOrderBy"]) == []
    adds = [a["add"] for a in actions if "add" in a]
    removes = [a["remove"] for a in actions if "remove" in a]
    assert len(adds) == 2 and len(removes) == 8
    assert all(a["dataChange"] is False for a in adds + removes)
    assert all(json.loads(a["stats"])["numRecords"] > 0 for a in adds)
    # nothing left to compact: no commit
    again = t.optimize()
    assert again.version is None and t.version == 4


def test_where_selects_partitions(tmp_path: Path) -> None:
    t = _many_files(tmp_path / "t")
    m = t.optimize(where="part = 'b'")
    assert (m.num_files_removed, m.num_files_added) == (4, 1)
    parts = [dict(pv)["part"] for pv in t.files()["partitionValues"].to_pylist()]
    assert sorted(parts) == ["a"] * 4 + ["b", "c"]
    with pytest.raises(InvalidArgumentError, match="non-partition"):
        t.optimize(where="id > 3")
    with pytest.raises(InvalidArgumentError, match="partition column"):
        t.optimize(z_order=["part"])
    with pytest.raises(InvalidArgumentError, match="not in the table"):
        t.optimize(z_order="nope")


def test_zorder_keys_follow_the_morton_curve() -> None:
    xs, ys = np.meshgrid(np.arange(4), np.arange(4))
    x, y = xs.ravel()[::-1].copy(), ys.ravel()[::-1].copy()  # scrambled input order
    keys = zorder_keys(pa.table({"x": x, "y": y}), ["x", "y"])
    # equal cardinalities: ranks scale alike, so the order is the plain Morton order
    morton = ((x >> 1) & 1) << 3 | ((y >> 1) & 1) << 2 | (x & 1) << 1 | (y & 1)
    assert np.argsort(keys, kind="stable").tolist() == np.argsort(morton, kind="stable").tolist()
    assert len(set(keys.tolist())) == 16
    with_nulls = zorder_keys(pa.table({"s": ["b", None, "a", "b"]}), ["s"]).tolist()
    assert with_nulls[2] < with_nulls[0] == with_nulls[3] < with_nulls[1]


def test_zorder_sorts_and_splits_by_target_size(tmp_path: Path) -> None:
    root = tmp_path / "z"
    rng = np.random.default_rng(7)
    n = 4000
    t = lakehouse.write(str(root), pa.table({"id": np.arange(n), "x": rng.integers(0, 1000, n),
                                             "y": rng.random(n)}))
    for i in range(3):
        t.append(pa.table({"id": np.arange(n * (i + 1), n * (i + 2)),
                           "x": rng.integers(0, 1000, n), "y": rng.random(n)}))
    before = _rows(t)
    m = t.optimize(z_order=["x", "y"], target_size=40_000)
    assert m.num_files_removed == 4 and m.num_files_added > 1
    assert m.z_order_by == ("x", "y")
    assert _rows(t) == before
    adds = [a["add"] for a in _last_commit(root, m.version) if "add" in a]
    parts = [pq.read_table(root / a["path"]) for a in adds]
    data = pa.concat_tables(parts)
    keys = zorder_keys(data, ["x", "y"])
    assert np.all(np.diff(keys.astype(np.float64)) >= 0)  # files in add order are sorted by key
    # z-ordered files have much narrower x ranges than the random input files had
    spans = [pa.compute.max(p["x"]).as_py() - pa.compute.min(p["x"]).as_py() for p in parts]
    assert np.mean(spans) < 900
    assert len(oracle_rows(root)) == 4 * n


def test_concurrent_append_rebases_but_concurrent_delete_conflicts(tmp_path: Path) -> None:
    root = tmp_path / "c"
    t = _many_files(root)
    stale = t.snapshot
    Table.open(str(root)).append(pa.table({"id": [100], "part": ["a"]}))
    m = optimize(stale, get_engine(None))
    assert m.version == 5
    assert 100 in Table.open(str(root)).to_arrow()["id"].to_pylist()

    root2 = tmp_path / "d"
    t2 = _many_files(root2)
    stale = t2.snapshot
    Table.open(str(root2)).overwrite(pa.table({"id": [7], "part": ["a"]}), where="part = 'a'")
    files_before = data_files(root2)
    with pytest.raises(CommitConflictError):
        optimize(stale, get_engine(None))
    assert data_files(root2) == files_before  # the optimize's own output was cleaned up
    assert commit_infos(root2)[-1]["operation"] == "WRITE"
