"""The real operator against the real control plane, with a controlled clock.

Used inside each test body (`async with Harness(kube) as h:`): the operator
runs on the test's event loop, started and stopped by the harness. Each
harness works in a namespace of its own; the operator watches the whole
cluster, as the chart installs it by default, and logs in with the token of
the chart's operator ServiceAccount. The real scheduler and Job controller
run the Jobs' pods on the node agent, whose scripted runtime lets the test
say how each pod's container ends (`finish_job`), as a kubelet would report it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import audit_registry
from kube_support import (
    OPERATOR_ACCOUNT,
    RELEASE_NAMESPACE,
    WAIT_SECONDS,
    AuditEntry,
    LocalKube,
    user_of,
)
from recluster.api.notifications import Webhook
from recluster.controller.metrics import Metrics
from recluster.controller.runtime import run_operator
from recluster.controller.settings import Settings
from recluster.core.policy import PERMISSIVE, JobPolicy
from recluster.core.rayjobs import RaySettings
from recluster.kube.client import KubeClient

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
GROUP, VERSION = "recluster.io", "v1alpha1"
CONFIG = {"collection_ids": ["col_abc123"], "config": {"algorithm": "kmeans", "n_clusters": 3}}
IMAGE = "recluster:test"
"""Tagged `test`: the node agent's scripted runtime runs these pods (kube_support)."""


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


def at(hour: int, minute: int, second: int = 0) -> datetime:
    """A moment of the harness's day (its clock starts at 10:00:30 UTC on 2026-11-28)."""
    return datetime(2026, 11, 28, hour, minute, second, tzinfo=UTC)


def trigger(name: str, trigger_type: str = "cron", **spec: Any) -> dict[str, Any]:
    """A ClusterTrigger manifest (the harness puts it in its namespace).

    Jobs get `backoffLimit: 0` unless the test says otherwise: a failed pod
    then fails its Job at once, instead of after the Job controller's 10 s
    retry backoff.
    """
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
    body.setdefault("job_template", {"backoffLimit": 0})
    if "cluster_id" not in body:
        body.setdefault("execution_config", CONFIG)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterTrigger",
        "metadata": {"name": name},
        "spec": body,
    }


