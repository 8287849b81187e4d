"""Every real Delta table in ``../shared/delta-tables``: lakehouse must read it like the reference.

One test per table (id = its ``table_dir``) so the session summary can say how many tables pass
every check. Per table, in order:

- tables a correct reader refuses (``cases.EXPECTED_ERRORS`` and manifest "NEGATIVE test" notes):
  ``Table.open`` + ``to_arrow`` must raise the expected LakehouseError and never return data;
- otherwise the latest version, the active file count, partition columns and schema must match
  RESULTS.tsv / deltalake;
- unless the table is log-only (data files absent), the data read must match the row count implied
  by ``add.stats``, deltalake's SQL reader row for row (when it can read the table), and the
  upstream expected rows in ``_expected/`` (when there are any).

Failures of one table are collected and reported together so one run shows everything wrong.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pytest

from lakehouse import Table

from . import oracle
from .cases import TableCase, assert_refused, load_cases, tables_root
from .compare import assert_same_rows, schema_differences
from .expected import assert_matches_expected_file

#: Tables lakehouse knowingly cannot read yet: ``{table_dir: reason}``. Each becomes a strict
#: xfail, so an entry must be removed as soon as the table passes.
KNOWN_EXCEPTIONS: dict[str, str] = {
    # Tables we refuse on purpose (spec/README.md, "Conformance exceptions"); the refusal itself is
    # checked by test_known_exceptions_are_refused_with_the_feature below.
    "kernel-rs/table-with-geo": "geospatial reader feature (geometry/geography) is not supported",
    "delta-rs/spark-shredded-variant-preview-delta": "variantShredding-preview is not supported",
    "delta-spark/variant-stats-no-checkpoint": "variantShredding-preview is not supported",
    "delta-spark/variant-stats-nested-no-checkpoint": "variantShredding-preview is not supported",
    "delta-spark/variant-stats-state-reconstruction": "variantShredding-preview is not supported",
    "delta-spark/variant-stats-with-struct-no-checkpoint": "variantShredding-preview is not supported",
}


def _params() -> list[object]:
    cases = load_cases()
    if not cases:
        skip = pytest.mark.skip(reason=f"Delta test tables not found at {tables_root()}")
        return [pytest.param(None, id="no-fixtures", marks=skip)]
    params = []
    for case in cases:
        marks = []
        if case.table_dir in KNOWN_EXCEPTIONS:
            marks.append(pytest.mark.xfail(reason=KNOWN_EXCEPTIONS[case.table_dir], strict=True))
        params.append(pytest.param(case, id=case.table_dir, marks=marks))
    return params


class _Failures:
    """Collects failed checks of one table; fails the test once with all of them."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.items: list[str] = []

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            self.items.append(message)

    def run(self, what: str, check: Callable[[], None]) -> None:
        try:
            check()
        except AssertionError as exc:
            self.items.append(f"{what}: {exc}")

    def raise_if_any(self) -> None:
        if self.items:
            body = "\n".join(f"- {item}" for item in self.items)
            raise AssertionError(f"{self.label}: {len(self.items)} check(s) failed\n{body}")


def _check_log(
    case: TableCase, table: Table, snap: oracle.OracleSnapshot, fails: _Failures
) -> None:
    fails.expect(
        table.version == case.latest_version,
        f"version is {table.version}, expected {case.latest_version}",
    )
    files = table.files()
    fails.expect(isinstance(files, pa.Table), f"files() returned {type(files).__name__}")
    if isinstance(files, pa.Table) and "path" in files.column_names:
        fails.expect(
            files.num_rows == case.active_files,
            f"files() has {files.num_rows} rows, expected {case.active_files} active files",
        )
        paths = files["path"].to_pylist()
        fails.expect(len(set(paths)) == len(paths), "files() lists a path more than once")
    else:
        fails.expect(False, "files() has no 'path' column")

    if snap.open_error is None:
        want_parts = list(snap.partition_columns or ())
        fails.run("schema vs deltalake", lambda: _no_diffs(table.schema, snap.schema))
    else:
        want_parts = case.manifest_partition_columns
        names = case.results_field_names()
        if names is not None:
            fails.expect(
                table.schema.names == names,
                f"schema names {table.schema.names}, RESULTS.tsv has {names}",
            )
    fails.expect(
        list(table.partition_columns) == want_parts,
        f"partition_columns {list(table.partition_columns)}, expected {want_parts}",
    )


