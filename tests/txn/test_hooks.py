"""Post-commit hooks: periodic checkpoints and expired log cleanup, driven by table properties."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from lakehouse.errors import VersionNotFoundError
from lakehouse.io.storage import Storage
from lakehouse.log.actions import now_ms
from lakehouse.log.snapshot import Snapshot
from lakehouse.txn import hooks
from tests.txn.helpers import active_paths, append, create_table, fake_add

DAY = 86_400_000


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage.for_uri(str(tmp_path / "t"))


def _cp(storage: Storage, v: int) -> bool:
    return storage.exists(f"_delta_log/{v:020d}.checkpoint.parquet")


def test_checkpoint_every_ten_commits(storage: Storage) -> None:
    create_table(storage, adds=[fake_add("f0.parquet")])
    results = [append(storage, [fake_add(f"f{v}.parquet")]) for v in range(1, 12)]
    assert [r.version for r in results if r.checkpoint is not None] == [10]
    assert _cp(storage, 10) and not any(_cp(storage, v) for v in (0, 1, 9, 11))
    expected = sorted(f"f{v}.parquet" for v in range(12))
    # Same active files via the checkpoint as via replaying all the commits.
    snap = Snapshot.load(storage)
    assert snap.segment.checkpoint_version == 10
    assert sorted(snap.files["path"].to_pylist()) == expected
    for v in range(10):
        os.unlink(storage.to_fs_path(f"_delta_log/{v:020d}.json"))
    assert active_paths(storage) == expected
    assert active_paths(storage, 10) == sorted(f"f{v}.parquet" for v in range(11))


def test_custom_checkpoint_interval(storage: Storage) -> None:
    create_table(storage, configuration={"delta.checkpointInterval": "3"})
    for _ in range(7):
        append(storage)
    assert [v for v in range(8) if _cp(storage, v)] == [3, 6]


def test_no_hooks_when_disabled(storage: Storage) -> None:
    create_table(storage)
    for _ in range(10):
        append(storage, post_commit=False)
    assert not _cp(storage, 10)


def test_checkpoint_failure_does_not_fail_commit(
    storage: Storage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    create_table(storage, configuration={"delta.checkpointInterval": "2"})
    append(storage)

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(hooks, "write_checkpoint", broken)
    with caplog.at_level(logging.WARNING, logger="lakehouse.txn.hooks"):
        result = append(storage, [fake_add("kept.parquet")])
    assert result.version == 2 and result.checkpoint is None
    assert "checkpoint" in caplog.text and "disk full" in caplog.text
    assert "kept.parquet" in active_paths(storage)


def _backdate(storage: Storage, versions: range, when_ms: int) -> None:
    for v in versions:
        os.utime(storage.to_fs_path(f"_delta_log/{v:020d}.json"), (when_ms / 1000, when_ms / 1000))


def test_expired_logs_cleaned_after_checkpoint_time_travel_within_retention_works(
    storage: Storage,
) -> None:
    create_table(storage, adds=[fake_add("f0.parquet")])
    for v in range(1, 20):
        append(storage, [fake_add(f"f{v}.parquet")])
    old = now_ms() - 40 * DAY
    _backdate(storage, range(0, 16), old)  # versions 0..15 are older than the 30-day default
    result = append(storage, [fake_add("f20.parquet")])
    assert result.version == 20 and result.checkpoint is not None
    # Cut-off commit 15; newest checkpoint not after it is 10: versions before 10 are expired.
    assert sorted(p.rsplit("/", 1)[1] for p in result.cleaned_log_files) == [
        f"{v:020d}.json" for v in range(10)]
    for v in (10, 15, 16, 20):
        assert active_paths(storage, v) == sorted(f"f{i}.parquet" for i in range(v + 1))
    with pytest.raises(VersionNotFoundError, match="version 9"):
        Snapshot.load(storage, 9)
    # Timestamp time travel inside the window still resolves.
    assert Snapshot.load(storage, timestamp=old + 100).version == 15


def test_cleanup_can_be_disabled(storage: Storage) -> None:
    create_table(storage, configuration={"delta.enableExpiredLogCleanup": "false"})
    for _ in range(19):
        append(storage)
    _backdate(storage, range(0, 16), now_ms() - 40 * DAY)
    result = append(storage)
    assert result.checkpoint is not None and result.cleaned_log_files == ()
    assert active_paths(storage, 0) == []


def test_short_retention_property_is_honoured(storage: Storage) -> None:
    create_table(storage, configuration={"delta.logRetentionDuration": "interval 2 days"})
    for _ in range(19):
        append(storage)
    _backdate(storage, range(0, 12), now_ms() - 3 * DAY)
    result = append(storage)
    # Cut-off commit 11 -> checkpoint 10 -> 0..9 deleted (would be kept under 30 days).
    assert len(result.cleaned_log_files) == 10


def test_interval_helpers() -> None:
    assert hooks.checkpoint_interval({}) == 10
    assert hooks.checkpoint_interval({"delta.checkpointInterval": "25"}) == 25
    assert hooks.checkpoint_interval({"delta.checkpointInterval": "zero"}) == 10
    assert hooks.checkpoint_interval({"delta.checkpointInterval": "0"}) == 10
    assert hooks.expired_log_cleanup_enabled({}) is True
    assert hooks.expired_log_cleanup_enabled({"delta.enableExpiredLogCleanup": "FALSE"}) is False
