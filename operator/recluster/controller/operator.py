"""kopf handlers for ClusterTriggers. They only read, call the core, and apply its decision.

Each trigger gets one daemon, its loop: reconcile, apply, then sleep until the
decision's requeue time or until something about the trigger changes (its
object, one of its Jobs or their pods, a ClusterDefinition of its namespace).
One loop per trigger serialises every status write of that trigger.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

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
    JobSettings,
    build_job,
    observe_job,
)
from ..core.triggering import Decision, Observation, TriggerRef, invalid_spec, reconcile
from .kube import KubeClient, KubeError
from .settings import Settings

TRIGGERS = (API_GROUP, API_VERSION, "clustertriggers")
DEFINITIONS = (API_GROUP, API_VERSION, "clusterdefinitions")
Key = tuple[str, str]


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


class Wakers:
    """Wake-up events of the trigger loops, by (namespace, name)."""

    def __init__(self) -> None:
        self.events: dict[Key, asyncio.Event] = defaultdict(asyncio.Event)

    def wake(self, namespace: str | None, name: str | None) -> None:
        if namespace and name and (namespace, name) in self.events:
            self.events[(namespace, name)].set()

    def wake_namespace(self, namespace: str | None) -> None:
        for (ns, _), event in self.events.items():
            if ns == namespace:
                event.set()


def build_registry(settings: Settings, client: KubeClient) -> kopf.OperatorRegistry:
    """The operator's handlers, bound to one settings object and one API client."""
    registry = kopf.OperatorRegistry()
    wakers = Wakers()
    job_settings = JobSettings(
        image=settings.image,
        store_uri=settings.store_uri,
        image_pull_policy=settings.image_pull_policy,
        service_account_name=settings.job_service_account,
        env=tuple(settings.job_env),
    )

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return client.info

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
    def wake_on_job(namespace: str | None, labels: Mapping[str, str], **_: Any) -> None:
        wakers.wake(namespace, labels.get(LABEL_TRIGGER))

    @kopf.on.event(*DEFINITIONS, registry=registry)
    def wake_on_definition(namespace: str | None, **_: Any) -> None:
        wakers.wake_namespace(namespace)

    @kopf.on.event(*TRIGGERS, registry=registry)
    def wake_on_trigger(namespace: str | None, name: str, **_: Any) -> None:
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

    async def reconcile_once(
        body: kopf.Body,
        jobs: kopf.Index[Key, dict[str, Any]],
        pods: kopf.Index[Key, dict[str, Any]],
        definitions: kopf.Index[Key, dict[str, Any]],
        logger: kopf.Logger,
    ) -> float | None:
        meta = body.metadata
        name, namespace = str(meta.name), str(meta.namespace)
        now = settings.clock().replace(microsecond=0)
        old_status = dict(body.get("status") or {})
        status = ClusterTriggerStatus.model_validate(old_status)
        ref = TriggerRef(
            name=name,
            namespace=namespace,
            uid=str(meta.uid),
            generation=int(meta.get("generation") or 1),
            created_at=_time(meta.get("creationTimestamp")) or now,
        )
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
            decision = reconcile(ref, spec, status, observation, now)
            await apply_jobs(decision, spec, meta, logger)
        for event in decision.events:
            kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        new_status = decision.status.model_dump(mode="json", exclude_none=True)
        if new_status != old_status:
            await client.patch_status(
                GROUP_VERSION, "clustertriggers", namespace, name,
                _status_patch(old_status, new_status),
            )  # fmt: skip
            await _await_own_write(body, meta.get("resourceVersion"))
        return decision.requeue_after

    async def apply_jobs(
        decision: Decision, spec: ClusterTriggerSpec, meta: Any, logger: kopf.Logger
    ) -> None:
        trigger = {"name": meta.name, "namespace": meta.namespace, "uid": meta.uid}
        for request in decision.create:
            job = build_job(trigger, spec.job_template, request, job_settings)
            _, created = await client.create(job)
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


async def _await_own_write(body: kopf.Body, old_version: str | None, timeout: float = 5.0) -> None:
    """Wait until the live body shows our status write, so the next loop never reads it stale."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while body.metadata.get("resourceVersion") == old_version and loop.time() < deadline:
        await asyncio.sleep(0.01)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    path = ".".join(str(p) for p in error["loc"])
    return f"spec.{path}: {str(error['msg']).removeprefix('Value error, ')}"


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
