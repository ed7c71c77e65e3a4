"""`recluster dev`: the whole system on a local control plane, all trigger types firing."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from podman_support import podman_missing
from recluster.devsystem.feeder import FeedPace, mix
from recluster.devsystem.sample import TOPIC_WORDS
from recluster.devsystem.system import DevSystem, share_with_containers, shorten
from recluster.devsystem.table import render
from recluster.kube.sync import KubeApi
from recluster.localkube.podman import PodmanRuntime
from recluster.localkube.runtime import ImageUnavailable

ROOT = Path(__file__).resolve().parents[1]


def test_examples_get_short_schedules() -> None:
    cron = shorten({"kind": "ClusterTrigger", "spec": {
        "trigger_type": "cron", "schedule_config": {"cron_expression": "0 2 * * *"}}})  # fmt: skip
    assert cron["spec"]["schedule_config"]["cron_expression"] == "*/2 * * * *"
    interval = shorten({"kind": "ClusterTrigger", "spec": {
        "trigger_type": "interval",
        "schedule_config": {"interval_seconds": 21600, "start_immediately": False}}})  # fmt: skip
    assert interval["spec"]["schedule_config"] == {
        "interval_seconds": 30,
        "start_immediately": True,
    }


def test_the_topic_mix_shifts_to_a_new_topic() -> None:
    assert mix(0, 60)[-1] == 0 and mix(30, 60)[-1] == pytest.approx(0.45)
    assert mix(600, 60)[-1] == pytest.approx(0.9) and mix(600, 60).sum() == pytest.approx(1)


def fired(trigger: dict[str, Any], *reasons: str) -> bool:
    history = (trigger.get("status") or {}).get("history") or []
    return any(h.get("reason") in reasons and h.get("status") == "succeeded" for h in history)


SCHEDULED = ("schedule", "catch_up")


@pytest.mark.timeout(300)
def test_dev_system_runs_every_trigger_type(tmp_path: Path) -> None:
    pace = FeedPace(batch=60, interval=1.0, ramp_seconds=15.0)
    system = DevSystem(tmp_path / "dev", ROOT / "examples", gateway_port=0, feed=pace, keep=False)
    seen: dict[str, Any] = {}

    def by_name() -> dict[str, dict[str, Any]]:
        return {t["metadata"]["name"]: t for t in system.cluster_triggers()}

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(system.run(stop))
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 220  # the cron example fires every even minute
            while loop.time() < deadline and not task.done():
                triggers = by_name()
                clusters = [
                    t for t in triggers.values()
                    if any(h.get("num_clusters") for h in t["status"].get("history") or [])
                ] if all(t.get("status") for t in triggers.values()) else []  # fmt: skip
                if clusters and "first" not in seen:
                    seen["first"] = loop.time()
                drift = (triggers.get("drift-over-30-percent", {}).get("status")) or {}
                if (measured := drift.get("last_drift_measurement")) is not None:
                    seen["max_drift"] = max(seen.get("max_drift", 0.0), measured)
                condition_runs = [
                    h for h in drift.get("history") or []
                    if h.get("reason") == "condition" and h.get("status") == "succeeded"
                ]  # fmt: skip
                seen["pending"] = pending = {
                    "cron": not fired(triggers.get("daily-2am", {}), *SCHEDULED),
                    "interval": not fired(triggers.get("every-6-hours", {}), *SCHEDULED),
                    "event": not fired(triggers.get("after-100-documents", {}), "event"),
                    # the second condition run came from measured drift
                    "conditional": not (
                        len(condition_runs) >= 2 and seen.get("max_drift", 0.0) > 0.3
                    ),
                }
                if not any(pending.values()):
                    break
                await asyncio.sleep(0.5)
            current = system.cluster_triggers()
            seen["maps"] = system.latest_maps(current)
            seen["table"] = render(current, maps=seen["maps"])
            seen["triggers"] = by_name()
            user = KubeApi.from_kubeconfig(system.kubeconfig)  # what a user's kubectl reads
            listed = user.request("GET", "/apis/recluster.io/v1alpha1/clustertriggers")
            seen["listed"] = len(listed["items"])
            user.close()
            key = system.api_key_file.read_text().strip()
            seed = json.loads((ROOT / "tests/data/seed/cron.json").read_text())
            headers = {
                "Authorization": f"Bearer {key}",
                "X-Namespace": "default",
                "Connection": "close",
            }
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    f"{system.gateway_url}/v1/clusters/triggers", json=seed, headers=headers
                ) as response,
            ):
                seen["created"] = (response.status, await response.json())
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)

    system.start_cluster()
    try:
        asyncio.run(scenario())
    finally:
        system.stop_cluster()
    table = str(seen.get("table"))
    assert "first" in seen, f"no clusters computed:\n{table}"
    not_fired = [kind for kind, waiting in seen["pending"].items() if waiting]
    assert not_fired == [], f"{not_fired} examples did not fire:\n{table}"
    assert re.search(r"\d+ of \d+ docs", table), table
    assert seen["listed"] == 5, "the kubeconfig reaches the same objects"
    status, body = seen["created"]
    assert status == 201, body
    assert body["trigger_type"] == "cron" and body["created_by"] == "dev"
    assert seen["max_drift"] > 0.3, "the second condition run came from measured drift"
    # Each trigger that ran links its latest map, and the report beside it names its clusters.
    maps: dict[str, str] = seen["maps"]
    assert maps and "latest cluster maps" in table, table
    for name, uri in maps.items():
        assert uri in table
        png = Path(uri.removeprefix("file://"))
        assert png.read_bytes().startswith(b"\x89PNG"), name
        report = (png.parent / "report.html").read_text()
        assert "data:image/png;base64," in report, name
        # Keyword labels from the sample's texts (devsystem/sample.py), not bare ids.
        topic_words = {w for words in TOPIC_WORDS for w in words.split()}
        assert any(f">{w} " in report for w in topic_words), name


def test_the_table_links_each_trigger_s_latest_map() -> None:
    triggers = [
        {"metadata": {"name": name}, "spec": {"trigger_type": "cron"}, "status": {}}
        for name in ("b-trigger", "a")
    ]
    maps = {"b-trigger": "file:///store/default/runs/b-1/artifacts/map.png"}
    lines = render(triggers, maps=maps).splitlines()
    assert lines[-2:] == [
        "latest cluster maps (report.html beside each):",
        "  b-trigger  file:///store/default/runs/b-1/artifacts/map.png",
    ]
    assert "latest cluster maps" not in render(triggers)


def test_the_runtime_is_process_or_container(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="runtime: 'docker' is not one of process, container"):
        DevSystem(tmp_path, ROOT / "examples", runtime="docker")
    assert DevSystem(tmp_path, ROOT / "examples", runtime="container").image == (
        "localhost/recluster:dev"
    )


def test_the_store_is_handed_to_the_images_user_in_container_mode(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "default" / "collections").mkdir(parents=True)
    (store / "default" / "collections" / "c.parquet").write_bytes(b"")
    share_with_containers(store)
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in (store, *store.rglob("*"))}
    assert owners == {(10001, 10001)}


def test_container_mode_without_the_image_stops_before_starting_anything(tmp_path: Path) -> None:
    runtime = PodmanRuntime("dev-node")
    reason = podman_missing(runtime)
    if reason:
        pytest.skip(reason)
    system = DevSystem(tmp_path / "dev", ROOT / "examples", runtime="container")
    system.image = "localhost/recluster-not-built:0"
    with pytest.raises(ImageUnavailable, match="build or load it first"):
        system.start_cluster()
    assert not (tmp_path / "dev").exists()
