"""Helpers for log/transaction tests: tables built straight from transactions (no data writer).

``fake_add`` makes ``add`` actions for files that do not exist (fine for log-only tests);
``write_data_file`` writes a real tiny Parquet file and returns its ``add`` (for interop tests).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.io.storage import Storage
from lakehouse.log.actions import Add, Metadata, Protocol, now_ms
from lakehouse.log.snapshot import Snapshot
from lakehouse.txn import CommitResult, Transaction

SCHEMA_STRING = json.dumps({
    "type": "struct",
    "fields": [
        {"name": "id", "type": "long", "nullable": True, "metadata": {}},
        {"name": "part", "type": "string", "nullable": True, "metadata": {}},
    ],
})
ICT_PROTOCOL = Protocol(1, 7, None, frozenset({"inCommitTimestamp"}))


def fake_add(path: str | None = None, *, part: str | None = None, size: int = 100,
             data_change: bool = True) -> Add:
    """An ``add`` for a file that need not exist."""
    name = path or f"part-{uuid.uuid4().hex}.parquet"
    pv: dict[str, str | None] = {}
    if part is not None:
        pv = {"part": part}
        if path is None:
            name = f"part={part}/{name}"
    return Add(name, pv, size, now_ms(), data_change,
               stats=json.dumps({"numRecords": 1}))


def create_table(
    storage: Storage,
    *,
    adds: Iterable[Add] = (),
    configuration: Mapping[str, str] | None = None,
    partition_columns: tuple[str, ...] = (),
    protocol: Protocol | None = None,
    schema_string: str = SCHEMA_STRING,
    **txn_kwargs: Any,
) -> CommitResult:
    """Create the table at ``storage`` (version 0) with ``adds`` as its initial files."""
    txn = Transaction(storage, None, "CREATE TABLE", {"isManaged": "false"}, **txn_kwargs)
    txn.set_protocol(protocol or Protocol(1, 2))
    txn.set_metadata(Metadata.new(schema_string, partition_columns, configuration))
    txn.add_files(adds)
    return txn.commit()


def append(storage: Storage, adds: Iterable[Add] | None = None, **txn_kwargs: Any) -> CommitResult:
    """Blind-append ``adds`` (one fake file by default) on top of the latest snapshot."""
    snap = Snapshot.load(storage)
    txn = Transaction(storage, snap, "WRITE", {"mode": "Append"}, **txn_kwargs)
    txn.add_files(list(adds) if adds is not None else [fake_add()])
    return txn.commit()


def active_paths(storage: Storage, version: int | None = None) -> list[str]:
    return sorted(Snapshot.load(storage, version).files["path"].to_pylist())


def write_data_file(root: str, ids: list[int], *, part: str | None = None) -> Add:
    """Write a real Parquet data file under local table ``root``; return its ``add``."""
    rel = f"part-{uuid.uuid4().hex}.parquet"
    pv: dict[str, str | None] = {}
    table = pa.table({"id": pa.array(ids, pa.int64())})
    if part is not None:
        rel = f"part={part}/{rel}"
        pv = {"part": part}
    else:
        table = table.append_column("part", pa.array([None] * len(ids), pa.string()))
    full = os.path.join(root, rel)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    pq.write_table(table, full)
    st = os.stat(full)
    stats = {"numRecords": len(ids), "minValues": {"id": min(ids)}, "maxValues": {"id": max(ids)},
             "nullCount": {"id": 0}}
    return Add(rel, pv, st.st_size, st.st_mtime_ns // 1_000_000, True, stats=json.dumps(stats))


def commit_lines(storage: Storage, version: int) -> list[dict[str, Any]]:
    data = storage.read_bytes(f"_delta_log/{version:020d}.json")
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def appender_process(uri: str, worker: int, count: int, max_attempts: int) -> list[int]:
    """Multiprocessing target: ``count`` blind appends of one uniquely named fake file each."""
    storage = Storage.for_uri(uri)
    versions = []
    for i in range(count):
        add = fake_add(f"w{worker}-{i:03d}.parquet")
        versions.append(append(storage, [add], max_attempts=max_attempts).version)
    return versions
