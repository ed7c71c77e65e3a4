"""`recluster dev`: the embedded system computes clusters within a minute, on this machine."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest
import yaml

from recluster.devsystem.system import DevSystem, shorten
from recluster.devsystem.table import render

ROOT = Path(__file__).resolve().parents[1]


def test_examples_get_short_schedules() -> None:
    cron = shorten({"kind": "ClusterTrigger", "spec": {
        "trigger_type": "cron", "schedule_config": {"cron_expression": "0 2 * * *"}}})  # fmt: skip
    assert cron["spec"]["schedule_config"]["cron_expression"] == "* * * * *"
    interval = shorten({"kind": "ClusterTrigger", "spec": {
        "trigger_type": "interval",
        "schedule_config": {"interval_seconds": 21600, "start_immediately": False}}})  # fmt: skip
    assert interval["spec"]["schedule_config"] == {
        "interval_seconds": 30,
        "start_immediately": True,
    }


@pytest.mark.timeout(180)
def test_dev_system_clusters_the_samples_within_a_minute(tmp_path: Path) -> None:
    system = DevSystem(tmp_path / "dev", ROOT / "examples")
    seen: dict[str, object] = {}

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(system.run(stop))
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 90
            while loop.time() < deadline and not task.done():
                done = [
                    t for t in system.cluster_triggers()
                    if (t.get("status") or {}).get("execution_count", 0) >= 1
                    and any(h.get("num_clusters") for h in t["status"].get("history") or [])
                ]  # fmt: skip
                if done:
                    seen["trigger"] = done[0]
                    break
                await asyncio.sleep(0.5)
            config = yaml.safe_load(system.kubeconfig.read_text())
            server = config["clusters"][0]["cluster"]["server"]
            async with aiohttp.ClientSession() as session:
                url = f"{server}/apis/recluster.io/v1alpha1/namespaces/default/clustertriggers"
                async with session.get(url, headers={"Connection": "close"}) as response:
                    seen["listed"] = len((await response.json())["items"])
            seen["table"] = render(system.cluster_triggers())
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)

    asyncio.run(scenario())
    trigger = seen.get("trigger")
    assert trigger, f"no trigger reached execution_count >= 1 with clusters:\n{seen.get('table')}"
    history = trigger["status"]["history"]  # type: ignore[index]
    assert any(h["status"] == "succeeded" and h["num_clusters"] >= 2 for h in history)
    assert seen["listed"] == 5, "the kubeconfig reaches the same objects"
    assert re.search(r"\d+ of \d+ docs", str(seen["table"])), seen["table"]
