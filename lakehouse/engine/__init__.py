"""Engine registry: pick an execution engine by name, imported lazily with an install hint.

Example:
    >>> from lakehouse.engine import get_engine
    >>> get_engine("polars").name
    'polars'
"""

from __future__ import annotations

import importlib

from lakehouse.engine.base import Engine
from lakehouse.errors import InvalidArgumentError

_REGISTRY: dict[str, tuple[str, str]] = {
    "polars": ("lakehouse.engine._polars", "pip install polars"),
    "spark": ("lakehouse.engine._spark", "pip install 'lakehouse[spark]' (and a Java 17 runtime)"),
}
_CACHE: dict[str, Engine] = {}
DEFAULT_ENGINE = "polars"


def get_engine(engine: str | Engine | None = None) -> Engine:
    """The engine named ``engine`` (default polars), or ``engine`` itself if already one."""
    if engine is None:
        engine = DEFAULT_ENGINE
    if not isinstance(engine, str):
        return engine
    if engine in _CACHE:
        return _CACHE[engine]
    if engine not in _REGISTRY:
        raise InvalidArgumentError(f"unknown engine {engine!r}; choose one of {sorted(_REGISTRY)}")
    module, hint = _REGISTRY[engine]
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise InvalidArgumentError(f"engine {engine!r} is not available ({e}); {hint}") from e
    inst: Engine = mod.create_engine()
    _CACHE[engine] = inst
    return inst


def register_engine(name: str, module: str, hint: str = "") -> None:
    """Register a third-party engine: ``module.create_engine()`` is called on first use."""
    _REGISTRY[name] = (module, hint)
    _CACHE.pop(name, None)


__all__ = ["Engine", "get_engine", "register_engine"]


