"""Fixtures of the operator tests: a real PostgreSQL for the store-backed event scenarios."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pgserver import pg_server


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    yield from pg_server()
