"""The one conflict-retry helper: re-read, re-decide, write again, when the object moved."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .errors import KubeError

T = TypeVar("T")
DEFAULT_ATTEMPTS = 5


async def retry_on_conflict(
    attempt: Callable[[], Awaitable[T]],
    attempts: int = DEFAULT_ATTEMPTS,
    delay: float = 0.0,
) -> T:
    """Run attempt() until it does not raise a 409, at most `attempts` times.

    Each call must read the object afresh and decide again: a conflict means
    it changed since the last read (client-go's `retry.RetryOnConflict`).
    """
    for remaining in range(attempts - 1, -1, -1):
        try:
            return await attempt()
        except KubeError as exc:
            if exc.status != 409 or remaining == 0:
                raise
        if delay:
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
