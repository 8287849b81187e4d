"""Entry point of the measurement and fixture subprocesses the harness starts.

Each (case, system, repetition) runs here in a fresh interpreter, so memory use and caches start
from zero and peak RSS belongs to that run alone. The result goes to a JSON file named by the
parent; any exception becomes a recorded error rather than a crash of the whole run.

    python -m benchmarks.child case --case W2.scan_full --system deltalake --scale ci --root OUT --result R.json
    python -m benchmarks.child prep --system deltalake --fixtures base,part --scale ci --root OUT --result R.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import traceback
from pathlib import Path
from typing import Any

from benchmarks.config import SCALES
from benchmarks.data import data_files


def work_dir(root: Path, scale_name: str) -> Path:
    """Per-scale working directory (fixtures and scratch) under the output directory."""
    return root / "work" / scale_name


def fixtures_dir(root: Path, scale_name: str, owner: str) -> Path:
    """Where ``owner``'s fixture tables live."""
    return work_dir(root, scale_name) / "fixtures" / owner


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "status": "error",
        "error": f"{type(exc).__name__}: {exc}".strip(),
        "traceback": traceback.format_exc()[-4000:],
    }


def run_case(
    case_id: str, system_name: str, scale_name: str, root: Path, tag: str
) -> dict[str, Any]:
    """Run one measurement; returns the result record (status ok or error)."""
    from benchmarks.systems import fixture_owner, make_system, warm_up
    from benchmarks.workloads import CASES_BY_ID
    from benchmarks.workloads.base import Context

    scale = SCALES[scale_name]
    scratch = work_dir(root, scale_name) / "scratch" / tag
    shutil.rmtree(scratch, ignore_errors=True)
    ctx = Context(
        scale=scale,
        data=data_files(root, scale),
        fixtures=fixtures_dir(root, scale_name, fixture_owner(system_name)),
        scratch=scratch,
    )
    try:
        system = make_system(system_name)
        case = CASES_BY_ID[case_id]
        warm_up(system, ctx.scratch_path("warm-up"), case.warm_up)
        case.run(system, ctx)
        if ctx.elapsed is None:
            raise RuntimeError(f"case {case_id} timed nothing")
        result: dict[str, Any] = {"status": "ok"}
    except Exception as exc:
        result = _error(exc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result.update(
        seconds=ctx.elapsed,
        value=ctx.value,
        units=ctx.units,
        peak_rss_mb=ctx.peak_rss_mb,
        baseline_rss_mb=ctx.baseline_rss_mb,
        metrics=ctx.metrics,
    )
    return result


def run_prep(system_name: str, names: list[str], scale_name: str, root: Path) -> dict[str, Any]:
    """Build fixtures for one system; returns ``{"fixtures": {name: error-or-None}}``."""
    from benchmarks.fixtures import build_fixtures
    from benchmarks.systems import make_system

    scale = SCALES[scale_name]
    directory = fixtures_dir(root, scale_name, system_name)
    try:
        system = make_system(system_name)
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        return {"fixtures": dict.fromkeys(names, message)}
    return {"fixtures": build_fixtures(system, names, data_files(root, scale), scale, directory)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.child")
    sub = parser.add_subparsers(dest="command", required=True)
    case = sub.add_parser("case")
    case.add_argument("--case", required=True)
    case.add_argument("--tag", required=True)
    prep = sub.add_parser("prep")
    prep.add_argument("--fixtures", required=True)
    for p in (case, prep):
        p.add_argument("--system", required=True)
        p.add_argument("--scale", required=True, choices=sorted(SCALES))
        p.add_argument("--root", required=True, type=Path)
        p.add_argument("--result", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.command == "case":
        result = run_case(args.case, args.system, args.scale, args.root, args.tag)
    else:
        result = run_prep(args.system, args.fixtures.split(","), args.scale, args.root)
    tmp = args.result.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, default=str))
    os.replace(tmp, args.result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
