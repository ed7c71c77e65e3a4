"""Triggers created through the gateway are picked up by the real operator."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from gateway_support import SEEDS, Gateway

from kube_support import OPERATOR_ACCOUNT, LocalKube
from recluster.controller.runtime import run_operator
from recluster.controller.settings import Settings
from recluster.kube.client import KubeClient

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]


async def test_the_operator_picks_up_what_the_gateway_creates(kube: LocalKube) -> None:
    async with Gateway(kube) as g:
        created = await g.create(SEEDS["cron"])
        name = created["trigger_id"]
        # the operator runs inside the test body and stops by its flag.
        client = KubeClient(kube.connection(OPERATOR_ACCOUNT), keep_alive=False)
        settings = Settings(
            image="recluster:test",
            store_uri="/data/store",
            max_sleep=0.05,
            retry_delay=0.05,
            clock=lambda: datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC),
        )
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(run_operator(settings, client, stop_flag=stop, ready_flag=ready))
        try:
            await asyncio.wait_for(ready.wait(), 30)
            generation = g.stored(name)["metadata"]["generation"]
            await g.cluster.wait_for(
                lambda: (
                    (g.stored(name).get("status") or {}).get("observedGeneration") == generation
                ),
                10,
                what="the operator to reconcile the trigger",
            )
            seen = (await g.http.get(f"/v1/clusters/triggers/{name}", headers=g.headers())).json()
            assert seen["status"] == "active"
            assert seen["next_scheduled_at"] == "2026-11-29T02:00:00Z"
            assert seen["namespace_id"] == g.a
            assert seen["internal_id"] == created["internal_id"]
            # Pausing through the gateway is what the operator then reports.
            await g.http.post(f"/v1/clusters/triggers/{name}/pause", headers=g.headers())
            await g.cluster.wait_for(
                lambda: (g.stored(name).get("status") or {}).get("status") == "paused",
                10,
                what="the operator to pause the trigger",
            )
            seen = (await g.http.get(f"/v1/clusters/triggers/{name}", headers=g.headers())).json()
            assert seen["status"] == "paused"
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
            await client.close()
