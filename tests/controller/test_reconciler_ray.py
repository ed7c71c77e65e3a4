"""The TriggerReconciler with runtime ray, on fake ports: RayJobs created, watched, deleted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from recluster.controller.caches import Caches
from recluster.controller.fakes import FakeCluster, FakeStore
from recluster.controller.metrics import Metrics
from recluster.controller.reconciler import TriggerReconciler
from recluster.controller.settings import Settings
from recluster.core.rayjobs import RaySettings
from recluster.kube.errors import KubeError

pytestmark = pytest.mark.asyncio
NS = "team-a"
RAY_CONFIG = {
    "collection_ids": ["col_big"],
    "config": {"algorithm": "kmeans", "n_clusters": 3},
    "runtime": "ray",
    "ray": {"workers": 3},
}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def trigger(name: str = "t", config: dict[str, Any] = RAY_CONFIG, **spec: Any) -> dict[str, Any]:
    body = {
        "trigger_type": "cron",
        "schedule_config": {"cron_expression": "*/5 * * * *", "timezone": "UTC"},
        "execution_config": config,
        **spec,
    }
    return {"apiVersion": "recluster.io/v1alpha1", "kind": "ClusterTrigger",
            "metadata": {"name": name, "namespace": NS,
                         "creationTimestamp": "2026-11-28T10:00:00Z"},
            "spec": body}  # fmt: skip


class World:
    def __init__(self, ray: bool = True) -> None:
        self.clock = Clock()
        self.caches = Caches()
        self.cluster = FakeCluster(self.caches)
        self.store = FakeStore()
        settings = Settings(
            image="recluster:test", store_uri="s3://b/store", clock=self.clock,
            ray=RaySettings(enabled=ray, image="recluster:test-ray"),
        )  # fmt: skip
        self.reconciler = TriggerReconciler(
            settings, self.cluster, self.store, self.caches, Metrics()
        )

    def status(self, name: str = "t") -> dict[str, Any]:
        return dict(self.caches.triggers[(NS, name)].get("status") or {})

    def at(self, minute: int, second: int = 0) -> None:
        self.clock.now = self.clock.now.replace(minute=minute, second=second)

    def kuberay(self, name: str, **status: Any) -> None:
        """KubeRay writes the RayJob's status; the informer brings the change."""
        old = self.caches.rayjobs[(NS, name)]
        new = {**old, "status": {**(old.get("status") or {}), **status}}
        self.caches.rayjobs[(NS, name)] = new
        self.caches.rayjob_changed(old, new)

    async def reconcile(self) -> None:
        assert not (await self.reconciler.reconcile((NS, "t"))).failed


async def test_a_ray_trigger_creates_a_rayjob_and_records_its_outcome_from_the_store() -> None:
    w = World()
    w.cluster.put_trigger(trigger())
    await w.reconcile()
    w.at(5)
    await w.reconcile()
    created = [(call, name) for call, name in w.cluster.calls if call.startswith("create_")]
    assert [c for c, _ in created] == ["create_rayjob"]
    name = created[0][1]
    rayjob = w.caches.rayjobs[(NS, name)]
    assert rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] == 3
    assert w.status()["last_execution_status"] == "running"
    w.kuberay(name, jobDeploymentStatus="Running", jobStatus="RUNNING")
    w.at(6)
    await w.reconcile()
    assert w.store.calls == [], "no store read before the RayJob finished"
    w.store.summaries[(NS, name)] = {"num_clusters": 3, "num_documents": 40000,
                                     "execution_time_ms": 9000}  # fmt: skip
    w.kuberay(name, jobDeploymentStatus="Complete", jobStatus="SUCCEEDED",
              endTime="2026-11-28T10:06:40Z")  # fmt: skip
    w.at(7)
    await w.reconcile()
    st = w.status()
    assert st["last_execution_status"] == "succeeded" and st["execution_count"] == 1
    entry = st["history"][0]
    assert (entry["num_clusters"], entry["num_documents"], entry["execution_time_ms"]) == (
        3, 40000, 9000,
    )  # fmt: skip
    assert ("Normal", "Succeeded") in [(t, r) for t, r, _ in w.cluster.events]
    w.at(8)
    await w.reconcile()
    assert w.store.calls == [f"run_summary {name}"], "the summary is read once"


async def test_replace_deletes_the_running_rayjob_first() -> None:
    w = World()
    w.cluster.put_trigger(trigger(concurrency_policy="Replace"))
    await w.reconcile()
    w.at(5)
    await w.reconcile()
    [first] = [n for c, n in w.cluster.calls if c == "create_rayjob"]
    w.cluster.calls.clear()
    w.at(10)
    await w.reconcile()
    calls = [(c, n) for c, n in w.cluster.calls if c.endswith("rayjob")]
    assert calls[0] == ("delete_rayjob", first)
    assert calls[1][0] == "create_rayjob" and calls[1][1] != first


async def test_a_refused_rayjob_is_failed_create() -> None:
    w = World()
    w.cluster.put_trigger(trigger())
    await w.reconcile()
    w.at(5)
    refusal = 'RayJob.ray.io "t-1" is invalid: spec.entrypoint: Invalid value'
    w.cluster.fail("create_rayjob", KubeError(422, "Invalid", refusal))
    assert (await w.reconciler.reconcile((NS, "t"))).failed
    ready = w.status()["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "FailedCreate")
    assert refusal in ready["message"]


async def test_ray_off_holds_the_trigger_and_refuses_manual_runs() -> None:
    w = World(ray=False)
    body = trigger()
    body["metadata"]["annotations"] = {"recluster.io/execute-now": "now-1"}
    w.cluster.put_trigger(body)
    w.at(5)
    await w.reconcile()
    assert [c for c, _ in w.cluster.calls if c.startswith("create")] == []
    ready = w.status()["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "RayNotEnabled")
    assert "ray.enabled" in ready["message"]
    assert ("Warning", "ManualExecutionRefused") in [(t, r) for t, r, _ in w.cluster.events]


async def test_a_name_kuberay_would_refuse_holds_the_trigger() -> None:
    w = World()
    long_name = "a-trigger-name-much-too-long-for-ray"  # 37 characters
    w.cluster.put_trigger(trigger(name=long_name + "x"))
    assert not (await w.reconciler.reconcile((NS, long_name + "x"))).failed
    ready = w.status(long_name + "x")["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "RayJobNameInvalid")


async def test_job_triggers_are_untouched_when_ray_is_enabled() -> None:
    w = World()
    config = {k: v for k, v in RAY_CONFIG.items() if k not in ("runtime", "ray")}
    w.cluster.put_trigger(trigger(config=config))
    await w.reconcile()
    w.at(5)
    await w.reconcile()
    assert [c for c, _ in w.cluster.calls if c.startswith("create")] == ["create_job"]


async def test_a_success_without_a_committed_summary_is_recorded_without_figures() -> None:
    w = World()
    w.cluster.put_trigger(trigger())
    await w.reconcile()
    w.at(5)
    await w.reconcile()
    [name] = [n for c, n in w.cluster.calls if c == "create_rayjob"]
    w.kuberay(
        name, jobDeploymentStatus="Complete", jobStatus="SUCCEEDED", endTime="2026-11-28T10:05:50Z"
    )
    w.at(6)
    await w.reconcile()
    entry = w.status()["history"][0]
    assert entry["status"] == "succeeded" and "num_clusters" not in entry
    # creation (the fake stamps 10:00:00) to endTime, as for a Job without a summary
    assert entry["execution_time_ms"] == 350_000
