"""Shared fixtures: where tables live (every storage backend) and which engine runs the work.

A table written through one backend must behave identically on all of them, so tests that take
``table_uri`` run once per backend: local disk and memory always, and the S3, Azure and GCS
emulators of ``tests/conftest_storage.py`` (marked ``cloud``). The cloud variants share the xdist
group ``"cloud"``, so with ``pytest -n 2 --dist loadgroup`` (``make test``) a single worker starts
and owns the emulators. ``LAKEHOUSE_SKIP_CLOUD=1`` skips them; ``-m "not cloud"`` deselects them.

Fixtures:

* ``table_location`` -> :class:`~tests.conftest_storage.StorageRoot` (backend, uri, storage_options);
* ``table_uri`` -> ``str``, a fresh empty table URI on that backend;
* ``storage_options`` -> ``dict`` to pass as ``storage_options=`` with ``table_uri`` (empty for
  local and memory);
* ``engine`` -> the :class:`~lakehouse.engine.Engine` to run with (``"polars"``; Spark later).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lakehouse.engine import Engine, get_engine

if TYPE_CHECKING:  # imported lazily: pytest_plugins must be the first to import it
    from tests.conftest_storage import StorageRoot

pytest_plugins = ["tests.conftest_storage", "tests.conformance.summary"]

_CLOUD = (pytest.mark.cloud, pytest.mark.xdist_group("cloud"))
BACKENDS = [
    "local",
    "memory",
    pytest.param("s3", marks=_CLOUD, id="s3"),
    pytest.param("azure", marks=_CLOUD, id="azure"),
    pytest.param("gcs", marks=_CLOUD, id="gcs"),
]
ENGINES = ["polars"]


@pytest.fixture(params=BACKENDS)
def table_location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageRoot]:
    """A fresh, empty table location on each storage backend."""
    from tests.conftest_storage import StorageRoot, cloud_storage_options

    backend: str = request.param
    name = f"t-{uuid.uuid4().hex[:12]}"
    if backend == "local":
        yield StorageRoot("local", str(tmp_path / name))
    elif backend == "memory":
        yield StorageRoot("memory", f"memory://{name}")
        import fsspec

        with contextlib.suppress(FileNotFoundError):
            fsspec.filesystem("memory").rm(f"/{name}", recursive=True)
    else:
        prefix, options = cloud_storage_options(backend)
        yield StorageRoot(backend, f"{prefix}/{name}", options)


@pytest.fixture
def table_uri(table_location: StorageRoot) -> str:
    """URI of a fresh, empty table location (pass ``storage_options`` along with it)."""
    return table_location.uri


@pytest.fixture
def storage_options(table_location: StorageRoot) -> dict[str, str]:
    """Storage options for ``table_uri`` (credentials/endpoints of the emulator; empty locally)."""
    return dict(table_location.storage_options)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Engine:
    """The execution engine a test runs with."""
    return get_engine(request.param)
