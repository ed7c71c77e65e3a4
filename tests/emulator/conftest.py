"""Fixtures of the emulator tests (the helpers live in ``emulator_helpers``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from emulator_helpers import run_emulated


@pytest.fixture
def emulated() -> Callable[..., None]:
    """Run an ``async def scenario(cluster, api)`` against a fresh emulated cluster."""
    return run_emulated
