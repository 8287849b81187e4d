"""Session fixture for the DuckDB oracle: fails (never skips) when the extension cannot load."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.interop.oracles import connect_duckdb


@pytest.fixture(scope="session")
def duckdb_conn() -> Iterator[Any]:
    try:
        con = connect_duckdb()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield con
    con.close()