class Harness:
    """A namespace of the real control plane, and the operator running against it."""

    def __init__(
        self,
        kube: LocalKube,
        start: datetime | None = None,
        max_sleep: float = 0.05,
        metrics: Metrics | None = None,
        store_uri: str = "/data/store",
        event_poll_seconds: float = 30.0,
        account: str = OPERATOR_ACCOUNT,
        namespaced: bool = False,
        job_policy: JobPolicy = PERMISSIVE,
        webhooks: Sequence[Webhook] = (),
        ray: RaySettings | None = None,
    ) -> None:
        self.kube = kube
        self.webhooks = list(webhooks)
        """The install's completion webhooks; their Secrets in RELEASE_NAMESPACE."""
        self.account = account
        self.namespaced = namespaced
        self.job_policy = job_policy
        self.ray = ray or RaySettings()
        """Watch only the harness's namespace (the chart's watchNamespaces), not the cluster."""
        self.cluster = kube.cluster
        self.metrics = metrics or Metrics()
        """Always ours: reconciled() reads its recluster_reconciles_total."""
        self.nudges = 0
        self.store_uri = store_uri
        self.event_poll_seconds = event_poll_seconds
        self.clock = Clock(start or datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC))
        self.max_sleep = max_sleep
        self.namespace = kube.namespace_name("op")
        """Chosen now, created on entry: a test may seed its store before the operator starts."""
        self.created = False
        """True when the test made the namespace itself (e.g. to bind Roles in it first)."""
        self.task: asyncio.Task[None] | None = None
        self.stop_flag: asyncio.Event | None = None
        self.client: KubeClient | None = None
        self.audit_start = 0

    async def __aenter__(self) -> Harness:
        if not self.created:
            await asyncio.to_thread(self.kube.new_namespace, self.namespace)
            self.created = True
        self.audit_start = self.kube.audit.mark()
        await self.start_operator()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # the triggers go while the operator runs: it handles their deletion, so none
        # outlives the test for another test's (cluster-wide) operator to see
        if self.task is not None:
            path = self.cluster.path(GROUP, VERSION, "clustertriggers", self.namespace)
            await asyncio.to_thread(self.cluster.api.request, "DELETE", path)
            await self.until(
                lambda: not self.cluster.objects(GROUP, VERSION, "clustertriggers", self.namespace),
                what="the test's triggers to be deleted",
            )
        await self.stop_operator()
        audit_registry.ran("operator")
        await asyncio.to_thread(self.kube.delete_namespace, self.namespace)

    def settings(self) -> Settings:
        return Settings(
            image=IMAGE,
            store_uri=self.store_uri,
            event_poll_seconds=self.event_poll_seconds,
            max_sleep=self.max_sleep,
            retry_delay=0.05,
            clock=self.clock,
            # the tests' triggers choose images and nodes freely; tests of the policy
            # itself set their own (tests/operator/test_job_policy.py)
            job_policy=self.job_policy,
            webhooks=self.webhooks,
            namespace=RELEASE_NAMESPACE,
            ray=self.ray,
        )

    async def start_operator(self, client: KubeClient | None = None) -> None:
        info = self.kube.connection(self.account)
        self.client = client or KubeClient(info, keep_alive=False)
        self.stop_flag, ready = asyncio.Event(), asyncio.Event()
        self.task = asyncio.create_task(
            run_operator(
                self.settings(),
                self.client,
                namespaces=[self.namespace] if self.namespaced else (),
                stop_flag=self.stop_flag,
                ready_flag=ready,
                metrics=self.metrics,
            )
        )
        await asyncio.wait_for(ready.wait(), 30)

    async def stop_operator(self) -> None:
        if self.task is None or self.stop_flag is None:
            return
        self.stop_flag.set()
        await asyncio.wait_for(self.task, 30)
        self.task = None
        if self.client is not None:
            await self.client.close()

    # -- reading -----------------------------------------------------------------------

    def trigger(self, name: str) -> dict[str, Any]:
        body = self.cluster.get(GROUP, VERSION, "clustertriggers", name, self.namespace)
        assert body is not None, f"ClusterTrigger {name} is gone"
        return body

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.trigger(name).get("status") or {})

    def jobs(self, trigger_name: str | None = None) -> list[dict[str, Any]]:
        labels = f"recluster.io/trigger={trigger_name}" if trigger_name is not None else None
        jobs = self.cluster.objects("batch", "v1", "jobs", self.namespace, labels=labels)
        return sorted(
            jobs,
            key=lambda j: (
                j["metadata"]["creationTimestamp"],
                j["metadata"].get("annotations", {}).get("recluster.io/scheduled-at", ""),
            ),
        )

    def events(self, reason: str | None = None) -> list[dict[str, Any]]:
        """The Events the operator posted about its triggers (not the controllers' own)."""
        events = self.cluster.objects("", "v1", "events", self.namespace)
        return [
            e for e in events
            if e.get("involvedObject", {}).get("kind") == "ClusterTrigger"
            and (reason is None or e.get("reason") == reason)
        ]  # fmt: skip

    def audit(self) -> list[AuditEntry]:
        """The operator's API requests since this harness started."""
        user = user_of(self.account)
        return [e for e in self.kube.audit.entries(self.audit_start) if e.user == user]

    async def until(
        self, check: Callable[[], T], timeout: float = WAIT_SECONDS, what: str = ""
    ) -> T:
        return await self.cluster.wait_for(check, timeout, what=what or "a condition")

    def counted(self, metric: str, name: str) -> float:
        """The operator's counter `metric` for a trigger (0 before its first increment)."""
        labels = {"namespace": self.namespace, "trigger": name}
        return self.metrics.registry.get_sample_value(metric, labels) or 0.0

    def reconciles(self, name: str) -> float:
        """Reconciles of a trigger that ran to the end (recluster_reconciles_total)."""
        return self.counted("recluster_reconciles_total", name)

    def reconcile_errors(self, name: str) -> float:
        """Reconciles of a trigger that failed and will be retried."""
        return self.counted("recluster_reconcile_errors_total", name)

    async def reconciled(self, name: str) -> None:
        """Wait for a whole reconcile of `name` that began after this call.

        The positive event before asserting that nothing happened: that reconcile
        read the clock as the test has set it and saw every earlier change, and
        whatever it decided (Jobs, status, Events) is written when this returns.
        An annotation nudges the trigger (one with nothing scheduled is otherwise
        not looked at again); reconciles of a trigger never overlap, so after a
        first one ends, the next one to end began after this call.
        """
        for _ in range(2):
            before = self.reconciles(name)
            self.nudges += 1
            self.annotate(name, "test.recluster.io/nudge", str(self.nudges))
            await self.until(
                lambda seen=before: self.reconciles(name) > seen,
                what=f"the operator to reconcile {name}",
            )

    # -- writing -----------------------------------------------------------------------

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.cluster.apply(body, self.namespace)

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
        self.cluster.patch(GROUP, VERSION, "clustertriggers", name, {"spec": spec},
                           self.namespace)  # fmt: skip

    def annotate(self, name: str, key: str, value: str) -> None:
        self.cluster.patch(
            GROUP, VERSION, "clustertriggers", name,
            {"metadata": {"annotations": {key: value}}}, self.namespace,
        )  # fmt: skip

    async def finish_job(
        self, job: dict[str, Any], ok: bool, summary: dict[str, Any] | None = None
    ) -> None:
        """End the Job's running pod as its container would: exit code and termination message.

        The node agent reports the pod's terminated state; the Job controller
        then marks the Job Complete or Failed.
        """
        name = job["metadata"]["name"]
        launch = await asyncio.to_thread(
            self.kube.scripted.wait_started,
            lambda c: c.namespace == self.namespace and c.pod.startswith(f"{name}-"),
            30.0,
        )
        message = json.dumps(summary) if summary is not None else ""
        self.kube.scripted.finish(launch, 0 if ok else 1, message)

    async def job_finished(self, job: dict[str, Any]) -> dict[str, Any]:
        """Wait until the Job controller has marked the Job Complete or Failed."""
        name = job["metadata"]["name"]

        def done() -> dict[str, Any] | None:
            current = self.cluster.get("batch", "v1", "jobs", name, self.namespace) or {}
            conditions = (current.get("status") or {}).get("conditions") or []
            finished = any(
                c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions
            )
            return current if finished else None

        return await self.until(done, what=f"Job {name} to finish")