def _no_diffs(actual: pa.Schema, expected: pa.Schema | None) -> None:
    assert expected is not None
    diffs = schema_differences(actual, expected)
    assert not diffs, "; ".join(diffs)


def _check_data(
    case: TableCase, table: Table, snap: oracle.OracleSnapshot, fails: _Failures
) -> None:
    data = table.to_arrow()
    assert isinstance(data, pa.Table), f"to_arrow() returned {type(data).__name__}"
    fails.run("to_arrow() schema vs Table.schema", lambda: _no_diffs(data.schema, table.schema))
    want_rows = case.rows_from_stats if case.rows_from_stats is not None else snap.stats_rows
    if want_rows is not None:
        fails.expect(
            data.num_rows == want_rows,
            f"to_arrow() has {data.num_rows} rows, add.stats imply {want_rows}",
        )
    if case.querybuilder_ok:
        fails.expect(
            snap.readable,
            "oracle regression: RESULTS.tsv says deltalake's QueryBuilder reads this table, "
            f"here it failed: {snap.open_error or snap.query_error}",
        )
    if snap.contents is not None:
        contents = snap.contents
        fails.run("to_arrow() schema vs deltalake", lambda: _no_diffs(data.schema, contents.schema))
        fails.run("contents vs deltalake", lambda: assert_same_rows(data, contents))
    if case.expected_file is not None:
        expected_file = case.expected_file
        fails.run(
            "contents vs _expected", lambda: assert_matches_expected_file(data, expected_file)
        )


@pytest.mark.parametrize("case", _params())
def test_table_conforms(case: TableCase) -> None:
    expected_error = case.expected_error
    if expected_error is not None:
        assert_refused(lambda: Table.open(case.uri).to_arrow(), expected_error, case.table_dir)
        return
    table = Table.open(case.uri)
    snap = oracle.snapshot(case.path)
    fails = _Failures(case.table_dir)
    _check_log(case, table, snap, fails)
    if not case.log_only:
        _check_data(case, table, snap, fails)
    fails.raise_if_any()


def test_known_exceptions_name_real_tables() -> None:
    """A KNOWN_EXCEPTIONS entry for a table that is not in the manifest is a typo."""
    if not load_cases():
        pytest.skip(f"Delta test tables not found at {tables_root()}")
    names = {case.table_dir for case in load_cases()}
    assert sorted(set(KNOWN_EXCEPTIONS) - names) == []


def test_oracle_agrees_with_results_tsv() -> None:
    """Guards the harness: the installed deltalake sees the versions and file counts RESULTS.tsv
    recorded, so a disagreement with lakehouse is about lakehouse."""
    if not load_cases():
        pytest.skip(f"Delta test tables not found at {tables_root()}")
    wrong = []
    for case in load_cases():
        snap = oracle.snapshot(case.path)
        if snap.open_error is not None or case.expected_error is not None:
            continue
        if (snap.version, len(snap.add_paths)) != (case.latest_version, case.active_files):
            wrong.append(f"{case.table_dir}: deltalake v{snap.version}/{len(snap.add_paths)} files")
    assert wrong == []


@pytest.mark.parametrize("table_dir", sorted(KNOWN_EXCEPTIONS))
def test_known_exceptions_are_refused_with_the_feature(table_dir: str) -> None:
    """Each known exception is a clear refusal naming the unsupported feature, never wrong data."""
    from lakehouse.errors import UnsupportedFeatureError

    path = tables_root() / table_dir
    if not path.exists():
        pytest.skip(f"{path} not found")
    with pytest.raises(UnsupportedFeatureError) as info:
        Table.open(str(path)).to_arrow()
    assert info.value.feature in ("geospatial", "variantShredding-preview")
    assert info.value.feature in str(info.value)
