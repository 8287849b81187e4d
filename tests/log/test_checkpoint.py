"""Checkpoint writing and expired log cleanup (lakehouse.log.checkpoint)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from lakehouse.errors import InvalidArgumentError, VersionNotFoundError
from lakehouse.io.storage import Storage
from lakehouse.log.actions import DomainMetadata, Protocol, Remove, now_ms
from lakehouse.log.checkpoint import (
    CHECKPOINT_SCHEMA,
    checkpoint_table,
    cleanup_expired_logs,
    parse_interval_ms,
    write_checkpoint,
)
from lakehouse.log.snapshot import Snapshot
from lakehouse.txn import Transaction
from tests.txn.helpers import active_paths, append, create_table, fake_add, write_data_file

DAY = 86_400_000
DV = {"storageType": "u", "pathOrInlineDv": "ab^-aqEH.-t@S}K{vb[*k^", "offset": 4,
      "sizeInBytes": 40, "cardinality": 6}
FULL_PROTOCOL = Protocol(3, 7, frozenset({"deletionVectors"}),
                         frozenset({"deletionVectors", "domainMetadata"}))


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage.for_uri(str(tmp_path / "t"))


def _rich_table(storage: Storage, protocol: Protocol = FULL_PROTOCOL,
                configuration: dict[str, str] | None = None) -> Snapshot:
    """Partitioned table with DVs, tombstones, app txns and a domain, no checkpoint yet."""
    adds = [fake_add(part=p) for p in ("a", "b", "a b/c", "ü")]
    create_table(storage, adds=adds, partition_columns=("part",), protocol=protocol,
                 configuration={"delta.checkpointInterval": "1000", **(configuration or {})})
    snap = Snapshot.load(storage)
    txn = Transaction(storage, snap, "DELETE", {"predicate": "[]"})
    gone = snap.files.slice(0, 1)
    txn.read_files(gone["canonical_path"])
    txn.remove_files([Remove(gone["path"][0].as_py(), now_ms(), True,
                             partition_values={"part": "a"}, size=100)])
    dv_file = fake_add("part=b/with-dv.parquet", part="b")
    from dataclasses import replace
    txn.add_files([replace(dv_file, deletion_vector=DV)])
    txn.set_app_transaction("stream-x", 3)
    if protocol.has_writer_feature("domainMetadata"):
        txn.add_actions([DomainMetadata("my.domain", '{"k": 1}')])
    txn.commit()
    append(storage, [fake_add(part=None)])
    return Snapshot.load(storage)


def _sorted_files(t: pa.Table) -> pa.Table:
    cols = [c for c in t.column_names if c not in ("dataChange",)]
    return t.select(cols).sort_by([("path", "ascending")])


def test_checkpoint_round_trip(storage: Storage) -> None:
    before = _rich_table(storage)
    info = write_checkpoint(storage, before)
    assert info.version == before.version == 2
    assert info.path == "_delta_log/00000000000000000002.checkpoint.parquet"
    assert (info.num_add_files, info.num_tombstones) == (5, 1)
    # protocol + metaData + 1 txn + 1 domain + 5 adds + 1 remove
    assert info.size == 10
    assert not info.v2
    hint = json.loads(storage.read_bytes("_delta_log/_last_checkpoint"))
    assert hint == {"version": 2, "size": 10, "sizeInBytes": info.size_in_bytes,
                    "numOfAddFiles": 5}
    assert storage.info(info.path).size == info.size_in_bytes

    after = Snapshot.load(storage)
    assert after.segment.checkpoint_version == 2 and after.segment.commits == ()
    assert _sorted_files(after.files).equals(_sorted_files(before.files))
    assert _sorted_files(after.tombstones).equals(_sorted_files(before.tombstones))
    assert after.protocol == before.protocol
    assert after.metadata == before.metadata
    assert after.app_version("stream-x") == 3
    assert dict(after.domains) == dict(before.domains)
    # Only the checkpoint and later commits are needed now.
    for v in range(before.version):
        os.unlink(storage.to_fs_path(f"_delta_log/{v:020d}.json"))
    assert _sorted_files(Snapshot.load(storage).files).equals(_sorted_files(before.files))


def test_checkpoint_schema_is_delta_shaped(storage: Storage) -> None:
    snap = _rich_table(storage)
    info = write_checkpoint(storage, snap)
    schema = pq.read_schema(storage.to_fs_path(info.path))
    assert schema.names == ["txn", "add", "remove", "metaData", "protocol", "domainMetadata"]
    add_fields = [f.name for f in schema.field("add").type]
    assert add_fields == ["path", "partitionValues", "size", "modificationTime", "dataChange",
                          "stats", "tags", "deletionVector", "baseRowId",
                          "defaultRowCommitVersion"]
    remove_fields = [f.name for f in schema.field("remove").type]
    assert "stats" not in remove_fields and "tags" not in remove_fields
    assert "canonical_path" not in str(schema)
    proto = schema.field("protocol").type
    assert proto.field("minReaderVersion").type == pa.int32()
    assert CHECKPOINT_SCHEMA.names == schema.names
    t = pq.read_table(storage.to_fs_path(info.path))
    protocol_rows = t["protocol"].filter(pc.is_valid(t["protocol"])).to_pylist()
    assert protocol_rows == [{"minReaderVersion": 3, "minWriterVersion": 7,
                              "readerFeatures": ["deletionVectors"],
                              "writerFeatures": ["deletionVectors", "domainMetadata"]}]
    dvs = t["add"].filter(pc.is_valid(t["add"])).to_pylist()
    assert [a["deletionVector"] for a in dvs if a["deletionVector"]] == [DV]
    assert all(a["partitionValues"] is not None for a in dvs)


def test_legacy_protocol_has_null_features(storage: Storage) -> None:
    create_table(storage, adds=[fake_add()])
    t = checkpoint_table(Snapshot.load(storage))
    rows = t["protocol"].filter(pc.is_valid(t["protocol"])).to_pylist()
    assert rows == [{"minReaderVersion": 1, "minWriterVersion": 2,
                     "readerFeatures": None, "writerFeatures": None}]


def test_expired_tombstones_are_dropped(storage: Storage) -> None:
    create_table(storage, adds=[fake_add("old.parquet"), fake_add("new.parquet"),
                                fake_add("keep.parquet")],
                 configuration={"delta.deletedFileRetentionDuration": "interval 2 days"})
    snap = Snapshot.load(storage)
    now = now_ms()
    txn = Transaction(storage, snap, "DELETE")
    txn.remove_files([Remove("old.parquet", now - 3 * DAY), Remove("new.parquet", now - DAY)])
    txn.commit()
    snap = Snapshot.load(storage)
    assert snap.tombstones.num_rows == 2
    t = checkpoint_table(snap, now_ms=now)
    kept = t["remove"].filter(pc.is_valid(t["remove"])).to_pylist()
    assert [r["path"] for r in kept] == ["new.parquet"]
    # A week later nothing is kept; the active file is unaffected.
    t = checkpoint_table(snap, now_ms=now + 7 * DAY)
    assert pc.sum(pc.is_valid(t["remove"])).as_py() == 0
    assert [a["path"] for a in t["add"].filter(pc.is_valid(t["add"])).to_pylist()] == [
        "keep.parquet"]


def test_stats_omitted_when_write_stats_as_json_false(storage: Storage) -> None:
    create_table(storage, adds=[fake_add()],
                 configuration={"delta.checkpoint.writeStatsAsJson": "false"})
    t = checkpoint_table(Snapshot.load(storage))
    adds = t["add"].filter(pc.is_valid(t["add"])).to_pylist()
    assert [a["stats"] for a in adds] == [None]


def test_v2_checkpoint_table_gets_checkpoint_metadata(storage: Storage) -> None:
    protocol = Protocol(3, 7, frozenset({"v2Checkpoint"}), frozenset({"v2Checkpoint"}))
    create_table(storage, adds=[fake_add("a.parquet")], protocol=protocol,
                 configuration={"delta.checkpointPolicy": "v2"})
    append(storage, [fake_add("b.parquet")])
    snap = Snapshot.load(storage)
    info = write_checkpoint(storage, snap)
    assert info.v2
    t = pq.read_table(storage.to_fs_path(info.path))
    cm = t["checkpointMetadata"].filter(pc.is_valid(t["checkpointMetadata"])).to_pylist()
    assert cm == [{"version": 1, "tags": None}]
    after = Snapshot.load(storage)
    assert after.segment.checkpoint_version == 1
    assert sorted(after.files["path"].to_pylist()) == ["a.parquet", "b.parquet"]


def test_last_checkpoint_never_moves_back(storage: Storage) -> None:
    create_table(storage, configuration={"delta.checkpointInterval": "1000"})
    for _ in range(3):
        append(storage)
    write_checkpoint(storage, Snapshot.load(storage, 3))
    write_checkpoint(storage, Snapshot.load(storage, 1))
    assert json.loads(storage.read_bytes("_delta_log/_last_checkpoint"))["version"] == 3
    assert storage.exists("_delta_log/00000000000000000001.checkpoint.parquet")
    assert Snapshot.load(storage).segment.checkpoint_version == 3


@pytest.mark.parametrize(("text", "ms"), [
    ("interval 30 days", 30 * DAY),
    ("interval 1 week", 7 * DAY),
    ("1 day", DAY),
    ("INTERVAL 168 HOURS", 7 * DAY),
    ("interval 2 hours 30 minutes", 9_000_000),
    ("interval 1 second", 1000),
    ("interval 0 days", 0),
])
def test_parse_interval(text: str, ms: int) -> None:
    assert parse_interval_ms(text) == ms


@pytest.mark.parametrize("text", ["", "thirty days", "interval 1 month", "interval 5", "5 parsecs"])
def test_parse_interval_rejects(text: str) -> None:
    with pytest.raises(InvalidArgumentError):
        parse_interval_ms(text)


# ------------------------------------------------------------------------------------- cleanup
def _backdate(storage: Storage, versions: range, when_ms: int) -> None:
    for v in versions:
        os.utime(storage.to_fs_path(f"_delta_log/{v:020d}.json"), (when_ms / 1000, when_ms / 1000))


def _log_names(storage: Storage) -> list[str]:
    return sorted(n for n in os.listdir(storage.to_fs_path("_delta_log")) if n[0].isdigit())


def _table_with_checkpoints(storage: Storage, n: int, checkpoints: tuple[int, ...]) -> None:
    create_table(storage, adds=[fake_add("v0.parquet")],
                 configuration={"delta.checkpointInterval": "1000"})
    for v in range(1, n):
        append(storage, [fake_add(f"v{v}.parquet")])
    for v in checkpoints:
        write_checkpoint(storage, Snapshot.load(storage, v))


def test_cleanup_keeps_everything_needed_within_retention(storage: Storage) -> None:
    _table_with_checkpoints(storage, 13, (5, 10))
    now = now_ms()
    _backdate(storage, range(0, 12), now - 40 * DAY)  # 0..11 expired, 12 recent
    deleted = cleanup_expired_logs(storage, Snapshot.load(storage), 30 * DAY, now_ms=now)
    # cut-off commit = 11, newest checkpoint at or before it = 10: everything before 10 goes.
    assert sorted(p.rsplit("/", 1)[1] for p in deleted) == sorted(
        [f"{v:020d}.json" for v in range(10)] + [f"{5:020d}.checkpoint.parquet"])
    assert _log_names(storage) == [
        f"{10:020d}.checkpoint.parquet", f"{10:020d}.json", f"{11:020d}.json", f"{12:020d}.json"]
    for v in (10, 11, 12):
        assert active_paths(storage, v) == sorted(f"v{i}.parquet" for i in range(v + 1))
    with pytest.raises(VersionNotFoundError):
        Snapshot.load(storage, 9)


def test_cleanup_removes_old_temp_files_only(storage: Storage) -> None:
    _table_with_checkpoints(storage, 12, (10,))
    now = now_ms()
    _backdate(storage, range(0, 11), now - 40 * DAY)
    log_dir = Path(storage.to_fs_path("_delta_log"))
    stale = log_dir / f".{3:020d}.json.{'a' * 32}.tmp"
    fresh = log_dir / f".{12:020d}.json.{'b' * 32}.tmp"
    for f in (stale, fresh):
        f.write_bytes(b"partial")
    os.utime(stale, ((now - 40 * DAY) / 1000,) * 2)
    deleted = cleanup_expired_logs(storage, Snapshot.load(storage), 30 * DAY, now_ms=now)
    assert f"_delta_log/{stale.name}" in deleted
    assert not stale.exists() and fresh.exists()


def test_cleanup_without_old_checkpoint_deletes_nothing(storage: Storage) -> None:
    _table_with_checkpoints(storage, 12, (10,))
    now = now_ms()
    _backdate(storage, range(0, 8), now - 40 * DAY)  # cut-off commit 7, no checkpoint <= 7
    assert cleanup_expired_logs(storage, Snapshot.load(storage), 30 * DAY, now_ms=now) == []
    assert len(_log_names(storage)) == 13
    assert active_paths(storage, 0) == ["v0.parquet"]


def test_cleanup_respects_retention_window(storage: Storage) -> None:
    """Commits younger than the retention period are never expired, even behind a checkpoint."""
    _table_with_checkpoints(storage, 12, (10,))
    now = now_ms()
    _backdate(storage, range(0, 12), now - 20 * DAY)
    assert cleanup_expired_logs(storage, Snapshot.load(storage), 30 * DAY, now_ms=now) == []
    # With the table's default (30 days) but everything 40 days old, 0..9 go.
    _backdate(storage, range(0, 12), now - 40 * DAY)
    deleted = cleanup_expired_logs(storage, Snapshot.load(storage), now_ms=now)
    assert len(deleted) == 10
    assert active_paths(storage, 10) == sorted(f"v{i}.parquet" for i in range(11))


# ------------------------------------------------------------------------- deltalake interop
def _deltalake_paths(dt: object) -> list[str]:
    """Relative paths of the active files as deltalake sees them."""
    actions = pa.table(dt.get_add_actions(flatten=True))  # type: ignore[attr-defined]
    return sorted(actions["path"].to_pylist())


def test_deltalake_reads_our_checkpoint(tmp_path: Path) -> None:
    deltalake = pytest.importorskip("deltalake")
    root = tmp_path / "interop"
    storage = Storage.for_uri(str(root))
    first_add = write_data_file(str(root), [0, 1], part="x")
    create_table(storage, adds=[first_add], partition_columns=("part",))
    removed = first_add.path
    for v in range(1, 12):
        add = write_data_file(str(root), [10 * v, 10 * v + 1], part="x" if v % 2 else "y z")
        if v == 4:  # a DELETE of the first file
            snap = Snapshot.load(storage)
            txn = Transaction(storage, snap, "DELETE", {"predicate": "[]"})
            first = snap.files.filter(pc.equal(snap.files["path"], removed))
            assert first.num_rows == 1
            txn.read_files(first["canonical_path"])
            from lakehouse.txn import removes_for_files
            txn.remove_files(removes_for_files(first))
            txn.add_files([add])
            txn.commit()
        else:
            result = append(storage, [add])
            if result.version == 10:
                assert result.checkpoint is not None and result.checkpoint.version == 10
    assert storage.exists("_delta_log/00000000000000000010.checkpoint.parquet")
    ours = Snapshot.load(storage)
    assert ours.segment.checkpoint_version == 10
    our_paths = sorted(ours.files["path"].to_pylist())
    assert removed not in our_paths and len(our_paths) == 11

    dt = deltalake.DeltaTable(str(root))
    assert dt.version() == 11
    assert _deltalake_paths(dt) == our_paths
    # Without the commits before the checkpoint, both readers must rely on it alone.
    copy = tmp_path / "from-checkpoint"
    shutil.copytree(root, copy)
    for v in range(10):
        os.unlink(copy / "_delta_log" / f"{v:020d}.json")
    dt2 = deltalake.DeltaTable(str(copy))
    assert _deltalake_paths(dt2) == our_paths
    rows = dt2.to_pyarrow_table().sort_by("id")
    assert rows.num_rows == 22
    assert rows["id"].to_pylist() == sorted(i for v in range(1, 12) for i in (10 * v, 10 * v + 1))
    assert set(rows["part"].to_pylist()) == {"x", "y z"}
    ours_copy = Snapshot.load(Storage.for_uri(str(copy)))
    assert sorted(ours_copy.files["path"].to_pylist()) == our_paths
    _assert_duckdb_reads(copy, rows_expected=22, id_sum=sum(rows["id"].to_pylist()))


def _assert_duckdb_reads(root: Path, rows_expected: int, id_sum: int) -> None:
    """DuckDB's delta extension (offline wheel) agrees on the checkpoint-only table, when present."""
    duckdb = pytest.importorskip("duckdb")
    ext_pkg = pytest.importorskip("duckdb_extension_delta")
    found = sorted(Path(ext_pkg.__file__).parent.glob("extensions/*/delta.duckdb_extension"))
    if not found:
        pytest.skip("duckdb delta extension binary not found")
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{found[-1]}'")
    got = con.execute(f"select count(*), sum(id) from delta_scan('{root}')").fetchone()
    assert got == (rows_expected, id_sum)
