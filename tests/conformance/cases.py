"""The conformance cases: one per table in ``../shared/delta-tables/MANIFEST.tsv``.

Why a module of its own: both test files parametrize over the same tables and must agree on which
ones a correct reader refuses, which are log-only (data files absent) and which versions of a
table's history still exist on disk. All of that is derived here from the fixture's own TSV files
and ``_delta_log`` listings, never from the reader under test.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lakehouse.errors import (
    LakehouseError,
    ProtocolError,
    TableNotFoundError,
    UnsupportedFeatureError,
)

#: Override for the fixture location (defaults to ``<repo>/../shared/delta-tables``).
TABLES_ENV = "LAKEHOUSE_DELTA_TABLES"


def tables_root() -> Path:
    """Where the real Delta tables live; may not exist (the suite then skips)."""
    override = os.environ.get(TABLES_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "delta-tables"


@dataclass(frozen=True, slots=True)
class ExpectedError:
    """What a correct reader raises for a table it must refuse."""

    errors: tuple[type[LakehouseError], ...]
    reason: str
    feature_substring: str | None = None  # checked against UnsupportedFeatureError.feature


_CATALOG = (
    "readerFeatures lists {feat}: the table is owned by a catalog, so a path-based reader must "
    "refuse it (delta-rs asserts an error here)"
)

#: Tables a correct reader refuses, beyond the manifest's "NEGATIVE test" notes. Each entry is a
#: fact about the fixture (checked by hand against its ``_delta_log``), not a reader limitation.
EXPECTED_ERRORS: dict[str, ExpectedError] = {
    "delta-rs-err-logs/table_c": ExpectedError(
        (ProtocolError,),
        "commit 12 is missing between checkpoint 10 and commit 13: the log is not contiguous",
    ),
    "delta-rs-err-logs/table_d": ExpectedError(
        (UnsupportedFeatureError,), _CATALOG.format(feat="catalogOwned"), "catalog"
    ),
    "delta-rs-err-logs/table_e": ExpectedError(
        (UnsupportedFeatureError,), _CATALOG.format(feat="catalogOwned"), "catalog"
    ),
    "delta-rs-err-logs/table_f": ExpectedError(
        (UnsupportedFeatureError,), _CATALOG.format(feat="catalogOwned"), "catalog"
    ),
    "delta-rs-err-logs/table_h": ExpectedError(
        (UnsupportedFeatureError,), _CATALOG.format(feat="catalogOwned"), "catalog"
    ),
    "delta-rs-err-logs/table_i": ExpectedError(
        (UnsupportedFeatureError,), _CATALOG.format(feat="catalogOwned"), "catalog"
    ),
    "delta-kernel-java/catalog-owned-preview": ExpectedError(
        (UnsupportedFeatureError,),
        _CATALOG.format(feat="catalogManaged") + "; versions 1-2 exist only as staged commits",
        "catalog",
    ),
    "delta-rs/simple_table_features": ExpectedError(
        (UnsupportedFeatureError, ProtocolError),
        "readerFeatures lists the unknown feature 'blahabl' (and readerFeatures with "
        "minReaderVersion 5 is itself invalid)",
    ),
    "kernel-rs/crc-malformed": ExpectedError(
        (TableNotFoundError,), "_delta_log holds only a .crc file: no commit, no checkpoint"
    ),
}

#: Single historical versions a correct reader refuses although later versions are fine.
EXPECTED_VERSION_ERRORS: dict[tuple[str, int], ExpectedError] = {
    ("delta-rs/delta-live-table", 0): ExpectedError(
        (ProtocolError,), "the metaData action of version 0 has no schemaString"
    ),
}


@dataclass(frozen=True, slots=True)
class TableCase:
    """One fixture table with the figures recorded for it in MANIFEST.tsv and RESULTS.tsv."""

    table_dir: str
    path: Path
    features: str
    notes: str
    latest_version: int | None
    active_files: int | None
    rows_from_stats: int | None
    querybuilder_ok: bool
    results_schema: str
    expected_file: Path | None

    @property
    def uri(self) -> str:
        return str(self.path.resolve())

    @property
    def expected_error(self) -> ExpectedError | None:
        if self.table_dir in EXPECTED_ERRORS:
            return EXPECTED_ERRORS[self.table_dir]
        if "NEGATIVE test" in self.notes:
            return ExpectedError((LakehouseError,), f"manifest: {self.notes}")
        return None

    @property
    def log_only(self) -> bool:
        """Not every active data file is present: the log can be checked, the data not."""
        return "MISSING " in self.notes

    @property
    def manifest_partition_columns(self) -> list[str]:
        match = re.search(r"(?:^|, )partitioned\(([^)]*)\)", self.features)
        return match.group(1).split(",") if match else []

    def results_field_names(self) -> list[str] | None:
        """Top-level column names from RESULTS.tsv's schema column, or None if it is unusable."""
        text = self.results_schema.strip()
        if not text or text.endswith("..."):
            return None
        entries = text.split("; ")
        if not all(":" in entry for entry in entries):
            return None
        return [entry.split(":", 1)[0] for entry in entries]


