"""Smoke test of the benchmark harness: a ci-scale run reports every case for every system.

Performance is measured by ``python -m benchmarks``, never asserted in tests; this only checks that
one whole run completes and that its JSON and Markdown say, for each workload x system, either a
measured number, "n/a", or the error that happened. deltalake and pyarrow are stable references, so
their cells must hold numbers: an error there is a harness bug.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = {f"W{n}" for n in range(1, 9)}
SYSTEMS = ("lakehouse", "deltalake", "deltalake-fast", "pyarrow")
# Where each reference system must produce a number (elsewhere it is "n/a").
MEASURED_BY = {
    "deltalake": WORKLOADS,
    "deltalake-fast": {"W2", "W3", "W4"},
    "pyarrow": {"W1", "W2", "W3"},
}


def test_ci_run_reports_every_workload_and_system(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "run", "--scale", "ci", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((tmp_path / "results.json").read_text())
    markdown = (tmp_path / "results.md").read_text()

    cases = summary["cases"]
    assert {case["workload"] for case in cases} == WORKLOADS
    assert summary["meta"]["scale"] == "ci"
    for case in cases:
        assert set(case["systems"]) == set(SYSTEMS), case["id"]
        for system, cell in case["systems"].items():
            where = f"{case['id']} / {system}"
            assert cell["status"] in {"ok", "error", "n/a"}, where
            if cell["status"] == "ok":
                assert isinstance(cell["median"], float) and cell["median"] > 0, where
                assert cell["peak_rss_mb"] > 0, where
            elif cell["status"] == "error":
                assert cell["error"].strip(), where
            if system in MEASURED_BY:
                expected = "ok" if case["workload"] in MEASURED_BY[system] else "n/a"
                assert cell["status"] == expected, f"{where}: {cell.get('error')}"
        assert f"| {case['id']} |" in markdown
    for system in SYSTEMS:
        assert system in markdown.split("## Time (median)", 1)[1].splitlines()[2]
    assert "## Peak RSS" in markdown
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").rglob("*.parquet"))
