"""MERGE semantics: the seed workload, every clause kind, first-match-wins, cardinality, NULL
keys, casts, schema evolution, the forms of ``on``, metrics and history."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

import lakehouse
from lakehouse.errors import (
    InvalidArgumentError,
    MergeCardinalityError,
    SchemaMismatchError,
)
from lakehouse.table import Table
from tests.merge.helpers import rows

DV = {"delta.enableDeletionVectors": "true"}


def _people(uri: str, **kw: object) -> Table:
    return lakehouse.write(uri, pa.table({"id": [1, 2, 3, 4], "name": ["a", "b", "c", "d"],
                                          "n": [10, 20, 30, 40]}), **kw)  # type: ignore[arg-type]


def test_seed_workload_upsert_then_time_travel(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    _people(uri)
    updates = pa.table({"id": [3, 4, 5], "name": ["C", "D", "E"], "n": [33, 44, 55]})
    metrics = (Table.open(uri).merge(updates, "target.id = source.id")
               .when_matched_update_all().when_not_matched_insert_all().execute())
    assert (metrics.num_target_rows_updated, metrics.num_target_rows_inserted,
            metrics.num_target_rows_deleted, metrics.num_source_rows) == (2, 1, 0, 3)
    assert metrics.version == 1
    assert rows(Table.open(uri)) == [
        {"id": 1, "name": "a", "n": 10}, {"id": 2, "name": "b", "n": 20},
        {"id": 3, "name": "C", "n": 33}, {"id": 4, "name": "D", "n": 44},
        {"id": 5, "name": "E", "n": 55}]
    before = Table.open(uri, version=0)
    assert rows(before) == [{"id": i, "name": c, "n": i * 10}
                            for i, c in zip(range(1, 5), "abcd", strict=True)]
    h = Table.open(uri).history(1)[0]
    assert h["operation"] == "MERGE"
    assert h["operationParameters"]["predicate"] == "target.id = source.id"
    m = h["operationMetrics"]
    assert (m["numTargetRowsUpdated"], m["numTargetRowsInserted"], m["numSourceRows"],
            m["numTargetRowsCopied"], m["numOutputRows"]) == (2, 1, 3, 2, 5)


def test_time_travelled_handle_cannot_merge() -> None:
    _people("memory://merge-pinned")
    old = Table.open("memory://merge-pinned", version=0)
    with pytest.raises(InvalidArgumentError, match="read-only"):
        old.merge(pa.table({"id": [1]}), "id").when_matched_delete().execute()


@pytest.mark.parametrize("props", [{}, DV], ids=["cow", "dv"])
def test_each_clause_kind_and_first_match_wins(props: dict[str, str]) -> None:
    uri = f"memory://merge-clauses-{bool(props)}"
    t = _people(uri, properties=props)
    source = pa.table({"id": [1, 2, 3, 7, 8], "name": ["x", "y", "z", "q", "r"],
                       "n": [1, 2, 3, 7, 8], "op": ["del", "upd", "upd2", "ins", "skip"]})
    m = (t.merge(source, "target.id = source.id")
         .when_matched_delete(condition="source.op = 'del'")
         .when_matched_update(set={"name": "source.name"}, condition="source.op = 'upd'")
         .when_matched_update(set={"n": "target.n + source.n"})
         .when_not_matched_insert(values={"id": "source.id", "name": "upper(source.name)"},
                                  condition="source.op = 'ins'")
         .when_not_matched_by_source_update(set={"name": "'orphan'"}, condition="target.n > 35")
         .when_not_matched_by_source_delete()
         .execute())
    assert rows(t) == [
        {"id": 2, "name": "y", "n": 20},      # matched, second clause (first match wins)
        {"id": 3, "name": "c", "n": 33},      # matched, third clause: n = target.n + source.n
        {"id": 4, "name": "orphan", "n": 40},  # not matched by source, condition true
        {"id": 7, "name": "Q", "n": None},     # inserted, unassigned column NULL
    ]
    assert (m.num_target_rows_matched_deleted, m.num_target_rows_matched_updated,
            m.num_target_rows_not_matched_by_source_updated,
            m.num_target_rows_not_matched_by_source_deleted,
            m.num_target_rows_inserted) == (1, 2, 1, 0, 1)
    assert m.num_target_rows_deleted == 1 and m.num_target_rows_updated == 3


def test_matched_row_with_no_applying_clause_is_unchanged() -> None:
    t = _people("memory://merge-noclause")
    m = (t.merge(pa.table({"id": [1, 2], "flag": [True, False]}), "target.id = source.id")
         .when_matched_update(set={"name": "'hit'"}, condition="source.flag").execute())
    assert m.num_target_rows_updated == 1
    assert [r["name"] for r in rows(t)] == ["hit", "b", "c", "d"]


def test_matched_source_row_is_never_inserted() -> None:
    t = _people("memory://merge-noinsert")
    m = (t.merge(pa.table({"id": [1, 9], "name": ["x", "y"], "n": [0, 0]}), "id")
         .when_matched_update(set={"name": "'x'"}, condition="false")
         .when_not_matched_insert_all().execute())
    assert m.num_target_rows_inserted == 1 and m.num_target_rows_updated == 0
    assert [r["id"] for r in rows(t)] == [1, 2, 3, 4, 9]


@pytest.mark.parametrize("props", [{}, DV], ids=["cow", "dv"])
def test_several_source_rows_matching_one_target_row(props: dict[str, str]) -> None:
    uri = f"memory://merge-card-{bool(props)}"
    t = _people(uri, properties=props)
    dup = pa.table({"id": [2, 2, 3], "name": ["x", "y", "z"], "n": [1, 2, 3]})
    with pytest.raises(MergeCardinalityError, match="1 target row"):
        t.merge(dup, "target.id = source.id").when_matched_update_all().execute()
    assert t.version == 0 and Table.open(uri).version == 0
    # Only one of the duplicates satisfies the clause condition: not ambiguous.
    m = (t.merge(dup, "target.id = source.id")
         .when_matched_update(set={"name": "source.name"}, condition="source.name <> 'x'")
         .execute())
    assert m.num_target_rows_updated == 2
    assert [r["name"] for r in rows(t)] == ["a", "y", "z", "d"]
    # A single unconditional delete clause may match many times (Delta's exception).
    m = t.merge(dup, "target.id = source.id").when_matched_delete().execute()
    assert m.num_target_rows_deleted == 2
    assert [r["id"] for r in rows(t)] == [1, 4]
    # Duplicates that only feed inserts are fine.
    m = t.merge(pa.table({"id": [9, 9], "name": ["p", "q"], "n": [0, 0]}), "id") \
        .when_not_matched_insert_all().execute()
    assert m.num_target_rows_inserted == 2


def test_null_keys_never_match() -> None:
    t = lakehouse.write("memory://merge-nulls",
                        pa.table({"id": pa.array([1, None], pa.int64()), "v": ["a", "null-key"]}))
    source = pa.table({"id": pa.array([None, 1], pa.int64()), "v": ["from-null", "one"]})
    m = (t.merge(source, "target.id = source.id").when_matched_update_all()
         .when_not_matched_insert_all().when_not_matched_by_source_update(set={"v": "'unmatched'"})
         .execute())
    assert (m.num_target_rows_updated, m.num_target_rows_inserted,
            m.num_target_rows_not_matched_by_source_updated) == (2, 1, 1)
    assert rows(t) == [{"id": None, "v": "from-null"}, {"id": None, "v": "unmatched"},
                       {"id": 1, "v": "one"}]


def test_null_safe_equality_in_residual_matches_nulls() -> None:
    t = lakehouse.write("memory://merge-nullsafe",
                        pa.table({"id": pa.array([1, None], pa.int64()), "v": ["a", "b"]}))
    (t.merge(pa.table({"id": pa.array([None], pa.int64()), "v": ["N"]}), "target.id <=> source.id")
     .when_matched_update_all().execute())
    assert rows(t) == [{"id": None, "v": "N"}, {"id": 1, "v": "a"}]


def test_values_cast_to_target_types_and_lossy_casts_fail() -> None:
    t = lakehouse.write("memory://merge-cast", pa.table({
        "id": pa.array([1, 2], pa.int32()), "small": pa.array([1, 2], pa.int16()),
        "f": pa.array([1.0, 2.0], pa.float64())}))
    ok = pa.table({"id": pa.array([2, 3], pa.int64()), "small": pa.array([7, 8], pa.int64()),
                   "f": pa.array([5, 6], pa.int32())})
    t.merge(ok, "id").when_matched_update_all().when_not_matched_insert_all().execute()
    assert t.schema.field("small").type == pa.int16()
    assert rows(t) == [{"id": 1, "small": 1, "f": 1.0}, {"id": 2, "small": 7, "f": 5.0},
                       {"id": 3, "small": 8, "f": 6.0}]
    overflow = pa.table({"id": pa.array([1], pa.int64()), "small": pa.array([70_000], pa.int64()),
                         "f": pa.array([1.0])})
    with pytest.raises(SchemaMismatchError, match="small"):
        t.merge(overflow, "id").when_matched_update_all().execute()
    with pytest.raises(SchemaMismatchError, match="small"):
        t.merge(overflow, "id").when_matched_update(set={"small": "source.f + 0.5"}).execute()
    assert t.version == 1


def test_schema_evolution_adds_source_columns() -> None:
    t = _people("memory://merge-evolve")
    source = pa.table({"id": [4, 5], "name": ["D", "E"], "n": [0, 0],
                       "extra": ["x4", "x5"], "score": [1.5, 2.5]})
    with pytest.raises(InvalidArgumentError, match="schema_evolution"):
        t.merge(source, "id").when_matched_update(set={"extra": "source.extra"}).execute()
    # Without evolution, extra source columns are ignored by *.
    t.merge(source.slice(0, 1), "id").when_matched_update_all().execute()
    assert t.schema.names == ["id", "name", "n"]
    m = (t.merge(source, "id", schema_evolution=True).when_matched_update_all()
         .when_not_matched_insert_all().execute())
    assert t.schema.names == ["id", "name", "n", "extra", "score"]
    assert m.num_target_rows_updated == 1 and m.num_target_rows_inserted == 1
    got = {r["id"]: (r["extra"], r["score"]) for r in rows(t)}
    assert got == {1: (None, None), 2: (None, None), 3: (None, None), 4: ("x4", 1.5),
                   5: ("x5", 2.5)}
    assert Table.open("memory://merge-evolve", version=0).schema.names == ["id", "name", "n"]


def test_schema_evolution_explicit_assignment_and_column_mapping() -> None:
    t = _people("memory://merge-evolve-cm", properties={"delta.columnMapping.mode": "name"})
    src = pa.table({"id": [1], "tag": ["t1"]})
    (t.merge(src, "id", schema_evolution=True).when_matched_update(set={"tag": "source.tag"})
     .execute())
    assert t.schema.names == ["id", "name", "n", "tag"]
    assert int(t.properties["delta.columnMapping.maxColumnId"]) == 4
    assert [r["tag"] for r in rows(t)] == ["t1", None, None, None]


def test_star_without_evolution_needs_every_target_column() -> None:
    t = _people("memory://merge-star")
    with pytest.raises(InvalidArgumentError, match="'n'"):
        t.merge(pa.table({"id": [1], "name": ["x"]}), "id").when_matched_update_all().execute()
    m = (t.merge(pa.table({"id": [1], "name": ["x"]}), "id")
         .when_matched_update_all(except_columns=["n"]).execute())
    assert m.num_target_rows_updated == 1
    assert rows(t)[0] == {"id": 1, "name": "x", "n": 10}
    (t.merge(pa.table({"id": [1, 6], "name": ["y", "z"], "n": [0, 60]}), "id")
     .when_not_matched_insert_all(except_columns="name").execute())
    assert rows(t)[-1] == {"id": 6, "name": None, "n": 60}


@pytest.mark.parametrize("on", ["id", ["id"], "target.id = source.id", "source.id = target.id",
                                "t.id = s.id AND s.keep"])
def test_forms_of_on(on: str | list[str]) -> None:
    uri = f"memory://merge-on-{abs(hash(str(on)))}"
    t = _people(uri)
    aliases = {"source_alias": "s", "target_alias": "t"} if on == "t.id = s.id AND s.keep" else {}
    src = pa.table({"id": [2, 3], "name": ["B", "C"], "n": [0, 0], "keep": [True, True]})
    alias = aliases.get("source_alias", "source")
    m = t.merge(src, on, **aliases).when_matched_update(set={"name": f"{alias}.name"}).execute()
    assert m.num_target_rows_updated == 2
    assert [r["name"] for r in rows(t)] == ["a", "B", "C", "d"]


def test_composite_keys_and_expression_keys() -> None:
    t = lakehouse.write("memory://merge-composite",
                        pa.table({"a": [1, 1, 2], "b": ["x", "y", "x"], "v": [0, 0, 0]}))
    (t.merge(pa.table({"a": [1, 2], "b": ["y", "y"], "v": [5, 6]}), ["a", "b"])
     .when_matched_update_all().when_not_matched_insert_all().execute())
    assert rows(t, "a") == [{"a": 1, "b": "x", "v": 0}, {"a": 1, "b": "y", "v": 5},
                            {"a": 2, "b": "x", "v": 0}, {"a": 2, "b": "y", "v": 6}]
    (t.merge(pa.table({"k": [0]}), "target.a = source.k + 1 AND target.b = 'x'")
     .when_matched_update(set={"v": "99"}).execute())
    assert [r["v"] for r in rows(t, "a")] == [99, 5, 0, 6]


def test_unqualified_names_resolve_or_are_ambiguous() -> None:
    t = _people("memory://merge-names")
    src = pa.table({"id": [1], "other": ["o"]})
    with pytest.raises(InvalidArgumentError, match="ambiguous"):
        t.merge(src, "target.id = source.id").when_matched_update(set={"name": "id"}).execute()
    t.merge(src, "target.id = source.id").when_matched_update(
        set={"name": "other || name"}).execute()
    assert rows(t)[0]["name"] == "oa"
    with pytest.raises(InvalidArgumentError, match="only use"):
        t.merge(src, "id").when_not_matched_insert(values={"id": "target.id"}).execute()
    with pytest.raises(InvalidArgumentError, match="only use"):
        t.merge(src, "id").when_not_matched_by_source_delete(condition="source.id > 1").execute()
    with pytest.raises(InvalidArgumentError, match="unknown column"):
        t.merge(src, "id").when_matched_update(set={"name": "nope"}).execute()


def test_polars_expressions_as_conditions_and_values() -> None:
    t = _people("memory://merge-polars")
    src = pl.DataFrame({"id": [1, 2, 9], "name": ["x", "y", "z"], "n": [5, 6, 7]})
    (t.merge(src, "id")
     .when_matched_update(set={"n": pl.col("target.n") * 100 + pl.col("source.n")},
                          condition=pl.col("source.name") == "y")
     .when_not_matched_insert(values={"id": pl.col("id"), "name": pl.lit("new")})
     .execute())
    assert rows(t) == [{"id": 1, "name": "a", "n": 10}, {"id": 2, "name": "b", "n": 2006},
                       {"id": 3, "name": "c", "n": 30}, {"id": 4, "name": "d", "n": 40},
                       {"id": 9, "name": "new", "n": None}]


def test_builder_is_immutable_and_validates_clause_order() -> None:
    t = _people("memory://merge-builder")
    base = t.merge(pa.table({"id": [1]}), "id")
    a = base.when_matched_delete()
    assert base.clauses == () and len(a.clauses) == 1
    with pytest.raises(InvalidArgumentError, match="only the last"):
        a.when_matched_update(set={"n": "1"})
    with pytest.raises(InvalidArgumentError, match="at least one"):
        base.execute()
    with pytest.raises(InvalidArgumentError, match="differ"):
        t.merge(pa.table({"id": [1]}), "id", source_alias="x", target_alias="X")


def test_partitioned_target_update_moves_rows_between_partitions(tmp_path: Path) -> None:
    uri = str(tmp_path / "p")
    t = lakehouse.write(uri, pa.table({"id": [1, 2, 3], "part": ["a", "a", "b"]}),
                        partition_by=["part"])
    m = (t.merge(pa.table({"id": [2], "part": ["b"]}), "id").when_matched_update_all().execute())
    assert m.num_target_files_removed == 1 and m.num_target_rows_copied == 1
    assert rows(t) == [{"id": 1, "part": "a"}, {"id": 2, "part": "b"}, {"id": 3, "part": "b"}]
    assert rows(t.to_arrow(filter="part = 'b'")) == [{"id": 2, "part": "b"},
                                                    {"id": 3, "part": "b"}]


def test_generated_and_check_constraints_hold(tmp_path: Path) -> None:
    uri = str(tmp_path / "c")
    lakehouse.write(uri, pa.table({"id": [1, 2], "n": [1, 2]}),
                    properties={"delta.constraints.positive": "n > 0"})
    t = Table.open(uri)
    from lakehouse.errors import ConstraintViolationError

    with pytest.raises(ConstraintViolationError, match="positive"):
        t.merge(pa.table({"id": [1], "n": [-5]}), "id").when_matched_update_all().execute()
    assert rows(t) == [{"id": 1, "n": 1}, {"id": 2, "n": 2}]


def test_empty_source_and_empty_target() -> None:
    t = _people("memory://merge-empty")
    empty = pa.table({"id": pa.array([], pa.int64()), "name": pa.array([], pa.string()),
                      "n": pa.array([], pa.int64())})
    m = t.merge(empty, "id").when_matched_delete().when_not_matched_insert_all().execute()
    assert m.num_target_files_scanned == 0 and m.num_output_rows == 0
    m = t.merge(empty, "id").when_not_matched_by_source_delete("target.id > 2").execute()
    assert m.num_target_rows_deleted == 2
    e = Table.create("memory://merge-empty-target", empty.schema)
    m = e.merge(pa.table({"id": [1], "name": ["x"], "n": [1]}), "id") \
        .when_matched_update_all().when_not_matched_insert_all().execute()
    assert m.num_target_rows_inserted == 1 and rows(e) == [{"id": 1, "name": "x", "n": 1}]


def test_many_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    import lakehouse.merge.files as files

    monkeypatch.setattr(files, "BATCH_FILES", 2)
    import lakehouse.merge.executor as executor

    sizes: list[int] = []
    real = executor.read_batch

    def spy(snap, batch_files, columns):  # type: ignore[no-untyped-def]
        sizes.append(batch_files.num_rows)
        return real(snap, batch_files, columns)

    monkeypatch.setattr(executor, "read_batch", spy)
    t = lakehouse.write("memory://merge-batches", pa.table({"id": list(range(10)), "v": [0] * 10}))
    for i in range(1, 5):
        t.append(pa.table({"id": list(range(i * 10, i * 10 + 10)), "v": [0] * 10}))
    src = pa.table({"id": [5, 15, 25, 35, 45, 99], "v": [1] * 6})
    m = t.merge(src, "id").when_matched_update_all().when_not_matched_insert_all() \
        .when_not_matched_by_source_delete("target.id % 10 = 0").execute()
    assert (m.num_target_rows_updated, m.num_target_rows_inserted,
            m.num_target_rows_deleted) == (5, 1, 5)
    got = rows(t)
    assert len(got) == 46 and sum(r["v"] for r in got) == 6
    assert sizes and max(sizes) <= 2 and len(sizes) >= 3
    dup = pa.table({"id": [45, 45], "v": [1, 2]})
    with pytest.raises(MergeCardinalityError):
        t.merge(dup, "id").when_matched_update_all().execute()


def test_merge_that_changes_nothing_makes_no_commit() -> None:
    t = _people("memory://merge-noop")
    m = t.merge(pa.table({"id": [1]}), "id").when_matched_update(
        set={"n": "0"}, condition="false").execute()
    assert m.version == 0 and t.version == 0 and len(t.history()) == 1
    with pytest.raises(InvalidArgumentError, match="on="):
        t.merge(pa.table({"id": [1]}), pl.col("id"))  # type: ignore[arg-type]
