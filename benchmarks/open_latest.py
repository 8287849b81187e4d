"""Open-latest on a long log (issue 2): a 10,000-commit table with a checkpoint, lakehouse vs deltalake.

Issue 2 asks that opening such a table at its latest version takes well under a second. That is a
performance claim, so it is measured here rather than in a timed test. The table is built quickly
by writing version 0 with deltalake and then the commit files directly (one small Parquet file and
one ``add`` per commit), with a checkpoint written by deltalake's ``create_checkpoint`` a few
commits before the end, so opening replays a checkpoint plus a short JSON tail as in real tables.
Each open runs in a fresh process, systems interleaved; medians are reported.

    python -m benchmarks.open_latest [--commits 10000] [--tail 10] [--repeat 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = ("lakehouse", "deltalake")
ROWS_PER_COMMIT = 10


def _commit_json(version: int, path: str, size: int, first_id: int, rows: int) -> str:
    now_ms = int(time.time() * 1000)
    stats = {
        "numRecords": rows,
        "minValues": {"id": first_id},
        "maxValues": {"id": first_id + rows - 1},
        "nullCount": {"id": 0},
    }
    actions = [
        {
            "commitInfo": {
                "timestamp": now_ms,
                "operation": "WRITE",
                "operationParameters": {"mode": "Append"},
                "readVersion": version - 1,
                "isBlindAppend": True,
                "clientVersion": "lakehouse-benchmarks",
            }
        },
        {
            "add": {
                "path": path,
                "partitionValues": {},
                "size": size,
                "modificationTime": now_ms,
                "dataChange": True,
                "stats": json.dumps(stats),
            }
        },
    ]
    return "\n".join(json.dumps(a) for a in actions) + "\n"


def build_table(directory: Path, commits: int, tail: int) -> Path:
    """Create (or reuse) a table with ``commits`` versions and a checkpoint ``tail`` commits back."""
    import pyarrow.parquet as pq
    from deltalake import DeltaTable, write_deltalake

    from benchmarks.data import small_batch

    table = directory / f"log-{commits}-tail{tail}"
    stamp = table.with_suffix(".ok")
    if stamp.exists():
        return table
    shutil.rmtree(table, ignore_errors=True)
    write_deltalake(str(table), small_batch(0, ROWS_PER_COMMIT))
    log = table / "_delta_log"
    for version in range(1, commits):
        first_id = version * ROWS_PER_COMMIT
        name = f"part-{version:06d}.parquet"
        pq.write_table(small_batch(first_id, ROWS_PER_COMMIT), table / name)
        body = _commit_json(version, name, (table / name).stat().st_size, first_id, ROWS_PER_COMMIT)
        (log / f"{version:020d}.json").write_text(body)
    DeltaTable(str(table), version=max(commits - 1 - tail, 0)).create_checkpoint()
    stamp.touch()
    return table


def build_warm_up_table(directory: Path) -> Path:
    """A one-commit table opened untimed first, so first-use costs (lazy imports) stay untimed."""
    from deltalake import write_deltalake

    from benchmarks.data import small_batch

    table = directory / "warm-up"
    if not (table / "_delta_log").exists():
        write_deltalake(str(table), small_batch(0, ROWS_PER_COMMIT))
    return table


def measure(system: str, table: str, warm_table: str) -> dict[str, Any]:
    """Time one open at the latest version in this (fresh) process, after a warm-up open.

    ``first_open_s`` is the warm-up: the first open of a one-commit table right after the import,
    which shows what lazy imports and one-time initialisation cost a short-lived process.
    """
    if system == "lakehouse":
        import lakehouse

        def open_table(uri: str) -> int:
            return int(lakehouse.Table.open(uri).version)
    else:
        from deltalake import DeltaTable

        def open_table(uri: str) -> int:
            return int(DeltaTable(uri).version())

    start = time.perf_counter()
    open_table(warm_table)
    first = time.perf_counter() - start
    start = time.perf_counter()
    version = open_table(table)
    return {"seconds": time.perf_counter() - start, "first_open_s": first, "version": version}


def _run_child(system: str, table: Path, warm_table: Path) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "benchmarks.open_latest",
        "--measure",
        system,
        str(table),
        str(warm_table),
    ]
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = " | ".join(proc.stderr.strip().splitlines()[-2:])
        return {"error": f"exit code {proc.returncode}: {tail}"}
    return dict(json.loads(lines[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.open_latest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--tail", type=int, default=10, help="commits after the checkpoint")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)  # SYSTEM TABLE WARM_TABLE
    args = parser.parse_args(argv)
    if args.measure:
        try:
            result = measure(*args.measure)
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(result))
        return 0

    started = time.perf_counter()
    table = build_table(args.out / "open_latest", args.commits, args.tail)
    warm_table = build_warm_up_table(args.out / "open_latest")
    print(
        f"table: {args.commits} commits, checkpoint at version {args.commits - 1 - args.tail} "
        f"(built/reused in {time.perf_counter() - started:.1f} s)",
        file=sys.stderr,
    )
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in SYSTEMS}
    for _ in range(args.repeat + 1):  # the first round is a discarded warm-up
        for system in SYSTEMS:
            runs[system].append(_run_child(system, table, warm_table))
    summary: dict[str, Any] = {"commits": args.commits, "tail": args.tail, "repeat": args.repeat}
    for system, results in runs.items():
        measured = results[1:]
        errors = [r["error"] for r in measured if "error" in r]
        if errors:
            summary[system] = {"error": errors[0]}
        else:
            summary[system] = {
                "median_s": statistics.median(r["seconds"] for r in measured),
                "median_first_open_s": statistics.median(r["first_open_s"] for r in measured),
                "version": measured[0]["version"],
            }
        print(f"{system:<10} {summary[system]}", file=sys.stderr)
    lake, delta = summary["lakehouse"].get("median_s"), summary["deltalake"].get("median_s")
    summary["lakehouse/deltalake"] = lake / delta if lake is not None and delta else None
    (args.out / "open_latest.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
