"""Reading old versions of the real Delta tables: ``Table.open(uri, version=v)``.

For every table a correct reader accepts, that has data files and more than one version, each
version (first, last and ~8 between for histories over 20 versions) must read exactly like
deltalake's SQL reader at that version. Where deltalake cannot read a version, lakehouse must still
open it, list deltalake's file count and return the row count the add stats imply. Versions whose
commits were cleaned up (no checkpoint covers them) must raise VersionNotFoundError, and so must
``latest + 1``; ``-1`` is an invalid argument.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from lakehouse import Table
from lakehouse.errors import InvalidArgumentError, VersionNotFoundError

from . import oracle
from .cases import (
    EXPECTED_VERSION_ERRORS,
    ExpectedError,
    TableCase,
    assert_refused,
    load_cases,
    log_listing,
    sample_versions,
    tables_root,
    time_travel_cases,
)
from .compare import assert_same_rows, schema_differences

#: Versions lakehouse knowingly cannot read yet: ``{"table_dir@vN" or "table_dir": reason}``.
#: Each becomes a strict xfail, so an entry must be removed as soon as it passes.
KNOWN_EXCEPTIONS: dict[str, str] = {
    # Tables we refuse on purpose (spec/README.md, "Conformance exceptions"); the refusal itself is
    # checked by test_known_exceptions_are_refused_with_the_feature below.
    "delta-rs/spark-shredded-variant-preview-delta": "variantShredding-preview is not supported",
    "delta-spark/variant-stats-no-checkpoint": "variantShredding-preview is not supported",
    "delta-spark/variant-stats-nested-no-checkpoint": "variantShredding-preview is not supported",
    "delta-spark/variant-stats-with-struct-no-checkpoint": "variantShredding-preview is not supported",
}

_CLEANED_UP = ExpectedError(
    (VersionNotFoundError,),
    "the commits this version needs were cleaned up and no checkpoint covers it",
)


def _no_fixtures(*names: str) -> list[object]:
    skip = pytest.mark.skip(reason=f"Delta test tables not found at {tables_root()}")
    return [pytest.param(*(None for _ in names), id="no-fixtures", marks=skip)]


def _version_params() -> list[object]:
    if not load_cases():
        return _no_fixtures("case", "version")
    params = []
    for case in time_travel_cases():
        assert case.latest_version is not None
        for version in sample_versions(case.latest_version):
            key = f"{case.table_dir}@v{version}"
            reason = KNOWN_EXCEPTIONS.get(key) or KNOWN_EXCEPTIONS.get(case.table_dir)
            marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
            params.append(pytest.param(case, version, id=key, marks=marks))
    return params


def _range_params() -> list[object]:
    if not load_cases():
        return _no_fixtures("case")
    return [
        pytest.param(case, id=case.table_dir)
        for case in load_cases()
        if case.expected_error is None and case.latest_version is not None
    ]


@pytest.mark.parametrize(("case", "version"), _version_params())
def test_version_matches_oracle(case: TableCase, version: int) -> None:
    label = f"{case.table_dir}@v{version}"
    refusal = EXPECTED_VERSION_ERRORS.get((case.table_dir, version))
    if not log_listing(case.path).reconstructable(version):
        refusal = _CLEANED_UP
    if refusal is not None:
        assert_refused(lambda: Table.open(case.uri, version=version).to_arrow(), refusal, label)
        return

    table = Table.open(case.uri, version=version)
    assert table.version == version, f"{label}: opened version {table.version}"
    snap = oracle.snapshot(case.path, version)
    files = table.files()
    if snap.open_error is not None:
        # deltalake cannot open this version; opening and listing files is all we can check.
        assert isinstance(files, pa.Table)
        return
    assert files.num_rows == len(snap.add_paths), (
        f"{label}: files() has {files.num_rows} rows, deltalake lists {len(snap.add_paths)}"
    )
    if not snap.files_present:
        return  # data files of this version were vacuumed: only the log can be checked
    data = table.to_arrow()
    if snap.contents is not None:
        diffs = schema_differences(data.schema, snap.contents.schema)
        assert not diffs, f"{label}: " + "; ".join(diffs)
        assert_same_rows(data, snap.contents, label)
    elif snap.stats_rows is not None:
        assert data.num_rows == snap.stats_rows, (
            f"{label}: {data.num_rows} rows, add stats imply {snap.stats_rows} "
            f"(deltalake cannot read it: {snap.query_error})"
        )


@pytest.mark.parametrize("case", _range_params())
def test_versions_out_of_range_are_refused(case: TableCase) -> None:
    assert case.latest_version is not None
    latest = case.latest_version
    with pytest.raises(VersionNotFoundError):
        Table.open(case.uri, version=latest + 1)
    with pytest.raises((InvalidArgumentError, VersionNotFoundError)):
        Table.open(case.uri, version=-1)


def test_known_exceptions_name_real_versions() -> None:
    """A KNOWN_EXCEPTIONS key that matches no parametrized table or version is a typo."""
    if not load_cases():
        pytest.skip(f"Delta test tables not found at {tables_root()}")
    keys = set()
    for case in time_travel_cases():
        assert case.latest_version is not None
        keys.add(case.table_dir)
        keys.update(f"{case.table_dir}@v{v}" for v in sample_versions(case.latest_version))
    assert sorted(set(KNOWN_EXCEPTIONS) - keys) == []
