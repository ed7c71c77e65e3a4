"""Shared test configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The least-privilege test reads what every integration test recorded: run it last."""
    last = [i for i in items if i.path.name == "test_rbac.py"]
    items[:] = [i for i in items if i.path.name != "test_rbac.py"] + last
