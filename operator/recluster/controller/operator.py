"""kopf handlers for ClusterTriggers. They only read, call the core, and apply its decision.

Each trigger gets one daemon, its loop: reconcile, apply, then sleep until the
decision's requeue time or until something about the trigger changes (its
object, one of its Jobs or their pods, a ClusterDefinition of its namespace).
One loop per trigger serialises every status write of that trigger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import aiohttp
import kopf
from pydantic import ValidationError

from ..api.trigger import (
    API_GROUP,
    API_VERSION,
    GROUP_VERSION,
    ClusterTriggerSpec,
    ClusterTriggerStatus,
)
from ..core.definitions import definition_ids, resolve_execution
from ..core.jobs import (
    ANNOTATION_EXECUTE_NOW,
    LABEL_EXECUTION,
    LABEL_TRIGGER,
    build_job,
    observe_job,
)
from ..core.triggering import Decision, Observation, TriggerRef, invalid_spec, reconcile
from ..kube.client import KubeClient
from ..kube.errors import KubeError
from ..kube.paths import resource_path
from ..store.base import CollectionStore
from ..store.factory import open_store
from .metrics import Metrics
from .settings import Settings

TRIGGERS = (API_GROUP, API_VERSION, "clustertriggers")
DEFINITIONS = (API_GROUP, API_VERSION, "clusterdefinitions")
Key = tuple[str, str]
T = TypeVar("T")
STATUS_WRITE_ATTEMPTS = 5


def _slim_job(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata", {})
    return {
        "metadata": {
            k: meta.get(k) for k in ("name", "labels", "annotations", "creationTimestamp")
        },
        "status": dict(body.get("status") or {}),
    }


def _slim_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    return {"status": {"containerStatuses": (body.get("status") or {}).get("containerStatuses")}}


def _status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch turning old into new (removed fields become null)."""
    patch: dict[str, Any] = dict(new)
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


class StoreAccess:
    """The collection store, opened on first use; blocking calls run in a thread, one at a time."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._store: CollectionStore | None = None
        self._lock = threading.Lock()

    def _call(self, fn: Callable[[CollectionStore], T]) -> T:
        with self._lock:
            if self._store is None:
                self._store = open_store(self.uri)
            return fn(self._store)

    async def run(self, fn: Callable[[CollectionStore], T]) -> T:
        return await asyncio.to_thread(self._call, fn)


class Wakers:
    """Wake-up events of the trigger loops, by (namespace, name).

    Only touched from the event loop's thread: the handlers that set them are
    `async def` (kopf runs plain functions in a thread pool, where setting an
    asyncio.Event is not safe).
    """

    def __init__(self) -> None:
        self.events: dict[Key, asyncio.Event] = defaultdict(asyncio.Event)
        self.seen: dict[Key, asyncio.Event] = defaultdict(asyncio.Event)
        """Set when a new version of the trigger object itself arrives on the watch."""

    def wake(self, namespace: str | None, name: str | None) -> None:
        if namespace and name and (namespace, name) in self.events:
            self.events[(namespace, name)].set()

    def saw(self, namespace: str | None, name: str | None) -> None:
        if namespace and name and (namespace, name) in self.seen:
            self.seen[(namespace, name)].set()

    async def until_changed(
        self, body: kopf.Body, key: Key, old_version: str | None, timeout: float = 5.0
    ) -> None:
        """Wait until the live body shows a version newer than old_version (our write)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = self.seen[key]
        while body.metadata.get("resourceVersion") == old_version:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            seen.clear()
            with contextlib.suppress(TimeoutError):
                # the body view may be updated just after the handler ran: re-check soon
                await asyncio.wait_for(seen.wait(), min(remaining, 0.05))

    def wake_namespace(self, namespace: str | None) -> None:
        for (ns, _), event in self.events.items():
            if ns == namespace:
                event.set()


