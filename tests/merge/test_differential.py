"""Differential test: random tables and random clause lists, MERGE vs. a reference.

The reference below is the textbook definition of Delta's MERGE written row by row over a polars
join (small data, obviously correct): per target row, the matching source rows (NULL keys never
match); among them those for which some WHEN MATCHED clause applies — more than one is a
cardinality error unless the only matched clause is an unconditional delete — and the first
applying clause decides; unmatched target rows go through WHEN NOT MATCHED BY SOURCE, unmatched
source rows through WHEN NOT MATCHED. Conditions and values come in pairs: the SQL handed to
lakehouse and a Python function with SQL NULL semantics for the reference.

Run in copy-on-write and deletion-vector modes, partitioned or not, with the change data feed on
for some examples (then ``old - deletes - preimages + inserts + postimages == new`` must hold).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse
from lakehouse.errors import MergeCardinalityError

Row = dict[str, Any]


def _gt(a: Any, b: Any) -> bool | None:
    return None if a is None or b is None else a > b


def _eq(a: Any, b: Any) -> bool | None:
    return None if a is None or b is None else a == b


def _add(a: Any, b: Any) -> Any:
    return None if a is None or b is None else a + b


# (SQL, reference) — matched conditions see target t and source s
MATCHED_CONDS: list[tuple[str, Callable[[Row, Row], bool | None]]] = [
    ("source.v > target.v", lambda t, s: _gt(s["v"], t["v"])),
    ("source.v % 2 = 0", lambda t, s: None if s["v"] is None else s["v"] % 2 == 0),
    ("target.k = 1", lambda t, s: _eq(t["k"], 1)),
    ("source.v IS NULL", lambda t, s: s["v"] is None),
    ("target.v < source.k + 3", lambda t, s: _gt(_add(s["k"], 3), t["v"])),
]
MATCHED_SETS: list[tuple[dict[str, str] | None, Callable[[Row, Row], Row]]] = [
    (None, lambda t, s: {"id": s["id"], "k": s["k"], "v": s["v"]}),          # update *
    ({"v": "source.v"}, lambda t, s: {**t, "v": s["v"]}),
    ({"v": "target.v + source.v"}, lambda t, s: {**t, "v": _add(t["v"], s["v"])}),
    ({"k": "source.k", "v": "coalesce(source.v, target.v)"},
     lambda t, s: {**t, "k": s["k"], "v": s["v"] if s["v"] is not None else t["v"]}),
]
SOURCE_CONDS: list[tuple[str, Callable[[Row], bool | None]]] = [
    ("source.v > 4", lambda s: _gt(s["v"], 4)),
    ("source.k = 0", lambda s: _eq(s["k"], 0)),
    ("source.v IS NOT NULL", lambda s: s["v"] is not None),
]
INSERTS: list[tuple[dict[str, str] | None, Callable[[Row], Row]]] = [
    (None, lambda s: dict(s)),
    ({"id": "source.id", "v": "source.v + 100"},
     lambda s: {"id": s["id"], "k": None, "v": _add(s["v"], 100)}),
]
TARGET_CONDS: list[tuple[str, Callable[[Row], bool | None]]] = [
    ("target.v > 4", lambda t: _gt(t["v"], 4)),
    ("target.k = 1", lambda t: _eq(t["k"], 1)),
    ("target.v IS NULL", lambda t: t["v"] is None),
]
NMBS_SETS: list[tuple[dict[str, str], Callable[[Row], Row]]] = [
    ({"v": "target.v + 1"}, lambda t: {**t, "v": _add(t["v"], 1)}),
    ({"k": "2"}, lambda t: {**t, "k": 2}),
]


def reference(target: list[Row], source: list[Row], clauses: list[tuple]) -> list[Row]:
    """Delta MERGE by definition (raises MergeCardinalityError like lakehouse must)."""
    t_df = pl.DataFrame(target, schema={"id": pl.Int64, "k": pl.Int64, "v": pl.Int64}) \
        .with_row_index("ti")
    s_df = pl.DataFrame(source, schema={"id": pl.Int64, "k": pl.Int64, "v": pl.Int64}) \
        .with_row_index("si")
    pairs = t_df.join(s_df, on="id", how="inner")  # NULL keys never match
    matches: dict[int, list[int]] = {}
    for ti, si in zip(pairs["ti"].to_list(), pairs["si"].to_list(), strict=True):
        matches.setdefault(ti, []).append(si)
    matched_sources = {si for v in matches.values() for si in v}
    matched = [c for c in clauses if c[0] == "matched"]
    nmbs = [c for c in clauses if c[0] == "nmbs"]
    inserts = [c for c in clauses if c[0] == "insert"]
    only_delete = len(matched) == 1 and matched[0][1] == "delete" and matched[0][2] is None

    def first(cands: list[tuple], *row: Row) -> tuple | None:
        """The first clause whose condition is TRUE for ``row`` (None = unconditional)."""
        for c in cands:
            if c[2] is None or c[2][1](*row):
                return c
        return None

    out: list[Row] = []
    for ti, t in enumerate(target):
        ms = matches.get(ti, [])
        if ms:
            applying = [(source[si], c) for si in ms if (c := first(matched, t, source[si]))]
            if len(applying) > 1 and not only_delete:
                raise MergeCardinalityError("reference: ambiguous")
            if not applying:
                out.append(dict(t))
                continue
            s, c = applying[0]
            if c[1] != "delete":
                out.append(c[3][1](t, s))
            continue
        c = first(nmbs, t)
        if c is None:
            out.append(dict(t))
        elif c[1] != "delete":
            out.append(c[3][1](t))
    for si, s in enumerate(source):
        if si in matched_sources:
            continue
        c = first(inserts, s)
        if c is not None:
            out.append(c[3][1](s))
    return out


def _apply(builder: Any, clauses: list[tuple]) -> Any:
    for kind, action, cond, assign in clauses:
        sql_cond = cond[0] if cond is not None else None
        if kind == "matched" and action == "delete":
            builder = builder.when_matched_delete(sql_cond)
        elif kind == "matched":
            builder = builder.when_matched_update_all(sql_cond) if assign[0] is None else \
                builder.when_matched_update(assign[0], sql_cond)
        elif kind == "insert":
            builder = builder.when_not_matched_insert_all(sql_cond) if assign[0] is None else \
                builder.when_not_matched_insert(assign[0], sql_cond)
        elif action == "delete":
            builder = builder.when_not_matched_by_source_delete(sql_cond)
        else:
            builder = builder.when_not_matched_by_source_update(assign[0], sql_cond)
    return builder


small = st.one_of(st.none(), st.integers(0, 9))
rows_st = st.lists(st.fixed_dictionaries({
    "id": st.one_of(st.integers(0, 7), st.none()),
    "k": st.integers(0, 2), "v": small}), max_size=10)


@st.composite
def clause_lists(draw: st.DrawFn) -> list[tuple]:
    out: list[tuple] = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["matched", "insert", "nmbs"]))
        if kind == "matched":
            action = draw(st.sampled_from(["update", "delete"]))
            cond = draw(st.one_of(st.none(), st.sampled_from(MATCHED_CONDS)))
            assign = draw(st.sampled_from(MATCHED_SETS)) if action == "update" else None
        elif kind == "insert":
            action = "insert"
            cond = draw(st.one_of(st.none(), st.sampled_from(SOURCE_CONDS)))
            assign = draw(st.sampled_from(INSERTS))
        else:
            action = draw(st.sampled_from(["update", "delete"]))
            cond = draw(st.one_of(st.none(), st.sampled_from(TARGET_CONDS)))
            assign = draw(st.sampled_from(NMBS_SETS)) if action == "update" else None
        # Only the last clause of a kind may be unconditional (Delta's rule).
        if any(c[0] == kind and c[2] is None for c in out):
            continue
        out.append((kind, action, cond, assign))
    return out


def _key(r: Row) -> tuple:
    return tuple((r[c] is not None, r[c]) for c in ("id", "k", "v"))


def _multiset(rows: list[Row]) -> Counter:
    return Counter(_key({c: r[c] for c in ("id", "k", "v")}) for r in rows)


def _run(target: list[Row], source: list[Row], clauses: list[tuple], dv: bool,
         partitioned: bool, cdf: bool, chunks: int, pre_delete: bool = False) -> None:
    uri = f"memory://diff-{uuid.uuid4().hex}"
    schema = pa.schema([("id", pa.int64()), ("k", pa.int64()), ("v", pa.int64())])
    props = {"delta.enableDeletionVectors": str(dv).lower(),
             "delta.enableChangeDataFeed": str(cdf).lower()}
    t = lakehouse.Table.create(uri, schema, partition_by=["k"] if partitioned else None,
                               properties=props)
    size = max(1, -(-len(target) // chunks))
    for i in range(0, len(target), size):
        t.append(pa.Table.from_pylist(target[i:i + size], schema))
    if pre_delete:  # leaves deletion vectors (DV mode) the merge must extend, not replace
        t.delete("v % 3 = 0")
        target = [r for r in target if r["v"] is None or r["v"] % 3 != 0]
    before_version = t.version
    src = pa.Table.from_pylist(source, schema)
    try:
        want = reference(target, source, clauses)
    except MergeCardinalityError:
        with pytest.raises(MergeCardinalityError):
            _apply(t.merge(src, "target.id = source.id"), clauses).execute()
        assert t.version == before_version
        return
    read_version = t.version
    m = _apply(t.merge(src, "target.id = source.id"), clauses).execute()
    got = t.to_arrow().to_pylist()
    assert _multiset(got) == _multiset(want)
    assert m.num_output_rows >= m.num_target_rows_inserted + m.num_target_rows_updated
    if m.version == read_version:   # nothing changed: no commit
        assert m.num_output_rows == m.num_target_rows_deleted == 0
        assert _multiset(got) == _multiset(target)
    elif cdf:
        ch = t.changes(t.version).to_pylist()
        kinds = {k: [r for r in ch if r["_change_type"] == k]
                 for k in ("insert", "delete", "update_preimage", "update_postimage")}
        assert len(kinds["insert"]) == m.num_target_rows_inserted
        assert len(kinds["update_postimage"]) == m.num_target_rows_updated
        assert len(kinds["delete"]) == m.num_target_rows_deleted
        # old + inserted + postimages == new + deleted + preimages, as multisets
        assert (_multiset(target) + _multiset(kinds["insert"])
                + _multiset(kinds["update_postimage"])) == \
            (_multiset(got) + _multiset(kinds["delete"]) + _multiset(kinds["update_preimage"]))


@pytest.mark.parametrize("dv", [False, True], ids=["copy-on-write", "deletion-vectors"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=rows_st, source=rows_st, clauses=clause_lists(), partitioned=st.booleans(),
       cdf=st.booleans(), chunks=st.integers(1, 3), pre_delete=st.sampled_from([True, True, False]))
def test_merge_matches_reference(dv: bool, target: list[Row], source: list[Row],
                                 clauses: list[tuple], partitioned: bool, cdf: bool,
                                 chunks: int, pre_delete: bool) -> None:
    _run(target, source, clauses, dv, partitioned, cdf, chunks, pre_delete)


def test_reference_itself_on_a_known_case() -> None:
    target = [{"id": 1, "k": 0, "v": 1}, {"id": 2, "k": 1, "v": 5}, {"id": None, "k": 0, "v": 0}]
    source = [{"id": 2, "k": 0, "v": 9}, {"id": 3, "k": 0, "v": 3}, {"id": None, "k": 2, "v": 1}]
    clauses = [("matched", "update", None, MATCHED_SETS[1]),
               ("insert", "insert", SOURCE_CONDS[1], INSERTS[0]),
               ("nmbs", "delete", TARGET_CONDS[0], None)]
    assert sorted(reference(target, source, clauses), key=_key) == sorted([
        {"id": 1, "k": 0, "v": 1}, {"id": 2, "k": 1, "v": 9}, {"id": None, "k": 0, "v": 0},
        {"id": 3, "k": 0, "v": 3}], key=_key)
    _run(target, source, clauses, dv=True, partitioned=True, cdf=True, chunks=2)
