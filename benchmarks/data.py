"""Deterministic synthetic data for the benchmarks, generated once per scale and cached as Parquet.

Every system reads the same bytes, generation is never inside a timed section, and a rerun at the
same scale reuses the cache. Schema (issue 6): int64 ``id`` (sequential, so files hold contiguous id
ranges and data skipping has something to skip), int64 ``key``, three float64 ``f1..f3``, a
16-character string ``name``, a UTC timestamp ``ts`` and a date ``day`` with 30 values clustered by id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.config import Scale

GENERATOR_VERSION = 1
"""Bump when the generated data changes, so cached files are regenerated."""
SEED = 20_240_601
CHUNK_ROWS = 1_000_000
DAYS = 30
NAME_CHARS = 16
BASE_DAY = date(2024, 1, 1)
_EPOCH_DAY = BASE_DAY.toordinal() - date(1970, 1, 1).toordinal()
_BASE_TS_US = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000
_DAY_US = 86_400 * 1_000_000

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("key", pa.int64()),
        pa.field("f1", pa.float64()),
        pa.field("f2", pa.float64()),
        pa.field("f3", pa.float64()),
        pa.field("name", pa.string()),
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("day", pa.date32()),
    ]
)


@dataclass(frozen=True, slots=True)
class DataFiles:
    """Paths of the cached Parquet inputs for one scale."""

    base: Path
    merge_large: Path
    merge_small: Path


def day_value(index: int) -> date:
    """The ``day`` value of partition ``index`` (0..29)."""
    return date.fromordinal(BASE_DAY.toordinal() + index)


def make_rows(ids: np.ndarray, total_rows: int, rng: np.random.Generator) -> pa.Table:
    """Rows for ``ids``; ``day``/``ts`` follow the id's position in a table of ``total_rows``."""
    n = len(ids)
    day_index = np.minimum(ids * DAYS // max(total_rows, 1), DAYS - 1)
    letters = rng.integers(ord("a"), ord("z") + 1, size=n * NAME_CHARS, dtype=np.uint8)
    offsets = np.arange(0, n * NAME_CHARS + 1, NAME_CHARS, dtype=np.int32)
    name = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(letters))
    ts = _BASE_TS_US + day_index * _DAY_US + rng.integers(0, _DAY_US, size=n)
    floats = rng.standard_normal((3, n))
    columns = [
        pa.array(ids, pa.int64()),
        pa.array(rng.integers(0, max(total_rows // 100, 10), size=n), pa.int64()),
        pa.array(floats[0]),
        pa.array(floats[1]),
        pa.array(floats[2]),
        name,
        pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        pa.array((day_index + _EPOCH_DAY).astype(np.int32), pa.int32()).cast(pa.date32()),
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def small_batch(start_id: int, rows: int) -> pa.Table:
    """A deterministic small batch of ``rows`` rows with ids ``start_id, start_id + 1, ...``."""
    ids = np.arange(start_id, start_id + rows, dtype=np.int64)
    return make_rows(ids, start_id + rows, np.random.default_rng([SEED, start_id]))


def merge_source(total_rows: int, source_rows: int, *, clustered: bool) -> pa.Table:
    """An upsert source: half the rows update existing ids, half insert ids past the table's end.

    ``clustered`` takes the existing ids as one contiguous range from the middle of the table (what a
    pruned merge should read only a file or two for); otherwise they are a uniform random sample.
    """
    rng = np.random.default_rng([SEED, source_rows, int(clustered)])
    matched = source_rows // 2
    if clustered:
        start = total_rows // 2
        existing = np.arange(start, start + matched, dtype=np.int64)
    else:
        existing = np.sort(rng.choice(total_rows, size=matched, replace=False)).astype(np.int64)
    new = np.arange(total_rows, total_rows + (source_rows - matched), dtype=np.int64)
    return make_rows(np.concatenate([existing, new]), total_rows, rng)


def _write_base(path: Path, rows: int) -> None:
    tmp = path.with_suffix(".parquet.tmp")
    with pq.ParquetWriter(tmp, SCHEMA) as writer:
        for index, start in enumerate(range(0, rows, CHUNK_ROWS)):
            ids = np.arange(start, min(start + CHUNK_ROWS, rows), dtype=np.int64)
            writer.write_table(make_rows(ids, rows, np.random.default_rng([SEED, index])))
    tmp.replace(path)


def _write_table(path: Path, table: pa.Table) -> None:
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def ensure_data(root: Path, scale: Scale) -> DataFiles:
    """Generate (or reuse) the cached inputs for ``scale`` under ``root/data/<scale>``."""
    files = data_files(root, scale)
    directory = files.base.parent
    stamp = directory / "meta.json"
    wanted = {
        "generator_version": GENERATOR_VERSION,
        "rows": scale.rows,
        "merge_large_rows": scale.merge_large_rows,
        "merge_small_rows": scale.merge_small_rows,
    }
    present = all(p.exists() for p in (files.base, files.merge_large, files.merge_small))
    if present and stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return files
    directory.mkdir(parents=True, exist_ok=True)
    _write_base(files.base, scale.rows)
    _write_table(
        files.merge_large, merge_source(scale.rows, scale.merge_large_rows, clustered=False)
    )
    _write_table(
        files.merge_small, merge_source(scale.rows, scale.merge_small_rows, clustered=True)
    )
    stamp.write_text(json.dumps(wanted, indent=2))
    return files


def data_files(root: Path, scale: Scale) -> DataFiles:
    """Paths of the cached inputs (for a subprocess; ``ensure_data`` already ran in the parent)."""
    directory = root / "data" / scale.name
    return DataFiles(
        base=directory / "base.parquet",
        merge_large=directory / "merge_large.parquet",
        merge_small=directory / "merge_small.parquet",
    )
