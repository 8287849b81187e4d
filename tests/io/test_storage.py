"""Tests of lakehouse.io.storage on every backend: local, memory and the S3/Azure/GCS emulators.

The put-if-absent tests are the important ones: Delta commits are only atomic if exactly one of
several concurrent creators of a log file wins and no reader ever sees a partial file.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.errors import InvalidArgumentError
from lakehouse.io import FileInfo, Storage
from lakehouse.io.storage import fsspec_kwargs
from tests.conftest_storage import StorageRoot, cloud_storage_options


@pytest.fixture
def storage(storage_root: StorageRoot) -> Storage:
    return Storage.for_uri(storage_root.uri, storage_root.storage_options)


@pytest.fixture(params=["s3", "azure", "gcs"], ids=lambda b: f"{b}-only")
def cloud_storage(request: pytest.FixtureRequest) -> Iterator[Storage]:
    prefix, options = cloud_storage_options(request.param)
    yield Storage.for_uri(f"{prefix}/ambiguous-{time.time_ns()}", options)


def _payload(writer: int, key: str) -> bytes:
    return f"writer-{writer}-{key}|".encode() * 2048


def _paths(infos: list[FileInfo]) -> list[str]:
    return [f.path for f in infos]


# ------------------------------------------------------------------------------ round trips
def test_write_read_list_delete_round_trip(storage: Storage) -> None:
    storage.write_bytes("a/x.bin", b"0123456789")
    storage.write_bytes("a/y.bin", b"yy")
    storage.write_bytes("a/b/z.bin", b"z")
    assert storage.read_bytes("a/x.bin") == b"0123456789"
    assert storage.read_range("a/x.bin", 2, 3) == b"234"
    assert storage.read_range("a/x.bin", 8, 10) == b"89"
    assert storage.read_many(["a/y.bin", "a/x.bin", "a/y.bin"]) == [b"yy", b"0123456789", b"yy"]
    assert storage.read_many([]) == []
    assert storage.exists("a/x.bin") and not storage.exists("a/nope.bin")
    info = storage.info("a/x.bin")
    assert (info.path, info.size) == ("a/x.bin", 10)
    assert abs(info.modification_time - time.time() * 1000) < 10 * 60 * 1000  # ms, not s or ns
    assert _paths(storage.list_recursive()) == ["a/b/z.bin", "a/x.bin", "a/y.bin"]
    assert _paths(storage.list_recursive("a/b")) == ["a/b/z.bin"]
    assert [f.size for f in storage.list_recursive("a")] == [1, 10, 2]

    storage.write_bytes("a/x.bin", b"new")  # overwrite
    assert storage.read_bytes("a/x.bin") == b"new"

    storage.delete(["a/x.bin", "a/missing.bin", "a/b/z.bin"])
    assert _paths(storage.list_recursive()) == ["a/y.bin"]
    with pytest.raises(FileNotFoundError):
        storage.read_bytes("a/x.bin")
    with pytest.raises(FileNotFoundError):
        storage.info("a/x.bin")
    storage.delete([])


def test_second_instance_sees_same_files(storage_root: StorageRoot) -> None:
    first = Storage.for_uri(storage_root.uri, storage_root.storage_options)
    first.write_bytes("_delta_log/00000000000000000000.json", b"{}")
    second = Storage.for_uri(storage_root.uri + "/", storage_root.storage_options)
    assert second.root == first.root
    assert second.read_bytes("_delta_log/00000000000000000000.json") == b"{}"
    absolute = f"{first.root}/_delta_log/00000000000000000000.json"
    assert second.to_fs_path(absolute) == first.to_fs_path("_delta_log/00000000000000000000.json")
    assert second.read_bytes(absolute) == b"{}"


def test_streams_and_arrow_filesystem(storage: Storage) -> None:
    with storage.open_output("part=1/data.bin") as out:
        out.write(b"hello ")
        out.write(b"world")
    with storage.open_input("part=1/data.bin") as inp:
        inp.seek(6)
        assert inp.read() == b"world"

    table = pa.table({"id": pa.array(range(1000), pa.int64()), "s": [str(i) for i in range(1000)]})
    with storage.open_output("data/f.parquet") as out:
        pq.write_table(table, out)
    with storage.open_input("data/f.parquet") as inp:
        assert pq.read_table(inp).equals(table)

    fs, to_path = storage.arrow_filesystem()
    assert pq.read_table(to_path("data/f.parquet"), filesystem=fs).equals(table)
    assert fs.get_file_info(to_path("data/f.parquet")).size == storage.info("data/f.parquet").size


# ---------------------------------------------------------------------------------- listing
def test_list_dir_sorted_non_recursive_and_start_after(storage: Storage) -> None:
    names = ["00000000000000000010.json", "00000000000000000002.json", "00000000000000000001.json"]
    names += ["00000000000000000010.checkpoint.parquet", "_last_checkpoint"]
    for n in names:
        storage.write_bytes(f"_delta_log/{n}", n.encode())
    storage.write_bytes("_delta_log/_sidecars/x.parquet", b"s")  # in a sub-directory: not listed
    listed = storage.list_dir("_delta_log")
    assert _paths(listed) == sorted(f"_delta_log/{n}" for n in names)
    assert [f.size for f in listed] == [len(p.split("/")[-1]) for p in _paths(listed)]

    after = storage.list_dir("_delta_log", start_after="_delta_log/00000000000000000002.json")
    assert _paths(after) == [
        "_delta_log/00000000000000000010.checkpoint.parquet",
        "_delta_log/00000000000000000010.json",
        "_delta_log/_last_checkpoint",
    ]
    between = storage.list_dir("_delta_log", start_after="_delta_log/00000000000000000005.json")
    assert _paths(between) == _paths(after)
    assert storage.list_dir("_delta_log", start_after="_delta_log/zzz") == []


def test_missing_directory_lists_empty(storage: Storage) -> None:
    assert storage.list_dir("_delta_log") == []
    assert storage.list_dir("_delta_log", start_after="_delta_log/0.json") == []
    assert storage.list_recursive("nothing/here") == []
    assert storage.list_recursive() == []


# ---------------------------------------------------------------------------- put-if-absent
def test_put_if_absent_second_create_fails(storage: Storage) -> None:
    key = "_delta_log/00000000000000000000.json"
    storage.put_if_absent(key, b'{"commitInfo":{"txnId":"first"}}')
    with pytest.raises(FileExistsError):
        storage.put_if_absent(key, b'{"commitInfo":{"txnId":"second"}}')
    assert storage.read_bytes(key) == b'{"commitInfo":{"txnId":"first"}}'
    assert _paths(storage.list_dir("_delta_log")) == [key]  # no temp file left behind


def test_put_if_absent_thread_race_has_one_winner(storage: Storage) -> None:
    writers = 16
    # Many keys and 64 KiB payloads on local/memory so a check-then-write implementation loses.
    n_keys = 20 if storage.kind in ("local", "memory") else 4
    keys = [f"_delta_log/{v:020d}.json" for v in range(n_keys)]
    barrier = threading.Barrier(writers)

    def attempt(writer: int) -> list[str]:
        barrier.wait(timeout=30)
        won = []
        for key in keys:
            try:
                storage.put_if_absent(key, _payload(writer, key))
                won.append(key)
            except FileExistsError:
                pass
        return won

    with ThreadPoolExecutor(writers) as pool:
        results = list(pool.map(attempt, range(writers)))
    for key in keys:
        winners = [w for w, won in enumerate(results) if key in won]
        assert len(winners) == 1, f"{key}: winners {winners}"
        assert storage.read_bytes(key) == _payload(winners[0], key)
    assert _paths(storage.list_dir("_delta_log")) == keys


@pytest.mark.skipif(sys.platform == "win32", reason="needs os.link semantics of POSIX")
def test_put_if_absent_process_race_local(tmp_path: Path) -> None:
    from tests.io._race_worker import payload, race

    root = str(tmp_path / "table")
    keys = [f"_delta_log/{v:020d}.json" for v in range(20)]
    # fork: a spawned child re-imports lakehouse (seconds each); the children only touch local files.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    barrier = ctx.Barrier(8)
    procs = [ctx.Process(target=race, args=(root, keys, w, barrier)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * 8
    storage = Storage.for_uri(root)
    markers = _paths(storage.list_dir("winners"))
    for key in keys:
        marker = key.replace("/", "_")
        winners = [m.rsplit(".", 1)[1] for m in markers if m.startswith(f"winners/{marker}.")]
        assert len(winners) == 1, f"{key}: winners {winners}"
        assert storage.read_bytes(key) == payload(int(winners[0]), key)
    assert _paths(storage.list_dir("_delta_log")) == keys  # no temp files left


def test_local_put_if_absent_failure_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = Storage.for_uri(str(tmp_path))

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space"):
        storage.put_if_absent("_delta_log/00000000000000000000.json", b"x" * 1000)
    monkeypatch.undo()
    assert os.listdir(tmp_path / "_delta_log") == []
    storage.put_if_absent("_delta_log/00000000000000000000.json", b"ok")  # key is still free
    assert storage.read_bytes("_delta_log/00000000000000000000.json") == b"ok"


def test_local_write_bytes_replaces_atomically(tmp_path: Path) -> None:
    storage = Storage.for_uri(str(tmp_path))
    storage.write_bytes("_delta_log/_last_checkpoint", b"one")
    storage.write_bytes("_delta_log/_last_checkpoint", b"two")
    assert os.listdir(tmp_path / "_delta_log") == ["_last_checkpoint"]
    assert (tmp_path / "_delta_log" / "_last_checkpoint").read_bytes() == b"two"


@pytest.mark.cloud
def test_cloud_ambiguous_error_resolved_by_read_back(
    cloud_storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = cloud_storage.fs
    real_pipe = fs.pipe_file

    def lost_response(path: str, data: bytes, **kw: object) -> None:
        real_pipe(path, data, **kw)  # the write lands, then the response is lost
        raise OSError(5, "connection reset")

    monkeypatch.setattr(fs, "pipe_file", lost_response)
    cloud_storage.put_if_absent("_delta_log/0.json", b"ours")  # read back: we won
    with pytest.raises(FileExistsError):
        cloud_storage.put_if_absent("_delta_log/0.json", b"theirs")

    def never_sent(path: str, data: bytes, **kw: object) -> None:
        raise OSError(5, "connection refused")

    monkeypatch.setattr(fs, "pipe_file", never_sent)
    with pytest.raises(OSError, match="connection refused"):
        cloud_storage.put_if_absent("_delta_log/1.json", b"x")
    monkeypatch.undo()
    assert not cloud_storage.exists("_delta_log/1.json")
    assert cloud_storage.read_bytes("_delta_log/0.json") == b"ours"


# ------------------------------------------------------------------------- URIs and options
def test_uri_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Storage.for_uri("rel/t").root == f"file://{tmp_path.resolve().as_posix()}/rel/t"
    assert Storage.for_uri(f"{tmp_path}/t/").root == f"file://{tmp_path.as_posix()}/t"
    assert Storage.for_uri(f"file://{tmp_path}/t").root == f"file://{tmp_path.as_posix()}/t"
    assert Storage.for_uri("memory://tbl/").root == "memory://tbl"
    assert (
        Storage.for_uri("memory://tbl").to_fs_path("_delta_log/0.json") == "/tbl/_delta_log/0.json"
    )

    s3 = Storage.for_uri("s3a://bucket/pre/fix/", {"AWS_REGION": "eu-west-1"})
    assert (s3.root, s3.to_fs_path("a b/c")) == ("s3://bucket/pre/fix", "bucket/pre/fix/a b/c")
    assert s3.to_fs_path("s3://bucket/other/x") == "bucket/other/x"
    az = Storage.for_uri("abfss://cont@acct.dfs.core.windows.net/dir/t", {"anon": "true"})
    assert (az.root, az.storage_options["account_name"]) == ("az://cont/dir/t", "acct")
    assert (
        Storage.for_uri("abfs://cont/t", {"account_name": "a", "anon": "true"}).root
        == "az://cont/t"
    )
    assert Storage.for_uri("gcs://b/t", {"token": "anon"}).root == "gs://b/t"
    with pytest.raises(InvalidArgumentError, match="different storage backend"):
        s3.to_fs_path("gs://b/t/x")


def test_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(InvalidArgumentError, match=r"hdfs.*s3://"):
        Storage.for_uri("hdfs://namenode/t")
    with pytest.raises(InvalidArgumentError, match="no bucket"):
        Storage.for_uri("s3://")


def test_missing_extra_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    registry_module = sys.modules["fsspec.registry"]  # `fsspec.registry` is the read-only view
    monkeypatch.delitem(registry_module._registry, "s3", raising=False)
    monkeypatch.setitem(sys.modules, "s3fs", None)  # makes `import s3fs` fail
    with pytest.raises(InvalidArgumentError, match=r"pip install 'lakehouse\[s3\]'"):
        Storage.for_uri("s3://bucket/t", {"AWS_REGION": "us-east-1", "x-test": "missing-extra"})


def test_delta_rs_option_names_are_translated() -> None:
    s3 = fsspec_kwargs(
        "s3",
        {
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
            "AWS_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL": "http://h:1",
            "AWS_ALLOW_HTTP": "true",
            "anon": "false",
        },
    )
    assert s3 == {
        "use_listings_cache": False,
        "key": "k",
        "secret": "s",
        "endpoint_url": "http://h:1",
        "anon": False,
        "client_kwargs": {"region_name": "eu-west-1"},
    }
    az = fsspec_kwargs(
        "azure",
        {
            "azure_storage_account_name": "acct",
            "azure_storage_account_key": "key==",
            "azure_storage_endpoint": "http://127.0.0.1:1/acct",
        },
    )
    assert az["connection_string"] == (
        "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=key==;"
        "BlobEndpoint=http://127.0.0.1:1/acct;"
    )
    assert fsspec_kwargs("gcs", {"google_skip_signature": "true"})["token"] == "anon"


def test_unusable_options_are_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError, match="azure backend"):
        Storage.for_uri("az://container/t", {"bogus_option_for_test": "1"})
