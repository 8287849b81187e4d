"""A MERGE reads only the target files that can hold the source keys, and records that read so
concurrent writers into the same key range conflict while others do not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import lakehouse
import lakehouse.merge.executor as executor
from lakehouse.errors import ConcurrentAppendError, ConcurrentDeleteReadError
from lakehouse.table import Table

FILES, PER_FILE = 40, 1000


@pytest.fixture(scope="module")
def many_files(tmp_path_factory: pytest.TempPathFactory) -> str:
    """40 files, file i holding ids [i*1000, (i+1)*1000) in shuffled order."""
    uri = str(tmp_path_factory.mktemp("prune") / "t")
    rng = np.random.default_rng(7)
    for i in range(FILES):
        ids = rng.permutation(np.arange(i * PER_FILE, (i + 1) * PER_FILE))
        data = pa.table({"id": ids, "v": np.zeros(PER_FILE, dtype=np.int64),
                         "p": ["even" if i % 2 == 0 else "odd"] * PER_FILE})
        lakehouse.write(uri, data, mode="append" if i else "error")
    return uri


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    read: list[str] = []
    real = executor.read_batch

    def spy(snap: Any, files: pa.Table, columns: Any) -> Any:
        read.extend(files["path"].to_pylist())
        return real(snap, files, columns)

    monkeypatch.setattr(executor, "read_batch", spy)
    return read


def _copy(src: str, dst: Path) -> str:
    import shutil

    shutil.copytree(src, dst)
    return str(dst)


def test_upsert_of_1k_rows_reads_only_overlapping_files(many_files: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    uri = _copy(many_files, tmp_path / "t")
    read = _spy(monkeypatch)
    rng = np.random.default_rng(1)
    ids = np.concatenate([rng.choice(np.arange(12_000, 15_000), 990, replace=False),
                          np.arange(100_000, 100_010)])          # 10 new keys
    src = pa.table({"id": ids, "v": np.ones(1000, dtype=np.int64),
                    "p": ["even"] * 1000})
    t = Table.open(uri)
    m = t.merge(src, "target.id = source.id").when_matched_update(set={"v": "source.v"}) \
        .when_not_matched_insert_all().execute()
    assert (m.num_target_files_scanned, m.num_target_files_skipped) == (3, FILES - 3)
    assert (m.num_target_rows_updated, m.num_target_rows_inserted) == (990, 10)
    assert m.num_target_files_removed <= 3
    assert len(set(read)) == 3
    files = Table.open(uri, version=FILES - 1).files()
    stats = {p: s for p, s in zip(files["path"].to_pylist(), files["stats"].to_pylist(),
                                  strict=True)}
    for p in set(read):
        assert '"minValues":{"id":1' in stats[p]        # ids 12000..14999
    assert t.to_arrow(filter="v = 1").num_rows == 1000


def test_sparse_keys_prune_by_exact_key_set(many_files: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    uri = _copy(many_files, tmp_path / "t")
    read = _spy(monkeypatch)
    src = pa.table({"id": [5, 20_005, 39_005], "v": [1, 1, 1], "p": ["x"] * 3})
    m = Table.open(uri).merge(src, "id").when_matched_delete().execute()
    assert (m.num_target_files_scanned, m.num_target_files_skipped) == (3, FILES - 3)
    assert m.num_target_rows_deleted == 3 and len(set(read)) == 3


def test_insert_only_merge_reads_keys_only_and_rewrites_nothing(
        many_files: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = _copy(many_files, tmp_path / "t")
    columns: list[list[str]] = []
    real = executor.read_batch
    monkeypatch.setattr(executor, "read_batch",
                        lambda s, f, c: columns.append(list(c)) or real(s, f, c))
    src = pa.table({"id": [1, 2, 50_000], "v": [9, 9, 9], "p": ["e", "e", "e"]})
    m = Table.open(uri).merge(src, "id").when_not_matched_insert_all().execute()
    assert m.num_target_rows_inserted == 1 and m.num_target_files_scanned == 1
    assert columns == [["id"]]
    assert (m.num_target_files_removed, m.num_target_files_added) == (0, 1)


def test_target_only_conjuncts_prune_too(many_files: str, tmp_path: Path) -> None:
    uri = _copy(many_files, tmp_path / "t")
    src = pa.table({"id": [1_500, 2_500], "v": [1, 1]})
    m = Table.open(uri).merge(src, "target.id = source.id AND target.v < 0") \
        .when_matched_delete().when_not_matched_insert(values={"id": "source.id"}).execute()
    assert m.num_target_files_scanned == 0 and m.num_target_rows_inserted == 2
    m = Table.open(uri).merge(src, "target.id = source.id AND target.p = 'odd'") \
        .when_matched_delete().execute()
    assert m.num_target_files_scanned == 1 and m.num_target_rows_deleted == 1


def test_not_matched_by_source_scans_everything(many_files: str, tmp_path: Path) -> None:
    uri = _copy(many_files, tmp_path / "t")
    m = Table.open(uri).merge(pa.table({"id": [1], "v": [1]}), "id") \
        .when_not_matched_by_source_delete("target.id >= 39990").execute()
    assert m.num_target_files_scanned == FILES and m.num_target_files_skipped == 0
    assert m.num_target_rows_deleted == 10 and m.num_target_files_removed == 1


def test_partition_key_pruning(tmp_path: Path) -> None:
    uri = str(tmp_path / "p")
    lakehouse.write(uri, pa.table({"d": ["a", "b", "c", "d"], "id": [1, 2, 3, 4]}),
                    partition_by=["d"])
    m = Table.open(uri).merge(pa.table({"d": ["b", "z"], "id": [20, 30]}), "d") \
        .when_matched_update_all().when_not_matched_insert_all().execute()
    assert (m.num_target_files_scanned, m.num_target_files_skipped) == (1, 3)
    assert sorted(Table.open(uri).to_arrow()["id"].to_pylist()) == [1, 3, 4, 20, 30]


# ------------------------------------------------------------------------- concurrency
def _concurrently(monkeypatch: pytest.MonkeyPatch, action: Any) -> None:
    """Run ``action`` after the merge planned and wrote its files, before it commits."""
    from lakehouse.merge.writer import ChangeWriter

    real = ChangeWriter.finish
    done: list[bool] = []

    def finish(self: ChangeWriter) -> Any:
        if not done:
            done.append(True)
            action()
        return real(self)

    monkeypatch.setattr(ChangeWriter, "finish", finish)


def _small(uri: str, level: str = "WriteSerializable") -> None:
    t = lakehouse.write(uri, pa.table({"id": [1, 2, 3], "v": [0, 0, 0]}),
                        properties={"delta.isolationLevel": level})
    t.append(pa.table({"id": [100, 101], "v": [0, 0]}))


def _other_merge(uri: str, ids: list[int]) -> None:
    Table.open(uri).merge(pa.table({"id": ids, "v": [7] * len(ids)}), "id") \
        .when_not_matched_insert_all().execute()


def test_concurrent_insert_of_a_key_we_read_conflicts(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    uri = str(tmp_path / "t")
    _small(uri)
    _concurrently(monkeypatch, lambda: _other_merge(uri, [4]))
    with pytest.raises(ConcurrentAppendError):
        Table.open(uri).merge(pa.table({"id": [2, 4], "v": [1, 1]}), "id") \
            .when_matched_update_all().when_not_matched_insert_all().execute()
    assert sorted(Table.open(uri).to_arrow()["id"].to_pylist()) == [1, 2, 3, 4, 100, 101]


def test_concurrent_insert_elsewhere_is_rebased(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    uri = str(tmp_path / "t")
    _small(uri)
    _concurrently(monkeypatch, lambda: _other_merge(uri, [500]))
    t = Table.open(uri)
    m = t.merge(pa.table({"id": [2, 4], "v": [1, 1]}), "id") \
        .when_matched_update_all().when_not_matched_insert_all().execute()
    assert m.version == 3 and t.version == 3
    assert sorted(t.to_arrow()["id"].to_pylist()) == [1, 2, 3, 4, 100, 101, 500]


def test_concurrent_delete_of_a_file_we_read_conflicts(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    uri = str(tmp_path / "t")
    _small(uri)
    _concurrently(monkeypatch, lambda: Table.open(uri).delete("id >= 100"))  # whole file
    with pytest.raises(ConcurrentDeleteReadError):
        Table.open(uri).update({"v": "5"}, where="id = 101")


@pytest.mark.parametrize("level", ["Serializable", "WriteSerializable"])
def test_blind_append_into_range_conflicts_only_when_serializable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: str) -> None:
    uri = str(tmp_path / "t")
    _small(uri, level)
    _concurrently(monkeypatch, lambda: lakehouse.write(
        uri, pa.table({"id": [2], "v": [9]}), mode="append"))
    run = Table.open(uri).merge(pa.table({"id": [2], "v": [1]}), "id").when_matched_update_all()
    if level == "Serializable":
        with pytest.raises(ConcurrentAppendError):
            run.execute()
    else:
        assert run.execute().num_target_rows_updated == 1