def _int_or_none(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else None


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


@cache
def load_cases() -> tuple[TableCase, ...]:
    """All manifest tables in manifest order; empty if the fixtures are absent."""
    root = tables_root()
    if not (root / "MANIFEST.tsv").is_file():
        return ()
    results = {row["table_dir"]: row for row in _read_tsv(root / "RESULTS.tsv")}
    cases = []
    for row in _read_tsv(root / "MANIFEST.tsv"):
        res = results.get(row["table_dir"], {})
        has_expected = row.get("has_expected", "no").strip()
        cases.append(
            TableCase(
                table_dir=row["table_dir"],
                path=root / row["table_dir"],
                features=row.get("features", ""),
                notes=row.get("notes", ""),
                latest_version=_int_or_none(res.get("log_latest_version", "")),
                active_files=_int_or_none(res.get("active_files", "")),
                rows_from_stats=_int_or_none(res.get("rows_from_stats(minus DV cardinality)", "")),
                querybuilder_ok=res.get("querybuilder_status", "").strip() == "ok",
                results_schema=res.get("schema", ""),
                expected_file=root / has_expected if has_expected not in ("", "no") else None,
            )
        )
    return tuple(cases)


# --- which versions of a table's history are on disk ------------------------------------------

_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(
    r"^(\d{20})\.checkpoint(?:\.\d+\.\d+|\.[0-9a-fA-F-]{36})?\.(?:parquet|json)$"
)


@dataclass(frozen=True, slots=True)
class LogListing:
    commits: frozenset[int]
    checkpoints: frozenset[int]

    def reconstructable(self, version: int) -> bool:
        """True if the log still holds what is needed to rebuild ``version``.

        That is a checkpoint at some c <= version followed by every commit c+1..version, or every
        commit 0..version.
        """
        starts = [c for c in self.checkpoints if c <= version]
        start = max(starts) + 1 if starts else 0
        return all(v in self.commits for v in range(start, version + 1))


@cache
def log_listing(table_path: Path) -> LogListing:
    commits: set[int] = set()
    checkpoints: set[int] = set()
    log_dir = table_path / "_delta_log"
    for name in os.listdir(log_dir) if log_dir.is_dir() else ():
        if m := _COMMIT.match(name):
            commits.add(int(m.group(1)))
        elif m := _CHECKPOINT.match(name):
            checkpoints.add(int(m.group(1)))
    return LogListing(frozenset(commits), frozenset(checkpoints))


def sample_versions(latest: int, limit: int = 20, between: int = 8) -> list[int]:
    """Every version 0..latest, or for long histories the first, the last and ~8 in between."""
    if latest + 1 <= limit:
        return list(range(latest + 1))
    step = latest / (between + 1)
    inner = {round(step * i) for i in range(1, between + 1)}
    return sorted({0, latest, *inner})


def time_travel_cases() -> list[TableCase]:
    """Tables whose history is worth replaying: readable, with data, and more than one version."""
    return [
        case
        for case in load_cases()
        if case.expected_error is None
        and not case.log_only
        and case.latest_version is not None
        and case.latest_version > 0
    ]


def assert_refused(read: Callable[[], object], expected: ExpectedError, label: str) -> None:
    """Run ``read`` (open + read) and fail unless it raises one of ``expected.errors``.

    Errors that are not LakehouseErrors propagate unchanged: a KeyError is a reader bug, not a
    refusal.
    """
    wanted = " or ".join(cls.__name__ for cls in expected.errors)
    try:
        outcome = read()
    except LakehouseError as exc:
        assert isinstance(exc, expected.errors), (
            f"{label}: raised {type(exc).__name__}({exc}); expected {wanted} because "
            f"{expected.reason}"
        )
        if expected.feature_substring and isinstance(exc, UnsupportedFeatureError):
            feature = exc.feature or ""
            assert expected.feature_substring.lower() in feature.lower(), (
                f"{label}: UnsupportedFeatureError.feature is {feature!r}, expected it to name "
                f"{expected.feature_substring!r}"
            )
        return
    raise AssertionError(
        f"{label}: expected {wanted} because {expected.reason}, but the read succeeded "
        f"({outcome!r:.200})"
    )