def build_registry(
    settings: Settings, client: KubeClient, metrics: Metrics | None = None
) -> kopf.OperatorRegistry:
    """The operator's handlers, bound to one settings object and one API client."""
    metrics = metrics or Metrics()
    registry = kopf.OperatorRegistry()
    wakers = Wakers()
    store = StoreAccess(settings.store_uri)
    job_settings = settings.job_settings()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        conf = client.credentials.configuration
        scheme, _space, token = (client.credentials.authorization() or "").partition(" ")
        return kopf.ConnectionInfo(
            server=client.server,
            ca_path=conf.ssl_ca_cert or None,
            insecure=not conf.verify_ssl,
            certificate_path=conf.cert_file or None,
            private_key_path=conf.key_file or None,
            token=token if scheme == "Bearer" else None,
        )

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix="recluster.io"
        )
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="recluster.io", key="last-handled-configuration"
        )
        settings.persistence.finalizer = "recluster.io/cleanup"
        settings.posting.level = logging.ERROR  # Events are the core's, not log lines
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 30

    @kopf.index(
        "batch", "v1", "jobs", labels={LABEL_TRIGGER: kopf.PRESENT}, id="jobs_by_trigger",
        registry=registry,
    )  # fmt: skip
    def jobs_by_trigger(
        namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
    ) -> dict[Key, dict[str, Any]]:
        return {(str(namespace), labels[LABEL_TRIGGER]): _slim_job(body)}

    @kopf.index(
        "", "v1", "pods", labels={LABEL_EXECUTION: kopf.PRESENT}, id="pods_by_execution",
        registry=registry,
    )  # fmt: skip
    def pods_by_execution(
        namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
    ) -> dict[Key, dict[str, Any]]:
        return {(str(namespace), labels[LABEL_EXECUTION]): _slim_pod(body)}

    @kopf.index(*DEFINITIONS, id="definitions_by_id", registry=registry)
    def definitions_by_id(
        namespace: str | None, name: str, spec: kopf.Spec, **_: Any
    ) -> dict[Key, dict[str, Any]]:
        return {(str(namespace), definition_ids(name, spec)): {"name": name, "spec": dict(spec)}}

    @kopf.on.event("batch", "v1", "jobs", labels={LABEL_TRIGGER: kopf.PRESENT}, registry=registry)
    @kopf.on.event("", "v1", "pods", labels={LABEL_TRIGGER: kopf.PRESENT}, registry=registry)
    async def wake_on_job(namespace: str | None, labels: Mapping[str, str], **_: Any) -> None:
        wakers.wake(namespace, labels.get(LABEL_TRIGGER))

    @kopf.on.event(*DEFINITIONS, registry=registry)
    async def wake_on_definition(namespace: str | None, **_: Any) -> None:
        wakers.wake_namespace(namespace)

    @kopf.on.event(*TRIGGERS, registry=registry)
    async def wake_on_trigger(namespace: str | None, name: str, **_: Any) -> None:
        wakers.saw(namespace, name)
        wakers.wake(namespace, name)

    @kopf.daemon(*TRIGGERS, cancellation_timeout=10.0, registry=registry)
    async def trigger_loop(
        name: str,
        namespace: str | None,
        body: kopf.Body,
        stopped: kopf.DaemonStopped,
        logger: kopf.Logger,
        **kwargs: Any,
    ) -> None:
        jobs_by_trigger: kopf.Index[Key, dict[str, Any]] = kwargs["jobs_by_trigger"]
        pods_by_execution: kopf.Index[Key, dict[str, Any]] = kwargs["pods_by_execution"]
        definitions_by_id: kopf.Index[Key, dict[str, Any]] = kwargs["definitions_by_id"]
        key = (str(namespace), name)
        wake = wakers.events[key]
        try:
            while not stopped:
                wake.clear()
                try:
                    delay = await reconcile_once(
                        body, jobs_by_trigger, pods_by_execution, definitions_by_id, logger
                    )
                except (TimeoutError, KubeError, aiohttp.ClientError) as exc:
                    # nothing was recorded: the same decision is retried, and finds its Jobs
                    logger.warning("reconcile failed, retrying: %s", exc)
                    metrics.reconcile_errors.labels(*key).inc()
                    delay = settings.retry_delay
                timeout = settings.max_sleep if delay is None else min(delay, settings.max_sleep)
                sleeper = asyncio.ensure_future(wake.wait())
                stopper = asyncio.ensure_future(stopped.wait())
                try:
                    await asyncio.wait(
                        [sleeper, stopper], timeout=max(timeout, 0.01),
                        return_when=asyncio.FIRST_COMPLETED,
                    )  # fmt: skip
                finally:
                    sleeper.cancel()
                    stopper.cancel()
        finally:
            wakers.events.pop(key, None)
            wakers.seen.pop(key, None)
            metrics.forget(*key)

    async def reconcile_once(
        body: kopf.Body,
        jobs: kopf.Index[Key, dict[str, Any]],
        pods: kopf.Index[Key, dict[str, Any]],
        definitions: kopf.Index[Key, dict[str, Any]],
        logger: kopf.Logger,
    ) -> float | None:
        meta = body.metadata
        name, namespace = str(meta.name), str(meta.namespace)
        version = meta.get("resourceVersion")
        exact = settings.clock()
        now = exact.replace(microsecond=0)  # status times in whole seconds, like Kubernetes'
        early = (exact - now).total_seconds()  # sleep less by what truncation added
        old_status = dict(body.get("status") or {})
        status = ClusterTriggerStatus.model_validate(old_status)
        ref = TriggerRef(
            name=name,
            namespace=namespace,
            uid=str(meta.uid),
            generation=int(meta.get("generation") or 1),
            created_at=_time(meta.get("creationTimestamp")) or now,
        )
        requeue: float | None = None
        spec: ClusterTriggerSpec | None = None
        try:
            spec = ClusterTriggerSpec.model_validate(dict(body.get("spec") or {}))
        except ValidationError as exc:
            decision = invalid_spec(ref, status, _first_error(exc), now)
        else:
            wanted: list[dict[str, Any]] = []
            if spec.cluster_id is not None:
                wanted = list(definitions.get((namespace, spec.cluster_id), []))
            config, problem = resolve_execution(spec, wanted)
            observed_jobs = []
            for job in jobs.get((namespace, name), []):
                execution = job["metadata"]["labels"].get(LABEL_EXECUTION, "")
                observed_jobs.append(observe_job(job, list(pods.get((namespace, execution), []))))
            observation = Observation(
                jobs=tuple(observed_jobs),
                execution_config=config,
                config_problem=problem,
                manual_request=(meta.annotations or {}).get(ANNOTATION_EXECUTE_NOW),
            )
            if spec.trigger_type == "event":
                count = await poll_count(ref, spec, logger)
                observation = replace(observation, document_count=count)
                requeue = settings.event_poll_seconds
            decision = reconcile(ref, spec, status, observation, now)
            if decision.measure and config is not None:
                measured = await measure(ref, spec, config.collection_ids, logger)
                if measured is not None:
                    decision = reconcile(ref, spec, status, replace(observation, **measured), now)
            await apply_jobs(decision, spec, meta, logger)
        new_status = decision.status.model_dump(mode="json", exclude_none=True)
        if new_status != old_status:
            written = await write_status(namespace, name, old_status, new_status, version)
            if not written:
                # someone else changed the status (pushed events): decide again, afresh
                await wakers.until_changed(body, (namespace, name), version)
                return 0.0
            await wakers.until_changed(body, (namespace, name), version)
        metrics.observe(ref, spec, status, decision, now)
        for event in decision.events:
            kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        delays = [d for d in (decision.requeue_after, requeue) if d is not None]
        return max(0.0, min(delays) - early) if delays else None

    async def write_status(
        namespace: str,
        name: str,
        old: dict[str, Any],
        new: dict[str, Any],
        version: str | None,
    ) -> bool:
        """Patch status if nobody changed it since `version`; False when somebody did.

        A conflict caused only by metadata writes (kopf's finalizer and annotations,
        frequent when an operator starts on many triggers) is retried at once with
        the fresh resourceVersion: the status this decision was made on is intact.
        """
        path = resource_path(GROUP_VERSION, "clustertriggers", namespace, name)
        for _ in range(STATUS_WRITE_ATTEMPTS):
            try:
                await client.patch_status(
                    GROUP_VERSION, "clustertriggers", namespace, name,
                    _status_patch(old, new), resource_version=version,
                )  # fmt: skip
                return True
            except KubeError as exc:
                if exc.status != 409:
                    raise
            fresh = await client.request("GET", path)
            if dict(fresh.get("status") or {}) != old:
                return False
            version = (fresh.get("metadata") or {}).get("resourceVersion")
        return False

    last_polls: dict[Key, float] = {}

    async def poll_count(
        ref: TriggerRef, spec: ClusterTriggerSpec, logger: kopf.Logger
    ) -> int | None:
        """event (pull source): the watched collection's count, at most every poll interval."""
        key = (ref.namespace, ref.name)
        clock = asyncio.get_running_loop().time()
        if clock - last_polls.get(key, -1e18) < settings.event_poll_seconds:
            return None
        last_polls[key] = clock
        collection = spec.schedule_config.collection_id or ""
        try:
            return await store.run(lambda s: s.count(ref.namespace, collection))
        except Exception as exc:  # a store problem must not stop the trigger's loop
            logger.warning("cannot count documents of %s: %s", collection, exc)
            return None

    async def measure(
        ref: TriggerRef, spec: ClusterTriggerSpec, collections: list[str], logger: kopf.Logger
    ) -> dict[str, Any] | None:
        """conditional: the metric on a bounded sample, against the last run's baseline."""
        from ..drift_check import check

        metric = str(spec.schedule_config.metric)
        seed = int(settings.clock().timestamp())
        try:
            result = await store.run(lambda s: check(s, ref.namespace, collections, metric, seed))
        except Exception as exc:
            logger.warning("cannot measure %s on %s: %s", metric, collections, exc)
            return None
        if result is None:
            return {"baseline_missing": True}
        return {"measurement": result.value, "measurement_note": result.note}

    async def apply_jobs(
        decision: Decision, spec: ClusterTriggerSpec, meta: Any, logger: kopf.Logger
    ) -> None:
        trigger = {"name": meta.name, "namespace": meta.namespace, "uid": meta.uid}
        for request in decision.create:
            job = build_job(trigger, spec.job_template, request, job_settings)
            created = await client.create(job)
            logger.info(
                "%s Job %s (%s)", "created" if created else "adopted", request.name, request.reason
            )
        for deletion in decision.delete:
            await client.delete("batch/v1", "jobs", meta.namespace, deletion.name)
            logger.info("deleted Job %s: %s", deletion.name, deletion.reason)

    @kopf.on.delete(*TRIGGERS, registry=registry)
    async def cleanup(name: str, namespace: str | None, **kwargs: Any) -> None:
        """Leave nothing behind, even where no garbage collector follows ownerReferences."""
        jobs_by_trigger: kopf.Index[Key, dict[str, Any]] = kwargs["jobs_by_trigger"]
        for job in list(jobs_by_trigger.get((str(namespace), name), [])):
            try:
                await client.delete("batch/v1", "jobs", str(namespace), job["metadata"]["name"])
            except KubeError as exc:
                raise kopf.TemporaryError(f"cannot delete Job: {exc}", delay=5) from exc

    return registry


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    path = ".".join(str(p) for p in error["loc"])
    return f"spec.{path}: {str(error['msg']).removeprefix('Value error, ')}"


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
