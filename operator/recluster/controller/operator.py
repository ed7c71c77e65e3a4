"""The operator: informers, one work queue with one timer heap, a bounded pool of workers.

The controller-runtime model, in asyncio:

- four informers (informer.py) keep caches of the ClusterTriggers and
  ClusterDefinitions, and of the Jobs and pods the operator made, selected
  by label on the server; a fifth follows its RayJobs when the install
  enables Ray (settings.ray.enabled; the chart grants `rayjobs` only then);
- each change is mapped to the triggers it concerns (caches.py) and their
  keys are queued (workqueue.py): a key is queued once and worked on by one
  worker at a time, so a trigger's reconciles never overlap;
- `workers` coroutines take keys and run the TriggerReconciler
  (reconciler.py), which says when the key is due again; that time goes
  into the queue's single heap, so 100,000 idle triggers cost 100,000 heap
  entries, not 100,000 sleeping tasks.

There is no finalizer: a trigger's Jobs carry a controller ownerReference,
so the garbage collector removes them with it, operator running or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..api.trigger import GROUP_VERSION
from ..core.jobs import LABEL_EXECUTION, LABEL_TRIGGER
from ..core.rayjobs import RAY_API_VERSION, RAYJOB_RESOURCE
from ..kube.client import KubeClient
from .caches import Caches
from .informer import Informer, Key, drop_noise
from .metrics import Metrics
from .notifier import Notifier
from .ports import (
    ClusterPort,
    HttpWebhooks,
    KubeCluster,
    KubeSecrets,
    SecretPort,
    StorePort,
    ThreadedStore,
    WebhookPort,
)
from .reconciler import TriggerReconciler
from .settings import Settings
from .workqueue import ShutDown, WorkQueue

log = logging.getLogger(__name__)
JSON = dict[str, Any]
DEFAULT_WORKERS = 8
MIN_REQUEUE_SECONDS = 1.0
"""A decision due again "now" (a slot that cannot fire yet) waits this long (or max_sleep,
if shorter): a change still wakes the key at once, but nothing spins."""


def _meta(obj: JSON, *keys: str) -> JSON:
    meta = obj.get("metadata") or {}
    return {k: meta[k] for k in keys if k in meta}


def slim_job(obj: JSON) -> JSON:
    status = obj.get("status") or {}
    keep = ("conditions", "succeeded", "failed", "active", "completionTime", "startTime")
    return {
        "metadata": _meta(obj, "name", "namespace", "uid", "resourceVersion", "labels",
                          "annotations", "creationTimestamp", "ownerReferences"),
        "status": {k: status[k] for k in keep if k in status},
    }  # fmt: skip


def slim_rayjob(obj: JSON) -> JSON:
    status = obj.get("status") or {}
    keep = ("jobDeploymentStatus", "jobStatus", "reason", "message", "startTime", "endTime")
    return {
        "metadata": _meta(obj, "name", "namespace", "uid", "resourceVersion", "labels",
                          "annotations", "creationTimestamp", "ownerReferences"),
        "status": {k: status[k] for k in keep if k in status},
    }  # fmt: skip


def slim_pod(obj: JSON) -> JSON:
    status = obj.get("status") or {}
    return {
        "metadata": _meta(obj, "name", "namespace", "uid", "resourceVersion", "ownerReferences"),
        "status": {"containerStatuses": status.get("containerStatuses") or []},
    }


def slim_definition(obj: JSON) -> JSON:
    return {"metadata": _meta(obj, "name", "namespace", "resourceVersion"), "spec": obj.get("spec")}


class Controller:
    """Everything the operator runs while it leads (or alone)."""

    def __init__(
        self,
        settings: Settings,
        client: KubeClient,
        *,
        namespaces: Sequence[str] = (),
        metrics: Metrics | None = None,
        cluster: ClusterPort | None = None,
        store: StorePort | None = None,
        workers: int = DEFAULT_WORKERS,
        identity: str = "",
        webhooks: WebhookPort | None = None,
        secrets: SecretPort | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.workers = workers
        self.triggers = Informer(
            client, GROUP_VERSION, "clustertriggers", namespaces=namespaces, slim=drop_noise
        )
        self.definitions = Informer(
            client, GROUP_VERSION, "clusterdefinitions", namespaces=namespaces,
            slim=slim_definition,
        )  # fmt: skip
        self.jobs = Informer(
            client, "batch/v1", "jobs", namespaces=namespaces, label_selector=LABEL_TRIGGER,
            slim=slim_job,
        )  # fmt: skip
        self.pods = Informer(
            client, "v1", "pods", namespaces=namespaces, label_selector=LABEL_EXECUTION,
            slim=slim_pod,
        )  # fmt: skip
        self.rayjobs: Informer | None = None
        if settings.ray.enabled:
            self.rayjobs = Informer(
                client, RAY_API_VERSION, RAYJOB_RESOURCE, namespaces=namespaces,
                label_selector=LABEL_TRIGGER, slim=slim_rayjob,
            )  # fmt: skip
        self.caches = Caches(
            self.triggers.store, self.jobs.store, self.pods.store, self.definitions.store,
            self.rayjobs.store if self.rayjobs is not None else None,
        )  # fmt: skip
        self.queue: WorkQueue[Key] = WorkQueue()
        self._owned_store: ThreadedStore | None = None
        if store is None:
            store = self._owned_store = ThreadedStore(settings.store_uri)
        self._owned_webhooks: HttpWebhooks | None = None
        if webhooks is None:
            webhooks = self._owned_webhooks = HttpWebhooks()
        self.notifier = Notifier(
            webhooks, secrets or KubeSecrets(client), settings.clock, self.queue.add,
            workers=settings.notify_workers,
        )  # fmt: skip
        self.reconciler = TriggerReconciler(
            settings, cluster or KubeCluster(client, identity), store, self.caches, self.metrics,
            self.notifier,
        )  # fmt: skip
        self._connect(self.triggers, self.caches.trigger_changed)
        self._connect(self.jobs, self.caches.job_changed)
        self._connect(self.pods, self.caches.pod_changed)
        self._connect(self.definitions, self.caches.definition_changed)
        if self.rayjobs is not None:
            self._connect(self.rayjobs, self.caches.rayjob_changed)
        self.reconciles = 0
        """Reconciles that ran, all triggers together (cheap to read; the per-trigger count is
        the recluster_reconciles_total metric)."""

    def _connect(
        self, informer: Informer, changed: Callable[[JSON | None, JSON | None], list[Key]]
    ) -> None:
        def handler(_kind: str, old: JSON | None, new: JSON | None) -> None:
            for key in changed(old, new):
                self.queue.add(key)

        informer.on_change(handler)

    @property
    def informers(self) -> tuple[Informer, ...]:
        ray = (self.rayjobs,) if self.rayjobs is not None else ()
        return (self.triggers, self.definitions, self.jobs, self.pods, *ray)

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        """Follow the cluster and reconcile until stop is set."""
        feeding = [asyncio.create_task(i.run(stop)) for i in self.informers]
        feeding.append(asyncio.create_task(self.notifier.run(stop)))
        workers: list[asyncio.Task[None]] = []
        try:
            if not await self._synced(stop):
                return
            log.info("caches synced: %d triggers, %d Jobs, %d pods", len(self.triggers.store),
                     len(self.jobs.store), len(self.pods.store))  # fmt: skip
            workers = [asyncio.create_task(self._work()) for _ in range(self.workers)]
            if ready is not None:
                ready.set()
            await stop.wait()
        finally:
            self.queue.shut_down()
            for task in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for task in feeding:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self._owned_store is not None:
                await asyncio.to_thread(self._owned_store.close)
            if self._owned_webhooks is not None:
                await self._owned_webhooks.close()

    async def _synced(self, stop: asyncio.Event) -> bool:
        """Wait until every cache has listed once; False when stopped first."""
        synced: asyncio.Future[Any] = asyncio.ensure_future(
            asyncio.gather(*(i.synced.wait() for i in self.informers))
        )
        stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        await asyncio.wait([synced, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not synced.done():
            synced.cancel()
            return False
        return True

    async def _work(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                outcome = await self.reconciler.reconcile(key)
            except Exception:  # a bug must cost one trigger a retry, not the operator
                log.exception("%s/%s: reconcile crashed", *key)
                self.queue.done(key)
                self.queue.add_failed(key)
                continue
            self.reconciles += 1
            self.queue.done(key)
            if self.caches.trigger(key) is None:
                self.queue.discard(key)
                continue
            if outcome.failed:
                self.queue.add_failed(key)
                continue
            self.queue.forget(key)
            ceiling = self.settings.max_sleep
            floor = min(MIN_REQUEUE_SECONDS, ceiling)
            due = (
                ceiling
                if outcome.requeue_after is None
                else max(floor, min(outcome.requeue_after, ceiling))
            )
            self.queue.add_after(key, due)
            await asyncio.sleep(0)  # a queue that never empties must not starve the watches
