"""Tables the read and modify workloads start from, built once per run by each system's own writer.

Each system reads and modifies tables it wrote itself (deltalake-fast uses deltalake's), so its
file layout and checkpoint policy are part of what is measured. A fixture that fails to build turns
only the cases needing it into recorded errors.
"""

from __future__ import annotations

import shutil
import traceback
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.config import Scale
from benchmarks.data import DataFiles, small_batch
from benchmarks.systems import System


def _base(system: System, data: DataFiles, scale: Scale, uri: str) -> None:
    system.write(uri, pq.read_table(data.base))


def _base_dv(system: System, data: DataFiles, scale: Scale, uri: str) -> None:
    system.write(uri, pq.read_table(data.base), deletion_vectors=True)


def _partitioned(system: System, data: DataFiles, scale: Scale, uri: str) -> None:
    system.write(uri, pq.read_table(data.base), partition_by=["day"])


def _overwritten(system: System, data: DataFiles, scale: Scale, uri: str) -> None:
    table = pq.read_table(data.base)
    system.write(uri, table)
    system.write(uri, table, mode="overwrite")


def _log(system: System, data: DataFiles, scale: Scale, uri: str) -> None:
    rows = scale.append_rows
    system.write(uri, small_batch(0, rows))
    for i in range(1, scale.log_commits):
        system.write(uri, small_batch(i * rows, rows), mode="append")


FIXTURES: dict[str, Callable[[System, DataFiles, Scale, str], None]] = {
    "base": _base,
    "base_dv": _base_dv,
    "part": _partitioned,
    "overwritten": _overwritten,
    "log": _log,
}


def build_fixtures(
    system: System, names: list[str], data: DataFiles, scale: Scale, directory: Path
) -> dict[str, str | None]:
    """Build the named fixtures under ``directory``; returns name -> error message (None if ok).

    A fixture already marked done (``<name>.ok``) is kept, so ``--reuse-fixtures`` can skip work.
    """
    directory.mkdir(parents=True, exist_ok=True)
    status: dict[str, str | None] = {}
    for name in names:
        done, failed = directory / f"{name}.ok", directory / f"{name}.err"
        if done.exists():
            status[name] = None
            continue
        shutil.rmtree(directory / name, ignore_errors=True)
        failed.unlink(missing_ok=True)
        try:
            FIXTURES[name](system, data, scale, str(directory / name))
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            failed.write_text(message + "\n\n" + traceback.format_exc())
            status[name] = message
        else:
            done.touch()
            status[name] = None
    return status
