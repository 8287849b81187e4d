"""UPDATE and DELETE, copy-on-write and with deletion vectors: results, what was read/written,
whole-file removal proven by partition values and statistics."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

import lakehouse
from lakehouse.errors import InvalidArgumentError, SchemaMismatchError
from lakehouse.table import Table
from tests.merge.helpers import rows

MODES = {"cow": {}, "dv": {"delta.enableDeletionVectors": "true"}}


def _table(uri: str, props: dict[str, str], parts: bool = False) -> Table:
    data = pa.table({"id": list(range(20)), "v": [i * 10 for i in range(20)],
                     "p": ["a"] * 10 + ["b"] * 10})
    t = lakehouse.write(uri, data.slice(0, 10), properties=props,
                        partition_by=["p"] if parts else None)
    t.append(data.slice(10, 10))
    return t


@pytest.mark.parametrize("mode", MODES)
def test_update_rows(tmp_path: Path, mode: str) -> None:
    t = _table(str(tmp_path / "t"), MODES[mode])
    m = t.update({"v": "v + 1", "p": "'c'"}, where="id % 5 = 0")
    assert m.num_updated_rows == 4 and m.version == 2
    got = {r["id"]: (r["v"], r["p"]) for r in rows(t)}
    for i in range(20):
        assert got[i] == ((i * 10 + 1, "c") if i % 5 == 0 else (i * 10, "a" if i < 10 else "b"))
    if mode == "dv":
        assert (m.num_copied_rows, m.num_removed_files, m.num_deletion_vectors_added) == (0, 0, 2)
        assert t.files()["deletionVector"].null_count == 1   # the new file of updated rows
    else:
        assert (m.num_copied_rows, m.num_removed_files, m.num_deletion_vectors_added) == (16, 2, 0)
    h = t.history(1)[0]
    assert h["operation"] == "UPDATE" and h["operationMetrics"]["numUpdatedRows"] == 4
    assert rows(Table.open(str(tmp_path / "t"), version=1))[0] == {"id": 0, "v": 0, "p": "a"}


@pytest.mark.parametrize("mode", MODES)
def test_update_all_rows_and_polars_expressions(mode: str) -> None:
    t = _table(f"memory://upd-all-{mode}", MODES[mode])
    m = t.update({"p": "'z'"}, where=pl.col("id") >= 18)
    assert m.num_updated_rows == 2 and m.num_files_skipped == 1
    assert [r["p"] for r in rows(t)][-3:] == ["b", "z", "z"]
    m = t.update({"v": pl.col("v") * 2})
    assert m.num_updated_rows == 20
    assert [r["v"] for r in rows(t)] == [i * 20 for i in range(20)]


def test_update_errors_and_casts() -> None:
    t = lakehouse.write("memory://upd-err", pa.table({"id": [1, 2], "b": pa.array([1, 2], pa.int8())}))
    with pytest.raises(InvalidArgumentError, match="not a column"):
        t.update({"nope": "1"})
    with pytest.raises(InvalidArgumentError, match="unknown column"):
        t.update({"b": "1"}, where="missing > 1")
    with pytest.raises(SchemaMismatchError, match="'b'"):
        t.update({"b": "b + 300"})
    t.update({"b": "b + 100"}, where="id = 1")
    assert rows(t) == [{"id": 1, "b": 101}, {"id": 2, "b": 2}]
    assert t.schema.field("b").type == pa.int8()


def test_update_recomputes_generated_columns(tmp_path: Path) -> None:
    from lakehouse.log.schema import PrimitiveType, StructField, StructType, to_arrow

    schema = StructType((StructField("x", PrimitiveType("long")),
                         StructField("y", PrimitiveType("long"), True,
                                     {"delta.generationExpression": "x * 2"})))
    uri = str(tmp_path / "g")
    t = Table.create(uri, to_arrow(schema))
    t.append(pa.table({"x": [1, 2]}))
    t.update({"x": "x + 10"}, where="x = 1")
    assert rows(t, "x") == [{"x": 2, "y": 4}, {"x": 11, "y": 22}]


@pytest.mark.parametrize("mode", MODES)
def test_delete_rows(tmp_path: Path, mode: str) -> None:
    t = _table(str(tmp_path / "t"), MODES[mode])
    m = t.delete("v >= 50 AND v < 150")
    assert m.num_deleted_rows == 10 and m.num_files_scanned == 2
    assert [r["id"] for r in rows(t)] == [0, 1, 2, 3, 4, 15, 16, 17, 18, 19]
    if mode == "dv":
        assert (m.num_copied_rows, m.num_added_files, m.num_deletion_vectors_added) == (0, 0, 2)
        assert t.files()["deletionVector"].null_count == 0
    else:
        assert (m.num_copied_rows, m.num_added_files, m.num_removed_files) == (10, 1, 2)
    h = t.history(1)[0]
    assert h["operation"] == "DELETE" and h["operationMetrics"]["numDeletedRows"] == 10


@pytest.mark.parametrize("mode", MODES)
def test_delete_whole_partition_and_stats_covered_files_without_reading(
        mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import lakehouse.merge.dml as dml

    reads: list[int] = []
    real = dml.read_batch
    monkeypatch.setattr(dml, "read_batch", lambda s, f, c: reads.append(f.num_rows) or real(s, f, c))
    t = _table(f"memory://del-whole-{mode}", MODES[mode], parts=True)
    m = t.delete("p = 'a'")
    assert (m.num_deleted_rows, m.num_removed_files, m.num_files_scanned) == (10, 1, 0)
    assert reads == []
    t.append(pa.table({"id": [100, 101], "v": [0, 0], "p": ["b", "b"]}))
    m = t.delete("id >= 10 AND id < 100")   # the first b-file lies entirely inside the range
    assert (m.num_deleted_rows, m.num_removed_files, m.num_files_scanned) == (10, 1, 0)
    assert reads == [] and m.num_added_files == 0
    assert [r["id"] for r in rows(t)] == [100, 101]
    m = t.delete()
    assert m.num_deleted_rows == 2 and t.files().num_rows == 0 and t.to_arrow().num_rows == 0


@pytest.mark.parametrize("mode", MODES)
def test_delete_with_nulls_is_not_proven_by_stats(mode: str) -> None:
    t = lakehouse.write(f"memory://del-nulls-{mode}",
                        pa.table({"id": [1, 2, None], "v": [1, 2, 3]}), properties=MODES[mode])
    m = t.delete("id > 0")          # the NULL row does not match and must stay
    assert m.num_deleted_rows == 2 and m.num_files_scanned == 1
    assert rows(t) == [{"id": None, "v": 3}]
    m = t.delete("NOT (id > 5)")    # NOT of NULL is NULL: still stays
    assert m.num_deleted_rows == 0 and rows(t) == [{"id": None, "v": 3}]


def test_deletion_vectors_accumulate_over_operations(tmp_path: Path) -> None:
    t = lakehouse.write(str(tmp_path / "t"), pa.table({"id": list(range(10)), "v": [0] * 10}),
                        properties=MODES["dv"])
    t.delete("id = 1")
    t.update({"v": "5"}, where="id = 2")
    (t.merge(pa.table({"id": [3, 4], "v": [7, 7]}), "id")
     .when_matched_delete("source.id = 4").when_matched_update_all().execute())
    t.delete("id = 9")
    assert rows(t) == [{"id": 0, "v": 0}, {"id": 2, "v": 5}, {"id": 3, "v": 7}] + \
        [{"id": i, "v": 0} for i in range(5, 9)]
    original = [f for f in t.files().to_pylist() if f["deletionVector"]]
    assert len(original) == 1 and original[0]["deletionVector"]["cardinality"] == 5
    assert '"tightBounds":false' in original[0]["stats"]
    m = t.delete("id >= 0")
    assert m.num_deleted_rows == 7 and t.to_arrow().num_rows == 0


def test_update_or_delete_matching_nothing_makes_no_commit() -> None:
    t = _table("memory://dml-noop", {})
    assert t.update({"v": "0"}, where="id > 1000").version == 1
    assert t.delete("v < 0").version == 1 and t.version == 1


def test_delete_rejects_bad_predicate_and_time_travel() -> None:
    t = _table("memory://del-bad", {})
    with pytest.raises(InvalidArgumentError):
        t.delete("id >>> 3")
    with pytest.raises(InvalidArgumentError, match="read-only"):
        Table.open("memory://del-bad", version=0).delete("id = 1")
    assert t.to_arrow().num_rows == 20


def test_append_only_table_refuses_delete() -> None:
    t = lakehouse.write("memory://del-append-only", pa.table({"id": [1]}),
                        properties={"delta.appendOnly": "true"})
    with pytest.raises(InvalidArgumentError, match="append-only"):
        t.delete("id = 1")
