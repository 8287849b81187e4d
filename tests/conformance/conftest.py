"""Registers the conformance summary plugin (see ``summary.py``) once per session."""

from __future__ import annotations

import pytest

from . import summary


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.is_registered(summary):
        config.pluginmanager.register(summary, name=summary.__name__)
