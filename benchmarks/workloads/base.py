"""What a benchmark case is, and the context it runs in inside its measurement subprocess.

A case sets up untimed (load inputs, clone a fixture table), times exactly one section with
``ctx.timed()``, then checks the answer so a fast wrong result cannot pass as a fast result. Peak
RSS is read when the timed section ends, so verification afterwards does not inflate it.
"""

from __future__ import annotations

import gc
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.config import Scale
from benchmarks.data import DataFiles
from benchmarks.systems import Scalar, System


def _own_peak_kib() -> int | None:
    """This process's peak RSS in KiB from ``/proc`` (Linux), or None elsewhere."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak resident set size so far of this process and its waited-for children, in MiB.

    On Linux the process's own peak comes from ``VmHWM``: ``ru_maxrss`` survives ``exec`` and so
    starts at the launching process's peak, which would credit the harness's memory to every run.
    """
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    own = _own_peak_kib()
    own_bytes = (
        own * 1024 if own is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit
    )
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * unit
    return max(own_bytes, children) / 2**20


def clone_table(src: Path, dst: Path) -> None:
    """Copy a table directory cheaply: hard-link immutable data files, copy the mutable log."""
    for dirpath, _dirnames, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        in_log = rel.parts[:1] == ("_delta_log",)
        for name in filenames:
            source, target = Path(dirpath) / name, dst / rel / name
            if in_log:
                shutil.copy2(source, target)
                continue
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)


def count_data_files(uri: str) -> int:
    """Parquet files under a table directory, outside ``_delta_log``."""
    root = Path(uri)
    return sum(1 for p in root.rglob("*.parquet") if "_delta_log" not in p.relative_to(root).parts)


class WrongResult(RuntimeError):
    """A system returned a wrong answer; its time is not a valid measurement."""


@dataclass(slots=True)
class Context:
    """Inputs, scratch space and the measurement of one (case, system, repetition) run."""

    scale: Scale
    data: DataFiles
    fixtures: Path
    scratch: Path
    elapsed: float | None = None
    units: int = 1
    baseline_rss_mb: float | None = None
    peak_rss_mb: float | None = None
    metrics: dict[str, Scalar] = field(default_factory=dict)

    def fixture(self, name: str) -> str:
        """Path of a prepared fixture table (read-only use)."""
        path = self.fixtures / name
        if not (self.fixtures / f"{name}.ok").exists():
            raise RuntimeError(f"fixture {name!r} was not prepared")
        return str(path)

    def fixture_copy(self, name: str) -> str:
        """A private copy of fixture ``name`` that the case may modify."""
        target = self.scratch / name
        clone_table(Path(self.fixture(name)), target)
        return str(target)

    def scratch_path(self, name: str) -> str:
        """A fresh path (not yet existing) in this run's scratch directory."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        return str(self.scratch / name)

    def per(self, units: int) -> None:
        """Report the timed section as ``units`` operations (value = seconds per operation)."""
        self.units = max(units, 1)

    @property
    def value(self) -> float | None:
        """Seconds per reported unit (the whole section unless ``per`` was called)."""
        return None if self.elapsed is None else self.elapsed / self.units

    def expect(self, what: str, got: object, want: object) -> None:
        """Raise ``WrongResult`` unless ``got == want``."""
        if got != want:
            raise WrongResult(f"wrong result: {what} = {got!r}, expected {want!r}")

    @contextmanager
    def timed(self) -> Iterator[None]:
        """Time the enclosed section; usable once per run."""
        if self.elapsed is not None:
            raise RuntimeError("a case may time only one section")
        gc.collect()
        self.baseline_rss_mb = peak_rss_mb()
        start = time.perf_counter()
        yield
        self.elapsed = time.perf_counter() - start
        self.peak_rss_mb = peak_rss_mb()


@dataclass(frozen=True, slots=True)
class Case:
    """One benchmark case: a workload variant every listed system runs the same way."""

    id: str
    """``W<n>.<variant>``, e.g. ``W4.merge_small_dv``."""
    title: str
    run: Callable[[System, Context], None]
    systems: frozenset[str]
    fixtures: tuple[str, ...] = ()
    unit: str = "total"
    """``total`` (the timed section) or ``per commit``."""
    details: tuple[str, ...] = ()
    """Metric names worth showing in the report."""
    warm_up: tuple[str, ...] = ()
    """Operations run once on a tiny table first, so first-use costs stay untimed (see systems)."""

    @property
    def workload(self) -> str:
        return self.id.split(".", 1)[0]
