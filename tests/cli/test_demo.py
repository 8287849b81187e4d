"""``python -m lakehouse.demo``: the narrated workload leaves the table in the state it describes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from lakehouse import Table
from lakehouse.demo import main, run
from tests.maintenance.helpers import oracle_rows


def _check(t: Table) -> None:
    ops = [h["operation"] for h in t.history()]
    assert ops[:4] == ["VACUUM END", "VACUUM START", "OPTIMIZE", "MERGE"]
    assert ops.count("WRITE") == 6
    assert t.to_arrow(columns=["id"]).num_rows == 1550
    assert t.files().num_rows == 3  # one compacted file per split
    assert t.to_arrow(filter="text = 'relabelled'").num_rows == 150


def test_demo_local(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = str(tmp_path / "demo")
    assert main([uri]) == 0
    out = capsys.readouterr().out
    for step in ("1. Create", "4. MERGE upsert", "5. History", "6. Time travel", "7. Optimize",
                 "8. Vacuum (dry run)", "9. Vacuum", "done", "reading version 0 now fails"):
        assert step in out
    t = Table.open(uri)
    _check(t)
    assert len(oracle_rows(uri)) == 1550
    assert main(["--storage-option"]) == 2


@pytest.mark.cloud
@pytest.mark.xdist_group("cloud")
def test_demo_on_s3(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest_storage import cloud_storage_options

    prefix, options = cloud_storage_options("s3")
    uri = f"{prefix}/demo-{uuid.uuid4().hex[:8]}"
    run(uri, options)
    assert "done" in capsys.readouterr().out
    _check(Table.open(uri, storage_options=options))
