"""``t.alter``: column mapping renames/drops, added columns, properties and CHECK constraints.

Metadata-only changes: the data files must be untouched, old versions keep their old schema,
and every change is one commit with Delta's operation name.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import lakehouse
from lakehouse import Table
from lakehouse.errors import ConstraintViolationError, InvalidArgumentError, SchemaMismatchError
from tests.ops._util import commit_actions, listing, rows

CM = {"delta.columnMapping.mode": "name"}


def _cm_table(uri: str, properties: dict[str, str] = CM) -> Table:
    data = pa.table({
        "a": pa.array([1, 2, 3], pa.int64()),
        "c": ["x", "y", "z"],
        "p": ["k", "k", "l"],
        "s": pa.array([{"x": 1, "y": 2}, {"x": 3, "y": 4}, None],
                      pa.struct([("x", pa.int64()), ("y", pa.int64())])),
    })
    return lakehouse.write(uri, data, partition_by="p", properties=properties)


def test_column_mapping_alter_sequence(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    t = _cm_table(uri)
    assert (t.protocol.min_reader_version, t.protocol.min_writer_version) == (2, 5)
    data_files = set(t.files()["path"].to_pylist())

    t.alter.rename_column("a", "b")
    t.alter.drop_column("c")
    t.alter.add_columns(pa.schema([pa.field("d", pa.float64()), pa.field("s.z", pa.string())]))
    t.alter.set_properties({"owner": "team-x", "delta.appendOnly": False})
    t.alter.add_constraint("b_pos", "b > 0")
    t.alter.rename_column("s.x", "xx")
    t.alter.rename_column("p", "part")
    assert t.version == 7
    assert set(t.files()["path"].to_pylist()) == data_files  # no data rewritten
    assert t.schema.names == ["b", "part", "s", "d"]
    assert t.partition_columns == ["part"]
    assert t.properties["owner"] == "team-x" and t.properties["delta.appendOnly"] == "false"
    assert t.properties["delta.constraints.b_pos"] == "b > 0"
    assert rows(t.to_arrow()) == [
        {"b": 1, "part": "k", "s": {"xx": 1, "y": 2, "z": None}, "d": None},
        {"b": 2, "part": "k", "s": {"xx": 3, "y": 4, "z": None}, "d": None},
        {"b": 3, "part": "l", "s": None, "d": None},
    ]
    assert [h["operation"] for h in t.history()] == [
        "RENAME COLUMN", "RENAME COLUMN", "ADD CONSTRAINT", "SET TBLPROPERTIES", "ADD COLUMNS",
        "DROP COLUMNS", "RENAME COLUMN", "WRITE"]
    params = t.history()[-2]["operationParameters"]
    assert params == {"oldColumnPath": "a", "newColumnPath": "b"}
    # every alter commit is metadata only
    for v in range(1, 8):
        kinds = {next(iter(a)) for a in commit_actions(uri, v)}
        assert kinds <= {"commitInfo", "metaData", "protocol"}, (v, kinds)

    # writes use the new names; the old ones are gone
    t.append(pa.table({"b": pa.array([4], pa.int64()), "part": ["m"], "d": [0.5]}))
    assert t.to_arrow(filter="part = 'm'")["b"].to_pylist() == [4]
    with pytest.raises(SchemaMismatchError, match="'a'"):
        t.append(pa.table({"a": pa.array([5], pa.int64()), "part": ["m"]}))
    with pytest.raises(ConstraintViolationError, match="b_pos"):
        t.append(pa.table({"b": pa.array([-1], pa.int64()), "part": ["m"]}))
    # time travel still sees the old schema
    v0 = Table.open(uri, version=0)
    assert v0.schema.names == ["a", "c", "p", "s"]
    assert sorted(v0.to_arrow()["c"].to_pylist()) == ["x", "y", "z"]
    # a dropped column's name can be reused: it is a new column, not the old data
    t.alter.add_columns(pa.field("c", pa.string()))
    assert set(t.to_arrow()["c"].to_pylist()) == {None}


def test_rename_and_drop_need_column_mapping(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    t = lakehouse.write(uri, pa.table({"a": [1], "b": [2]}))
    for call in (lambda: t.alter.rename_column("a", "z"), lambda: t.alter.drop_column("b")):
        with pytest.raises(InvalidArgumentError, match=r"delta\.columnMapping\.mode") as err:
            call()
        assert "set_properties" in str(err.value)
    assert Table.open(uri).version == 0

    # enabling it in place: existing files keep their names as physical names
    t.alter.set_properties(CM)
    assert (t.protocol.min_reader_version, t.protocol.min_writer_version) == (2, 5)
    phys = {f.name: f.metadata["delta.columnMapping.physicalName"] for f in t.snapshot.schema}
    assert phys == {"a": "a", "b": "b"}
    t.alter.rename_column("a", "z").alter.drop_column("b")
    assert t.to_arrow().to_pydict() == {"z": [1]}
    t.append(pa.table({"z": [2]}))
    assert sorted(t.to_arrow()["z"].to_pylist()) == [1, 2]
    with pytest.raises(InvalidArgumentError, match="cannot change"):
        t.alter.set_properties({"delta.columnMapping.mode": "none"})


def test_refused_alters_leave_table_unchanged(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    t = _cm_table(uri, properties={**CM, "delta.constraints.a_pos": "a > 0"})
    before = listing(uri)
    cases = [
        (lambda: t.alter.rename_column("a", "C"), "already exists"),   # case-insensitive clash
        (lambda: t.alter.rename_column("nope", "x"), "no column"),
        (lambda: t.alter.rename_column("a", "x"), "a_pos"),            # used by a constraint
        (lambda: t.alter.drop_column("a"), "a_pos"),
        (lambda: t.alter.drop_column("p"), "partition column"),
        (lambda: t.alter.drop_columns(["a", "c", "s"]), "a_pos"),
        (lambda: t.alter.add_columns(pa.field("n", pa.int64(), nullable=False)), "NOT NULL"),
        (lambda: t.alter.add_columns(pa.field("C", pa.int64())), "already exists"),
        (lambda: t.alter.add_columns(pa.field(
            "g", pa.int64(), metadata={"delta.generationExpression": "a"})), "generated"),
        (lambda: t.alter.set_properties({"delta.constraints.x": "a > 1"}), "add_constraint"),
        (lambda: t.alter.set_properties({"delta.minWriterVersion": "7"}), "protocol"),
        (lambda: t.alter.set_properties({"delta.appendOnly": "maybe"}), "true or false"),
        (lambda: t.alter.add_constraint("a_pos", "a > 1"), "already exists"),
        (lambda: t.alter.add_constraint("bad", "zzz > 1"), "unknown column"),
        (lambda: t.alter.add_constraint("notbool", "a + 1"), "not boolean"),
        (lambda: t.alter.drop_constraint("nope"), "no constraint"),
        (lambda: t.alter.unset_properties(["nope"]), "if_exists"),
    ]
    for call, match in cases:
        with pytest.raises(InvalidArgumentError, match=match):
            call()
    assert listing(uri) == before and Table.open(uri).version == 0 == t.version


def test_drop_only_struct_field_and_last_column(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    t = lakehouse.write(uri, pa.table({"a": [1], "s": pa.array([{"x": 1}])}), properties=CM)
    with pytest.raises(InvalidArgumentError, match="only column of struct"):
        t.alter.drop_column("s.x")
    t.alter.drop_column("s")
    with pytest.raises(InvalidArgumentError, match="only column"):
        t.alter.drop_column("a")
    assert t.to_arrow().to_pydict() == {"a": [1]}


def test_add_columns_without_column_mapping(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    t = lakehouse.write(uri, pa.table({"a": [1]}))
    t.alter.add_columns([pa.field("b", pa.string()), pa.field("c", pa.list_(pa.int32()))])
    assert t.schema.names == ["a", "b", "c"]
    assert (t.protocol.min_reader_version, t.protocol.min_writer_version) == (1, 2)
    t.append(pa.table({"a": [2], "b": ["x"], "c": pa.array([[1, 2]], pa.list_(pa.int32()))}))
    assert rows(t.to_arrow()) == [{"a": 1, "b": None, "c": None}, {"a": 2, "b": "x", "c": [1, 2]}]


def test_add_constraint_validates_existing_rows(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    t = lakehouse.write(uri, pa.table({"v": pa.array([1, 5, None], pa.int64()),
                                       "p": ["a", "b", "b"]}), partition_by="p")
    before = listing(uri)
    with pytest.raises(ConstraintViolationError, match="2 existing row"):
        t.alter.add_constraint("small", "v < 3")  # 5 fails, and NULL does not satisfy it
    assert listing(uri) == before and Table.open(uri).version == 0
    t.alter.add_constraint("Small_Or_Null", "v is null or v < 10")
    assert t.properties["delta.constraints.small_or_null"] == "v is null or v < 10"
    assert t.protocol.min_writer_version >= 3
    assert t.history(1)[0]["operationParameters"] == {"name": "Small_Or_Null",
                                                      "expr": "v is null or v < 10"}
    with pytest.raises(ConstraintViolationError, match="small_or_null"):
        t.append(pa.table({"v": pa.array([11], pa.int64()), "p": ["c"]}))
    t.alter.drop_constraint("SMALL_OR_NULL")
    t.append(pa.table({"v": pa.array([11], pa.int64()), "p": ["c"]}))
    assert t.history(2)[1]["operation"] == "DROP CONSTRAINT"
    assert "delta.constraints.small_or_null" not in t.properties


def test_set_and_unset_properties(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    t = lakehouse.write(uri, pa.table({"a": [1]}))
    t.alter.set_properties({"delta.appendOnly": "true", "team": "data"})
    assert t.protocol.min_writer_version >= 2
    with pytest.raises(InvalidArgumentError, match="append-only"):
        t.overwrite(pa.table({"a": [2]}))
    t.append(pa.table({"a": [3]}))
    t.alter.unset_properties(["delta.appendOnly", "missing"], if_exists=True)
    assert "delta.appendOnly" not in t.properties and t.properties["team"] == "data"
    t.overwrite(pa.table({"a": [2]}))
    assert t.to_arrow().to_pydict() == {"a": [2]}
    t.alter.set_properties({"delta.enableDeletionVectors": "true"})
    assert t.protocol.min_reader_version == 3 and t.protocol.min_writer_version == 7
    assert t.protocol.has_reader_feature("deletionVectors")
    assert t.protocol.has_writer_feature("appendOnly")  # legacy features carried over


def test_alter_on_time_travelled_handle_is_refused(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    _cm_table(uri)
    with pytest.raises(InvalidArgumentError, match="read-only"):
        Table.open(uri, version=0).alter.rename_column("a", "b")
