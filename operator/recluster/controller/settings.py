"""Install-wide operator settings, read from the environment (the Helm chart sets them)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from .. import __version__
from ..api.jobtemplate import ResourceRequirements
from ..api.notifications import MAX_WEBHOOKS, Webhook
from ..core.jobs import JobSettings
from ..core.policy import JobPolicy
from ..core.rayjobs import DEFAULT_TTL_SECONDS_AFTER_FINISHED, RaySettings

DEFAULT_IMAGE = f"ghcr.io/recluster/recluster:{__version__}"
DEFAULT_STORE_URI = ".recluster/dev/store"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Settings:
    """What every Job gets, and how the operator paces itself."""

    image: str = DEFAULT_IMAGE
    store_uri: str = DEFAULT_STORE_URI
    image_pull_policy: str | None = None
    job_service_account: str | None = None
    store_uri_secret: tuple[str, str] | None = None
    """(secret name, key): Jobs read the store URI from it (a DSN with a password)."""
    job_store_uri: str | None = None
    """The store as Jobs see it, where that differs from the operator's view (`recluster
    dev` runs the operator on the host and mounts the store into Jobs); default store_uri."""
    job_env: list[dict[str, Any]] = field(default_factory=list)
    job_volumes: list[dict[str, Any]] = field(default_factory=list)
    job_volume_mounts: list[dict[str, Any]] = field(default_factory=list)
    job_store_volume: str | None = None
    """The volume of job_volumes holding the Parquet store: each Job mounts only its
    namespace's directory of it (core.jobs.JobSettings.store_volume)."""
    job_affinity: dict[str, Any] | None = None
    """Affinity of every Job's pod (the chart's: same node as the operator, for a
    ReadWriteOnce store claim)."""
    job_active_deadline_seconds: int | None = None
    job_resources: ResourceRequirements | None = None
    job_policy: JobPolicy = field(default_factory=JobPolicy)
    """What a trigger's job_template may choose (core/policy.py); nothing by default."""
    ray: RaySettings = field(default_factory=RaySettings)
    """runtime ray (core/rayjobs.py): off unless the chart's ray.enabled; RayJobs are then
    neither watched nor created, and a runtime ray trigger is held with Ready=False."""
    metrics_port: int | None = None
    max_sleep: float = 600.0
    """A trigger is re-checked at least this often, whatever it expects next (a resync
    period, as controller-runtime's SyncPeriod; a safety net, since every change reaches the
    queue from the watches and every due time from the timer heap). It was 60 s: 10,000 idle
    triggers then cost 167 reconciles a second, and when 1,000 were due in one minute their
    firings queued behind thousands of re-checks (fire lag p99 59 s on a loaded machine)."""
    event_poll_seconds: float = 30.0
    """event triggers: how often the watched collection's document count is polled."""
    retry_delay: float = 5.0
    """Pause before retrying a reconcile whose API calls failed."""
    clock: Callable[[], datetime] = utcnow
    """Injected in tests; the core never reads the clock itself."""
    webhooks: list[Webhook] = field(default_factory=list)
    """The install's completion webhooks (every trigger's outcomes); their Secrets are in
    `namespace`."""
    namespace: str | None = None
    """The operator's own namespace ($POD_NAMESPACE): where the install's webhook Secrets are."""
    notify_workers: int = 4
    """Concurrent webhook deliveries (controller/notifier.py); each is bounded by its timeout."""

    def job_settings(self) -> JobSettings:
        """What every Job of this install gets."""
        return JobSettings(
            image=self.image,
            store_uri=self.job_store_uri or self.store_uri,
            image_pull_policy=self.image_pull_policy,
            service_account_name=self.job_service_account,
            env=tuple(self.job_env),
            store_uri_secret=self.store_uri_secret,
            volumes=tuple(self.job_volumes),
            volume_mounts=tuple(self.job_volume_mounts),
            store_volume=self.job_store_volume,
            affinity=self.job_affinity,
            active_deadline_seconds=self.job_active_deadline_seconds,
            resources=self.job_resources,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        secret = None
        if value := env.get("RECLUSTER_STORE_URI_SECRET"):
            name, _, key = value.partition("/")
            if not name or not key:
                raise ValueError("RECLUSTER_STORE_URI_SECRET must be <secret name>/<key>")
            secret = (name, key)
        port = env.get("RECLUSTER_METRICS_PORT")
        mounts = _json_list(env, "RECLUSTER_JOB_VOLUME_MOUNTS", "VolumeMount")
        store_volume = env.get("RECLUSTER_JOB_STORE_VOLUME") or None
        if store_volume is not None and not any(m.get("name") == store_volume for m in mounts):
            raise ValueError(
                f"RECLUSTER_JOB_STORE_VOLUME={store_volume!r} names no volume mount of "
                "RECLUSTER_JOB_VOLUME_MOUNTS"
            )
        return cls(
            image=env.get("RECLUSTER_IMAGE") or DEFAULT_IMAGE,
            store_uri=env.get("RECLUSTER_STORE_URI") or DEFAULT_STORE_URI,
            image_pull_policy=env.get("RECLUSTER_IMAGE_PULL_POLICY") or None,
            job_service_account=env.get("RECLUSTER_JOB_SERVICE_ACCOUNT") or None,
            store_uri_secret=secret,
            job_env=_json_list(env, "RECLUSTER_JOB_ENV", "EnvVar"),
            job_volumes=_json_list(env, "RECLUSTER_JOB_VOLUMES", "Volume"),
            job_volume_mounts=mounts,
            job_store_volume=store_volume,
            job_affinity=_json_object(env, "RECLUSTER_JOB_AFFINITY", "an Affinity"),
            job_active_deadline_seconds=_seconds(env, "RECLUSTER_JOB_ACTIVE_DEADLINE_SECONDS"),
            job_resources=_resources(env, "RECLUSTER_JOB_RESOURCES"),
            job_policy=_policy(env, "RECLUSTER_JOB_POLICY"),
            ray=_ray(env),
            metrics_port=int(port) if port else None,
            event_poll_seconds=float(env.get("RECLUSTER_EVENT_POLL_SECONDS") or 30.0),
            webhooks=_webhooks(env, "RECLUSTER_WEBHOOKS"),
            namespace=env.get("POD_NAMESPACE") or None,
        )


def _webhooks(env: Mapping[str, str], name: str) -> list[Webhook]:
    """The install's webhooks: a JSON list of notifications.webhooks items."""
    value = _json(env, name)
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_WEBHOOKS:
        raise ValueError(f"{name} must be a JSON list of at most {MAX_WEBHOOKS} webhooks")
    hooks = []
    for index, item in enumerate(value):
        try:
            hooks.append(Webhook.model_validate(item))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            reason = str(error["msg"]).removeprefix("Value error, ")
            raise ValueError(f"{name}[{index}].{where}: {reason}") from None
    return hooks


def _ray(env: Mapping[str, str]) -> RaySettings:
    """RECLUSTER_RAY_ENABLED (true/false), RECLUSTER_RAY_IMAGE, RECLUSTER_RAY_TTL_SECONDS."""
    enabled = env.get("RECLUSTER_RAY_ENABLED", "").strip().lower()
    if enabled not in ("", "true", "false"):
        raise ValueError(f"RECLUSTER_RAY_ENABLED must be true or false, got {enabled!r}")
    ttl = env.get("RECLUSTER_RAY_TTL_SECONDS", "").strip()
    if ttl and not ttl.isdigit():
        raise ValueError(f"RECLUSTER_RAY_TTL_SECONDS must be whole seconds, got {ttl!r}")
    return RaySettings(
        enabled=enabled == "true",
        image=env.get("RECLUSTER_RAY_IMAGE") or None,
        ttl_seconds_after_finished=int(ttl) if ttl else DEFAULT_TTL_SECONDS_AFTER_FINISHED,
    )


def _policy(env: Mapping[str, str], name: str) -> JobPolicy:
    value = _json_object(env, name, "a job policy")
    if value is None:
        return JobPolicy()
    try:
        return JobPolicy.from_json(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _json(env: Mapping[str, str], name: str) -> Any:
    """The JSON value of an environment variable (None when unset or empty)."""
    if not env.get(name):
        return None
    try:
        return json.loads(env[name])
    except ValueError as exc:
        raise ValueError(f"{name} is not valid JSON: {exc}") from None


def _json_list(env: Mapping[str, str], name: str, kind: str) -> list[dict[str, Any]]:
    """A JSON list of Kubernetes objects from an environment variable (empty when unset)."""
    value = _json(env, name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"{name} must be a JSON list of {kind} objects")
    return value


def _json_object(env: Mapping[str, str], name: str, kind: str) -> dict[str, Any] | None:
    """A JSON object (a Kubernetes structure) from an environment variable (None when unset)."""
    value = _json(env, name)
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object ({kind})")
    return value or None


def _resources(env: Mapping[str, str], name: str) -> ResourceRequirements | None:
    """Container resources ({requests, limits}) from an environment variable."""
    value = _json_object(env, name, "ResourceRequirements: requests and limits")
    if value is None:
        return None
    try:
        return ResourceRequirements.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"{name} is not a ResourceRequirements object: {problems}") from None


def _seconds(env: Mapping[str, str], name: str) -> int | None:
    """A whole number of seconds; unset, empty or 0 mean none."""
    text = env.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(f"{name} must be a whole number of seconds (0: none), got {text!r}")
    return int(text) or None
