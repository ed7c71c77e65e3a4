"""The events endpoint's listing of event triggers, against a scripted API (no server)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from recluster.gateway.events import EventRecorder
from recluster.gateway.settings import GatewaySettings

pytestmark = pytest.mark.asyncio
EVENT_SPEC = {
    "trigger_type": "event",
    "schedule_config": {"event_type": "documents_added", "event_threshold": 10,
                        "collection_id": "col_abc123", "cooldown_seconds": 300},
    "execution_config": {"collection_ids": ["col_abc123"],
                         "config": {"algorithm": "kmeans", "n_clusters": 3}},
}  # fmt: skip


class HeldListing:
    """Answers LISTs only once the test opens the gate; counts them."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.lists = 0

    async def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        assert method == "GET"
        self.lists += 1
        await self.gate.wait()
        return {"items": [{"metadata": {"name": "on-events"}, "spec": EVENT_SPEC}]}


async def test_requests_that_find_the_cache_stale_share_one_listing() -> None:
    api = HeldListing()
    recorder = EventRecorder(api, GatewaySettings(keys_namespace="k"))  # type: ignore[arg-type]
    waiting = [asyncio.create_task(recorder.listeners("team-a")) for _ in range(50)]
    for _ in range(10):  # every task runs up to its wait
        await asyncio.sleep(0)
    waiting[0].cancel()  # a client that gives up does not cancel the others' listing
    api.gate.set()
    results = await asyncio.gather(*waiting[1:])
    assert api.lists == 1
    assert all([name for name, _ in found] == ["on-events"] for found in results)
    assert recorder.listing == {}
    await recorder.listeners("team-a")  # fresh in the cache: no new listing
    assert api.lists == 1
