"""Process targets for ``test_concurrency.py`` (module-level so ``spawn`` children can import them)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

import lakehouse
from lakehouse.errors import ConcurrentTransactionError
from lakehouse.txn.transaction import Transaction

ROWS_PER_APPEND = 5


def append_many(uri: str, worker: int, count: int) -> list[int]:
    """``count`` appends of ``ROWS_PER_APPEND`` uniquely keyed rows; the versions committed."""
    versions = []
    for i in range(count):
        data = pa.table({
            "worker": pa.array([worker] * ROWS_PER_APPEND, pa.int32()),
            "seq": pa.array([i] * ROWS_PER_APPEND, pa.int32()),
            "k": pa.array(range(ROWS_PER_APPEND), pa.int32()),
        })
        versions.append(lakehouse.write(uri, data, mode="append").version)
    return versions


def write_at_barrier(uri: str, barrier: Any, data: pa.Table,
                     kwargs: dict[str, Any]) -> tuple[str, Any]:
    """``lakehouse.write`` whose commit waits for the other racer: both read the same version
    and write their files, then race for the same commit. ``("ok", version)`` or
    ``("error", exception class name, message)``."""
    original = Transaction.commit

    def commit(self: Transaction, *args: Any, **kw: Any) -> Any:
        barrier.wait(timeout=120)
        return original(self, *args, **kw)

    Transaction.commit = commit  # type: ignore[method-assign]
    try:
        return ("ok", lakehouse.write(uri, data, **kwargs).version)
    except Exception as e:
        return ("error", type(e).__name__, str(e))
    finally:
        Transaction.commit = original  # type: ignore[method-assign]


def exactly_once_stream(uri: str, app_id: str, batches: int) -> int:
    """A (duplicated) streaming job: micro-batch ``v`` is written with ``app_version=v``.

    On ConcurrentTransactionError another instance committed this app concurrently; the batch
    is retried, and the retry is skipped if that instance already applied it. Returns the
    number of conflicts met.
    """
    conflicts = 0
    for v in range(1, batches + 1):
        data = pa.table({"batch": pa.array([v] * 3, pa.int32()), "k": pa.array([0, 1, 2], pa.int32())})
        while True:
            try:
                lakehouse.write(uri, data, mode="append", app_id=app_id, app_version=v)
            except ConcurrentTransactionError:
                conflicts += 1
                continue
            break
    return conflicts
