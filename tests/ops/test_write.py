"""``lakehouse.write`` / ``Table.create`` / ``append`` / ``overwrite``: modes, inputs, partitions,
replaceWhere, idempotent app transactions, time travel, and failures that must leave no trace.

Tests taking ``table_uri`` run on every storage backend (local, memory, S3/Azure/GCS emulators).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakehouse
from lakehouse import Table
from lakehouse.engine import Engine
from lakehouse.errors import (
    ConstraintViolationError,
    InvalidArgumentError,
    SchemaMismatchError,
    TableExistsError,
    TableNotFoundError,
    UnsupportedFeatureError,
)
from lakehouse.io.storage import Storage
from tests.ops._util import commit_actions, listing, rows

PEOPLE = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": ["ann", "bob", None]})


# ------------------------------------------------------------------------------ modes (all backends)
def test_modes_create_append_ignore_error_overwrite(table_uri: str,
                                                     storage_options: dict[str, str]) -> None:
    so = storage_options
    t = lakehouse.write(table_uri, PEOPLE, storage_options=so)
    assert t.version == 0
    assert rows(t.to_arrow()) == rows(PEOPLE)

    with pytest.raises(TableExistsError, match="already exists"):
        lakehouse.write(table_uri, PEOPLE, storage_options=so)
    t = lakehouse.write(table_uri, PEOPLE, mode="ignore", storage_options=so)
    assert t.version == 0

    more = pa.table({"id": pa.array([4], pa.int64()), "name": ["dee"]})
    t = lakehouse.write(table_uri, more, mode="append", storage_options=so)
    assert t.version == 1
    assert rows(t.to_arrow()) == rows(pa.concat_tables([PEOPLE, more]))

    new = pa.table({"id": pa.array([9], pa.int64()), "name": ["zed"]})
    t = lakehouse.write(table_uri, new, mode="overwrite", storage_options=so)
    assert t.version == 2
    assert rows(t.to_arrow()) == rows(new)
    assert rows(Table.open(table_uri, version=1, storage_options=so).to_arrow()) == \
        rows(pa.concat_tables([PEOPLE, more]))

    ops = [(h["version"], h["operation"], h["operationParameters"]["mode"]) for h in t.history()]
    assert ops == [(2, "WRITE", "Overwrite"), (1, "WRITE", "Append"), (0, "WRITE", "ErrorIfExists")]
    overwrite = commit_actions(table_uri, 2, so)
    removed = {a["remove"]["path"] for a in overwrite if "remove" in a}
    assert removed == set(Table.open(table_uri, version=1, storage_options=so)
                          .files()["path"].to_pylist())


def test_create_empty_then_append_and_overwrite_methods(table_uri: str,
                                                        storage_options: dict[str, str]) -> None:
    schema = pa.schema([("id", pa.int64()), ("name", pa.string())])
    t = Table.create(table_uri, schema, storage_options=storage_options)
    assert (t.version, t.to_arrow().num_rows) == (0, 0)
    assert t.schema.names == ["id", "name"]
    assert t.history()[0]["operation"] == "CREATE TABLE"
    t.append(PEOPLE)
    assert t.version == 1 and t.to_arrow().num_rows == 3
    t.overwrite(PEOPLE.slice(0, 1))
    assert t.version == 2 and rows(t.to_arrow()) == rows(PEOPLE.slice(0, 1))
    with pytest.raises(TableExistsError):
        Table.create(table_uri, schema, storage_options=storage_options)


def test_seed_workload_time_travel(table_uri: str, storage_options: dict[str, str]) -> None:
    """``lakehouse.write("…/training-data/", df)`` then ``Table.open(uri, version=1)``."""
    uri = table_uri + "/training-data/"
    df = pl.DataFrame({"x": [1.0, 2.0], "label": ["a", "b"]})
    lakehouse.write(uri, df, storage_options=storage_options)
    lakehouse.write(uri, pl.DataFrame({"x": [3.0], "label": ["c"]}), mode="append",
                    storage_options=storage_options)
    lakehouse.write(uri, pl.DataFrame({"x": [0.0], "label": ["z"]}), mode="overwrite",
                    storage_options=storage_options)
    v1 = Table.open(uri, version=1, storage_options=storage_options)
    assert v1.version == 1
    assert rows(v1.to_arrow()) == rows(pa.table({"x": [1.0, 2.0, 3.0], "label": ["a", "b", "c"]}))
    assert rows(Table.open(uri, version=0, storage_options=storage_options).to_polars()
                .to_arrow()) == rows(df.to_arrow())
    latest = Table.open(uri.rstrip("/"), storage_options=storage_options)
    assert latest.version == 2 and latest.to_arrow().to_pydict() == {"x": [0.0], "label": ["z"]}
    with pytest.raises(InvalidArgumentError, match="time travel"):
        v1.append(df)


def test_partitioned_special_and_null_values(table_uri: str, storage_options: dict[str, str]) -> None:
    values = ["a/b", "c d", "é=%", "x:y#?&", "tab\tq", None, "plain"]
    data = pa.table({"id": pa.array(range(len(values)), pa.int64()), "p": values,
                     "n": pa.array([1, None, 1, 2, None, 3, 1], pa.int32())})
    t = lakehouse.write(table_uri, data, partition_by=["p", "n"],
                        storage_options=storage_options)
    assert t.partition_columns == ["p", "n"]
    files = t.files()
    assert files.num_rows == len(values)  # one file per distinct (p, n)
    pvs = [dict(pv) for pv in files["partitionValues"].to_pylist()]
    assert {pv["p"] for pv in pvs} == set(values)
    assert {pv["n"] for pv in pvs} == {"1", "2", "3", None}
    for path, pv in zip(files["path"].to_pylist(), pvs, strict=True):
        assert path.count("/") == 2 and path.startswith("p=")  # hive-style directories
        if pv["p"] is None:
            assert path.startswith("p=__HIVE_DEFAULT_PARTITION__/")
    # Files really exist where the (URI-encoded) add paths say.
    on_disk = set(listing(table_uri, storage_options))
    decoded = set(t.files()["canonical_path"].to_pylist())
    assert len(decoded) == len(values)
    assert all(any(p.endswith(d.rsplit("/", 3)[-1]) for p in on_disk) for d in decoded)

    reopened = Table.open(table_uri, storage_options=storage_options)
    expected = data.cast(pa.schema([("id", pa.int64()), ("p", pa.string()), ("n", pa.int32())]))
    assert rows(reopened.to_arrow()) == rows(expected)
    assert reopened.to_arrow(filter="p = 'é=%'")["id"].to_pylist() == [2]
    assert sorted(reopened.to_arrow(filter="p is null")["id"].to_pylist()) == [5]
    assert sorted(reopened.to_arrow(filter="n is null")["id"].to_pylist()) == [1, 4]


def test_failed_write_leaves_table_unchanged(table_uri: str, storage_options: dict[str, str]) -> None:
    t = lakehouse.write(table_uri, PEOPLE, storage_options=storage_options,
                        properties={"delta.constraints.id_positive": "id > 0"})
    before = listing(table_uri, storage_options)
    bad = pa.table({"id": pa.array([*range(1, 50), -1], pa.int64()),
                    "name": ["x"] * 50})
    with pytest.raises(ConstraintViolationError, match="id_positive"):
        lakehouse.write(table_uri, bad, mode="append", storage_options=storage_options)
    with pytest.raises(SchemaMismatchError):
        lakehouse.write(table_uri, pa.table({"id": ["not a number"]}), mode="append",
                        storage_options=storage_options)
    assert listing(table_uri, storage_options) == before
    assert Table.open(table_uri, storage_options=storage_options).version == t.version == 0


def test_app_transaction_idempotency(table_uri: str, storage_options: dict[str, str]) -> None:
    so = storage_options
    batch = pa.table({"id": pa.array([1], pa.int64())})
    t = lakehouse.write(table_uri, batch, mode="append", app_id="stream-1", app_version=0,
                        storage_options=so)
    assert t.version == 0 and t.snapshot.app_version("stream-1") == 0
    t = lakehouse.write(table_uri, batch, mode="append", app_id="stream-1", app_version=1,
                        storage_options=so)
    assert t.version == 1
    for replay in (1, 0):  # a retried micro-batch is skipped: no new version, no rows
        t = lakehouse.write(table_uri, batch, mode="append", app_id="stream-1",
                            app_version=replay, storage_options=so)
        assert t.version == 1
    t = lakehouse.write(table_uri, batch, mode="append", app_id="other", app_version=1,
                        storage_options=so)
    assert t.version == 2
    assert t.to_arrow().num_rows == 3
    assert t.snapshot.app_version("stream-1") == 1 and t.snapshot.app_version("other") == 1
    txns = [a["txn"] for a in commit_actions(table_uri, 1, so) if "txn" in a]
    assert [(x["appId"], x["version"]) for x in txns] == [("stream-1", 1)]
    with pytest.raises(InvalidArgumentError, match="app_id and app_version"):
        lakehouse.write(table_uri, batch, mode="append", app_id="x", storage_options=so)


# ------------------------------------------------------------------------------------ inputs
def _inputs() -> list[tuple[str, object]]:
    data = {"id": [1, 2, 3], "s": ["a", None, "c"], "f": [0.5, 1.5, None]}
    table = pa.table(data)
    return [
        ("pa.Table", table),
        ("pa.RecordBatch", table.to_batches()[0]),
        ("pa.RecordBatchReader", pa.RecordBatchReader.from_batches(table.schema,
                                                                    table.to_batches())),
        ("pl.DataFrame", pl.DataFrame(data)),
        ("pl.LazyFrame", pl.LazyFrame(data).filter(pl.col("id") > 0)),
        ("pd.DataFrame", pd.DataFrame(data)),
        ("pd.DataFrame-indexed", pd.DataFrame(data, index=[10, 11, 12])),
    ]


@pytest.mark.parametrize(("kind", "data"), _inputs(), ids=[k for k, _ in _inputs()])
def test_every_input_type(tmp_path: Path, kind: str, data: object, engine: Engine) -> None:
    t = lakehouse.write(str(tmp_path / "t"), data, engine=engine)
    got = t.to_arrow()
    assert got.schema.names == ["id", "s", "f"], kind
    assert got.schema.field("id").type == pa.int64()
    assert got.schema.field("s").type == pa.string()
    assert rows(got) == rows(pa.table({"id": [1, 2, 3], "s": ["a", None, "c"],
                                       "f": [0.5, 1.5, None]}))


def test_unsupported_input_type_is_clear(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="cannot write data of type"):
        lakehouse.write(str(tmp_path / "t"), 42)
    assert not (tmp_path / "t").exists()


def test_record_batch_reader_is_streamed(tmp_path: Path) -> None:
    """Files are written and closed while the reader is still producing batches."""
    uri = str(tmp_path / "t")
    seen_files_mid_stream: list[int] = []
    n_batches, rows_per = 30, 20_000
    schema = pa.schema([("id", pa.int64()), ("payload", pa.string())])

    def gen() -> Iterator[pa.RecordBatch]:
        for i in range(n_batches):
            if i == n_batches - 1:
                seen_files_mid_stream.append(len(list(Path(uri).glob("*.parquet"))))
            start = i * rows_per
            ids = pa.array(range(start, start + rows_per), pa.int64())
            yield pa.record_batch([ids, pa.compute.cast(ids, pa.string())], schema=schema)

    reader = pa.RecordBatchReader.from_batches(schema, gen())
    t = lakehouse.write(uri, reader, target_file_size=256 * 1024)
    assert seen_files_mid_stream and seen_files_mid_stream[0] >= 1
    files = t.files()
    assert files.num_rows > seen_files_mid_stream[0]
    total = sum(json.loads(s)["numRecords"] for s in files["stats"].to_pylist())
    assert total == n_batches * rows_per == t.to_arrow(columns=["id"]).num_rows
    for s in files["stats"].to_pylist():
        st = json.loads(s)
        assert st["minValues"]["id"] <= st["maxValues"]["id"] and st["nullCount"]["id"] == 0


def test_progress_true_writes_normally(tmp_path: Path) -> None:
    data = pa.table({"id": pa.array(range(1000), pa.int64()), "p": ["a", "b"] * 500})
    t = lakehouse.write(str(tmp_path / "t"), data, partition_by="p", progress=True)
    assert t.to_arrow().num_rows == 1000 and t.files().num_rows == 2
    t.append(data, progress=True)
    assert t.to_arrow().num_rows == 2000
    t = lakehouse.write(str(tmp_path / "t"), data.filter(pa.compute.equal(data["p"], "a")),
                        mode="overwrite", where="p = 'a'", progress=True)
    assert t.version == 2 and t.to_arrow().num_rows == 1500


# ------------------------------------------------------------------------------- bad locations
@pytest.mark.parametrize("mode", ["append", "error", "overwrite"])
def test_non_table_directory_with_files_is_refused(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    pq.write_table(PEOPLE, root / "existing.parquet")
    (root / "notes.txt").write_text("hello")
    before = listing(str(root))
    with pytest.raises(TableNotFoundError, match="not a Delta table") as err:
        lakehouse.write(str(root), PEOPLE, mode=mode)  # type: ignore[arg-type]
    assert "existing.parquet" in str(err.value) or "notes.txt" in str(err.value)
    assert listing(str(root)) == before
    assert not (root / "_delta_log").exists()
    with pytest.raises(TableNotFoundError):
        Table.open(str(root))


def test_empty_directory_and_missing_path_are_fine(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert lakehouse.write(str(tmp_path / "empty"), PEOPLE, mode="append").version == 0
    assert lakehouse.write(str(tmp_path / "a" / "b" / "c"), PEOPLE).version == 0


def test_invalid_arguments(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    with pytest.raises(InvalidArgumentError, match="mode must be one of"):
        lakehouse.write(uri, PEOPLE, mode="upsert")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="only valid with mode='overwrite'"):
        lakehouse.write(uri, PEOPLE, mode="append", where="id = 1")
    with pytest.raises(InvalidArgumentError, match="requires mode='overwrite'"):
        lakehouse.write(uri, PEOPLE, mode="append", schema_mode="overwrite")
    with pytest.raises(SchemaMismatchError, match="partition column"):
        lakehouse.write(uri, PEOPLE, partition_by="nope")
    with pytest.raises(InvalidArgumentError, match="every column is a partition column"):
        lakehouse.write(uri, PEOPLE.select(["name"]), partition_by="name")
    assert listing(uri) == {}
    lakehouse.write(uri, PEOPLE, partition_by="name")
    with pytest.raises(SchemaMismatchError, match="does not match the table's partition"):
        lakehouse.write(uri, PEOPLE, mode="append", partition_by="id")


def test_refuses_table_with_unknown_writer_feature(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    lakehouse.write(uri, PEOPLE)
    storage = Storage.for_uri(uri)
    protocol = {"protocol": {"minReaderVersion": 1, "minWriterVersion": 7,
                             "writerFeatures": ["appendOnly", "someFutureFeature"]}}
    info = {"commitInfo": {"timestamp": int(time.time() * 1000), "operation": "UPGRADE PROTOCOL"}}
    storage.put_if_absent("_delta_log/00000000000000000001.json",
                          (json.dumps(info) + "\n" + json.dumps(protocol) + "\n").encode())
    before = listing(uri)
    with pytest.raises(UnsupportedFeatureError, match="someFutureFeature") as err:
        lakehouse.write(uri, PEOPLE, mode="append")
    assert err.value.feature == "someFutureFeature"
    assert listing(uri) == before  # no data files left behind either
    assert Table.open(uri).to_arrow().num_rows == 3  # still readable


# -------------------------------------------------------------------------------- replaceWhere
def _sales() -> pa.Table:
    return pa.table({
        "day": ["d1", "d1", "d2", "d2", "d3"],
        "id": pa.array([1, 2, 3, 4, 5], pa.int64()),
        "amount": pa.array([10, 20, 30, 40, 50], pa.int64()),
    })


def test_replace_where_partition_predicate(tmp_path: Path, engine: Engine) -> None:
    uri = str(tmp_path / "t")
    t = lakehouse.write(uri, _sales(), partition_by="day", engine=engine)
    kept = {p for p in t.files()["path"].to_pylist() if not p.startswith("day=d2/")}
    new = pa.table({"day": ["d2"], "id": pa.array([33], pa.int64()),
                    "amount": pa.array([300], pa.int64())})
    t.overwrite(new, where="day = 'd2'")
    assert t.version == 1
    assert sorted(t.to_arrow()["id"].to_pylist()) == [1, 2, 5, 33]
    assert kept <= set(t.files()["path"].to_pylist())  # other partitions untouched
    acts = commit_actions(uri, 1)
    removed = [a["remove"]["path"] for a in acts if "remove" in a]
    assert removed and all(p.startswith("day=d2/") for p in removed)
    info = acts[0]["commitInfo"]
    assert info["operationParameters"]["predicate"] == "day = 'd2'"
    assert info["operationParameters"]["mode"] == "Overwrite"


def test_replace_where_data_predicate_rewrites_partial_files(tmp_path: Path,
                                                             engine: Engine) -> None:
    uri = str(tmp_path / "t")
    t = lakehouse.write(uri, _sales(), engine=engine)  # one file holding every row
    new = pa.table({"day": ["dx"], "id": pa.array([100], pa.int64()),
                    "amount": pa.array([35], pa.int64())})
    t.overwrite(new, where="amount >= 30 and amount < 45")
    assert sorted(t.to_arrow()["id"].to_pylist()) == [1, 2, 5, 100]
    assert t.history(1)[0]["operationMetrics"]["numDeletedRows"] == 2


def test_replace_where_rows_outside_predicate_are_refused(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    t = lakehouse.write(uri, _sales(), partition_by="day")
    before = listing(uri)
    stray = pa.table({"day": ["d1", "d9"], "id": pa.array([7, 8], pa.int64()),
                      "amount": pa.array([1, 2], pa.int64())})
    with pytest.raises(ConstraintViolationError, match="do not match where"):
        t.overwrite(stray, where="day = 'd1'")
    assert listing(uri) == before and Table.open(uri).version == 0
    with pytest.raises(InvalidArgumentError):
        t.overwrite(stray, where="no_such_column = 1")
    # A data predicate rewrites partially matching files before writing: those copies go too.
    stray = stray.set_column(2, "amount", pa.array([1, 99], pa.int64()))
    with pytest.raises(ConstraintViolationError, match="do not match where"):
        t.overwrite(stray, where="amount < 15")
    assert listing(uri) == before and Table.open(uri).version == 0


def test_overwrite_empty_data_clears_table(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    t = lakehouse.write(uri, _sales())
    t.overwrite(_sales().slice(0, 0))
    assert t.version == 1 and t.to_arrow().num_rows == 0 and t.files().num_rows == 0
    assert Table.open(uri, version=0).to_arrow().num_rows == 5


def test_target_file_size_and_stats(tmp_path: Path) -> None:
    n = 200_000
    data = pa.table({"id": pa.array(range(n), pa.int64()),
                     "s": pa.array([f"value-{i:08d}" for i in range(n)])})
    t = lakehouse.write(str(tmp_path / "t"), data, target_file_size=512 * 1024)
    files = t.files()
    assert files.num_rows > 1
    stats = [json.loads(s) for s in files["stats"].to_pylist()]
    assert sum(s["numRecords"] for s in stats) == n
    assert all(set(s) >= {"numRecords", "minValues", "maxValues", "nullCount"} for s in stats)
    lo = min(s["minValues"]["id"] for s in stats)
    hi = max(s["maxValues"]["id"] for s in stats)
    assert (lo, hi) == (0, n - 1)
    paths = files["path"].to_pylist()
    assert len(set(paths)) == len(paths)
    assert t.to_arrow(filter="id = 123456").num_rows == 1


def test_count_matches_written_rows(tmp_path: Path) -> None:
    """``Table.count()`` after writes (reads no column: the row count must still be right)."""
    t = lakehouse.write(str(tmp_path / "t"), PEOPLE)
    t.append(PEOPLE)
    assert t.to_arrow(columns=[]).num_rows == 6
    assert t.count() == 6
    assert t.count("id > 1") == 4
