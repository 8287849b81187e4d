"""Upstream expected results in ``_expected/*.expected.txt``, compared cell by cell as text.

Why: these files are arrow-rs "pretty" tables copied from upstream tests (``+---+`` borders,
``|``-separated cells, rows in any order). Parsing them into typed values would need a parser per
type; rendering our rows the way arrow-rs displays them and comparing the cell strings is smaller
and exact. Covers the types those files use (integers, strings, binary, booleans, nested
struct/list/map, NULL as an empty cell); any other type fails loudly instead of comparing wrongly.
"""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow as pa

from .compare import normalize_for_compare


def parse_pretty_table(text: str) -> tuple[list[str], list[tuple[str, ...]]]:
    """Header and data rows of an arrow-rs pretty-printed table.

    Cell boundaries are the ``+`` positions of the border line, so a ``|`` inside a value cannot
    split a cell.
    """
    lines = [line.rstrip("\n") for line in text.splitlines() if line.strip()]
    borders = [i for i, line in enumerate(lines) if line.startswith("+")]
    if len(borders) < 2:
        raise ValueError("not an arrow-rs pretty table: fewer than two +---+ border lines")
    edges = [i for i, ch in enumerate(lines[borders[0]]) if ch == "+"]

    def cells(line: str) -> tuple[str, ...]:
        return tuple(line[lo + 1 : hi].strip() for lo, hi in pairwise(edges))

    header = list(cells(lines[borders[0] + 1]))
    body_end = borders[2] if len(borders) > 2 else len(lines)
    rows = [cells(line) for line in lines[borders[1] + 1 : body_end] if line.startswith("|")]
    return header, rows


def _display(value: Any, t: pa.DataType) -> str:
    """``value`` (from ``to_pylist``) as arrow-rs's display formatter writes it."""
    if value is None:
        return ""
    if pa.types.is_struct(t):
        inner = ", ".join(f"{f.name}: {_display(value[f.name], f.type)}" for f in t)
        return "{" + inner + "}"
    if pa.types.is_map(t):
        pairs = (f"{_display(k, t.key_type)}: {_display(v, t.item_type)}" for k, v in value)
        return "{" + ", ".join(pairs) + "}"
    if pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
        return "[" + ", ".join(_display(x, t.value_type) for x in value) + "]"
    if pa.types.is_binary(t) or pa.types.is_fixed_size_binary(t):
        return bytes(value).hex()
    if pa.types.is_boolean(t):
        return "true" if value else "false"
    if pa.types.is_integer(t) or pa.types.is_string(t):
        return str(value)
    raise NotImplementedError(f"no arrow-rs display rule for {t} in the expected-file comparison")


def assert_matches_expected_file(actual: pa.Table, expected_file: Path) -> None:
    """Fail unless ``actual`` holds exactly the rows of ``expected_file`` (any order)."""
    header, want_rows = parse_pretty_table(expected_file.read_text(encoding="utf-8"))
    table = normalize_for_compare(actual)
    missing_cols = [name for name in header if name not in table.column_names]
    assert not missing_cols, f"{expected_file.name}: columns {missing_cols} not in our result"
    table = table.select(header)
    columns = [[_display(v, column.type) for v in column.to_pylist()] for column in table.columns]
    got = Counter(zip(*columns, strict=True))
    want = Counter(want_rows)
    if got == want:
        return
    extra, missing = got - want, want - got
    lines = [
        f"{expected_file.name}: {sum(extra.values())} unexpected, "
        f"{sum(missing.values())} missing rows (of {len(want_rows)} expected)"
    ]
    lines += [f"  unexpected: {row!r}" for row in list(extra)[:2]]
    lines += [f"  missing:    {row!r}" for row in list(missing)[:2]]
    raise AssertionError("\n".join(lines))
