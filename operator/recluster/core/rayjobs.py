"""RayJobs of a firing (execution_config.runtime ray): the manifest, and what its status tells.

Pure functions; the shell that creates, watches and deletes RayJobs is
controller/reconciler.py. A RayJob stands where a batch/v1 Job would, so
everything the state machine (core/triggering.py) does with Jobs holds for it:

1. Same identity as the firing's Job: the deterministic name of
   `jobs.job_name`, the same labels, annotations and controller
   ownerReference (`jobs.job_metadata`). A firing retried after a crash finds
   its RayJob by name and adopts it; the garbage collector deletes it with
   the trigger.
2. Same pods: the head and every worker are `jobs.pod_spec` (the same image,
   environment, store credentials, install affinity, volumes, job policy and
   resources as the Job's pod); only the worker resources may differ
   (`ray.worker_resources`).
3. Same deadline: activeDeadlineSeconds is the Job's (template, else install).
4. KubeRay's two status fields reduce to the Job path's three phases
   (`observe_rayjob`): running until `.status.jobDeploymentStatus` is
   terminal (Complete, Failed, ValidationFailed); Complete counts as success
   only with `.status.jobStatus` SUCCEEDED.
5. KubeRay refuses RayJob names longer than 47 characters or not DNS-1035
   labels (its RayCluster appends 6): such a trigger is held, not fired
   (`runtime_problem`), with the reason in its Ready condition.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..api.clustering import ExecutionConfig
from ..api.jobtemplate import JobTemplate
from .jobs import (
    ANNOTATION_SCHEDULED_AT,
    LABEL_EXECUTION,
    TERMINATION_MESSAGE_LIMIT,
    JobObservation,
    JobPhase,
    JobRequest,
    JobSettings,
    WorkloadKind,
    active_deadline,
    job_labels,
    job_metadata,
    parse_summary,
    parse_time,
    pod_spec,
)

RAY_GROUP = "ray.io"
RAY_API_VERSION = "ray.io/v1"
RAYJOB_KIND: WorkloadKind = "RayJob"
RAYJOB_RESOURCE = "rayjobs"
MAX_RAYJOB_NAME = 47
"""KubeRay's MaxRayJobNameLength: 53 (its RayCluster name limit) minus the 6 it appends."""
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DEFAULT_WORKERS = 2
DEFAULT_TTL_SECONDS_AFTER_FINISHED = 60
"""How long KubeRay keeps the finished run's RayCluster (for its logs) before deleting it;
the RayJob object itself stays, pruned like Jobs by the history limits."""
ENTRYPOINT = "recluster run-ray-job"
"""The Ray driver: engine/distributed.py through the CLI, reading the same environment as
`recluster run-job` (RECLUSTER_EXECUTION_CONFIG, RECLUSTER_STORE_URI, RECLUSTER_RUN_ID)."""
HEAD_CONTAINER = "ray-head"
WORKER_CONTAINER = "ray-worker"
WORKER_GROUP = "workers"
SHM_MOUNT = {"name": "dshm", "mountPath": "/dev/shm"}
"""Ray's object store lives in /dev/shm; a container's default 64 MiB would spill at once."""
REASON_NOT_ENABLED = "RayNotEnabled"
REASON_BAD_NAME = "RayJobNameInvalid"

DEPLOYMENT_COMPLETE = "Complete"
DEPLOYMENT_FAILED = ("Failed", "ValidationFailed")
"""Terminal values of .status.jobDeploymentStatus (KubeRay v1.7.0's JobDeploymentStatus);
the others ("", Initializing, Running, Suspending, Suspended, Retrying, Waiting) are running:
Retrying is KubeRay's own backoffLimit at work, and the run's outcome is still to come."""
JOB_SUCCEEDED = "SUCCEEDED"
"""The one .status.jobStatus (Ray's JobStatus: PENDING, RUNNING, STOPPED, SUCCEEDED,
FAILED) that makes a Complete deployment a success."""


@dataclass(frozen=True)
class RaySettings:
    """Install-wide settings of runtime ray (the chart's `ray:` values)."""

    enabled: bool = False
    image: str | None = None
    """Image of the head and workers: the Recluster image built with the `ray` extra
    (`recluster[ray]`); default the Jobs' image. A trigger's job_template.image wins,
    subject to the job policy as for Jobs."""
    ttl_seconds_after_finished: int = DEFAULT_TTL_SECONDS_AFTER_FINISHED


def runtime_problem(
    trigger_name: str, config: ExecutionConfig | None, ray: RaySettings
) -> tuple[str, str] | None:
    """(reason, message) when a runtime ray trigger cannot fire on this install, else None."""
    if config is None or config.runtime != "ray":
        return None
    if not ray.enabled:
        return (
            REASON_NOT_ENABLED,
            "execution_config.runtime is ray, but this install does not run RayJobs "
            "(enable ray.enabled in the chart, with KubeRay installed)",
        )
    longest = f"{trigger_name}-{'0' * 10}"
    if len(longest) > MAX_RAYJOB_NAME or not DNS_1035_LABEL.match(longest):
        return (
            REASON_BAD_NAME,
            f"runtime ray: RayJob names are <trigger name>-<10 hex digits>, and KubeRay takes "
            f"at most {MAX_RAYJOB_NAME} characters starting with a letter; rename the trigger "
            f"to at most {MAX_RAYJOB_NAME - 11} characters, starting with a letter",
        )
    return None


