"""Jobs of a firing: their names, their manifests, and what a finished Job tells.

Pure functions. The name of a firing's Job is derived from the trigger's uid
and what the firing is (a scheduled instant, a manual request value, the n-th
event firing), so an operator that crashes after creating a Job and retries
the same firing computes the same name and adopts the Job it finds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ..api.clustering import ExecutionConfig
from ..api.jobtemplate import JobTemplate, ResourceRequirements
from ..api.trigger import GROUP_VERSION

LABEL_TRIGGER = "recluster.io/trigger"
LABEL_EXECUTION = "recluster.io/execution"
ANNOTATION_SCHEDULED_AT = "recluster.io/scheduled-at"
ANNOTATION_REASON = "recluster.io/reason"
ANNOTATION_EXECUTE_NOW = "recluster.io/execute-now"
ANNOTATION_CREATED_BY = "recluster.io/created-by"
CONTAINER_NAME = "recluster"
EXECUTION_CONFIG_ENV = "RECLUSTER_EXECUTION_CONFIG"
NAMESPACE_ENV = "RECLUSTER_NAMESPACE"
STORE_SCOPE_ENV = "RECLUSTER_STORE_SCOPE"
"""`namespace` when the Job's store path is its namespace's own directory of the store
volume (`JobSettings.store_volume`): the runner then has no namespace path to escape by."""
STORE_SCOPE_NAMESPACE = "namespace"
DEFAULT_BACKOFF_LIMIT = 1
TERMINATION_MESSAGE_LIMIT = 4096

JobPhase = Literal["running", "succeeded", "failed"]
WorkloadKind = Literal["Job", "RayJob"]
"""What runs a firing: a batch/v1 Job, or a ray.io/v1 RayJob (runtime ray, core/rayjobs.py)."""
FireReason = Literal["schedule", "catch_up", "manual", "event", "condition"]


def execution_id(trigger_uid: str, key: str) -> str:
    """Ten hex digits naming one firing of one trigger (same inputs, same id)."""
    return hashlib.sha256(f"{trigger_uid}/{key}".encode()).hexdigest()[:10]


def job_name(trigger_name: str, execution: str) -> str:
    """The Job's name: trigger names are at most 52 characters, so this fits 63."""
    return f"{trigger_name}-{execution}"


@dataclass(frozen=True)
class JobSettings:
    """Install-wide settings of every Job (from the operator's configuration)."""

    image: str
    store_uri: str
    image_pull_policy: str | None = None
    service_account_name: str | None = None
    env: Sequence[Mapping[str, Any]] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    store_uri_secret: tuple[str, str] | None = None
    """(secret, key) holding the store URI: Jobs never carry a DSN's password in clear."""
    volumes: Sequence[Mapping[str, Any]] = ()
    volume_mounts: Sequence[Mapping[str, Any]] = ()
    store_volume: str | None = None
    """The volume holding a Parquet store at the Jobs' store path: each Job mounts only
    its namespace's directory of it (`subPathExpr: $(RECLUSTER_NAMESPACE)`, the downward
    API), and its runner reads that directory as its namespace's data."""
    affinity: Mapping[str, Any] | None = None
    """The pod's affinity, for the store: a ReadWriteOnce claim holds Jobs on the operator's
    node. A trigger's job_template cannot change it."""
    active_deadline_seconds: int | None = None
    """Default of a Job's activeDeadlineSeconds; job_template.activeDeadlineSeconds wins."""
    resources: ResourceRequirements | None = None
    """Default resources of the container; job_template.resources replaces them whole."""


@dataclass(frozen=True)
class JobRequest:
    """What the state machine asks for: one Job for one firing."""

    name: str
    execution: str
    scheduled_at: datetime | None
    reason: FireReason
    execution_config: ExecutionConfig


def _security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def job_labels(trigger_name: str, execution: str, settings: JobSettings) -> dict[str, str]:
    """Labels of a firing's Job, RayJob and their pods."""
    return {
        **settings.labels,
        "app.kubernetes.io/name": "recluster",
        "app.kubernetes.io/component": "clustering-job",
        "app.kubernetes.io/managed-by": "recluster-operator",
        LABEL_TRIGGER: trigger_name,
        LABEL_EXECUTION: execution,
    }


