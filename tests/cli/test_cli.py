"""The ``lakehouse`` CLI driven as real subprocesses (``python -m lakehouse.cli``).

Each command runs once, on its own table, and all of them run concurrently from one module
fixture (interpreter start-up dominates); the tests then check exit codes, output and the tables.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

import lakehouse
from lakehouse import Table
from lakehouse.log.snapshot import Snapshot
from lakehouse.maintenance.describe import iso_ms
from tests.maintenance.helpers import commit_infos, data_files, oracle_rows

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


def _table(root: Path) -> Table:
    t = lakehouse.write(str(root), pa.table({"id": [1, 2, 3], "part": ["a", "b", "a"]}),
                        partition_by="part")
    t.append(pa.table({"id": [4, 5], "part": ["b", "a"]}))
    t.overwrite(pa.table({"id": [6], "part": ["b"]}), where="part = 'b'")
    return t


def _run(args: list[str]) -> Run:
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO)}
    p = subprocess.run([sys.executable, "-m", "lakehouse.cli", *args], capture_output=True,
                       text=True, env=env, timeout=300, cwd=REPO)
    return Run(p.returncode, p.stdout, p.stderr)


@dataclass(frozen=True)
class World:
    root: Path
    tables: dict[str, Path]
    runs: dict[str, Run]
    before: dict[str, list[dict]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("cli")
    names = ["read", "vacuum", "optimize", "restore", "checkpoint", "props_set", "props_unset",
             "con_add", "con_drop"]
    tables = {n: root / n for n in names}
    before = {}
    for n, p in tables.items():
        t = _table(p)
        if n == "props_unset":
            t.alter.set_properties({"team": "ml", "keep": "1"})
        if n == "con_drop":
            t.alter.add_constraint("positive", "id > 0")
        before[n] = sorted(t.to_arrow().to_pylist(), key=lambda r: r["id"])
    read = str(tables["read"])
    v1_time = iso_ms(Table.open(read).history()[-2]["timestamp"])
    missing = str(root / "missing")
    commands: dict[str, list[str]] = {
        "history": ["history", read, "--limit", "2"],
        "describe": ["describe", read, "--timestamp", str(v1_time)],
        "files_json": ["files", read, "--json", "--version", "1"],
        "schema_json": ["schema", read, "--json"],
        "show_json": ["show", read, "--limit", "2", "--columns", "id,part", "--where", "id >= 2",
                      "--version", "1", "--json"],
        "vacuum_refused": ["vacuum", read, "--retention-hours", "1"],
        "vacuum_dry": ["vacuum", str(tables["vacuum"]), "--retention-hours", "0", "--force",
                       "--dry-run", "--json"],
        "optimize": ["optimize", str(tables["optimize"]), "--z-order", "id",
                     "--target-size", "1mb", "--json"],
        "restore": ["restore", str(tables["restore"]), "--version", "0", "--json"],
        "checkpoint": ["checkpoint", str(tables["checkpoint"]), "--json"],
        "cleanup": ["cleanup-log", read, "--json"],
        "props_set": ["properties", "set", str(tables["props_set"]), "team=ml",
                      "delta.logRetentionDuration=interval 60 days"],
        "props_unset": ["properties", "unset", str(tables["props_unset"]), "team"],
        "con_add": ["constraints", "add", str(tables["con_add"]), "small", "id < 100"],
        "con_violated": ["constraints", "add", read, "big", "id > 3"],
        "con_drop": ["constraints", "drop", str(tables["con_drop"]), "positive"],
        "missing": ["history", missing],
        "missing_debug": ["--debug", "describe", missing],
        "usage_no_uri": ["history"],
        "usage_restore": ["restore", read],
    }
    with ThreadPoolExecutor(4) as pool:
        results = dict(zip(commands, pool.map(_run, commands.values()), strict=True))
    # vacuum for real only after the dry run has looked at the table
    results["vacuum"] = _run(["vacuum", str(tables["vacuum"]), "--retention-hours", "0",
                              "--force", "--full"])
    return World(root, tables, results, before)


def _ok(world: World, name: str) -> Run:
    r = world.runs[name]
    assert r.code == 0, (name, r.err)
    return r


def test_history_describe_files_schema_show(world: World) -> None:
    text = _ok(world, "history").out
    assert "WRITE" in text and "mode=Overwrite" in text and "predicate=part" in text
    assert "│       2 │" in text and "│       1 │" in text and "│       0 │" not in text
    text = _ok(world, "describe").out
    assert "partition columns" in text and "bigint" in text
    assert re.search(r"│ version\s*│ 1\s*│", text)  # --timestamp of version 1
    assert re.search(r"│ rows\s*│ 5\s*│", text)
    files = _ok(world, "files_json").json()
    expected = Snapshot.load(Table.open(str(world.tables["read"])).storage, version=1).files
    assert isinstance(files, list)
    assert sorted(f["path"] for f in files) == sorted(expected["canonical_path"].to_pylist())
    assert sum(f["numRecords"] for f in files) == 5
    schema = _ok(world, "schema_json").json()
    assert isinstance(schema, dict)
    assert [f["name"] for f in schema["fields"]] == ["id", "part"]
    rows = _ok(world, "show_json").json()
    assert isinstance(rows, list) and len(rows) == 2
    assert all(set(r) == {"id", "part"} and r["id"] >= 2 for r in rows)


def test_vacuum(world: World) -> None:
    refused = world.runs["vacuum_refused"]
    assert refused.code == 2 and "shorter than the table" in refused.err
    assert len(refused.err.strip().splitlines()) == 1 and "Traceback" not in refused.err
    dry = _ok(world, "vacuum_dry").json()
    assert isinstance(dry, dict) and dry["dryRun"] is True and dry["numFiles"] == 2
    real = _ok(world, "vacuum")
    assert "Deleted 2 file(s)" in real.out and "warning:" in real.err
    root = world.tables["vacuum"]
    active = set(Table.open(str(root)).files()["canonical_path"].to_pylist())
    assert data_files(root) == active and set(dry["files"]).isdisjoint(active)
    assert [c["operation"] for c in commit_infos(root)[-2:]] == ["VACUUM START", "VACUUM END"]
    assert oracle_rows(root) == world.before["vacuum"]


def test_optimize_restore_checkpoint(world: World) -> None:
    m = _ok(world, "optimize").json()
    assert isinstance(m, dict) and m["numFilesRemoved"] == 3 and m["zOrderBy"] == ["id"]
    opt = world.tables["optimize"]
    assert Table.open(str(opt)).files().num_rows == 2
    assert oracle_rows(opt) == world.before["optimize"]
    r = _ok(world, "restore").json()
    assert isinstance(r, dict) and r["restoredVersion"] == 0 and r["version"] == 3
    assert oracle_rows(world.tables["restore"]) == sorted(
        Table.open(str(world.tables["restore"]), version=0).to_arrow().to_pylist(),
        key=lambda x: x["id"])
    c = _ok(world, "checkpoint").json()
    assert isinstance(c, dict) and c["version"] == 2
    assert (world.tables["checkpoint"] / c["path"]).exists()
    assert _ok(world, "cleanup").json() == {"deleted": [], "numDeleted": 0}


def test_properties_and_constraints(world: World) -> None:
    _ok(world, "props_set")
    assert Table.open(str(world.tables["props_set"])).properties == {
        "team": "ml", "delta.logRetentionDuration": "interval 60 days"}
    _ok(world, "props_unset")
    assert Table.open(str(world.tables["props_unset"])).properties == {"keep": "1"}
    _ok(world, "con_add")
    assert Table.open(str(world.tables["con_add"])).properties == {
        "delta.constraints.small": "id < 100"}
    _ok(world, "con_drop")
    assert Table.open(str(world.tables["con_drop"])).properties == {}
    bad = world.runs["con_violated"]
    assert bad.code == 1 and "big" in bad.err and len(bad.err.strip().splitlines()) == 1
    assert "delta.constraints.big" not in Table.open(str(world.tables["read"])).properties


def test_errors_and_usage(world: World) -> None:
    missing = world.runs["missing"]
    assert missing.code == 1 and missing.out == ""
    assert missing.err.strip().startswith("error:") and "Traceback" not in missing.err
    assert len(missing.err.strip().splitlines()) == 1
    debug = world.runs["missing_debug"]
    assert debug.code == 1 and "Traceback" in debug.err and "TableNotFoundError" in debug.err
    for name in ("usage_no_uri", "usage_restore"):
        r = world.runs[name]
        assert r.code == 2, (name, r.err)
        assert "Traceback" not in r.err and "Usage:" in r.err
    assert "--version or --timestamp" in world.runs["usage_restore"].err
