"""Turn raw per-run records into medians and ratios (JSON) and a Markdown report.

Ratios are lakehouse / deltalake against the faster of deltalake's default and fastest settings
(the comparison the issue-6 targets are stated in), lakehouse / pyarrow, and peak RSS against the
smaller of the two deltalake peaks. A ratio below 1 means lakehouse is faster or smaller.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import SYSTEMS

DELTALAKES = ("deltalake", "deltalake-fast")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_revision() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "")


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def machine_info() -> dict[str, Any]:
    """The machine and library versions a result was measured with."""
    return {
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "git": _git_revision(),
        "versions": {
            d: _version(d) for d in ("deltalake", "pyarrow", "polars", "numpy", "lakehouse")
        },
    }


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summarize(meta: dict[str, Any], cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Add medians per cell and ratios per case to the raw records."""
    for case in cases:
        cells = case["systems"]
        for cell in cells.values():
            measured = [r for r in cell["runs"] if r["status"] == "ok" and not r.get("warmup")]
            ok = cell["status"] == "ok" and bool(measured)
            if cell["status"] == "ok" and not measured:
                cell.update(status="error", error="no measured repetition")
            cell["median"] = _median([r["value"] for r in measured]) if ok else None
            cell["median_seconds"] = _median([r["seconds"] for r in measured]) if ok else None
            rss = [r["peak_rss_mb"] for r in measured if r.get("peak_rss_mb") is not None]
            cell["peak_rss_mb"] = _median(rss) if ok else None
            cell["max_peak_rss_mb"] = max(rss) if ok and rss else None
            cell["metrics"] = measured[-1].get("metrics", {}) if ok else {}
        lake = cells.get("lakehouse", {})
        timed = [
            (cells[s]["median"], s)
            for s in DELTALAKES
            if cells.get(s, {}).get("median") is not None
        ]
        best_time, best_system = min(timed) if timed else (None, None)
        rss = [cells[s]["peak_rss_mb"] for s in DELTALAKES if cells.get(s, {}).get("peak_rss_mb")]
        case["ratios"] = {
            "lakehouse/deltalake": _ratio(lake.get("median"), best_time),
            "deltalake_baseline": best_system,
            "lakehouse/pyarrow": _ratio(lake.get("median"), cells.get("pyarrow", {}).get("median")),
            "rss_lakehouse/deltalake": _ratio(lake.get("peak_rss_mb"), min(rss) if rss else None),
        }
    return {"meta": meta, "cases": cases}


def format_seconds(value: float) -> str:
    """A duration at a readable precision."""
    if value >= 10:
        return f"{value:.1f} s"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 0.01:
        return f"{value * 1000:.0f} ms"
    return f"{value * 1000:.2f} ms"


def _format_ratio(value: float | None, note: str = "") -> str:
    return "-" if value is None else f"{value:.2f}x{note}"


class _Errors:
    """Numbered footnotes for error messages, each distinct message once."""

    def __init__(self) -> None:
        self.numbers: dict[str, int] = {}
        self.where: dict[str, list[str]] = {}

    def cite(self, message: str, where: str) -> str:
        number = self.numbers.setdefault(message, len(self.numbers) + 1)
        self.where.setdefault(message, []).append(where)
        return f"error [{number}]"


def _cell(cell: dict[str, Any], key: str, fmt: Any, errors: _Errors, where: str) -> str:
    if cell["status"] == "n/a":
        return "n/a"
    if cell["status"] != "ok":
        return errors.cite(" ".join(str(cell.get("error", "error")).split()), where)
    value = cell.get(key)
    return "-" if value is None else str(fmt(value))


def _header(meta: dict[str, Any]) -> list[str]:
    m, sizes = meta["machine"], meta["sizes"]
    versions = " · ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    return [
        f"# Benchmark results: scale `{meta['scale']}`",
        "",
        f"- Command: `{meta['command']}` (started {meta['started']}, took {meta['duration_s']} s)",
        f"- Machine: {m['os']}, {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB RAM; "
        f"Python {m['python']}; {versions}; git {m['git']}",
        f"- Sizes: {sizes['rows']:,} rows; large upsert {sizes['merge_large_rows']:,} rows; small "
        f"upsert {sizes['merge_small_rows']:,} rows; {sizes['log_commits']:,}-commit log; "
        f"{sizes['timed_commits']:,} timed commits; 2 x {sizes['concurrent_appends']} concurrent "
        f"appends of {sizes['append_rows']} rows",
        f"- Method: each (case, system, repetition) in a fresh process, systems interleaved, "
        f"{meta['warmup']} warm-up + {meta['repeat']} measured repetition(s), medians. "
        "lh/dl is against the faster of deltalake and deltalake-fast (marked `f`); below 1 means "
        "lakehouse is faster or smaller.",
        "",
    ]


def render_markdown(summary: dict[str, Any]) -> str:
    """The report: time and peak-RSS tables, selected metrics, and the errors met."""
    meta, cases = summary["meta"], summary["cases"]
    systems = [s for s in SYSTEMS if s in meta["systems"]]
    errors = _Errors()
    lines = _header(meta)
    lines += [
        "## Time (median)",
        "",
        "| Case | What | " + " | ".join(systems) + " | lh/dl | lh/pa |",
        "|---|---|" + "---:|" * (len(systems) + 2),
    ]
    for case in cases:
        per = case["unit"] == "per commit"
        fmt = (lambda v: format_seconds(v) + "/commit") if per else format_seconds
        cells = [
            _cell(case["systems"][s], "median", fmt, errors, f"{case['id']} ({s})") for s in systems
        ]
        ratios = case["ratios"]
        note = " f" if ratios["deltalake_baseline"] == "deltalake-fast" else ""
        lines.append(
            f"| {case['id']} | {case['title']} | "
            + " | ".join(cells)
            + f" | {_format_ratio(ratios['lakehouse/deltalake'], note)}"
            + f" | {_format_ratio(ratios['lakehouse/pyarrow'])} |"
        )
    lines += [
        "",
        "## Peak RSS (MiB, median)",
        "",
        "| Case | " + " | ".join(systems) + " | lh/dl |",
        "|---|" + "---:|" * (len(systems) + 1),
    ]
    quiet = _Errors()  # errors are already numbered from the time table
    quiet.numbers = errors.numbers
    for case in cases:
        cells = [
            _cell(case["systems"][s], "peak_rss_mb", lambda v: f"{v:,.0f}", quiet, "")
            for s in systems
        ]
        lines.append(
            f"| {case['id']} | "
            + " | ".join(cells)
            + f" | {_format_ratio(case['ratios']['rss_lakehouse/deltalake'])} |"
        )
    details = []
    for case in cases:
        for s in systems:
            shown = {
                k: v
                for k, v in case["systems"][s].get("metrics", {}).items()
                if k in case["details"]
            }
            if shown:
                text = ", ".join(
                    f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()
                )
                details.append(f"| {case['id']} | {s} | {text} |")
    if details:
        lines += ["", "## Details", "", "| Case | System | Metrics |", "|---|---|---|", *details]
    if errors.numbers:
        lines += ["", "## Errors", ""]
        for message, number in errors.numbers.items():
            lines.append(f"{number}. {', '.join(errors.where[message])}: `{message[:400]}`")
    return "\n".join(lines) + "\n"
