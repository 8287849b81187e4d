"""W4 MERGE upserts and W5 DELETE/UPDATE, copy-on-write and with deletion vectors.

Each run modifies a private clone of a fixture table (data files hard-linked, log copied), so every
repetition starts from the same state. ``_dv`` variants use a table created with
``delta.enableDeletionVectors=true``; deltalake can open and modify such a table but rewrites files
(copy-on-write), which is exactly the comparison the deletion-vector targets are about.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow.parquet as pq

from benchmarks.systems import System
from benchmarks.workloads.base import Case, Context

DML = frozenset({"lakehouse", "deltalake"})
MERGE = frozenset({"lakehouse", "deltalake", "deltalake-fast"})
MERGE_DETAILS = (
    "num_target_files_scanned",
    "num_target_files_skipped_during_scan",
    "num_target_files_skipped",
    "num_target_files_added",
    "num_target_files_removed",
    "num_target_rows_updated",
    "num_target_rows_inserted",
)
DML_DETAILS = (
    "num_added_files",
    "num_removed_files",
    "num_deleted_rows",
    "num_updated_rows",
    "num_copied_rows",
    "num_files_added",
    "num_files_removed",
    "num_rows_deleted",
    "num_rows_updated",
)


def _fixture(dv: bool) -> str:
    return "base_dv" if dv else "base"


def _merge(large: bool, dv: bool) -> Callable[[System, Context], None]:
    def run(system: System, ctx: Context) -> None:
        uri = ctx.fixture_copy(_fixture(dv))
        source = pq.read_table(ctx.data.merge_large if large else ctx.data.merge_small)
        with ctx.timed():
            ctx.metrics.update(system.upsert(uri, source))
        inserted = source.num_rows - source.num_rows // 2
        ctx.expect(
            "rows after upsert",
            len(system.ids(uri)),
            ctx.scale.rows + inserted,
        )

    return run


def _where(rows: int, scattered: bool) -> tuple[str, int]:
    """A predicate selecting 1% of the ids ``0..rows-1``, and how many rows it selects."""
    if scattered:
        return "id % 100 = 7", rows // 100 + (1 if rows % 100 > 7 else 0)
    low = rows // 2
    return f"id >= {low} and id < {low + rows // 100}", rows // 100


def _delete(scattered: bool, dv: bool) -> Callable[[System, Context], None]:
    def run(system: System, ctx: Context) -> None:
        uri = ctx.fixture_copy(_fixture(dv))
        where, selected = _where(ctx.scale.rows, scattered)
        with ctx.timed():
            ctx.metrics.update(system.delete(uri, where))
        ctx.expect(
            "rows after delete",
            len(system.ids(uri)),
            ctx.scale.rows - selected,
        )

    return run


def _update(scattered: bool, dv: bool) -> Callable[[System, Context], None]:
    def run(system: System, ctx: Context) -> None:
        uri = ctx.fixture_copy(_fixture(dv))
        where, _selected = _where(ctx.scale.rows, scattered)
        with ctx.timed():
            ctx.metrics.update(system.update(uri, {"f1": "f1 + 1"}, where))
        ctx.expect("rows after update", len(system.ids(uri)), ctx.scale.rows)

    return run


def _merge_cases() -> list[Case]:
    cases = []
    for large, size in ((True, "large"), (False, "small")):
        what = (
            "large upsert (half new, updated ids scattered)"
            if large
            else "small upsert (half new, updated ids one clustered range)"
        )
        for dv in (False, True):
            suffix, mode = ("_dv", "deletion vectors") if dv else ("", "copy-on-write")
            cases.append(
                Case(
                    f"W4.merge_{size}{suffix}",
                    f"MERGE {what}, {mode}",
                    _merge(large, dv),
                    MERGE,
                    (_fixture(dv),),
                    details=MERGE_DETAILS,
                    warm_up=("upsert",),
                )
            )
    return cases


def _dml_cases() -> list[Case]:
    cases = []
    for verb, make in (("delete", _delete), ("update", _update)):
        for scattered in (False, True):
            layout = "scattered" if scattered else "clustered"
            for dv in (False, True):
                suffix, mode = ("_dv", "deletion vectors") if dv else ("", "copy-on-write")
                title = f"{verb.upper()} 1% of rows, {layout}, {mode}"
                cases.append(
                    Case(
                        f"W5.{verb}_{layout}{suffix}",
                        title,
                        make(scattered, dv),
                        DML,
                        (_fixture(dv),),
                        details=DML_DETAILS,
                        warm_up=(verb,),
                    )
                )
    return cases


CASES: tuple[Case, ...] = (*_merge_cases(), *_dml_cases())
