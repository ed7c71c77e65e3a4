"""Per-key token buckets: how long a request must wait, or 0 when it may go now.

Pure and clock-injected (tests drive the clock). Buckets live in memory, one per
(API key, kind of request); their number is bounded by the number of keys
times the kinds, and an LRU bound keeps even that finite.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .settings import Rate

MAX_BUCKETS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by (key id, kind); `rates` maps each kind to its Rate."""

    def __init__(
        self,
        rates: dict[str, Rate],
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        self.rates, self.clock, self.max_buckets = rates, clock, max_buckets
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()

    def take(self, key_id: str, kind: str) -> float:
        """Spend one token of the key's `kind` bucket: 0.0, or seconds until one is there."""
        rate = self.rates[kind]
        now = self.clock()
        bucket = self._buckets.pop((key_id, kind), None) or _Bucket(float(rate.burst), now)
        bucket.tokens = min(rate.burst, bucket.tokens + (now - bucket.updated) * rate.per_second)
        bucket.updated = now
        self._buckets[(key_id, kind)] = bucket
        while len(self._buckets) > self.max_buckets:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / rate.per_second

    def __len__(self) -> int:
        return len(self._buckets)
