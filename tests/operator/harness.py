"""The real kopf operator against the emulated Kubernetes API, with a controlled clock.

Used inside each test body (`async with Harness() as h:`): kopf must be started
and stopped within the test, never from an async fixture. The tests play the
Job controller by patching Job status and creating the pods' terminal state.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import kopf

import audit_registry
from recluster.controller.kube import KubeClient
from recluster.controller.metrics import Metrics
from recluster.controller.runtime import run_operator
from recluster.controller.settings import Settings
from recluster.emulator.cluster import EmulatedCluster

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
GROUP, VERSION = "recluster.io", "v1alpha1"
CONFIG = {"collection_ids": ["col_abc123"], "config": {"algorithm": "kmeans", "n_clusters": 3}}


class Clock:
    """The operator's clock; tests move it, nothing sleeps for real minutes."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def set(self, moment: datetime) -> None:
        self.now = moment


def trigger(name: str, trigger_type: str = "cron", **spec: Any) -> dict[str, Any]:
    schedules: dict[str, dict[str, Any]] = {
        "cron": {"cron_expression": "*/5 * * * *", "timezone": "UTC"},
        "interval": {"interval_seconds": 60, "start_immediately": False},
    }
    schedule = {**schedules.get(trigger_type, {}), **spec.pop("schedule", {})}
    body: dict[str, Any] = {
        "trigger_type": trigger_type,
        "schedule_config": schedule,
        **spec,
    }
    if "cluster_id" not in body:
        body.setdefault("execution_config", CONFIG)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterTrigger",
        "metadata": {"name": name, "namespace": "default"},
        "spec": body,
    }


class Harness:
    """An emulated cluster with our CRDs, and the operator running against it."""

    def __init__(
        self,
        start: datetime | None = None,
        max_sleep: float = 0.05,
        metrics: Metrics | None = None,
        store_uri: str = "/data/store",
        event_poll_seconds: float = 30.0,
    ) -> None:
        self.metrics = metrics
        self.store_uri = store_uri
        self.event_poll_seconds = event_poll_seconds
        self.clock = Clock(start or datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC))
        self.cluster = EmulatedCluster(crds=[ROOT / "crds"])
        self.max_sleep = max_sleep
        self.task: asyncio.Task[None] | None = None
        self.stop_flag: asyncio.Event | None = None
        self.client: KubeClient | None = None

    async def __aenter__(self) -> Harness:
        await self.cluster.__aenter__()
        await self.start_operator()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop_operator()
        audit_registry.record(self.cluster)
        await self.cluster.__aexit__(exc_type, exc, tb)
        assert not self.cluster.internal_errors, self.cluster.internal_errors

    def settings(self) -> Settings:
        return Settings(
            image="recluster:test",
            store_uri=self.store_uri,
            event_poll_seconds=self.event_poll_seconds,
            max_sleep=self.max_sleep,
            retry_delay=0.05,
            clock=self.clock,
        )

    async def start_operator(self, client: KubeClient | None = None) -> None:
        info = kopf.ConnectionInfo(server=self.cluster.url, insecure=True)
        self.client = client or KubeClient(info, keep_alive=False)
        self.stop_flag, ready = asyncio.Event(), asyncio.Event()
        self.task = asyncio.create_task(
            run_operator(
                self.settings(),
                self.client,
                stop_flag=self.stop_flag,
                ready_flag=ready,
                metrics=self.metrics,
            )
        )
        await asyncio.wait_for(ready.wait(), 10)

    async def stop_operator(self) -> None:
        if self.task is None or self.stop_flag is None:
            return
        self.stop_flag.set()
        await asyncio.wait_for(self.task, 15)
        self.task = None
        if self.client is not None:
            await self.client.close()

    # -- reading -----------------------------------------------------------------------

    def trigger(self, name: str) -> dict[str, Any]:
        body = self.cluster.get(GROUP, VERSION, "clustertriggers", name, namespace="default")
        assert body is not None, f"ClusterTrigger {name} is gone"
        return dict(body)

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.trigger(name).get("status") or {})

    def jobs(self, trigger_name: str | None = None) -> list[dict[str, Any]]:
        jobs = [dict(j) for j in self.cluster.objects("batch", "v1", "jobs", "default")]
        if trigger_name is not None:
            jobs = [
                j for j in jobs
                if j["metadata"]["labels"].get("recluster.io/trigger") == trigger_name
            ]  # fmt: skip
        return sorted(
            jobs,
            key=lambda j: (
                j["metadata"]["creationTimestamp"],
                j["metadata"].get("annotations", {}).get("recluster.io/scheduled-at", ""),
            ),
        )

    def events(self, reason: str | None = None) -> list[dict[str, Any]]:
        events = [dict(e) for e in self.cluster.objects("", "v1", "events", "default")]
        return [e for e in events if reason is None or e.get("reason") == reason]

    async def until(self, check: Callable[[], T], timeout: float = 10.0, what: str = "") -> T:
        return await self.cluster.wait_for(check, timeout, what=what or "a condition")

    async def settle(self, seconds: float = 0.3) -> None:
        """Give the operator time to act (used before asserting that nothing happened)."""
        await asyncio.sleep(seconds)

    # -- writing -----------------------------------------------------------------------

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.cluster.apply(body))

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Apply a trigger and wait until the operator has reconciled it once."""
        created = self.apply(body)
        name = created["metadata"]["name"]
        generation = created["metadata"]["generation"]
        await self.until(
            lambda: self.status(name).get("observedGeneration") == generation,
            what=f"the operator to see {name}",
        )
        return created

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.cluster.patch(
            GROUP, VERSION, "clustertriggers", name, {"spec": spec}, namespace="default"
        )

    def annotate(self, name: str, key: str, value: str) -> None:
        self.cluster.patch(
            GROUP, VERSION, "clustertriggers", name,
            {"metadata": {"annotations": {key: value}}}, namespace="default",
        )  # fmt: skip

    def finish_job(
        self,
        job: dict[str, Any],
        ok: bool,
        summary: dict[str, Any] | None = None,
        reason: str = "BackoffLimitExceeded",
        message: str = "Job has reached the specified backoff limit",
    ) -> None:
        """Play the Job controller and the kubelet: a pod that terminated, and Job status."""
        name = job["metadata"]["name"]
        labels = job["spec"]["template"]["metadata"]["labels"]
        at = self.clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        terminated: dict[str, Any] = {"exitCode": 0 if ok else 1, "finishedAt": at}
        if summary is not None:
            terminated["message"] = json.dumps(summary)
        self.cluster.create(
            "", "v1", "pods",
            {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"{name}-pod", "namespace": "default", "labels": labels},
                "spec": {"containers": [{"name": "recluster", "image": "recluster:test"}]},
            },
        )  # fmt: skip
        self.cluster.patch_status(
            "", "v1", "pods", f"{name}-pod",
            {"containerStatuses": [{"name": "recluster", "state": {"terminated": terminated}}]},
            namespace="default",
        )  # fmt: skip
        if ok:
            status = {
                "succeeded": 1,
                "completionTime": at,
                "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": at}],
            }
        else:
            status = {
                "failed": 1,
                "conditions": [
                    {"type": "Failed", "status": "True", "reason": reason, "message": message,
                     "lastTransitionTime": at}
                ],
            }  # fmt: skip
        self.cluster.patch_status("batch", "v1", "jobs", name, status, namespace="default")
