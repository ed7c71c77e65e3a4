"""TriggerReconciler: one trigger, read from the caches, decided by the core, applied.

A thin shell around `core.triggering` (which makes every decision, with the
clock passed in). It reads (caches.py), calls the core, and performs the
effects through its ports (ports.py): create and delete Jobs, write the
status, post Events, count and measure in the store. Rules:

1. Deletions before creations: `Replace` removes the running Job before its
   successor starts, as the CronJob controller does.
2. Jobs before the status: a crash between the two leaves a Job whose
   deterministic name the next decision finds and adopts.
3. A Job the apiserver refuses (4xx other than 409) writes the status of
   `core.creation_refused` instead of the decision's (Ready=False
   FailedCreate, a Warning Event) and the key backs off; 5xx and network
   errors back off without a status write.
4. The status write is resourceVersion-checked; on a conflict the trigger is
   read again and decided again (`kube.retry.retry_on_conflict`): whatever
   changed it (a pushed event, a spec edit) is taken into account.
5. The reconciler never sleeps: it returns when to be called again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import aiohttp
from pydantic import ValidationError

from ..api.trigger import ClusterTriggerSpec, ClusterTriggerStatus
from ..core import notifications
from ..core.definitions import resolve_execution
from ..core.jobs import ANNOTATION_EXECUTE_NOW, JobObservation, build_job, observe_job
from ..core.policy import REASON as POLICY_REASON
from ..core.policy import violations
from ..core.rayjobs import build_rayjob, is_finished, observe_rayjob, runtime_problem
from ..core.triggering import (
    Decision,
    Observation,
    TriggerRef,
    creation_refused,
    invalid_spec,
    reconcile,
)
from ..kube.errors import KubeError
from ..kube.retry import retry_on_conflict
from .caches import Caches, uid_of
from .informer import Key, drop_noise
from .metrics import Metrics
from .notifier import DeliveryRequest, Notifier
from .ports import ClusterPort, StorePort
from .settings import Settings

log = logging.getLogger(__name__)
JSON = dict[str, Any]
LEGACY_FINALIZERS = ("recluster.io/cleanup", "kopf.zalando.org/KopfFinalizerMarker")
"""Left on triggers by operators before 0.2 (kopf's and ours); removed on sight."""
STATUS_ATTEMPTS = 5


@dataclass(frozen=True)
class Outcome:
    """When to reconcile the key again: after `requeue_after` seconds, or with backoff."""

    requeue_after: float | None = None
    failed: bool = False


class JobRefused(Exception):
    def __init__(self, job: str, error: KubeError) -> None:
        super().__init__(error.message)
        self.job, self.error = job, error


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch turning old into new (removed fields become null)."""
    patch: dict[str, Any] = dict(new)
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    path = ".".join(str(p) for p in error["loc"])
    return f"spec.{path}: {str(error['msg']).removeprefix('Value error, ')}"


class TriggerReconciler:
    def __init__(
        self,
        settings: Settings,
        cluster: ClusterPort,
        store: StorePort,
        caches: Caches,
        metrics: Metrics,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.notifier = notifier
        """Delivers completion webhooks; without one, deliveries stay Pending in status."""
        self.cluster = cluster
        self.store = store
        self.caches = caches
        self.metrics = metrics
        self.job_settings = settings.job_settings()
        self.polled: dict[Key, float] = {}
        """event triggers: when each last polled its collection's count (loop time)."""

    def forget(self, key: Key) -> None:
        self.polled.pop(key, None)
        self.metrics.forget(*key)
        if self.notifier is not None:
            self.notifier.forget(key)

    async def reconcile(self, key: Key) -> Outcome:
        cached = self.caches.trigger(key)
        if cached is None:
            self.forget(key)
            return Outcome()
        fresh: list[JSON] = [cached]

        async def attempt() -> Outcome:
            return await self._reconcile_object(fresh[0])

        async def reread_on_conflict() -> Outcome:
            try:
                return await attempt()
            except KubeError as exc:
                if exc.status == 409:
                    latest = await self.cluster.read_trigger(*key)
                    if latest is None:
                        return Outcome()
                    fresh[0] = latest
                raise

        try:
            return await retry_on_conflict(reread_on_conflict, STATUS_ATTEMPTS)
        except JobRefused as refused:
            await self._record_refusal(fresh[0], refused)
            return Outcome(failed=True)
        except KubeError as exc:
            if exc.status == 404:  # deleted meanwhile: its watch event follows
                return Outcome()
            log.warning("%s/%s: reconcile failed, backing off: %s", *key, exc)
            self.metrics.reconcile_errors.labels(*key).inc()
            return Outcome(failed=True)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("%s/%s: reconcile failed, backing off: %s", *key, exc)
            self.metrics.reconcile_errors.labels(*key).inc()
            return Outcome(failed=True)

    # -- one decision ----------------------------------------------------------------

    def _ref(self, obj: JSON, now: datetime) -> TriggerRef:
        meta = obj["metadata"]
        return TriggerRef(
            name=str(meta["name"]),
            namespace=str(meta["namespace"]),
            uid=str(meta["uid"]),
            generation=int(meta.get("generation") or 1),
            created_at=_time(meta.get("creationTimestamp")) or now,
        )

    async def _reconcile_object(self, obj: JSON) -> Outcome:
        exact = self.settings.clock()
        now = exact.replace(microsecond=0)  # status times in whole seconds, like Kubernetes'
        early = (exact - now).total_seconds()  # sleep less by what truncation added
        meta = obj["metadata"]
        obj = await self._drop_legacy_finalizers(obj)
        ref = self._ref(obj, now)
        old_status = dict(obj.get("status") or {})
        status = ClusterTriggerStatus.model_validate(old_status)
        spec: ClusterTriggerSpec | None = None
        extra: float | None = None
        try:
            spec = ClusterTriggerSpec.model_validate(dict(obj.get("spec") or {}))
        except ValidationError as exc:
            decision = invalid_spec(ref, status, _first_error(exc), now)
        else:
            observation = await self._observe(ref, spec, meta, status)
            if spec.trigger_type == "event":
                count, extra = await self._poll_count(ref, spec, now)
                observation = replace(observation, document_count=count)
            decision = reconcile(ref, spec, status, observation, now)
            if decision.measure and observation.execution_config is not None:
                measured = await self._measure(ref, spec, observation, now)
                decision = reconcile(ref, spec, status, replace(observation, **measured), now)
            await self._apply_jobs(decision, spec, obj)
        await self._write(obj, old_status, decision)
        if spec is not None:
            self._deliver(ref, observation, decision)
        self.metrics.observe(ref, spec, status, decision, now)
        for event in decision.events:
            await self._event(obj, event.type, event.reason, event.message, now)
        self.metrics.reconciles.inc(ref.namespace, ref.name)
        delays = [d for d in (decision.requeue_after, extra) if d is not None]
        return Outcome(max(0.0, min(delays) - early) if delays else None)

    async def _observe(
        self,
        ref: TriggerRef,
        spec: ClusterTriggerSpec,
        meta: Mapping[str, Any],
        status: ClusterTriggerStatus,
    ) -> Observation:
        rayjobs = await self._observe_rayjobs(ref, status)
        wanted: list[JSON] = []
        if spec.cluster_id is not None:
            wanted = self.caches.definitions_of(ref.namespace, spec.cluster_id)
        config, problem = resolve_execution(spec, wanted)
        refused = violations(spec.job_template, self.settings.job_policy)
        if refused and problem is None:
            problem = (POLICY_REASON, "; ".join(refused))
        if problem is None:
            problem = runtime_problem(ref.name, config, self.settings.ray)
        jobs = [observe_job(job, self.caches.pods_of(job)) for job in self.caches.jobs_of(ref.uid)]
        own = spec.notifications.webhooks if spec.notifications is not None else []
        key = (ref.namespace, ref.name)
        return Observation(
            jobs=(*jobs, *rayjobs),
            execution_config=config,
            config_problem=problem,
            manual_request=(meta.get("annotations") or {}).get(ANNOTATION_EXECUTE_NOW),
            webhooks=notifications.endpoints(own, self.settings.webhooks),
            delivery_results=self.notifier.results(key) if self.notifier is not None else (),
        )

    def _deliver(self, ref: TriggerRef, observation: Observation, decision: Decision) -> None:
        """After the status write: forget the results it shows, submit what is due."""
        if self.notifier is None:
            return
        key = (ref.namespace, ref.name)
        self.notifier.acknowledge(key, observation.delivery_results)
        if not decision.deliver:
            return
        from ..store.factory import run_artifacts  # numpy loads only where it is needed

        trigger = {"name": ref.name, "namespace": ref.namespace, "uid": ref.uid}
        store_uri = self.settings.job_store_uri or self.settings.store_uri
        hooks = {(e.source, e.webhook.url): e.webhook for e in observation.webhooks}
        for delivery in decision.deliver:
            hook = hooks.get((delivery.source, delivery.url))
            if hook is None:
                continue
            # a trigger's key is in its own namespace, the install's in the operator's
            secrets = ref.namespace if delivery.source == "trigger" else self.settings.namespace
            artifacts: dict[str, str] = {}
            if delivery.run.outcome == "succeeded":
                artifacts = run_artifacts(store_uri, ref.namespace, delivery.run.execution_id)
            self.notifier.submit(DeliveryRequest(key, trigger, delivery, hook, secrets, artifacts))

    async def _observe_rayjobs(
        self, ref: TriggerRef, status: ClusterTriggerStatus
    ) -> list[JobObservation]:
        """The trigger's RayJobs; a finished one whose outcome is still due brings its summary.

        A RayJob has no termination message: the run's figures (clusters, documents,
        time) are the summary the engine committed to the store, read once, when the
        outcome is recorded (its history entry still says running).
        """
        due = {e.job_id for e in status.history or [] if e.status == "running"}
        found: list[JobObservation] = []
        for rayjob in self.caches.rayjobs_of(ref.uid):
            name = str(rayjob["metadata"]["name"])
            summary = None
            if name in due and is_finished(rayjob):
                try:
                    summary = await self.store.run_summary(ref.namespace, name)
                except Exception as exc:  # the outcome stands without its figures
                    log.warning("cannot read the summary of run %s: %s", name, exc)
            found.append(observe_rayjob(rayjob, summary))
        return found

    async def _poll_count(
        self, ref: TriggerRef, spec: ClusterTriggerSpec, now: datetime
    ) -> tuple[int | None, float]:
        """event (pull source): the count, at most every poll interval; and when to poll next."""
        key = (ref.namespace, ref.name)
        every = self.settings.event_poll_seconds
        # pacing of store reads, not a decision: the monotonic clock, as timers use
        clock = asyncio.get_running_loop().time()
        last = self.polled.get(key)
        if last is not None and clock - last < every:
            return None, every - (clock - last)
        self.polled[key] = clock
        collection = spec.schedule_config.collection_id or ""
        try:
            return await self.store.count(ref.namespace, collection), every
        except Exception as exc:  # a store problem must not stop the trigger
            log.warning("cannot count documents of %s: %s", collection, exc)
            return None, every

    async def _measure(
        self, ref: TriggerRef, spec: ClusterTriggerSpec, observation: Observation, now: datetime
    ) -> dict[str, Any]:
        """conditional: the metric on a bounded sample, against the last run's baseline."""
        metric = str(spec.schedule_config.metric)
        config = observation.execution_config
        assert config is not None
        try:
            result = await self.store.measure(
                ref.namespace, config.collection_ids, metric, int(now.timestamp())
            )
        except Exception as exc:
            log.warning("cannot measure %s on %s: %s", metric, config.collection_ids, exc)
            return {}
        if result is None:
            return {"baseline_missing": True}
        return {"measurement": result.value, "measurement_note": result.note}

    async def _apply_jobs(self, decision: Decision, spec: ClusterTriggerSpec, obj: JSON) -> None:
        meta = obj["metadata"]
        uid = str(meta["uid"])
        owned = {j["metadata"]["name"]: uid_of(j) for j in self.caches.jobs_of(uid)}
        owned_ray = {j["metadata"]["name"]: uid_of(j) for j in self.caches.rayjobs_of(uid)}
        for deletion in decision.delete:  # rule 1: before any creation
            if deletion.kind == "RayJob":
                await self.cluster.delete_rayjob(
                    meta["namespace"], deletion.name, owned_ray.get(deletion.name)
                )
            else:
                await self.cluster.delete_job(
                    meta["namespace"], deletion.name, owned.get(deletion.name)
                )
            log.info("deleted %s %s/%s: %s", deletion.kind, meta["namespace"], deletion.name,
                     deletion.reason)  # fmt: skip
        trigger = {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]}
        if decision.create and self.job_settings.store_volume is not None:
            try:  # the Job mounts only its namespace's directory of the store: make it ours
                await self.store.prepare_namespace(str(meta["namespace"]))
            except OSError as exc:
                log.warning("store directory of namespace %s not prepared: %s",
                            meta["namespace"], exc)  # fmt: skip
        for request in decision.create:
            ray = request.execution_config.runtime == "ray"
            try:
                if ray:
                    created = await self.cluster.create_rayjob(
                        build_rayjob(
                            trigger,
                            spec.job_template,
                            request,
                            self.job_settings,
                            self.settings.ray,
                        )
                    )
                else:
                    created = await self.cluster.create_job(
                        build_job(trigger, spec.job_template, request, self.job_settings)
                    )
            except KubeError as exc:
                if 400 <= exc.status < 500 and exc.status not in (409, 429):
                    raise JobRefused(request.name, exc) from exc
                raise
            log.info("%s %s %s/%s (%s)", "created" if created else "adopted",
                     "RayJob" if ray else "Job", meta["namespace"], request.name,
                     request.reason)  # fmt: skip

    async def _write(self, obj: JSON, old: Mapping[str, Any], decision: Decision) -> None:
        new = decision.status.model_dump(mode="json", exclude_none=True)
        if new == dict(old):
            return
        meta = obj["metadata"]
        written = await self.cluster.write_status(
            meta["namespace"], meta["name"], _status_patch(old, new), str(meta["resourceVersion"])
        )
        key = (str(meta["namespace"]), str(meta["name"]))
        cached = self.caches.triggers.get(key)
        # The cache reflects our write at once (its watch event then changes nothing), but
        # only if the cache still holds the version we wrote against: the watch may have
        # brought our write and a newer change (a user's spec edit) before the write's
        # response, and putting our older object back would hide that edit until the next
        # event of this trigger.
        if written and cached is not None and _version(cached) == str(meta["resourceVersion"]):
            self.caches.triggers[key] = drop_noise(written)

    async def _record_refusal(self, obj: JSON, refused: JobRefused) -> None:
        now = self.settings.clock().replace(microsecond=0)
        ref = self._ref(obj, now)
        old = dict(obj.get("status") or {})
        decision = creation_refused(
            ref, ClusterTriggerStatus.model_validate(old), refused.job, refused.error.message, now
        )
        log.warning("%s/%s: Job %s refused: %s", ref.namespace, ref.name, refused.job,
                    refused.error)  # fmt: skip
        try:
            await self._write(obj, old, decision)
            for event in decision.events:
                await self._event(obj, event.type, event.reason, event.message, now)
        except (KubeError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("%s/%s: cannot record the refusal: %s", ref.namespace, ref.name, exc)

    async def _event(self, obj: JSON, type_: str, reason: str, message: str, now: datetime) -> None:
        try:
            await self.cluster.post_event(obj, type_, reason, message, now)
        except (KubeError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("Event %s not posted: %s", reason, exc)

    async def _drop_legacy_finalizers(self, obj: JSON) -> JSON:
        """Finalizers of operators before 0.2 would block deletion once nothing removes them."""
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        keep = [f for f in finalizers if f not in LEGACY_FINALIZERS]
        if keep == finalizers:
            return obj
        written = await self.cluster.remove_finalizers(
            meta["namespace"], meta["name"], keep, str(meta["resourceVersion"])
        )
        return {**obj, "metadata": written.get("metadata") or meta}
