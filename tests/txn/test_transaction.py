"""Transaction basics: versions, commit file content, validation, failures, ICT, app txns."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lakehouse.errors import (
    InvalidArgumentError,
    MaxCommitAttemptsError,
    ProtocolChangedError,
    TableNotFoundError,
    UnsupportedFeatureError,
)
from lakehouse.io.storage import Storage
from lakehouse.log.actions import Cdc, DomainMetadata, Metadata, Protocol, Remove
from lakehouse.log.snapshot import Snapshot
from lakehouse.txn import Committed, Conflicted, FileSystemCommitter, Transaction
from lakehouse.txn import transaction as transaction_module
from lakehouse.txn.committer import txn_id_of
from tests.txn.helpers import (
    ICT_PROTOCOL,
    SCHEMA_STRING,
    active_paths,
    append,
    commit_lines,
    create_table,
    fake_add,
)


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage.for_uri(str(tmp_path / "t"))


def test_sequential_commits_make_versions_0_1_2(storage: Storage) -> None:
    a0, a1, a2 = fake_add("a.parquet"), fake_add("b.parquet"), fake_add("c.parquet")
    assert create_table(storage, adds=[a0]).version == 0
    assert append(storage, [a1]).version == 1
    assert append(storage, [a2]).version == 2
    assert Snapshot.load(storage).version == 2
    assert active_paths(storage, 0) == ["a.parquet"]
    assert active_paths(storage, 1) == ["a.parquet", "b.parquet"]
    assert active_paths(storage) == ["a.parquet", "b.parquet", "c.parquet"]


def test_commit_file_content_and_action_order(storage: Storage) -> None:
    create_table(storage, adds=[fake_add("x.parquet")],
                 protocol=Protocol(1, 7, None, frozenset({"domainMetadata", "changeDataFeed"})))
    snap = Snapshot.load(storage)
    txn = Transaction(storage, snap, "MERGE", {"predicate": "t.id = s.id", "matched": [1]})
    txn.read_whole_table()
    txn.remove_files([Remove("x.parquet", 5, True)])
    txn.add_files([fake_add("y.parquet")])
    txn.add_actions([Cdc("_change_data/c.parquet", {}, 10),
                     DomainMetadata("my.domain", '{"a":1}')])
    txn.set_app_transaction("app", 7)
    new_meta = snap.metadata.with_(configuration={"k": "v"})
    txn.set_metadata(new_meta)
    result = txn.commit({"numTargetRowsInserted": 3})
    lines = commit_lines(storage, result.version)
    assert [next(iter(line)) for line in lines] == [
        "commitInfo", "metaData", "txn", "domainMetadata", "remove", "add", "cdc"]
    info = lines[0]["commitInfo"]
    assert info["operation"] == "MERGE"
    assert info["readVersion"] == 0
    assert info["isolationLevel"] == "WriteSerializable"
    assert info["isBlindAppend"] is False
    assert info["engineInfo"].startswith("lakehouse/")
    assert info["txnId"] == result.txn_id
    assert info["operationMetrics"] == {"numTargetRowsInserted": "3"}
    assert info["operationParameters"] == {"predicate": "t.id = s.id", "matched": "[1]"}
    assert "inCommitTimestamp" not in info
    after = Snapshot.load(storage)
    assert active_paths(storage) == ["y.parquet"]
    assert after.app_version("app") == 7
    assert after.metadata.configuration["k"] == "v"
    assert "my.domain" in after.domains


def test_blind_append_is_flagged(storage: Storage) -> None:
    create_table(storage)
    r = append(storage)
    assert commit_lines(storage, r.version)[0]["commitInfo"]["isBlindAppend"] is True


def test_creating_needs_protocol_and_metadata(storage: Storage) -> None:
    txn = Transaction(storage, None, "CREATE TABLE")
    txn.set_metadata(Metadata.new(SCHEMA_STRING))
    with pytest.raises(InvalidArgumentError, match="set_protocol"):
        txn.commit()
    with pytest.raises(TableNotFoundError):
        Snapshot.load(storage)


def test_creating_an_existing_table_raises_protocol_changed(storage: Storage) -> None:
    create_table(storage)
    with pytest.raises(ProtocolChangedError, match="created concurrently"):
        create_table(storage)
    assert Snapshot.load(storage).version == 0


def test_commit_twice_is_refused(storage: Storage) -> None:
    create_table(storage)
    txn = Transaction(storage, Snapshot.load(storage), "WRITE")
    txn.add_files([fake_add()])
    txn.commit()
    with pytest.raises(InvalidArgumentError, match="already committed"):
        txn.commit()
    assert Snapshot.load(storage).version == 1


def test_unsupported_writer_feature_is_refused(storage: Storage) -> None:
    with pytest.raises(UnsupportedFeatureError) as e:
        create_table(storage, protocol=Protocol(1, 7, None, frozenset({"identityColumns"})))
    assert e.value.feature == "identityColumns"
    assert not storage.exists("_delta_log/00000000000000000000.json")


def test_reader_v3_needs_writer_v7(storage: Storage) -> None:
    with pytest.raises(InvalidArgumentError, match="writer version 7"):
        create_table(storage, protocol=Protocol(3, 2, frozenset(), None))


def test_domain_metadata_needs_feature(storage: Storage) -> None:
    create_table(storage)
    txn = Transaction(storage, Snapshot.load(storage), "WRITE")
    txn.add_actions([DomainMetadata("d", "{}")])
    with pytest.raises(InvalidArgumentError, match="domainMetadata"):
        txn.commit()


def test_append_only_table_refuses_data_removal(storage: Storage) -> None:
    create_table(storage, adds=[fake_add("a.parquet"), fake_add("b.parquet")],
                 configuration={"delta.appendOnly": "true"})
    snap = Snapshot.load(storage)
    txn = Transaction(storage, snap, "DELETE", {"predicate": "[]"})
    txn.remove_files([Remove("a.parquet", 1, data_change=True)])
    with pytest.raises(InvalidArgumentError, match="append-only"):
        txn.commit()
    assert Snapshot.load(storage).version == 0
    # Rearranging data (dataChange=false, e.g. OPTIMIZE) is still allowed.
    txn = Transaction(storage, snap, "OPTIMIZE", {"predicate": "[]"})
    txn.remove_files([Remove("a.parquet", 1, data_change=False),
                      Remove("b.parquet", 1, data_change=False)])
    txn.add_files([fake_add("ab.parquet", data_change=False)])
    assert txn.commit().version == 1
    assert active_paths(storage) == ["ab.parquet"]


def test_duplicate_file_in_one_commit_is_refused(storage: Storage) -> None:
    create_table(storage)
    txn = Transaction(storage, Snapshot.load(storage), "WRITE")
    txn.add_files([fake_add("same.parquet"), fake_add("same.parquet")])
    with pytest.raises(InvalidArgumentError, match="more than once"):
        txn.commit()


def test_bad_arguments() -> None:
    s = Storage.for_uri("memory://txn-bad-args")
    with pytest.raises(InvalidArgumentError, match="isolation"):
        Transaction(s, None, "WRITE", isolation_level="SnapshotIsolation")
    with pytest.raises(InvalidArgumentError, match="max_attempts"):
        Transaction(s, None, "WRITE", max_attempts=0)


class _FailingCommitter:
    """Raises before writing anything, like a crash or network loss before the put."""

    calls = 0

    def commit(self, storage: Storage, version: int, data: bytes) -> Committed | Conflicted:
        self.calls += 1
        raise ConnectionError("network down")


def test_committer_failure_leaves_table_unchanged(storage: Storage) -> None:
    create_table(storage, adds=[fake_add("a.parquet")])
    before = sorted(os.listdir(storage.to_fs_path("_delta_log")))
    committer = _FailingCommitter()
    txn = Transaction(storage, Snapshot.load(storage), "WRITE", committer=committer)
    txn.add_files([fake_add("b.parquet")])
    with pytest.raises(ConnectionError):
        txn.commit()
    assert committer.calls == 1
    assert sorted(os.listdir(storage.to_fs_path("_delta_log"))) == before
    assert Snapshot.load(storage).version == 0
    assert active_paths(storage) == ["a.parquet"]


def test_retried_request_that_landed_counts_as_ours(storage: Storage) -> None:
    """put_if_absent says "exists" but the file holds our txnId: a transport retry, we won."""
    create_table(storage)

    class RetriedCommitter(FileSystemCommitter):
        def commit(self, storage: Storage, version: int, data: bytes) -> Committed | Conflicted:
            storage.put_if_absent(f"_delta_log/{version:020d}.json", data)  # first try landed
            return super().commit(storage, version, data)  # the retry sees FileExistsError

    txn = Transaction(storage, Snapshot.load(storage), "WRITE", committer=RetriedCommitter())
    txn.add_files([fake_add("a.parquet")])
    result = txn.commit()
    assert result.version == 1 and result.attempts == 1
    assert txn_id_of(storage.read_bytes("_delta_log/00000000000000000001.json")) == txn.txn_id
    assert Snapshot.load(storage).version == 1


def test_ambiguous_error_after_landing_counts_as_ours(storage: Storage) -> None:
    create_table(storage)

    class FlakyStorage(Storage):
        __slots__ = ()

        def put_if_absent(self, path: str, data: bytes) -> None:
            super().put_if_absent(path, data)
            raise TimeoutError("response lost")

    flaky = FlakyStorage(storage.root)
    txn = Transaction(flaky, Snapshot.load(storage), "WRITE")
    txn.add_files([fake_add("a.parquet")])
    assert txn.commit().version == 1
    assert active_paths(storage) == ["a.parquet"]


def test_max_attempts(storage: Storage) -> None:
    """A writer that loses every race gives up after max_attempts with MaxCommitAttemptsError."""
    create_table(storage)

    class AlwaysBeaten(FileSystemCommitter):
        def commit(self, storage: Storage, version: int, data: bytes) -> Committed | Conflicted:
            append(storage, post_commit=False)  # someone else takes `version` first
            return super().commit(storage, version, data)

    txn = Transaction(storage, Snapshot.load(storage), "WRITE", committer=AlwaysBeaten(),
                      max_attempts=3, backoff_base_ms=0.1)
    txn.add_files([fake_add("mine.parquet")])
    with pytest.raises(MaxCommitAttemptsError):
        txn.commit()
    assert Snapshot.load(storage).version == 3
    assert "mine.parquet" not in active_paths(storage)


def test_app_transaction_idempotency(storage: Storage) -> None:
    """A retried micro-batch sees its version already committed and is applied once."""
    create_table(storage)

    def run_batch(batch_id: int, path: str) -> bool:
        snap = Snapshot.load(storage)
        done = snap.app_version("stream-1")
        if done is not None and done >= batch_id:
            return False
        txn = Transaction(storage, snap, "STREAMING UPDATE", {"epochId": batch_id})
        txn.set_app_transaction("stream-1", batch_id)
        txn.add_files([fake_add(path)])
        txn.commit()
        return True

    assert run_batch(0, "b0.parquet") is True
    assert run_batch(1, "b1.parquet") is True
    assert run_batch(1, "b1-retry.parquet") is False
    assert Snapshot.load(storage).app_version("stream-1") == 1
    assert active_paths(storage) == ["b0.parquet", "b1.parquet"]
    assert Snapshot.load(storage).app_version("other") is None


def test_in_commit_timestamps_strictly_increase(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([5_000, 5_000, 4_000, 9_000, 9_000])
    monkeypatch.setattr(transaction_module, "now_ms", lambda: next(clock))
    create_table(storage, protocol=ICT_PROTOCOL,
                 configuration={"delta.enableInCommitTimestamps": "true"}, post_commit=False)
    for _ in range(4):
        append(storage, post_commit=False)
    icts = [commit_lines(storage, v)[0]["commitInfo"]["inCommitTimestamp"] for v in range(5)]
    # Wall clock 5000, 5000, 4000 (went back), 9000, 9000: ICT is max(now, previous + 1).
    assert icts == [5_000, 5_001, 5_002, 9_000, 9_001]
    for v in range(5):
        assert commit_lines(storage, v)[0]["commitInfo"]["timestamp"] == icts[v]
        assert Snapshot.load(storage, v).timestamp == icts[v]


def test_ict_enabled_on_existing_table_records_enablement(storage: Storage) -> None:
    create_table(storage)
    append(storage)
    snap = Snapshot.load(storage)
    txn = Transaction(storage, snap, "SET TBLPROPERTIES")
    txn.set_protocol(ICT_PROTOCOL)
    txn.set_metadata(snap.metadata.with_(configuration={"delta.enableInCommitTimestamps": "true"}))
    result = txn.commit()
    assert result.in_commit_timestamp is not None
    assert result.in_commit_timestamp > snap.timestamp
    conf = Snapshot.load(storage).metadata.configuration
    assert conf["delta.inCommitTimestampEnablementVersion"] == "2"
    assert conf["delta.inCommitTimestampEnablementTimestamp"] == str(result.in_commit_timestamp)
    r3 = append(storage)
    assert r3.in_commit_timestamp is not None and r3.in_commit_timestamp > result.in_commit_timestamp


def test_memory_backend(tmp_path: Path) -> None:
    s = Storage.for_uri(f"memory://txn-{tmp_path.name}")
    create_table(s, adds=[fake_add("a.parquet")])
    append(s, [fake_add("b.parquet")])
    assert active_paths(s) == ["a.parquet", "b.parquet"]
    assert json.loads(s.read_bytes("_delta_log/00000000000000000001.json").splitlines()[0])[
        "commitInfo"]["readVersion"] == 0


def test_own_commit_reported_as_conflict_is_not_committed_twice(storage: Storage) -> None:
    """If the committer wrongly reports a lost race for a put that landed, the retry finds our
    txnId in the log and stops instead of appending the same files a second time."""
    create_table(storage)

    class Confused(FileSystemCommitter):
        def commit(self, storage: Storage, version: int, data: bytes) -> Committed | Conflicted:
            storage.put_if_absent(f"_delta_log/{version:020d}.json", data)
            return Conflicted(version)

    txn = Transaction(storage, Snapshot.load(storage), "WRITE", committer=Confused())
    txn.add_files([fake_add("once.parquet")])
    result = txn.commit()
    assert (result.version, result.attempts) == (1, 1)
    assert Snapshot.load(storage).version == 1
    assert active_paths(storage) == ["once.parquet"]
