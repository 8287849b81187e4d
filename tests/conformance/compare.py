"""Comparing two readers' Arrow output: same logical types, same rows in any order.

Why: deltalake's SQL reader returns string_view/binary_view, ``element``-named list items and
``UTC`` time zones; lakehouse may return plain or large types, ``item`` lists, ``+00:00``, or
extension types. Those are representation choices, not data differences, so both sides are
normalised first. Rows are compared as multisets: sorted in bulk with Arrow when every column is
sortable, else as canonical Python rows (NaN, maps, nested structs handled explicitly).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_UTC_ALIASES = {"utc", "+00:00", "z", "etc/utc", "gmt", "etc/gmt", "+0000", "00:00"}


def normalize_type(t: pa.DataType) -> pa.DataType:
    """The canonical type for comparison: plain string/binary/list, UTC spelt "UTC", no
    extension or dictionary wrapper, decimal32/64 as decimal128, every child nullable."""
    if isinstance(t, pa.ExtensionType):
        return normalize_type(t.storage_type)
    if pa.types.is_dictionary(t):
        return normalize_type(t.value_type)
    if pa.types.is_string_view(t) or pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_binary_view(t) or pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_timestamp(t):
        tz = "UTC" if t.tz is not None and t.tz.lower() in _UTC_ALIASES else t.tz
        return pa.timestamp(t.unit, tz)
    if pa.types.is_decimal(t) and t.bit_width < 128:
        return pa.decimal128(t.precision, t.scale)
    if pa.types.is_map(t):
        return pa.map_(normalize_type(t.key_type), normalize_type(t.item_type))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(pa.field("item", normalize_type(t.value_type)), t.list_size)
    if (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
    ):
        return pa.list_(pa.field("item", normalize_type(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, normalize_type(f.type)) for f in t])
    return t


def normalize_schema(schema: pa.Schema) -> pa.Schema:
    """Names and normalised types only: no nullability, no field or schema metadata."""
    return pa.schema([pa.field(f.name, normalize_type(f.type)) for f in schema])


def normalize_for_compare(table: pa.Table) -> pa.Table:
    """``table`` cast to :func:`normalize_schema` of its schema (values unchanged)."""
    target = normalize_schema(table.schema)
    columns = []
    for column, field in zip(table.columns, target, strict=True):
        if isinstance(column.type, pa.ExtensionType):
            column = pa.chunked_array(
                [chunk.storage for chunk in column.chunks], type=column.type.storage_type
            )
        columns.append(column.cast(field.type))
    return pa.Table.from_arrays(columns, schema=target)


def schema_differences(actual: pa.Schema, expected: pa.Schema) -> list[str]:
    """Human-readable differences between two schemas after normalisation; empty if equal."""
    a, e = normalize_schema(actual), normalize_schema(expected)
    if a.names != e.names:
        return [f"column names differ: got {a.names}, expected {e.names}"]
    return [
        f"column {fa.name!r}: got {fa.type}, expected {fe.type}"
        for fa, fe in zip(a, e, strict=True)
        if not fa.type.equals(fe.type)
    ]


# --- row comparison -------------------------------------------------------------------------


def _plain_type(t: pa.DataType) -> pa.DataType:
    """Temporal types replaced by their integer storage (no Python datetime range issues)."""
    if pa.types.is_timestamp(t) or pa.types.is_duration(t) or pa.types.is_date64(t):
        return pa.int64()
    if pa.types.is_date32(t) or pa.types.is_time32(t):
        return pa.int32()
    if pa.types.is_time64(t):
        return pa.int64()
    if pa.types.is_map(t):
        return pa.map_(_plain_type(t.key_type), _plain_type(t.item_type))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(pa.field("item", _plain_type(t.value_type)), t.list_size)
    if pa.types.is_list(t):
        return pa.list_(pa.field("item", _plain_type(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _plain_type(f.type)) for f in t])
    return t


def _sortable(t: pa.DataType) -> bool:
    return (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_decimal(t)
        or pa.types.is_null(t)
    )


_NAN = ("<NaN>",)


def _canonicalizer(t: pa.DataType) -> Callable[[Any], Any]:
    """A function turning one ``to_pylist`` value of type ``t`` into a hashable canonical form."""
    if pa.types.is_floating(t):
        return lambda v: _NAN if v is not None and math.isnan(v) else v
    if pa.types.is_map(t):
        key_fn, item_fn = _canonicalizer(t.key_type), _canonicalizer(t.item_type)
        return lambda v: (
            None
            if v is None
            else ("map", tuple(sorted(((key_fn(k), item_fn(x)) for k, x in v), key=repr)))
        )
    if pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
        item_fn = _canonicalizer(t.value_type)
        return lambda v: None if v is None else tuple(item_fn(x) for x in v)
    if pa.types.is_struct(t):
        fields = [(f.name, _canonicalizer(f.type)) for f in t]
        return lambda v: None if v is None else tuple((n, fn(v[n])) for n, fn in fields)
    return lambda v: v


def _canonical_rows(table: pa.Table) -> Counter[tuple[Any, ...]]:
    columns = [
        [fn(v) for v in column.to_pylist()]
        for column, fn in zip(table.columns, map(_canonicalizer, table.schema.types), strict=True)
    ]
    return Counter(zip(*columns, strict=True)) if columns else Counter({(): table.num_rows})


def _equal_mask(a: pa.ChunkedArray, b: pa.ChunkedArray) -> pa.Array:
    """Per row: equal values, both null, or both NaN."""
    a, b = a.combine_chunks(), b.combine_chunks()
    if pa.types.is_null(a.type):
        return pa.array([True] * len(a), pa.bool_())
    same = pc.or_kleene(pc.equal(a, b), pc.and_(pc.is_null(a), pc.is_null(b))).fill_null(False)
    if pa.types.is_floating(a.type):
        both_nan = pc.and_(pc.is_nan(a).fill_null(False), pc.is_nan(b).fill_null(False))
        same = pc.or_(same, both_nan)
    return same


def _sorted_by_all(table: pa.Table) -> pa.Table:
    keys = [(f.name, "ascending", "at_end") for f in table.schema if not pa.types.is_null(f.type)]
    if not keys:
        return table
    return table.take(pc.sort_indices(table, sort_keys=keys))


def assert_same_rows(actual: pa.Table, expected: pa.Table, label: str = "") -> None:
    """Fail unless both tables hold the same rows (any order) under the same column names.

    Column types are not compared here (see :func:`schema_differences`); values are compared after
    normalisation, so a type mismatch that loses no data does not hide a data mismatch.
    """
    prefix = f"{label}: " if label else ""
    a, e = normalize_for_compare(actual), normalize_for_compare(expected)
    assert a.column_names == e.column_names, (
        f"{prefix}column names differ: got {a.column_names}, expected {e.column_names}"
    )
    assert a.num_rows == e.num_rows, f"{prefix}row count {a.num_rows}, expected {e.num_rows}"
    plain = pa.schema([pa.field(f.name, _plain_type(f.type)) for f in e.schema])
    try:
        a, e = a.cast(plain), e.cast(plain)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise AssertionError(f"{prefix}column types incompatible for comparison: {exc}") from exc
    if a.num_rows == 0:
        return
    if all(_sortable(t) for t in plain.types):
        a, e = _sorted_by_all(a), _sorted_by_all(e)
        same = pa.array([True] * a.num_rows, pa.bool_())
        for x, y in zip(a.columns, e.columns, strict=True):
            same = pc.and_(same, _equal_mask(x, y))
        bad = pc.indices_nonzero(pc.invert(same)).to_pylist()
        if not bad:
            return
        lines = [f"{prefix}contents differ: {len(bad)} of {a.num_rows} rows (after sorting)"]
        for i in bad[:3]:
            lines.append(f"  row {i}: got      {a.slice(i, 1).to_pylist()[0]!r}")
            lines.append(f"  row {i}: expected {e.slice(i, 1).to_pylist()[0]!r}")
        raise AssertionError("\n".join(lines))
    got, want = _canonical_rows(a), _canonical_rows(e)
    if got == want:
        return
    extra, missing = got - want, want - got
    lines = [
        f"{prefix}contents differ ({a.num_rows} rows): "
        f"{sum(extra.values())} unexpected, {sum(missing.values())} missing"
    ]
    lines += [f"  unexpected: {row!r}" for row in list(extra)[:3]]
    lines += [f"  missing:    {row!r}" for row in list(missing)[:3]]
    raise AssertionError("\n".join(lines))
