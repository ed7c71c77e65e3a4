"""The work queue between watch events and reconcile workers (client-go's workqueue model).

Rules:

1. A key is in the queue at most once: adding it again before a worker takes
   it changes nothing.
2. A key is processed by one worker at a time: added while in work, it is
   marked dirty and queued again when that work is done (`done`), so every
   change is seen and two reconciles of one trigger never overlap.
3. `add_after` keeps only the earliest pending time per key, in one heap with
   one timer for the whole queue: thousands of triggers waiting for their
   next slot cost a heap entry each, not a task or a sleeping coroutine.
4. `add_failed` backs a key off exponentially (0.1 s doubling to 5 min);
   `forget` resets it after a success.

The clock is the event loop's (monotonic); due times come from the caller.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
BACKOFF_START = 0.1
BACKOFF_MAX = 300.0


class ShutDown(Exception):
    """The queue stopped: workers return."""


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._ready: deque[K] = deque()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._heap: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._failures: dict[K, int] = {}
        self._closed = False

    def __len__(self) -> int:
        return len(self._ready)

    @property
    def waiting(self) -> int:
        """Keys with a pending due time."""
        return len(self._due)

    # -- adding --------------------------------------------------------------------------

    def add(self, key: K) -> None:
        if self._closed:
            return
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._ready.append(key)
        self._wake_one()

    def add_after(self, key: K, seconds: float) -> None:
        if seconds <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + seconds
        if self._due.get(key, float("inf")) <= due:
            return  # an earlier time is pending already
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._seq), key))
        if due < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = due
            self._timer = loop.call_at(due, self._fire)

    def add_failed(self, key: K) -> float:
        """Add after the key's next backoff; returns that delay."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = float(min(BACKOFF_START * 2**failures, BACKOFF_MAX))
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """The key succeeded: its next failure starts the backoff afresh."""
        self._failures.pop(key, None)

    def discard(self, key: K) -> None:
        """Drop pending times and backoff of a key whose object is gone."""
        self._due.pop(key, None)
        self._failures.pop(key, None)

    def _fire(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._timer, self._timer_at = None, float("inf")
        while self._heap and self._heap[0][0] <= now:
            due, _, key = heapq.heappop(self._heap)
            if self._due.get(key) == due:  # else superseded by an earlier add_after
                del self._due[key]
                self.add(key)
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # drop stale entries at the top
        if self._heap:
            self._timer_at = self._heap[0][0]
            self._timer = loop.call_at(self._timer_at, self._fire)

    # -- taking ----------------------------------------------------------------------------

    async def get(self) -> K:
        """The next key to work on (marked in work until `done`); ShutDown when closed."""
        while not self._ready:
            if self._closed:
                raise ShutDown
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        key = self._ready.popleft()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def shut_down(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
