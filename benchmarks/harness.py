"""The benchmark run: data, fixtures, then every case x system in fresh subprocesses, interleaved.

For each case the systems take turns (A B A B ...) for warm-up plus measured repetitions, so machine
drift hits all of them alike. A system a case does not apply to is recorded as ``n/a``; a failure is
recorded with its message and stops only that (case, system) cell. Results go to ``results.json``
and ``results.md`` in the output directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.child import work_dir
from benchmarks.config import Scale
from benchmarks.data import ensure_data
from benchmarks.report import machine_info, render_markdown, summarize
from benchmarks.systems import fixture_owner
from benchmarks.workloads import Case, select_cases

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class Options:
    """What to run and where."""

    scale: Scale
    out: Path
    systems: tuple[str, ...]
    only: tuple[str, ...] = ()
    repeat: int = 1
    warmup: int = 0
    reuse_fixtures: bool = False
    keep_work: bool = False
    jobs: int = 1
    """Cases run at once; above 1 the runs overlap, so only for smoke runs where time is no result."""
    command: str = ""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _scrub(text: str, out: Path) -> str:
    """``text`` without this machine's paths (results may be committed)."""
    for path, name in (
        (out.resolve(), "<out>"),
        (REPO_ROOT, "<repo>"),
        (Path(sys.prefix), "<venv>"),
        (Path(sys.base_prefix), "<python>"),
        (Path.home(), "~"),
    ):
        text = text.replace(str(path), name)
    return text


def _child(args: list[str], result: Path, timeout: float) -> dict[str, Any]:
    """Run ``python -m benchmarks.child ARGS`` and return the JSON record it wrote."""
    result.unlink(missing_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "benchmarks.child", *args, "--result", str(result)]
    try:
        proc = subprocess.run(
            command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"status": "error", "error": f"timed out after {timeout:.0f} s"}
    if result.exists():
        return dict(json.loads(result.read_text()))
    if proc.returncode < 0:
        why = f"killed by signal {-proc.returncode}" + (
            " (out of memory?)" if proc.returncode == -9 else ""
        )
    else:
        why = f"exited with code {proc.returncode}"
    tail = proc.stderr.strip().splitlines()[-3:]
    return {"status": "error", "error": f"subprocess {why}: {' | '.join(tail)}"}


def _prepare_fixtures(options: Options, cases: list[Case]) -> dict[tuple[str, str], str | None]:
    """Build every fixture the selected cells need; (owner, fixture) -> error message or None."""
    needed: dict[str, list[str]] = {}
    for case in cases:
        for system in options.systems:
            if system in case.systems:
                names = needed.setdefault(fixture_owner(system), [])
                names.extend(f for f in case.fixtures if f not in names)
    scratch = work_dir(options.out, options.scale.name)

    def prepare(owner: str, names: list[str]) -> dict[tuple[str, str], str | None]:
        started = time.perf_counter()
        _log(f"fixtures  {owner}: {', '.join(names)} ...")
        args = ["prep", "--system", owner, "--fixtures", ",".join(names)]
        args += ["--scale", options.scale.name, "--root", str(options.out)]
        record = _child(args, scratch / f"prep-{owner}.json", options.scale.timeout_s * len(names))
        built = record.get("fixtures") or dict.fromkeys(names, record.get("error", "failed"))
        result = {(owner, name): built.get(name, "not built") for name in names}
        for (_, name), error in result.items():
            if error:
                _log(f"fixtures  {owner}/{name}: FAILED {error}")
        _log(f"fixtures  {owner}: done in {time.perf_counter() - started:.1f} s")
        return result

    status: dict[tuple[str, str], str | None] = {}
    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        for result in pool.map(lambda item: prepare(*item), [i for i in needed.items() if i[1]]):
            status.update(result)
    return status


def _run_case(
    options: Options, case: Case, fixtures: dict[tuple[str, str], str | None]
) -> dict[str, Any]:
    cells: dict[str, dict[str, Any]] = {}
    active: list[str] = []
    for system in options.systems:
        if system not in case.systems:
            cells[system] = {"status": "n/a", "runs": []}
            continue
        broken = [
            f"fixture {f!r}: {fixtures.get((fixture_owner(system), f))}"
            for f in case.fixtures
            if fixtures.get((fixture_owner(system), f))
        ]
        if broken:
            cells[system] = {"status": "error", "error": "; ".join(broken), "runs": []}
            continue
        cells[system] = {"status": "ok", "runs": []}
        active.append(system)
    scratch = work_dir(options.out, options.scale.name)
    total = options.warmup + options.repeat
    for rep in range(total):
        for system in active:
            cell = cells[system]
            if cell["status"] != "ok":
                continue
            warm = rep < options.warmup
            tag = f"{case.id}-{system}-{rep}"
            record = _child(
                [
                    "case",
                    "--case",
                    case.id,
                    "--system",
                    system,
                    "--scale",
                    options.scale.name,
                    "--root",
                    str(options.out),
                    "--tag",
                    tag,
                ],
                scratch / f"{tag}.json",
                options.scale.timeout_s,
            )
            record.update(rep=rep, warmup=warm)
            cell["runs"].append(record)
            label = "warm-up" if warm else f"rep {rep - options.warmup + 1}/{options.repeat}"
            if record["status"] != "ok":
                cell.update(status="error", error=record.get("error", "unknown error"))
                _log(f"{case.id:<28} {system:<15} {label:<9} ERROR {cell['error'][:160]}")
            else:
                rss = record.get("peak_rss_mb") or 0.0
                _log(
                    f"{case.id:<28} {system:<15} {label:<9} {record['value']:.4f} s  {rss:.0f} MiB"
                )
    return {
        "id": case.id,
        "workload": case.workload,
        "title": case.title,
        "unit": case.unit,
        "details": list(case.details),
        "systems": cells,
    }


def run(options: Options) -> Path:
    """Run the benchmark; returns the path of ``results.json``."""
    started = time.time()
    options.out.mkdir(parents=True, exist_ok=True)
    cases = select_cases(list(options.only))
    work = work_dir(options.out, options.scale.name)
    if not options.reuse_fixtures:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    _log(f"data      scale {options.scale.name}: {options.scale.rows:,} rows ...")
    ensure_data(options.out, options.scale)
    fixtures = _prepare_fixtures(options, cases)
    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        results = list(pool.map(lambda case: _run_case(options, case, fixtures), cases))
    if not options.keep_work:
        shutil.rmtree(work / "scratch", ignore_errors=True)
        if not options.reuse_fixtures:
            shutil.rmtree(work, ignore_errors=True)
            with suppress(OSError):
                work.parent.rmdir()  # "work/" itself, when no other scale keeps fixtures there
    meta = {
        "command": options.command,
        "scale": options.scale.name,
        "sizes": {
            k: v
            for k, v in asdict(options.scale).items()
            if k not in ("name", "timeout_s", "repeat", "warmup", "jobs")
        },
        "systems": list(options.systems),
        "repeat": options.repeat,
        "warmup": options.warmup,
        "jobs": options.jobs,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "machine": machine_info(),
    }
    text = _scrub(json.dumps(summarize(meta, results), indent=2, default=str), options.out)
    json_path = options.out / "results.json"
    json_path.write_text(text + "\n")
    (options.out / "results.md").write_text(render_markdown(json.loads(text)))
    _log(f"done in {meta['duration_s']} s: {json_path} and results.md")
    return json_path
