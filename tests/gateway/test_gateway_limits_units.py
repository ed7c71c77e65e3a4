"""Pure parts of the gateway's limits: the LRU, capped 422 lists."""

from __future__ import annotations

from typing import Any

from recluster.gateway.errors import MAX_PROBLEMS, field_problems
from recluster.gateway.lru import Lru


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