def build_rayjob(
    trigger: Mapping[str, Any],
    template: JobTemplate | None,
    request: JobRequest,
    settings: JobSettings,
    ray: RaySettings,
) -> dict[str, Any]:
    """The ray.io/v1 RayJob manifest of a firing (rules 1-3).

    `trigger` is the ClusterTrigger's metadata (name, namespace, uid).
    """
    template = template or JobTemplate()
    if ray.image and template.image is None:
        template = template.model_copy(update={"image": ray.image})
    config = request.execution_config.ray
    labels = job_labels(trigger["name"], request.execution, settings)
    spec: dict[str, Any] = {
        "entrypoint": ENTRYPOINT,
        "submissionMode": "K8sJobMode",
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": ray.ttl_seconds_after_finished,
        # a retry is a new firing (a new name), as for Jobs: KubeRay does not retry by itself
        "backoffLimit": 0,
    }
    deadline = active_deadline(template, settings)
    if deadline:
        spec["activeDeadlineSeconds"] = deadline
    if config is not None and config.cluster_selector:
        spec["clusterSelector"] = dict(config.cluster_selector)
    else:
        spec["rayClusterSpec"] = _cluster_spec(template, request, settings, labels)
    return {
        "apiVersion": RAY_API_VERSION,
        "kind": RAYJOB_KIND,
        "metadata": job_metadata(trigger, request, labels),
        "spec": spec,
    }


def _cluster_spec(
    template: JobTemplate,
    request: JobRequest,
    settings: JobSettings,
    labels: Mapping[str, str],
) -> dict[str, Any]:
    config = request.execution_config.ray
    workers = (config.workers if config else None) or DEFAULT_WORKERS
    worker_resources = config.worker_resources if config else None

    def pod(container: str, resources: Any = None) -> dict[str, Any]:
        spec = pod_spec(
            template, request, settings, args=(), resources=resources,
            container_name=container, extra_mounts=(SHM_MOUNT,),
            extra_volumes=({"name": "dshm", "emptyDir": {"medium": "Memory"}},),
        )  # fmt: skip
        # KubeRay restarts Ray pods itself (the RayCluster keeps its replicas)
        del spec["restartPolicy"]
        return {"metadata": {"labels": dict(labels)}, "spec": spec}

    return {
        "headGroupSpec": {
            # the head runs the driver (sampling, the fit on the sample): no Ray tasks
            "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
            "template": pod(HEAD_CONTAINER),
        },
        "workerGroupSpecs": [
            {
                "groupName": WORKER_GROUP,
                "replicas": workers,
                "minReplicas": workers,
                "maxReplicas": workers,
                "rayStartParams": {},
                "template": pod(WORKER_CONTAINER, worker_resources),
            }
        ],
    }


def observe_rayjob(
    rayjob: Mapping[str, Any], summary: Mapping[str, Any] | None = None
) -> JobObservation:
    """Reduce a RayJob to what the trigger's status needs (rule 4).

    `summary` is the run's summary as the engine wrote it to the store (the shell
    reads it once the RayJob completed): a RayJob has no termination message.
    """
    meta = rayjob.get("metadata") or {}
    status = rayjob.get("status") or {}
    deployment = str(status.get("jobDeploymentStatus") or "")
    job_status = str(status.get("jobStatus") or "")
    phase: JobPhase = "running"
    error: str | None = None
    if deployment == DEPLOYMENT_COMPLETE:
        if job_status == JOB_SUCCEEDED:
            phase = "succeeded"
        else:
            phase = "failed"
            error = f"the Ray job ended {job_status or 'without a job status'}"
    elif deployment in DEPLOYMENT_FAILED:
        phase = "failed"
        error = failure_reason(status)
    finished = parse_time(status.get("endTime")) if phase != "running" else None
    return JobObservation(
        name=str(meta.get("name")),
        execution=str((meta.get("labels") or {}).get(LABEL_EXECUTION, "")),
        phase=phase,
        created_at=parse_time(meta.get("creationTimestamp")),
        finished_at=finished,
        scheduled_at=parse_time((meta.get("annotations") or {}).get(ANNOTATION_SCHEDULED_AT)),
        summary=dict(summary) if summary is not None and phase == "succeeded" else None,
        error=error,
        kind=RAYJOB_KIND,
    )


def failure_reason(status: Mapping[str, Any]) -> str:
    """One line: the engine's own reason first (its last JSON line), then KubeRay's.

    KubeRay copies the Ray job's message into .status.message; for a failed
    driver Ray puts the tail of its logs there, whose last JSON line is the
    engine's `{"status": "failed", "error": ...}` (jobrunner.runner.termination_message).
    """
    message = str(status.get("message") or "")
    for line in reversed(message.strip().splitlines()):
        data = parse_summary(line.strip())
        if data and data.get("error"):
            return str(data["error"])[:TERMINATION_MESSAGE_LIMIT]
    reason = str(status.get("reason") or status.get("jobDeploymentStatus") or "Failed")
    first = message.strip().splitlines()[0] if message.strip() else ""
    return (f"{reason}: {first}" if first else reason)[:TERMINATION_MESSAGE_LIMIT]


def is_finished(rayjob: Mapping[str, Any]) -> bool:
    """Whether KubeRay reports the RayJob's deployment terminal."""
    deployment = str((rayjob.get("status") or {}).get("jobDeploymentStatus") or "")
    return deployment == DEPLOYMENT_COMPLETE or deployment in DEPLOYMENT_FAILED
