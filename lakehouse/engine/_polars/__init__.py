"""The default engine: polars, embedded (no cluster, no JVM)."""

from __future__ import annotations

from lakehouse.engine._polars.engine import PolarsEngine


def create_engine() -> PolarsEngine:
    return PolarsEngine()


__all__ = ["PolarsEngine", "create_engine"]