def job_metadata(
    trigger: Mapping[str, Any], request: JobRequest, labels: Mapping[str, str]
) -> dict[str, Any]:
    """Name, labels, annotations and the controller ownerReference of a firing's workload."""
    annotations: dict[str, str] = {ANNOTATION_REASON: request.reason}
    if request.scheduled_at is not None:
        annotations[ANNOTATION_SCHEDULED_AT] = _iso(request.scheduled_at)
    return {
        "name": request.name,
        "namespace": trigger["namespace"],
        "labels": dict(labels),
        "annotations": annotations,
        "ownerReferences": [
            {
                "apiVersion": GROUP_VERSION,
                "kind": "ClusterTrigger",
                "name": trigger["name"],
                "uid": trigger["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def pod_spec(
    template: JobTemplate,
    request: JobRequest,
    settings: JobSettings,
    *,
    args: Sequence[str] = ("run-job",),
    resources: ResourceRequirements | None = None,
    container_name: str = CONTAINER_NAME,
    extra_volumes: Sequence[Mapping[str, Any]] = (),
    extra_mounts: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The pod of a firing: one container running the Recluster image.

    The same for a Job's pod and a RayJob's head and workers, so that the
    install's job policy, affinity, volumes, environment and resources apply to
    both alike. `resources` replaces the template's and the install's.
    """
    config = request.execution_config.model_dump(mode="json", exclude_none=True)
    # The trigger's own variables come first and the install's last: where names clash
    # Kubernetes keeps the last, and reserved names are refused in job_template anyway
    # (api.jobtemplate.reserved_env). The namespace is the pod's own (the downward API):
    # nothing in the spec can make a Job act for another namespace.
    env: list[dict[str, Any]] = [
        *[e.model_dump(exclude_none=True) for e in template.env or []],
        *[dict(e) for e in settings.env],
        {"name": EXECUTION_CONFIG_ENV, "value": json.dumps(config, separators=(",", ":"))},
        _store_env(settings),
        {"name": NAMESPACE_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "RECLUSTER_RUN_ID", "value": request.name},
    ]
    mounts = [_store_mount(m, settings.store_volume) for m in settings.volume_mounts]
    if any("subPathExpr" in m and m["name"] == settings.store_volume for m in mounts):
        env.insert(-2, {"name": STORE_SCOPE_ENV, "value": STORE_SCOPE_NAMESPACE})
    container: dict[str, Any] = {
        "name": container_name,
        "image": template.image or settings.image,
        "env": env,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": _security_context(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            *[dict(m) for m in extra_mounts],
            *mounts,
        ],
    }
    if args:
        container["args"] = list(args)
    pull_policy = template.imagePullPolicy or settings.image_pull_policy
    if pull_policy:
        container["imagePullPolicy"] = pull_policy
    if resources is None:
        resources = template.resources if template.resources is not None else settings.resources
    if resources is not None:
        container["resources"] = resources.model_dump(exclude_none=True)
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # the clustering job never calls the Kubernetes API
        "automountServiceAccountToken": False,
        "containers": [container],
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            *[dict(v) for v in extra_volumes],
            *[dict(v) for v in settings.volumes],
        ],
    }
    account = template.serviceAccountName or settings.service_account_name
    if account:
        spec["serviceAccountName"] = account
    if template.nodeSelector:
        spec["nodeSelector"] = dict(template.nodeSelector)
    if template.tolerations:
        spec["tolerations"] = [t.model_dump(exclude_none=True) for t in template.tolerations]
    if settings.affinity:
        spec["affinity"] = dict(settings.affinity)
    return spec


def active_deadline(template: JobTemplate, settings: JobSettings) -> int | None:
    """activeDeadlineSeconds of a firing's Job or RayJob: the template's, else the install's."""
    return template.activeDeadlineSeconds or settings.active_deadline_seconds


def build_job(
    trigger: Mapping[str, Any],
    template: JobTemplate | None,
    request: JobRequest,
    settings: JobSettings,
) -> dict[str, Any]:
    """The batch/v1 Job manifest of a firing.

    `trigger` is the ClusterTrigger's metadata (name, namespace, uid).
    """
    template = template or JobTemplate()
    labels = job_labels(trigger["name"], request.execution, settings)
    job_spec: dict[str, Any] = {
        "backoffLimit": (
            template.backoffLimit if template.backoffLimit is not None else DEFAULT_BACKOFF_LIMIT
        ),
        "template": {
            "metadata": {"labels": labels},
            "spec": pod_spec(template, request, settings),
        },
    }
    deadline = active_deadline(template, settings)
    if deadline:
        job_spec["activeDeadlineSeconds"] = deadline
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": job_metadata(trigger, request, labels),
        "spec": job_spec,
    }


def _store_mount(mount: Mapping[str, Any], store_volume: str | None) -> dict[str, Any]:
    """A mount of the Job's container; the store volume's holds the namespace's directory.

    The namespace comes from the container's own RECLUSTER_NAMESPACE, which is the
    last of its name in the env (the downward API), so a trigger cannot choose it.
    """
    mount = dict(mount)
    if store_volume is not None and mount.get("name") == store_volume:
        mount.pop("subPath", None)
        mount["subPathExpr"] = f"$({NAMESPACE_ENV})"
    return mount


def _store_env(settings: JobSettings) -> dict[str, Any]:
    if settings.store_uri_secret is not None:
        name, key = settings.store_uri_secret
        return {
            "name": "RECLUSTER_STORE_URI",
            "valueFrom": {"secretKeyRef": {"name": name, "key": key}},
        }
    return {"name": "RECLUSTER_STORE_URI", "value": settings.store_uri}


@dataclass(frozen=True)
class JobObservation:
    """What the operator knows of one Job of a trigger."""

    name: str
    execution: str
    phase: JobPhase
    created_at: datetime | None = None
    finished_at: datetime | None = None
    scheduled_at: datetime | None = None
    summary: Mapping[str, Any] | None = None
    error: str | None = None
    terminated_seen: bool = True
    """False while a pod of the Job is known whose terminated state (its termination
    message) is not: the kubelet's report may trail the Job's condition. A Job whose
    pods are all gone (the Job controller deletes them at a deadline) has nothing
    more to tell."""
    kind: WorkloadKind = "Job"
    """The Job or RayJob this observes: deleting it (Replace, history limits) needs its kind."""


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value))  # reads the "Z" of RFC 3339 since 3.11


def _condition(job: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return dict(cond)
    return None


def _terminated(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The terminated state of the recluster container in the newest pod that has one."""
    states = []
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status.get("name") != CONTAINER_NAME:
                continue
            terminated = (status.get("state") or {}).get("terminated") or (
                status.get("lastState") or {}
            ).get("terminated")
            if terminated:
                states.append(terminated)
    states.sort(key=lambda t: str(t.get("finishedAt") or ""))
    return states[-1] if states else None


def parse_summary(message: str | None) -> dict[str, Any] | None:
    """The JSON summary the job runner writes to its termination message, if it is one."""
    if not message:
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def observe_job(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]] = ()) -> JobObservation:
    """Reduce a Job (and its pods) to what the trigger's status needs."""
    meta = job.get("metadata") or {}
    status = job.get("status") or {}
    complete, failed = _condition(job, "Complete"), _condition(job, "Failed")
    terminated = _terminated(pods)
    message = (terminated or {}).get("message")
    summary = parse_summary(message)
    phase: JobPhase = "running"
    error = None
    finished = None
    if complete or status.get("succeeded"):
        phase = "succeeded"
        completed = status.get("completionTime") or (complete or {}).get("lastTransitionTime")
        finished = parse_time(completed)
    elif failed:
        phase = "failed"
        finished = parse_time(failed.get("lastTransitionTime"))
        error = _failure_reason(failed, terminated, summary, message)
    return JobObservation(
        name=str(meta.get("name")),
        execution=str((meta.get("labels") or {}).get(LABEL_EXECUTION, "")),
        phase=phase,
        created_at=parse_time(meta.get("creationTimestamp")),
        finished_at=finished,
        scheduled_at=parse_time((meta.get("annotations") or {}).get(ANNOTATION_SCHEDULED_AT)),
        summary=summary,
        error=error,
        terminated_seen=terminated is not None or not pods,
    )


def _failure_reason(
    failed: Mapping[str, Any],
    terminated: Mapping[str, Any] | None,
    summary: Mapping[str, Any] | None,
    message: str | None,
) -> str:
    """One line: the runner's own reason first, then the kubelet's, then the Job's."""
    if summary and summary.get("error"):
        return str(summary["error"])[:TERMINATION_MESSAGE_LIMIT]
    if terminated and terminated.get("reason") == "OOMKilled":
        return "OOMKilled: the clustering container ran out of memory (raise its memory limit)"
    if message and not summary:
        last = message.strip().splitlines()[-1] if message.strip() else ""
        if last:
            return last[:TERMINATION_MESSAGE_LIMIT]
    reason = failed.get("reason") or "Failed"
    detail = failed.get("message") or ""
    return f"{reason}: {detail}" if detail else str(reason)
