"""UPDATE and DELETE: row-level changes selected by a predicate, one commit each.

Both prune files by the predicate (partition values, min/max stats), then work a batch of files
at a time: the predicate's columns are read first, and only files with matching rows are read
whole (copy-on-write) — or, for a DELETE on a table with deletion vectors, not at all: the
matching positions become the new deletion vector. A DELETE also removes, without reading them,
files whose partition values or statistics prove that every row matches (a whole partition, or a
file entirely inside the deleted range); ``delete()`` with no predicate removes every file.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import InvalidArgumentError
from lakehouse.expressions import Expr, parse_predicate, parse_sql
from lakehouse.log.snapshot import Snapshot
from lakehouse.merge.files import matched_rows, plan_batches, read_batch
from lakehouse.merge.metrics import Counters, DeleteMetrics, UpdateMetrics
from lakehouse.merge.planner import _unqualify, all_rows_match, expr_mask
from lakehouse.merge.resolve import TARGET, Compiled, Scope, compile_any, frame
from lakehouse.merge.rows import build_rows
from lakehouse.merge.schema import plain_schema, start_transaction
from lakehouse.merge.writer import ChangeWriter
from lakehouse.txn.transaction import Transaction

if TYPE_CHECKING:
    from lakehouse.table import Table


def _prune_expr(where: Any, scope: Scope) -> Expr | None:
    """The pruning form of ``where`` (plain target column names), or None."""
    if where is None:
        return None
    if isinstance(where, str):
        return parse_predicate(_unqualify(parse_sql(where), scope))
    if isinstance(where, pl.Expr):
        from lakehouse.engine._polars.lazy import _to_ast

        return _to_ast(where)
    return None


def _record_reads(txn: Transaction, snap: Snapshot, expr: Expr | None,
                  candidates: pa.Table) -> None:
    if expr is None:
        txn.read_whole_table()
        return
    txn.read_files(candidates["canonical_path"])
    txn.read_predicate(lambda adds: adds.num_rows > 0 and bool(
        pc.any(expr_mask(snap, expr, adds)).as_py()))


def _columns(c: Compiled | None) -> list[str]:
    return sorted({r.name for r in c.refs}) if c is not None else []


def _where_mask(snap: Snapshot, scope: Scope, cond: Compiled, files: pa.Table) -> tuple[Any, np.ndarray]:
    cols = _columns(cond)
    probe = read_batch(snap, files, cols)
    mask = cond.evaluate_bool(frame(probe.table, scope, TARGET, cols, "__bidx")).to_numpy()
    return probe, mask


def _candidates(snap: Snapshot, expr: Expr | None) -> pa.Table:
    if expr is None:
        return snap.files
    return snap.files.filter(expr_mask(snap, expr, snap.files))


def update(table: Table, values: Mapping[str, Any], where: Any = None) -> UpdateMetrics:
    """``UPDATE table SET ... WHERE where``; see the module docstring."""
    t0 = time.monotonic()
    snap = table._latest_for_write()
    if not isinstance(values, Mapping) or not values:
        raise InvalidArgumentError(
            f"update needs a non-empty set={{column: expression}}, got {values!r}")
    scope = Scope(snap.arrow_schema.names)
    assignments: dict[str, Compiled] = {}
    for key, value in values.items():
        actual = scope.lookup(TARGET, str(key).strip("`"))
        if actual is None:
            raise InvalidArgumentError(
                f"update: {key!r} is not a column of the table; columns are {list(scope.target)}"
            )
        assignments[actual] = compile_any(value, scope, "t")
    cond = compile_any(where, scope, "t") if where is not None else None
    expr = _prune_expr(where, scope)
    c = Counters()
    writer = ChangeWriter(snap, snap.schema, snap.configuration, table.engine, c)
    out_schema = plain_schema(snap.schema)
    need = sorted({r.name for a in assignments.values() for r in a.refs} | set(_columns(cond)))
    candidates = _candidates(snap, expr)
    c.files_skipped = snap.files.num_rows - candidates.num_rows
    scan0, rewrite0 = time.monotonic(), c.rewrite_time_ms
    for files in plan_batches(candidates):
        c.files_scanned += files.num_rows
        if cond is not None:
            probe, mask = _where_mask(snap, scope, cond, files)
            if not mask.any():
                continue
            touched = np.unique(probe.file_index[mask])
            files = files.take(pa.array(touched, pa.int64()))
            # With deletion vectors only the updated rows change: read just their row groups.
            needed = matched_rows(probe.file_index[mask], probe.positions[mask], touched) \
                if writer.dv else None
            full = read_batch(snap, files, snap.arrow_schema.names, rows=needed)
        else:
            full = read_batch(snap, files, snap.arrow_schema.names)
        tf = frame(full.table, scope, TARGET, need, "__bidx")
        if cond is not None:
            tf = tf.filter(cond.evaluate_bool(tf))
        idx = tf["__bidx"].to_numpy()
        rows = build_rows(out_schema, tf, assignments, target=full.table, target_rows=idx)
        rows = writer.conform(rows, keep_generated=frozenset(assignments))
        writer.apply(full, np.array([], np.int64), idx, rows)
        c.matched_updated += len(idx)
    c.scan_time_ms = max(0, int((time.monotonic() - scan0) * 1000) - (c.rewrite_time_ms - rewrite0))
    params: dict[str, Any] = {"predicate": str(where)} if where is not None else {}
    txn = start_transaction(snap, "UPDATE", params)
    _record_reads(txn, snap, expr if where is not None else None, candidates)
    return _commit(table, snap, txn, writer, c, t0, UpdateMetrics)


def delete(table: Table, where: Any = None) -> DeleteMetrics:
    """``DELETE FROM table WHERE where``; see the module docstring."""
    t0 = time.monotonic()
    snap = table._latest_for_write()
    scope = Scope(snap.arrow_schema.names)
    c = Counters()
    writer = ChangeWriter(snap, snap.schema, snap.configuration, table.engine, c)
    txn = start_transaction(snap, "DELETE", {"predicate": [str(where)] if where is not None else []})
    if where is None:
        c.matched_deleted = writer.remove_whole_files(snap.files)
        txn.read_whole_table()
        return _commit(table, snap, txn, writer, c, t0, DeleteMetrics)
    cond = compile_any(where, scope, "t")
    expr = _prune_expr(where, scope)
    candidates = _candidates(snap, expr)
    c.files_skipped = snap.files.num_rows - candidates.num_rows
    covered = all_rows_match(snap, expr, candidates) if expr is not None else \
        pa.array([False] * candidates.num_rows, pa.bool_())
    partial = candidates.filter(pc.invert(covered))
    if writer.cdf and partial.num_rows:
        # The change feed of this commit comes from its cdc files only: read everything.
        partial = candidates
    else:
        c.matched_deleted += writer.remove_whole_files(candidates.filter(covered))
    scan0, rewrite0 = time.monotonic(), c.rewrite_time_ms
    empty = plain_schema(snap.schema).empty_table()
    for files in plan_batches(partial):
        c.files_scanned += files.num_rows
        probe, mask = _where_mask(snap, scope, cond, files)
        if not mask.any():
            continue
        if writer.dv and not writer.cdf:
            batch, rows = probe, np.flatnonzero(mask)    # positions are all a DV needs
        else:
            files = files.take(pa.array(np.unique(probe.file_index[mask]), pa.int64()))
            batch = read_batch(snap, files, snap.arrow_schema.names)
            tf = frame(batch.table, scope, TARGET, _columns(cond), "__bidx")
            rows = np.flatnonzero(cond.evaluate_bool(tf).to_numpy())
        writer.apply(batch, rows, np.array([], np.int64), empty)
        c.matched_deleted += len(rows)
    c.scan_time_ms = max(0, int((time.monotonic() - scan0) * 1000) - (c.rewrite_time_ms - rewrite0))
    _record_reads(txn, snap, expr, candidates)
    return _commit(table, snap, txn, writer, c, t0, DeleteMetrics)


def _commit(table: Table, snap: Snapshot, txn: Transaction, writer: ChangeWriter, c: Counters,
            t0: float, kind: Any) -> Any:
    adds, removes, cdc = writer.finish()
    txn.remove_files(removes)
    txn.add_files(adds)
    txn.add_actions(cdc)
    metrics = kind.from_counters(c, int((time.monotonic() - t0) * 1000))
    if not (adds or removes or cdc):
        table._advance(snap)        # nothing changed: no empty commit (as Delta)
        return replace(metrics, version=snap.version)
    result = txn.commit(metrics.operation_metrics())
    table._advance(Snapshot.load(snap.storage, version=result.version))
    return replace(metrics, version=result.version)
