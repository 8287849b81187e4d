"""Session summary plugin for the conformance suite: ``conformance: N/M tables``.

Why a plugin: the figure that matters is how many real tables pass every check, which no single
test reports. It is computed from ``terminalreporter.stats`` (the reports pytest, or the xdist
controller, received), so it is the same with and without ``-n``. ``conftest.py`` next to this file
registers it; an xdist controller only loads that conftest when this directory is a command-line
argument, so a root ``tests/conftest.py`` can also list ``pytest_plugins = ["tests.conformance.summary"]``
(registration is idempotent: the line is printed once).
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

_TABLE_TESTS = "test_delta_tables.py::test_table_conforms["
_VERSION_TESTS = "test_time_travel.py::test_version_matches_oracle["
_NOT_PASSING = {"failed", "error", "xfailed", "xpassed", "skipped"}
_NOT_RUN = {"deselected", "warnings"}


def _tally(stats: dict[str, list[object]], marker: str) -> tuple[int, int]:
    """(ids that passed every phase, ids that ran) among reports whose nodeid has ``marker``."""
    seen: set[str] = set()
    passed: set[str] = set()
    bad: set[str] = set()
    for category, reports in stats.items():
        if category in _NOT_RUN:
            continue
        for report in reports:
            nodeid = getattr(report, "nodeid", None) or ""
            if marker not in nodeid or nodeid.endswith("[no-fixtures]"):
                continue
            seen.add(nodeid)
            if category in _NOT_PASSING or getattr(report, "failed", False):
                bad.add(nodeid)
            elif category == "passed" and getattr(report, "when", "call") == "call":
                passed.add(nodeid)
    return len(passed - bad), len(seen)


def summary_lines(stats: dict[str, list[object]]) -> Iterable[str]:
    ok, total = _tally(stats, _TABLE_TESTS)
    if total:
        yield f"conformance: {ok}/{total} tables"
    ok, total = _tally(stats, _VERSION_TESTS)
    if total:
        yield f"conformance time travel: {ok}/{total} table versions"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in summary_lines(terminalreporter.stats):
        terminalreporter.write_line(line)
