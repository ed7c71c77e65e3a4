"""Event and conditional triggers, for real: stores, the events endpoint, the operator."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from harness import GROUP, VERSION, Harness

import audit_registry
from kube_support import GATEWAY_ACCOUNT, RELEASE_NAMESPACE, LocalKube
from recluster.gateway.app import create_app
from recluster.gateway.settings import GatewaySettings
from recluster.jobrunner.runner import JobInput, run_job
from recluster.kube.client import KubeClient
from recluster.store.factory import open_store

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]
CONFIG = {"collection_ids": ["col_abc123"], "config": {"algorithm": "kmeans", "n_clusters": 4}}
DIM = 16


def event_trigger(name: str, threshold: int = 100, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterTrigger",
        "metadata": {"name": name},
        "spec": {
            "trigger_type": "event",
            "schedule_config": {
                "event_type": "documents_added",
                "event_threshold": threshold,
                "collection_id": "col_abc123",
                "cooldown_seconds": 0,
            },
            "execution_config": CONFIG,
            **spec,
        },
    }


def vectors(n: int, centres: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 0.05, (n, DIM))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def centres(k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(k, DIM))
    return c / np.linalg.norm(c, axis=1, keepdims=True)


@pytest.fixture(params=["parquet", "postgres"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "parquet":
        yield str(tmp_path / "store")
    else:
        url: str = request.getfixturevalue("pg_url")
        store = open_store(url)
        store.close()
        yield url


def append(uri: str, namespace: str, count: int, start: int, seed: int = 1) -> None:
    store = open_store(uri)
    try:
        ids = [f"doc-{i}" for i in range(start, start + count)]
        store.append(namespace, "col_abc123", ids, vectors(count, centres(4, 7), seed))
    finally:
        store.close()


async def test_documents_written_fire_at_the_threshold_and_not_before(
    kube: LocalKube, store_uri: str
) -> None:
    name = "t"
    h = Harness(kube, store_uri=store_uri, event_poll_seconds=0.1)
    append(store_uri, h.namespace, 500, 0)
    async with h:
        await h.create(event_trigger(name))
        await h.until(lambda: h.status(name).get("observed_document_count") == 500)
        await asyncio.to_thread(append, store_uri, h.namespace, 60, 1000, 2)
        await h.until(lambda: h.status(name).get("event_counter") == 60)
        await h.reconciled(name)
        assert h.jobs(name) == [], "60 of 100 documents: not yet"
        await asyncio.to_thread(append, store_uri, h.namespace, 40, 2000, 3)
        [job] = await h.until(lambda: h.jobs(name), what="the firing at 100 documents")
        assert job["metadata"]["annotations"]["recluster.io/reason"] == "event"
        st = await h.until(lambda: h.status(name).get("execution_count") == 1 and h.status(name))
        assert st["event_counter"] == 0 and st["observed_document_count"] == 600


class Pusher:
    """The gateway app, with the chart's gateway credentials and a key for the test's namespace."""

    def __init__(self, h: Harness) -> None:
        self.h = h

    async def __aenter__(self) -> Pusher:
        key, self.secret = await asyncio.to_thread(
            self.h.kube.add_api_key, "pipeline", [self.h.namespace]
        )
        info = self.h.kube.connection(GATEWAY_ACCOUNT)
        self.kube = KubeClient(info, "recluster-gateway", keep_alive=False)
        settings = GatewaySettings(keys_namespace=RELEASE_NAMESPACE)
        self.app = create_app(settings, self.kube)
        self.lifespan = self.app.router.lifespan_context(self.app)
        await self.lifespan.__aenter__()
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://gateway",
            headers={"Authorization": f"Bearer {key}", "X-Namespace": self.h.namespace},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await self.lifespan.__aexit__(None, None, None)
        await self.kube.close()
        audit_registry.ran("gateway")
        await asyncio.to_thread(self.h.kube.delete_api_key, self.secret)

    async def push(self, count: int, key: str) -> dict[str, Any]:
        body = {
            "event_type": "documents_added",
            "collection_id": "col_abc123",
            "count": count,
            "idempotency_key": key,
        }
        response = await self.http.post("/v1/events", json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


async def test_pushed_events_fire_and_survive_an_operator_restart(kube: LocalKube) -> None:
    async with Harness(kube) as h, Pusher(h) as pusher:
        await h.create(event_trigger("pushed"))
        first = await pusher.push(60, "batch-1")
        assert first["triggers"] == [
            {"trigger_id": "pushed", "counted": 60, "duplicates": 0, "event_counter": 60}
        ]
        retry = await pusher.push(60, "batch-1")
        assert retry["triggers"][0]["counted"] == 0 and retry["triggers"][0]["duplicates"] == 1
        await h.stop_operator()
        acknowledged = await pusher.push(40, "batch-2")  # the operator is down
        assert acknowledged["triggers"][0]["event_counter"] == 100
        assert h.jobs("pushed") == []
        await h.start_operator()
        [job] = await h.until(lambda: h.jobs("pushed"), what="the firing after the restart")
        assert job["metadata"]["annotations"]["recluster.io/reason"] == "event"
        st = await h.until(
            lambda: h.status("pushed").get("execution_count") == 1 and h.status("pushed")
        )
        assert st["event_counter"] == 0


async def test_concurrent_pushes_lose_none(kube: LocalKube) -> None:
    async with Harness(kube) as h, Pusher(h) as pusher:
        await h.create(event_trigger("busy", threshold=100_000))
        await asyncio.gather(*(pusher.push(1, f"k{i}") for i in range(200)))
        st = await h.until(
            lambda: h.status("busy").get("event_counter") == 200 and h.status("busy")
        )
        assert len(st["recent_event_keys"]) == 200
        # how few writes carry them (grouping) is a benchmark: benchmarks/bench_events.py
        # counts the status patches per event in the apiserver's audit log


def write_baseline_run(uri: str, namespace: str) -> None:
    """A real clustering run, which leaves the baseline drift is measured against."""
    job = JobInput(
        execution_config=__import__(
            "recluster.api.clustering", fromlist=["x"]
        ).ExecutionConfig.model_validate(CONFIG),
        run_id="baseline-run",
        namespace=namespace,
        store_uri=uri,
    )
    run_job(job, open_store, log=lambda _: None)


def conditional(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterTrigger",
        "metadata": {"name": name},
        "spec": {
            "trigger_type": "conditional",
            "schedule_config": {
                "condition_type": "drift",
                "threshold": 0.3,
                "metric": "cosine_drift",
                "check_interval_seconds": 60,
            },
            "execution_config": CONFIG,
        },
    }


@pytest.mark.parametrize("drifted", [False, True], ids=["stable", "drifted"])
async def test_conditional_fires_on_drift_and_not_on_a_stable_collection(
    kube: LocalKube, tmp_path: Path, drifted: bool
) -> None:
    uri = str(tmp_path / "store")
    h = Harness(kube, store_uri=uri)
    append(uri, h.namespace, 2000, 0)
    await asyncio.to_thread(write_baseline_run, uri, h.namespace)
    if drifted:  # a new topic: 45% of the collection now
        store = open_store(uri)
        ids = [f"new-{i}" for i in range(1600)]
        store.append(h.namespace, "col_abc123", ids, vectors(1600, centres(1, 99), 5))
        store.close()
    else:  # more of the same
        append(uri, h.namespace, 1600, 5000, seed=9)
    async with h:
        await h.create(conditional("drift"))
        st = await h.until(
            lambda: h.status("drift").get("last_condition_check_at") and h.status("drift")
        )
        measured = st["last_drift_measurement"]
        await h.reconciled("drift")
        jobs = h.jobs("drift")
        if drifted:
            assert measured > 0.3
            assert len(jobs) == 1
            assert jobs[0]["metadata"]["annotations"]["recluster.io/reason"] == "condition"
            [met] = await h.until(lambda: h.events("ConditionMet"))
            assert met["message"].startswith(f"cosine_drift = {measured:.4g} > 0.3"), met
        else:
            assert measured < 0.1
            assert jobs == []
        assert st["next_scheduled_at"] == "2026-11-28T10:01:30Z"


async def test_conditional_without_a_baseline_fires_first(kube: LocalKube, tmp_path: Path) -> None:
    uri = str(tmp_path / "store")
    h = Harness(kube, store_uri=uri)
    append(uri, h.namespace, 200, 0)
    async with h:
        await h.create(conditional("fresh"))
        await h.until(lambda: len(h.jobs("fresh")) == 1)
        events = await h.until(lambda: h.events("ConditionMet"))
        assert "no baseline yet" in events[0]["message"]
