"""Per-file statistics (``add.stats`` JSON) parsed in bulk into Arrow columns.

The stats strings of all candidate files are parsed in one ``pyarrow.json`` call with an explicit
schema (only the columns a predicate needs), not one ``json.loads`` per file. A file whose stats
cannot be parsed simply has no stats: it is never skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

#: Longest string min/max we trust as exact; writers truncate longer values (max may be a prefix).
STRING_PREFIX = 32


@dataclass(frozen=True, slots=True, eq=False)
class FileStats:
    """Stats of N files: ``num_records`` and per-column ``min``/``max``/``null_count`` arrays."""

    num_records: pa.Array
    min: Mapping[str, pa.Array]
    max: Mapping[str, pa.Array]
    null_count: Mapping[str, pa.Array]


def _json_type(t: pa.DataType) -> pa.DataType | None:
    if pa.types.is_integer(t):
        return pa.int64()
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return pa.float64()
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        return pa.string()
    return None


def parse_stats(stats: pa.Array | pa.ChunkedArray, columns: Mapping[str, tuple[str, pa.DataType]]) -> FileStats:
    """Parse ``stats`` for ``columns``: logical name -> (stats key (physical name), arrow type)."""
    if isinstance(stats, pa.ChunkedArray):
        stats = stats.combine_chunks()
    n = len(stats)
    usable = {name: (key, t, jt) for name, (key, t) in columns.items()
              if (jt := _json_type(t)) is not None}
    value_struct = pa.struct([(key, jt) for key, _, jt in usable.values()])
    count_struct = pa.struct([(key, pa.int64()) for key, _, _ in usable.values()])
    schema = pa.schema([
        ("numRecords", pa.int64()),
        ("minValues", value_struct),
        ("maxValues", value_struct),
        ("nullCount", count_struct),
    ])
    if n == 0:
        parsed = schema.empty_table()
    else:
        lines = pc.fill_null(stats, "{}")
        lines = pc.if_else(pc.equal(pc.utf8_trim_whitespace(lines), ""), "{}", lines)
        blob = "\n".join(lines.to_pylist()).encode()
        try:
            parsed = pj.read_json(
                pa.BufferReader(blob),
                parse_options=pj.ParseOptions(explicit_schema=schema,
                                              unexpected_field_behavior="ignore"),
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            parsed = _parse_slow(lines.to_pylist(), schema)
        if parsed.num_rows != n:  # defensive: never misalign stats with files
            parsed = _parse_slow(lines.to_pylist(), schema)

    def field(col: str, key: str) -> pa.Array:
        arr = parsed[col].combine_chunks()
        return pc.struct_field(arr, key) if len(arr) else pa.array([], arr.type.field(key).type)

    mins: dict[str, pa.Array] = {}
    maxs: dict[str, pa.Array] = {}
    nulls: dict[str, pa.Array] = {}
    for name, (key, t, _) in usable.items():
        mins[name] = _typed(field("minValues", key), t, is_max=False)
        maxs[name] = _typed(field("maxValues", key), t, is_max=True)
        nulls[name] = field("nullCount", key)
    return FileStats(parsed["numRecords"].combine_chunks(), mins, maxs, nulls)


def _parse_slow(lines: Sequence[str], schema: pa.Schema) -> pa.Table:
    """Row-by-row fallback: values of the wrong JSON type become null (unknown), never an error."""
    rows = []
    for line in lines:
        try:
            obj = json.loads(line)
        except (TypeError, ValueError):
            obj = {}
        row = {"numRecords": obj.get("numRecords") if isinstance(obj.get("numRecords"), int) else None}
        for group in ("minValues", "maxValues", "nullCount"):
            src = obj.get(group) if isinstance(obj.get(group), dict) else {}
            st = schema.field(group).type
            vals = {}
            for f in st:
                v = src.get(f.name)
                ok = (pa.types.is_integer(f.type) and isinstance(v, int) and not isinstance(v, bool)) \
                    or (pa.types.is_floating(f.type) and isinstance(v, int | float) and not isinstance(v, bool)) \
                    or (pa.types.is_string(f.type) and isinstance(v, str))
                vals[f.name] = v if ok else None
            row[group] = vals
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=schema)


def _typed(arr: pa.Array, t: pa.DataType, is_max: bool) -> pa.Array:
    """Stats values cast to the column type; unusable values become null (= unknown)."""
    try:
        if pa.types.is_timestamp(t):
            target = pa.timestamp("us", t.tz)
            if t.tz is None:
                arr = pc.replace_substring_regex(arr, r"(Z|[+-]\d\d:\d\d)$", "")
            out = arr.cast(target)
            if is_max:  # stats are millisecond-truncated: widen the max to stay an upper bound
                out = pc.add(out, pa.scalar(999, pa.duration("us")))
            return out
        if pa.types.is_date(t):
            return arr.cast(pa.date32())
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            if is_max:
                long = pc.greater_equal(pc.utf8_length(arr), STRING_PREFIX)
                arr = pc.if_else(long, pa.scalar(None, pa.string()), arr)
            return arr
        return arr
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.nulls(len(arr), _json_type(t) or pa.null())


def live_row_count(files: pa.Table) -> int:
    """Live rows of ``files`` per their stats (``numRecords`` less deletion-vector cardinality)."""
    if files.num_rows == 0:
        return 0
    st = parse_stats(files["stats"], {})
    n = pc.sum(st.num_records).as_py() or 0
    dv = files["deletionVector"].combine_chunks()
    if len(dv):
        n -= pc.sum(pc.struct_field(dv, "cardinality")).as_py() or 0
    return int(n)
