"""Pure parts of the gateway's limits: token buckets, the LRU, capped 422 lists, kinds."""

from __future__ import annotations

from typing import Any

import pytest

from recluster.gateway.errors import MAX_PROBLEMS, field_problems
from recluster.gateway.guard import request_kind
from recluster.gateway.lru import Lru
from recluster.gateway.ratelimit import RateLimiter
from recluster.gateway.settings import Rate, RateLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    limiter = RateLimiter({"execute": Rate(per_second=0.5, burst=3)}, clock=clock)
    assert [limiter.take("alice", "execute") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("alice", "execute") == pytest.approx(2.0)  # one token per 2 s
    assert limiter.take("bob", "execute") == 0.0  # buckets are per key
    clock.now += 1.0
    assert limiter.take("alice", "execute") == pytest.approx(1.0)
    clock.now += 1.0
    assert limiter.take("alice", "execute") == 0.0
    clock.now += 3600  # a long pause refills to the burst, no further
    assert [limiter.take("alice", "execute") for _ in range(4)][-1] > 0


def test_buckets_are_bounded() -> None:
    limiter = RateLimiter({"read": Rate(1, 1)}, clock=Clock(), max_buckets=10)
    for i in range(100):
        limiter.take(f"key-{i}", "read")
    assert len(limiter) == 10


def test_rates_describe_themselves_for_the_429() -> None:
    assert RateLimits().execute.describe() == "10 per minute, bursts of 10"
    assert Rate(per_second=20, burst=50).describe() == "20 per second, bursts of 50"
    with pytest.raises(ValueError, match="per_second > 0"):
        Rate(per_second=0, burst=1)


def test_lru_keeps_the_most_recently_used() -> None:
    cache: Lru[str, int] = Lru(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert list(cache) == ["a", "c"]
    assert cache.pop("a") == 1 and cache.pop("a") is None
    assert len(cache) == 1 and "c" in cache


def test_422_lists_are_capped_with_a_count_of_the_rest() -> None:
    errors: list[dict[str, Any]] = [
        {"loc": ("body", i, "count"), "msg": "Field required", "type": "missing"}
        for i in range(80_000)
    ]
    problems = field_problems(errors)
    assert len(problems) == MAX_PROBLEMS + 1 == 21
    assert problems[0] == {
        "loc": ["body", 0, "count"],
        "field": "[0].count",
        "msg": "required field is missing",
        "type": "missing",
    }
    assert problems[-1] == {
        "loc": [],
        "field": "",
        "msg": "and 79980 more problems (not listed)",
        "type": "too_many_problems",
    }
    assert len(field_problems(errors[:MAX_PROBLEMS])) == MAX_PROBLEMS


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("GET", "/v1/clusters/triggers", "read"),
        ("GET", "/v1/clusters/triggers/x/executions", "read"),
        ("POST", "/v1/clusters/triggers", "write"),
        ("PATCH", "/v1/clusters/triggers/x", "write"),
        ("DELETE", "/v1/clusters/triggers/x", "write"),
        ("POST", "/v1/clusters/triggers/x/pause", "write"),
        ("POST", "/v1/clusters/triggers/x/execute", "execute"),
        ("POST", "/v1/events", "events"),
    ],
)
def test_request_kinds(method: str, path: str, kind: str) -> None:
    assert request_kind(method, path) == kind
