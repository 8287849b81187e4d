"""Running a MERGE: plan, prune, join batch by batch, write changes, commit once.

``source -> Arrow (in memory) -> compile clauses -> prune target files by the source keys ->
for each batch of candidate files: read the join columns, find the files with matches (phase 1),
read those files whole, join again, apply clauses (phase 2) -> write rewritten/updated rows
(copy-on-write) or deletion vectors plus new rows -> insert unmatched source rows -> one
Transaction``. Peak memory is the source plus one batch of files. A merge with only
``when_not_matched_insert*`` clauses never reads more than the join columns; one with
``when_not_matched_by_source_*`` clauses must read every target file.

Semantics are Delta's: within each clause kind the first clause whose condition holds applies;
a target row matched by several source rows is an error (:class:`MergeCardinalityError`) when an
update/delete clause applies to it, unless the only matched clause is an unconditional delete;
NULL keys never match; values are cast to the column types, refusing lossy casts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from lakehouse.errors import InvalidArgumentError, MergeCardinalityError
from lakehouse.log.schema import StructType
from lakehouse.log.snapshot import Snapshot
from lakehouse.merge.builder import Clause, MergeBuilder
from lakehouse.merge.files import FileBatch, matched_rows, plan_batches, read_batch
from lakehouse.merge.metrics import Counters, MergeMetrics
from lakehouse.merge.planner import JoinPlan, Pruner, plan_join, supertype
from lakehouse.merge.resolve import (
    SOURCE,
    TARGET,
    ColumnRef,
    Compiled,
    Scope,
    compile_any,
    compile_sql,
    frame,
)
from lakehouse.merge.rows import build_rows, choose
from lakehouse.merge.schema import evolve_schema, plain_schema, start_transaction
from lakehouse.merge.writer import ChangeWriter


@dataclass(frozen=True, eq=False)
class _Clause:
    raw: Clause
    condition: Compiled | None
    assignments: dict[str, Compiled]


def _strip_alias(name: str, alias: str) -> str:
    prefix = alias.lower() + "."
    return name[len(prefix):] if name.lower().startswith(prefix) else name.strip("`")


def _compile_clause(c: Clause, scope: Scope, schema: StructType, b: MergeBuilder,
                    generated: set[str]) -> _Clause:
    sides = {"matched": "ts", "not_matched": "s", "not_matched_by_source": "t"}[c.kind]
    cond = compile_any(c.condition, scope, sides) if c.condition is not None else None
    names = {f.name.lower(): f.name for f in schema.fields}
    assigned: dict[str, Compiled] = {}
    for e in c.except_columns:
        if _strip_alias(e, b.target_alias).lower() not in names:
            raise InvalidArgumentError(
                f"except_columns: {e!r} is not a target column; columns are {schema.field_names}"
            )
    excluded = {_strip_alias(e, b.target_alias).lower() for e in c.except_columns}
    if c.assignments is None and c.action != "delete":
        for f in schema.fields:
            if f.name.lower() in excluded:
                continue
            src = scope.lookup(SOURCE, f.name)
            if src is not None:
                assigned[f.name] = compile_sql(f"{b.source_alias}.`{src}`", scope, sides)
            elif not b.schema_evolution and f.name not in generated:
                raise InvalidArgumentError(
                    f"{c.action} * (all columns): the source has no column {f.name!r}; source "
                    f"columns are {list(scope.source)}. Assign columns explicitly, exclude it "
                    "with except_columns, or pass schema_evolution=True."
                )
    for key, value in c.assignments or ():
        name = _strip_alias(key, b.target_alias)
        actual = names.get(name.lower())
        if actual is None:
            hint = ("pass schema_evolution=True to add source columns" if not b.schema_evolution
                    else "only source columns can be added by schema evolution")
            raise InvalidArgumentError(
                f"cannot assign column {key!r}: it is not a target column ({schema.field_names}); "
                f"{hint}"
            )
        assigned[actual] = compile_any(value, scope, sides)
    return _Clause(c, cond, assigned)


def _new_columns(b: MergeBuilder, scope: Scope) -> list[str]:
    """Source columns a schema-evolving merge adds to the target."""
    if not b.schema_evolution:
        return []
    out: dict[str, str] = {}
    star = [c for c in b.clauses if c.assignments is None and c.action != "delete"]
    if star:
        excluded = {e.lower() for c in star for e in c.except_columns}
        for s in scope.source:
            if scope.lookup(TARGET, s) is None and s.lower() not in excluded:
                out.setdefault(s.lower(), s)
    for c in b.clauses:
        for key, _ in c.assignments or ():
            name = _strip_alias(key, b.target_alias)
            if scope.lookup(TARGET, name) is None:
                src = scope.lookup(SOURCE, name)
                if src is not None:
                    out.setdefault(src.lower(), src)
    return list(out.values())


def execute_merge(b: MergeBuilder) -> MergeMetrics:
    """Run ``b`` (see module docstring); commits and advances ``b.table``."""
    t0 = time.monotonic()
    table = b.table
    snap = table._latest_for_write()
    engine = table.engine
    reader = engine.to_arrow_stream(b.source)
    source = reader.read_all()
    source = source.replace_schema_metadata(None)
    c = Counters(source_rows=source.num_rows)
    scope = Scope(snap.arrow_schema.names, source.column_names, b.target_alias, b.source_alias)
    new_cols = _new_columns(b, scope)
    schema, metadata, protocol = evolve_schema(snap, source.select(new_cols).schema)
    generated = {f.name for f in schema.fields if "delta.generationExpression" in f.metadata}
    clauses = [_compile_clause(cl, scope, schema, b, generated) for cl in b.clauses]
    matched = [x for x in clauses if x.raw.kind == "matched"]
    inserts = [x for x in clauses if x.raw.kind == "not_matched"]
    nmbs = [x for x in clauses if x.raw.kind == "not_matched_by_source"]
    plan = plan_join(b.on, scope)
    run = _Run(snap, scope, plan, source, schema, matched, inserts, nmbs, engine, c,
               metadata.configuration if metadata is not None else snap.configuration)
    run.execute()

    params: dict[str, Any] = {"predicate": plan.text}
    for kind, key in (("matched", "matchedPredicates"), ("not_matched", "notMatchedPredicates"),
                      ("not_matched_by_source", "notMatchedBySourcePredicates")):
        params[key] = [x.raw.describe() for x in clauses if x.raw.kind == kind]
    txn = start_transaction(snap, "MERGE", params, metadata, protocol)
    if run.whole_table:
        txn.read_whole_table()
    else:
        txn.read_files(run.candidates["canonical_path"])
        txn.read_predicate(run.pruner.may_match)
    adds, removes, cdc = run.writer.finish()
    txn.remove_files(removes)
    txn.add_files(adds)
    txn.add_actions(cdc)
    metrics = MergeMetrics.from_counters(c, int((time.monotonic() - t0) * 1000))
    if not (adds or removes or cdc or metadata is not None):
        table._advance(snap)        # nothing changed: no empty commit (as Delta)
        return replace(metrics, version=snap.version)
    result = txn.commit(metrics.operation_metrics())
    table._advance(Snapshot.load(snap.storage, version=result.version))
    return replace(metrics, version=result.version)


class _Run:
    """State of one merge execution."""

    def __init__(self, snap: Snapshot, scope: Scope, plan: JoinPlan, source: pa.Table,
                 schema: StructType, matched: list[_Clause], inserts: list[_Clause],
                 nmbs: list[_Clause], engine: Any, counters: Counters,
                 configuration: Any) -> None:
        self.snap, self.scope, self.plan, self.source = snap, scope, plan, source
        self.matched, self.inserts, self.nmbs = matched, inserts, nmbs
        self.c = counters
        self.out_schema = plain_schema(schema)
        self.writer = ChangeWriter(snap, schema, configuration, engine, counters)
        self.matched_source = np.zeros(source.num_rows, dtype=bool)
        self.only_unconditional_delete = (len(matched) == 1 and matched[0].raw.action == "delete"
                                          and matched[0].condition is None)
        # columns each side needs in polars
        everything = [x.condition for x in matched + inserts + nmbs if x.condition is not None]
        everything += [a for x in matched + inserts + nmbs for a in x.assignments.values()
                       if a.ref is None]
        self.t_cols = sorted(plan.target_columns() | {r.name for e in everything for r in e.refs
                                                      if r.side == TARGET})
        s_cols = sorted(plan.source_columns() | {r.name for e in everything for r in e.refs
                                                 if r.side == SOURCE})
        empty_t = frame(snap.arrow_schema.empty_table(), scope, TARGET, self.t_cols, "__bidx")
        self.s_frame = frame(source, scope, SOURCE, s_cols, "__sidx")
        self.key_types = [supertype(k.target.evaluate(empty_t).dtype,
                                    k.source.evaluate(self.s_frame.head(0)).dtype)
                          for k in plan.keys]
        keys = [self._key(k.source, i) for i, k in enumerate(plan.keys)]
        self.s_keyed = self.s_frame.with_columns(keys) if keys else self.s_frame
        probe_cols = [scope.internal(ColumnRef(SOURCE, n)) for n in plan.source_columns()]
        self.s_probe = self.s_keyed.select(
            [*probe_cols, "__sidx", *[f"__k{i}" for i in range(len(plan.keys))]])
        self.pruner = Pruner.build(snap, plan, self.s_keyed)
        self.whole_table = bool(nmbs) or (not self.pruner.keys and self.pruner.target_filter is None)
        self.candidates = snap.files

    def _key(self, e: Compiled, i: int) -> pl.Expr:
        assert e.expr is not None
        return e.expr.cast(self.key_types[i]).alias(f"__k{i}")

    def _pairs(self, target: pl.DataFrame, source: pl.DataFrame) -> pl.DataFrame:
        keys = [self._key(k.target, i) for i, k in enumerate(self.plan.keys)]
        tk = target.with_columns(keys) if keys else target
        if keys:
            pairs = tk.join(source, on=[f"__k{i}" for i in range(len(keys))], how="inner")
        else:
            pairs = tk.join(source, how="cross")
        if self.plan.residual is not None and pairs.height:
            pairs = pairs.filter(self.plan.residual.evaluate_bool(pairs))
        return pairs

    def execute(self) -> None:
        snap = self.snap
        insert_only = not self.matched and not self.nmbs
        if self.nmbs or (self.whole_table and self.source.num_rows):
            self.candidates = snap.files
        elif not self.source.num_rows:
            self.candidates = snap.files.slice(0, 0)
        else:
            self.candidates = snap.files.filter(self.pruner.mask(snap.files))
        self.c.files_skipped = snap.files.num_rows - self.candidates.num_rows
        t0 = time.monotonic()
        rewrite_before = self.c.rewrite_time_ms
        for files in plan_batches(self.candidates):
            self.c.files_scanned += files.num_rows
            if not self.nmbs:
                probe = read_batch(snap, files, sorted(self.plan.target_columns()))
                tf = frame(probe.table, self.scope, TARGET, sorted(self.plan.target_columns()),
                           "__bidx")
                pairs = self._pairs(tf, self.s_probe)
                self.matched_source[pairs["__sidx"].to_numpy()] = True
                if insert_only or pairs.height == 0:
                    continue
                hit = pairs["__bidx"].to_numpy()
                touched = np.unique(probe.file_index[hit])
                files = files.take(pa.array(touched, pa.int64()))
                if self.writer.dv:
                    # Deletion vectors: only matched rows change, so only the row groups that
                    # hold them are read (copy-on-write must read whole files to copy them).
                    needed = matched_rows(probe.file_index[hit], probe.positions[hit], touched)
                    full = read_batch(snap, files, snap.arrow_schema.names, rows=needed)
                    self._apply(full)
                    continue
            full = read_batch(snap, files, snap.arrow_schema.names)
            self._apply(full)
        self._insert()
        elapsed = int((time.monotonic() - t0) * 1000)
        self.c.scan_time_ms = max(0, elapsed - (self.c.rewrite_time_ms - rewrite_before))

    def _apply(self, batch: FileBatch) -> None:
        tf = frame(batch.table, self.scope, TARGET, self.t_cols, "__bidx")
        pairs = self._pairs(tf, self.s_keyed)
        self.matched_source[pairs["__sidx"].to_numpy()] = True
        deleted: list[np.ndarray] = []
        updated: list[np.ndarray] = []
        rows: list[pa.Table] = []
        if self.matched and pairs.height:
            choice = choose(pairs, [x.condition for x in self.matched])
            applies = choice >= 0
            bidx = pairs["__bidx"].to_numpy()
            if not self.only_unconditional_delete:
                hit = bidx[applies]
                uniq, counts = np.unique(hit, return_counts=True)
                if len(uniq) != len(hit):
                    raise MergeCardinalityError(
                        f"MERGE: {int((counts > 1).sum())} target row(s) matched more than one "
                        f"source row under {self.plan.text!r} with an update/delete clause "
                        "applying; the outcome would be ambiguous. Deduplicate the source (e.g. "
                        "keep the latest row per key) or tighten the merge condition."
                    )
            for k, x in enumerate(self.matched):
                sel = np.flatnonzero(choice == k)
                if not len(sel):
                    continue
                if x.raw.action == "delete":
                    idx = np.unique(bidx[sel])
                    deleted.append(idx)
                    self.c.matched_deleted += len(idx)
                else:
                    sub = pairs[sel]
                    rows.append(self._update_rows(sub, x, batch))
                    updated.append(sub["__bidx"].to_numpy())
                    self.c.matched_updated += len(sel)
        if self.nmbs:
            unmatched = np.ones(batch.table.num_rows, dtype=bool)
            unmatched[pairs["__bidx"].to_numpy()] = False
            sub_all = tf.filter(pl.Series(unmatched))
            choice = choose(sub_all, [x.condition for x in self.nmbs])
            for k, x in enumerate(self.nmbs):
                sel = np.flatnonzero(choice == k)
                if not len(sel):
                    continue
                sub = sub_all[sel]
                idx = sub["__bidx"].to_numpy()
                if x.raw.action == "delete":
                    deleted.append(idx)
                    self.c.nmbs_deleted += len(idx)
                else:
                    rows.append(self._update_rows(sub, x, batch))
                    updated.append(idx)
                    self.c.nmbs_updated += len(idx)
        upd_rows = pa.concat_tables(rows) if rows else self.writer.conform(
            self.out_schema.empty_table())
        self.writer.apply(batch,
                          np.concatenate(deleted) if deleted else np.array([], np.int64),
                          np.concatenate(updated) if updated else np.array([], np.int64),
                          upd_rows)

    def _update_rows(self, sub: pl.DataFrame, x: _Clause, batch: FileBatch) -> pa.Table:
        rows = build_rows(self.out_schema, sub, x.assignments, target=batch.table,
                          target_rows=sub["__bidx"].to_numpy(), source=self.source,
                          source_rows=sub["__sidx"].to_numpy() if "__sidx" in sub.columns
                          else None)
        return self.writer.conform(rows, keep_generated=frozenset(x.assignments))

    def _insert(self) -> None:
        if not self.inserts:
            return
        rest = np.flatnonzero(~self.matched_source)
        if not len(rest):
            return
        sf = self.s_frame[rest]
        choice = choose(sf, [x.condition for x in self.inserts])
        for k, x in enumerate(self.inserts):
            sel = np.flatnonzero(choice == k)
            if not len(sel):
                continue
            sub = sf[sel]
            rows = build_rows(self.out_schema, sub, x.assignments, source=self.source,
                              source_rows=sub["__sidx"].to_numpy())
            rows = self.writer.conform(rows, keep_generated=frozenset(x.assignments))
            self.writer.insert(rows)
            self.c.inserted += rows.num_rows


__all__ = ["execute_merge"]
