"""Conflict rules: a transaction loses a race to a concurrent commit made in between.

Each test reads snapshot N in transaction ``ours``, commits a ``winner`` built on the same snapshot,
then commits ``ours``: either it rebases onto the winner, or the specific error is raised and the
table keeps only the winner's commit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakehouse.errors import (
    CommitConflictError,
    ConcurrentAppendError,
    ConcurrentDeleteDeleteError,
    ConcurrentDeleteReadError,
    ConcurrentTransactionError,
    MetadataChangedError,
    ProtocolChangedError,
)
from lakehouse.io.storage import Storage
from lakehouse.log.actions import DomainMetadata, Metadata, Protocol, Remove
from lakehouse.log.snapshot import Snapshot
from lakehouse.txn import Transaction, TransactionSummary, WinningCommit, check_conflicts
from lakehouse.txn.transaction import removes_for_files
from tests.txn.helpers import SCHEMA_STRING, active_paths, create_table, fake_add

DM_PROTOCOL = Protocol(1, 7, None, frozenset({"domainMetadata"}))


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    s = Storage.for_uri(str(tmp_path / "t"))
    create_table(s, adds=[fake_add("part=a/a1.parquet", part="a"),
                          fake_add("part=b/b1.parquet", part="b")],
                 partition_columns=("part",), protocol=DM_PROTOCOL)
    return s


def _txn(storage: Storage, op: str = "WRITE", **kw: object) -> Transaction:
    return Transaction(storage, Snapshot.load(storage), op, backoff_base_ms=0.1, **kw)  # type: ignore[arg-type]


def _partition_is(value: str) -> Callable[[pa.Table], bool]:
    def pred(adds: pa.Table) -> bool:
        parts = pc.map_lookup(adds["partitionValues"], "part", "first")
        return bool(pc.any(pc.equal(parts, value)).as_py())
    return pred


def _blind_append(storage: Storage, path: str, part: str = "a") -> None:
    t = _txn(storage)
    t.add_files([fake_add(path, part=part)])
    t.commit()


def _rewrite(storage: Storage, old: str, new: str, part: str, *, data_change: bool = True,
             op: str = "UPDATE") -> None:
    """A winner that reads ``old`` and replaces it by ``new`` (UPDATE, or OPTIMIZE if no data change)."""
    t = _txn(storage, op)
    t.read_files([old])
    t.remove_files([Remove(old, 1, data_change, partition_values={"part": part})])
    t.add_files([fake_add(new, part=part, data_change=data_change)])
    t.commit()


def _assert_only_winner_committed(storage: Storage, err: CommitConflictError) -> None:
    assert err.version == 1
    assert Snapshot.load(storage).version == 1


def test_blind_append_rebases_over_blind_append(storage: Storage) -> None:
    ours = _txn(storage)
    ours.add_files([fake_add("part=a/mine.parquet", part="a")])
    _blind_append(storage, "part=a/theirs.parquet")
    result = ours.commit()
    assert (result.version, result.attempts, result.rebased_over) == (2, 2, (1,))
    assert "part=a/mine.parquet" in active_paths(storage)
    assert "part=a/theirs.parquet" in active_paths(storage)
    assert json.loads(storage.read_bytes("_delta_log/00000000000000000002.json").splitlines()[0])[
        "commitInfo"]["readVersion"] == 0


def test_blind_append_rebases_over_delete(storage: Storage) -> None:
    ours = _txn(storage)
    ours.add_files([fake_add("part=a/mine.parquet", part="a")])
    _rewrite(storage, "part=a/a1.parquet", "part=a/a2.parquet", "a")
    assert ours.commit().version == 2


def test_whole_table_read_vs_blind_append_depends_on_isolation(storage: Storage) -> None:
    ws = _txn(storage, "DELETE")
    ws.read_whole_table()
    ws.remove_files(removes_for_files(Snapshot.load(storage).files))
    ser = _txn(storage, "DELETE", isolation_level="Serializable")
    ser.read_whole_table()
    ser.add_files([fake_add("part=b/x.parquet", part="b")])
    _blind_append(storage, "part=a/new.parquet")
    with pytest.raises(ConcurrentAppendError) as e:
        ser.commit()
    _assert_only_winner_committed(storage, e.value)
    # WriteSerializable: a concurrent blind append does not invalidate the whole-table read.
    assert ws.commit().version == 2
    assert active_paths(storage) == ["part=a/new.parquet"]


def test_metadata_change_makes_blind_appends_conflict_under_write_serializable(storage: Storage) -> None:
    ours = _txn(storage, "WRITE")
    ours.read_whole_table()
    ours.set_metadata(Snapshot.load(storage).metadata.with_(configuration={"x": "1"}))
    ours.add_files([fake_add("part=a/m.parquet", part="a")])
    ours.remove_files([Remove("part=a/a1.parquet", 1)])
    _blind_append(storage, "part=a/new.parquet")
    with pytest.raises(ConcurrentAppendError):
        ours.commit()


def test_read_predicate_conflicts_only_with_matching_non_blind_adds(storage: Storage) -> None:
    """Winner UPDATE rewrites partition b: a reader of partition a is fine, a reader of b is not."""
    reader_a = _txn(storage, "DELETE")
    reader_a.read_predicate(_partition_is("a"))
    reader_a.read_files(["part=a/a1.parquet"])
    reader_a.remove_files([Remove("part=a/a1.parquet", 1)])
    reader_b = _txn(storage, "DELETE")
    reader_b.read_predicate(_partition_is("b"))
    reader_b.add_files([fake_add("part=b/b9.parquet", part="b")])
    _rewrite(storage, "part=b/b1.parquet", "part=b/b2.parquet", "b")
    with pytest.raises(ConcurrentAppendError, match="data this transaction read"):
        reader_b.commit()
    assert reader_a.commit().version == 2
    assert active_paths(storage) == ["part=b/b2.parquet"]


def test_removed_read_file_raises_delete_read(storage: Storage) -> None:
    ours = _txn(storage, "UPDATE")
    ours.read_files(["part=a/a1.parquet"])
    ours.add_files([fake_add("part=a/a-upd.parquet", part="a")])
    _rewrite(storage, "part=a/a1.parquet", "part=a/a2.parquet", "a", data_change=False,
             op="OPTIMIZE")
    with pytest.raises(ConcurrentDeleteReadError, match=r"part=a/a1\.parquet") as e:
        ours.commit()
    _assert_only_winner_committed(storage, e.value)


def test_whole_table_read_vs_any_remove(storage: Storage) -> None:
    ours = _txn(storage, "UPDATE", isolation_level="WriteSerializable")
    ours.read_whole_table()
    ours.add_files([fake_add("part=b/x.parquet", part="b")])
    t = _txn(storage, "DELETE")
    t.remove_files([Remove("part=a/a1.parquet", 1)])
    t.commit()
    with pytest.raises(ConcurrentDeleteReadError, match="whole table"):
        ours.commit()


def test_compaction_of_unread_files_does_not_conflict(storage: Storage) -> None:
    """OPTIMIZE of partition b (dataChange=false) vs a transaction that read only partition a."""
    ours = _txn(storage, "DELETE")
    ours.read_predicate(_partition_is("a"))
    ours.read_files(["part=a/a1.parquet"])
    ours.remove_files([Remove("part=a/a1.parquet", 1)])
    _rewrite(storage, "part=b/b1.parquet", "part=b/b-opt.parquet", "b", data_change=False,
             op="OPTIMIZE")
    assert ours.commit().version == 2
    assert active_paths(storage) == ["part=b/b-opt.parquet"]


def test_double_delete_raises_delete_delete(storage: Storage) -> None:
    ours = _txn(storage, "DELETE")
    ours.remove_files([Remove("part=a/a1.parquet", 1)])
    t = _txn(storage, "DELETE")
    t.remove_files([Remove("part=a/a1.parquet", 1)])
    t.commit()
    with pytest.raises(ConcurrentDeleteDeleteError, match=r"part=a/a1\.parquet") as e:
        ours.commit()
    _assert_only_winner_committed(storage, e.value)


def test_concurrent_metadata_change(storage: Storage) -> None:
    ours = _txn(storage)
    ours.add_files([fake_add("part=a/x.parquet", part="a")])
    t = _txn(storage, "SET TBLPROPERTIES")
    t.set_metadata(Snapshot.load(storage).metadata.with_(configuration={"a": "b"}))
    t.commit()
    with pytest.raises(MetadataChangedError) as e:
        ours.commit()
    _assert_only_winner_committed(storage, e.value)
    assert "SET TBLPROPERTIES" in str(e.value)


def test_concurrent_protocol_change(storage: Storage) -> None:
    ours = _txn(storage)
    ours.add_files([fake_add("part=a/x.parquet", part="a")])
    t = _txn(storage, "UPGRADE PROTOCOL")
    t.set_protocol(Protocol(1, 7, None, frozenset({"domainMetadata", "appendOnly"})))
    t.commit()
    with pytest.raises(ProtocolChangedError) as e:
        ours.commit()
    _assert_only_winner_committed(storage, e.value)


def test_concurrent_same_app_id(storage: Storage) -> None:
    ours = _txn(storage)
    ours.set_app_transaction("stream", 5)
    ours.add_files([fake_add("part=a/x.parquet", part="a")])
    t = _txn(storage)
    t.set_app_transaction("stream", 5)
    t.add_files([fake_add("part=a/y.parquet", part="a")])
    t.commit()
    with pytest.raises(ConcurrentTransactionError, match="stream") as e:
        ours.commit()
    _assert_only_winner_committed(storage, e.value)


def test_different_app_ids_rebase(storage: Storage) -> None:
    ours = _txn(storage)
    ours.set_app_transaction("stream-1", 5)
    ours.add_files([fake_add("part=a/x.parquet", part="a")])
    t = _txn(storage)
    t.set_app_transaction("stream-2", 9)
    t.add_files([fake_add("part=a/y.parquet", part="a")])
    t.commit()
    assert ours.commit().version == 2
    snap = Snapshot.load(storage)
    assert (snap.app_version("stream-1"), snap.app_version("stream-2")) == (5, 9)


def test_concurrent_same_domain(storage: Storage) -> None:
    ours = _txn(storage)
    ours.add_actions([DomainMetadata("delta.clustering", '{"clusteringColumns":[]}')])
    t = _txn(storage)
    t.add_actions([DomainMetadata("delta.clustering", '{"clusteringColumns":["id"]}')])
    t.commit()
    with pytest.raises(ConcurrentTransactionError, match=r"delta\.clustering"):
        ours.commit()


def test_concurrent_create(tmp_path: Path) -> None:
    s = Storage.for_uri(str(tmp_path / "new"))
    first = Transaction(s, None, "CREATE TABLE")
    second = Transaction(s, None, "CREATE TABLE")
    for t in (first, second):
        t.set_protocol(Protocol(1, 2))
        t.set_metadata(Metadata.new(SCHEMA_STRING))
    first.commit()
    with pytest.raises(ProtocolChangedError, match="created concurrently") as e:
        second.commit()
    assert e.value.version == 0
    assert Snapshot.load(s).version == 0


def test_rebase_over_several_winners_then_conflict(storage: Storage) -> None:
    """Three compatible winners are rebased over; the fourth (a delete of our file) conflicts."""
    ours = _txn(storage, "UPDATE")
    ours.read_files(["part=b/b1.parquet"])
    ours.add_files([fake_add("part=b/b-upd.parquet", part="b")])
    for i in range(3):
        _blind_append(storage, f"part=a/n{i}.parquet")
    t = _txn(storage, "DELETE")
    t.remove_files([Remove("part=b/b1.parquet", 1)])
    t.commit()
    with pytest.raises(ConcurrentDeleteReadError) as e:
        ours.commit()
    assert e.value.version == 4


def test_check_conflicts_on_parsed_commits() -> None:
    """The pure rule functions on commit bytes, including paths spelled differently."""
    root = "file:///tmp/tbl"
    lines = [
        {"commitInfo": {"operation": "WRITE", "isBlindAppend": True}},
        {"add": {"path": "p%3D1/f.parquet", "partitionValues": {"p": "1"}, "size": 1,
                 "modificationTime": 1, "dataChange": True}},
        {"remove": {"path": "file:///tmp/tbl/old%20file.parquet", "deletionTimestamp": 1,
                    "dataChange": True}},
    ]
    data = "\n".join(json.dumps(x) for x in lines).encode()
    w = WinningCommit.from_bytes(3, data, root, modification_time=42)
    assert w.is_blind_append and w.timestamp == 42
    assert w.removed_paths == frozenset({"old file.parquet"})
    assert w.adds["canonical_path"].to_pylist() == ["p=1/f.parquet"]
    check_conflicts(TransactionSummary(read_version=2), w)  # blind vs blind
    with pytest.raises(ConcurrentDeleteReadError):
        check_conflicts(TransactionSummary(read_version=2, read_files=frozenset({"old file.parquet"}),
                                           is_blind_append=False), w)
    with pytest.raises(ConcurrentDeleteDeleteError):
        check_conflicts(TransactionSummary(read_version=2,
                                           removed_paths=frozenset({"old file.parquet"}),
                                           is_blind_append=False), w)
    reader = TransactionSummary(read_version=2, read_predicates=(lambda t: True,),
                                is_blind_append=False, isolation_level="Serializable")
    with pytest.raises(ConcurrentAppendError):
        check_conflicts(reader, w)
