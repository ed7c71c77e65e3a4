"""RayJob manifests of a firing, and KubeRay's status driving the trigger like a Job's."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from recluster.api.clustering import ExecutionConfig
from recluster.api.jobtemplate import JobTemplate, ResourceRequirements
from recluster.api.trigger import ClusterTriggerSpec, ClusterTriggerStatus
from recluster.core.jobs import JobRequest, JobSettings, build_job, execution_id, job_name
from recluster.core.rayjobs import (
    ENTRYPOINT,
    REASON_BAD_NAME,
    REASON_NOT_ENABLED,
    RaySettings,
    build_rayjob,
    observe_rayjob,
    runtime_problem,
)
from recluster.core.triggering import Decision, Observation, TriggerRef, reconcile

TRIGGER = {"name": "nightly", "namespace": "team-a", "uid": "uid-1"}
RAY_CONFIG: dict[str, Any] = {
    "collection_ids": ["col_big"],
    "config": {"algorithm": "kmeans", "n_clusters": 100},
    "runtime": "ray",
    "ray": {"workers": 4, "worker_resources": {"limits": {"cpu": "4", "memory": "16Gi"}}},
}
SETTINGS = JobSettings(
    image="ghcr.io/recluster/recluster:0.1.0",
    store_uri="s3://bucket/store",
    affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
    active_deadline_seconds=21600,
    resources=ResourceRequirements.model_validate({"requests": {"cpu": "1", "memory": "2Gi"}}),
)
RAY = RaySettings(enabled=True, image="ghcr.io/recluster/recluster:0.1.0-ray")
T0 = datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC)


def request(config: dict[str, Any] = RAY_CONFIG, reason: str = "schedule") -> JobRequest:
    ex = execution_id("uid-1", "scheduled/2026-11-29T02:00:00Z")
    return JobRequest(
        job_name("nightly", ex),
        ex,
        datetime(2026, 11, 29, 2, tzinfo=UTC),
        reason,  # type: ignore[arg-type]
        ExecutionConfig.model_validate(config),
    )


def container(pod: dict[str, Any]) -> dict[str, Any]:
    [only] = pod["spec"]["containers"]
    return dict(only)


def env_of(pod: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(pod)["env"]}


# -- the manifest ----------------------------------------------------------------------


def test_rayjob_has_the_jobs_identity_name_labels_and_owner() -> None:
    rayjob = build_rayjob(TRIGGER, None, request(), SETTINGS, RAY)
    job = build_job(TRIGGER, None, request(), SETTINGS)
    assert (rayjob["apiVersion"], rayjob["kind"]) == ("ray.io/v1", "RayJob")
    assert rayjob["metadata"] == job["metadata"]
    owner = rayjob["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("ClusterTrigger", "uid-1", True)
    assert rayjob["metadata"]["annotations"]["recluster.io/scheduled-at"] == "2026-11-29T02:00:00Z"


def test_rayjob_runs_the_distributed_engine_and_cleans_up_after_itself() -> None:
    spec = build_rayjob(TRIGGER, None, request(), SETTINGS, RAY)["spec"]
    assert spec["entrypoint"] == ENTRYPOINT == "recluster run-ray-job"
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] == 60
    assert spec["activeDeadlineSeconds"] == 21600
    assert spec["backoffLimit"] == 0 and spec["submissionMode"] == "K8sJobMode"
    template = JobTemplate.model_validate({"activeDeadlineSeconds": 900})
    assert (
        build_rayjob(TRIGGER, template, request(), SETTINGS, RAY)["spec"]["activeDeadlineSeconds"]
        == 900
    )


def test_head_and_workers_are_the_jobs_pod_with_ray_resources() -> None:
    template = JobTemplate.model_validate(
        {
            "nodeSelector": {"pool": "batch"},
            "tolerations": [{"key": "batch", "operator": "Exists"}],
            "env": [{"name": "OMP_NUM_THREADS", "value": "1"}],
            "serviceAccountName": "clusterer",
        }
    )
    cluster = build_rayjob(TRIGGER, template, request(), SETTINGS, RAY)["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]
    [group] = cluster["workerGroupSpecs"]
    worker = group["template"]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (4, 4, 4)
    job_pod = build_job(TRIGGER, template, request(), SETTINGS)["spec"]["template"]["spec"]
    for pod in (head, worker):
        spec = pod["spec"]
        assert container(pod)["image"] == "ghcr.io/recluster/recluster:0.1.0-ray"
        assert "args" not in container(pod)  # KubeRay runs `ray start`
        assert "restartPolicy" not in spec
        for key in ("nodeSelector", "tolerations", "affinity", "serviceAccountName",
                    "automountServiceAccountToken"):  # fmt: skip
            assert spec[key] == job_pod[key], key
        env = env_of(pod)
        assert env["OMP_NUM_THREADS"] == "1" and env["RECLUSTER_STORE_URI"] == "s3://bucket/store"
        assert env["RECLUSTER_RUN_ID"] == request().name
        assert json.loads(env["RECLUSTER_EXECUTION_CONFIG"])["runtime"] == "ray"
        assert {"name": "dshm", "mountPath": "/dev/shm"} in container(pod)["volumeMounts"]
        assert container(pod)["securityContext"]["runAsNonRoot"] is True
    assert container(head)["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}}
    assert container(worker)["resources"] == {"limits": {"cpu": "4", "memory": "16Gi"}}
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


def test_the_templates_image_wins_over_the_ray_image_and_workers_default_to_two() -> None:
    config = {**RAY_CONFIG, "ray": None}
    template = JobTemplate.model_validate({"image": "team/recluster:ray"})
    cluster = build_rayjob(TRIGGER, template, request(config), SETTINGS, RAY)["spec"][
        "rayClusterSpec"
    ]
    assert container(cluster["headGroupSpec"]["template"])["image"] == "team/recluster:ray"
    group = cluster["workerGroupSpecs"][0]
    assert group["replicas"] == 2
    assert container(group["template"])["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}}


def test_an_existing_cluster_is_selected_not_created() -> None:
    config = {**RAY_CONFIG, "ray": {"cluster_selector": {"ray.io/cluster": "shared"}}}
    spec = build_rayjob(TRIGGER, None, request(config), SETTINGS, RAY)["spec"]
    assert spec["clusterSelector"] == {"ray.io/cluster": "shared"}
    assert "rayClusterSpec" not in spec


# -- what the install and the name allow -------------------------------------------------


def test_runtime_problems_hold_the_trigger_with_a_reason() -> None:
    config = ExecutionConfig.model_validate(RAY_CONFIG)
    job_config = ExecutionConfig.model_validate({**RAY_CONFIG, "runtime": None, "ray": None})
    assert runtime_problem("nightly", job_config, RaySettings()) is None
    assert runtime_problem("nightly", config, RAY) is None
    off = runtime_problem("nightly", config, RaySettings())
    assert off is not None and off[0] == REASON_NOT_ENABLED and "ray.enabled" in off[1]
    long = runtime_problem("n" * 37, config, RAY)
    assert long is not None and long[0] == REASON_BAD_NAME and "at most 36" in long[1]
    assert runtime_problem("n" * 36, config, RAY) is None
    digit = runtime_problem("2am-daily", config, RAY)
    assert digit is not None and "starting with a letter" in digit[1]


# -- KubeRay's status, transition by transition -------------------------------------------


def rayjob(**status: Any) -> dict[str, Any]:
    obj = build_rayjob(TRIGGER, None, request(), SETTINGS, RAY)
    obj["metadata"]["creationTimestamp"] = "2026-11-29T02:00:01Z"
    obj["status"] = status
    return obj


RUNNING_STATES = [
    {},
    {"jobDeploymentStatus": "Initializing"},
    {"jobDeploymentStatus": "Running", "jobStatus": "PENDING"},
    {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"},
    # the Ray job ended, KubeRay has not moved the deployment yet: still running
    {"jobDeploymentStatus": "Running", "jobStatus": "SUCCEEDED"},
    {"jobDeploymentStatus": "Retrying", "jobStatus": "FAILED"},
    {"jobDeploymentStatus": "Suspended"},
    {"jobDeploymentStatus": "Waiting"},
]


@pytest.mark.parametrize("status", RUNNING_STATES, ids=lambda s: "/".join(s.values()) or "new")
def test_not_terminal_deployments_are_running(status: dict[str, Any]) -> None:
    seen = observe_rayjob(rayjob(**status), {"num_clusters": 3})
    assert (seen.phase, seen.error, seen.finished_at, seen.summary) == ("running", None, None, None)
    assert seen.kind == "RayJob" and seen.execution == request().execution


def test_complete_and_succeeded_is_a_success_with_the_runs_summary() -> None:
    summary = {"num_clusters": 100, "num_documents": 10**6, "execution_time_ms": 5000}
    seen = observe_rayjob(
        rayjob(
            jobDeploymentStatus="Complete", jobStatus="SUCCEEDED", endTime="2026-11-29T02:10:00Z"
        ),
        summary,
    )
    assert seen.phase == "succeeded" and seen.summary == summary and seen.error is None
    assert seen.finished_at == datetime(2026, 11, 29, 2, 10, tzinfo=UTC)
    assert seen.created_at == datetime(2026, 11, 29, 2, 0, 1, tzinfo=UTC)


def test_complete_but_stopped_is_a_failure() -> None:
    seen = observe_rayjob(rayjob(jobDeploymentStatus="Complete", jobStatus="STOPPED"))
    assert seen.phase == "failed" and seen.error == "the Ray job ended STOPPED"


def test_a_failed_driver_reports_the_engines_own_reason() -> None:
    engine = json.dumps({"status": "failed", "error": "collection 'col_big' not found"})
    message = (
        "Job entrypoint command failed with exit code 1, last available logs (truncated to "
        f"20,000 chars):\n10:00:01 run x: kmeans on col_big\nerror: ...\n{engine}\n"
    )
    seen = observe_rayjob(
        rayjob(
            jobDeploymentStatus="Failed",
            jobStatus="FAILED",
            reason="AppFailed",
            message=message,
            endTime="2026-11-29T02:01:00Z",
        )
    )
    assert seen.phase == "failed" and seen.error == "collection 'col_big' not found"
    assert seen.finished_at == datetime(2026, 11, 29, 2, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ({"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded",
          "message": "The RayJob has passed the activeDeadlineSeconds."},
         "DeadlineExceeded: The RayJob has passed the activeDeadlineSeconds."),
        ({"jobDeploymentStatus": "Failed", "reason": "SubmissionFailed"}, "SubmissionFailed"),
        ({"jobDeploymentStatus": "ValidationFailed", "reason": "ValidationFailed",
          "message": "RayJob name should be no more than 47 characters"},
         "ValidationFailed: RayJob name should be no more than 47 characters"),
    ],
    ids=["deadline", "submission", "validation"],
)  # fmt: skip
def test_kuberays_failures_are_reported_by_reason(status: dict[str, Any], error: str) -> None:
    seen = observe_rayjob(rayjob(**status))
    assert (seen.phase, seen.error) == ("failed", error)


# -- the state machine, with RayJobs instead of Jobs ---------------------------------------


def spec(**extra: Any) -> ClusterTriggerSpec:
    return ClusterTriggerSpec.model_validate(
        {
            "trigger_type": "cron",
            "schedule_config": {"cron_expression": "*/5 * * * *", "timezone": "UTC"},
            "execution_config": RAY_CONFIG,
            **extra,
        }
    )


class KubeRaySim:
    """Plays the reconciler and KubeRay around the pure core: RayJobs, their status."""

    def __init__(self, trigger_spec: ClusterTriggerSpec) -> None:
        self.spec = trigger_spec
        self.ref = TriggerRef("nightly", "team-a", "uid-1", 1, T0)
        self.status = ClusterTriggerStatus()
        self.rayjobs: dict[str, dict[str, Any]] = {}
        self.summaries: dict[str, dict[str, Any]] = {}
        self.now = T0
        self.annotation: str | None = None

    def step(self, at: datetime) -> Decision:
        self.now = at
        seen = tuple(
            observe_rayjob(obj, self.summaries.get(name)) for name, obj in self.rayjobs.items()
        )
        observation = Observation(
            jobs=seen,
            execution_config=ExecutionConfig.model_validate(RAY_CONFIG),
            manual_request=self.annotation,
        )
        decision = reconcile(self.ref, self.spec, self.status, observation, self.now)
        self.status = decision.status
        for deletion in decision.delete:
            assert deletion.kind == "RayJob"
            self.rayjobs.pop(deletion.name, None)
        for req in decision.create:
            obj = build_rayjob(TRIGGER, None, req, SETTINGS, RAY)
            obj["metadata"]["creationTimestamp"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
            obj["status"] = {}
            self.rayjobs[req.name] = obj
        return decision

    def kuberay(self, name: str, **status: Any) -> None:
        """Write the status as KubeRay would (the fields it sets, merged)."""
        self.rayjobs[name]["status"] = {**self.rayjobs[name]["status"], **status}


def at(minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, 28, 10, minute, second, tzinfo=UTC)


def end(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_rayjob_runs_to_success_and_fills_the_history() -> None:
    sim = KubeRaySim(spec())
    sim.step(at(1))
    [created] = sim.step(at(5)).create
    assert created.execution_config.runtime == "ray"
    name = created.name
    sim.kuberay(name, jobDeploymentStatus="Initializing")
    assert sim.step(at(5, 10)).events == []
    sim.kuberay(name, jobDeploymentStatus="Running", jobStatus="RUNNING")
    assert sim.step(at(6)).events == []
    assert sim.status.last_execution_status == "running"
    sim.summaries[name] = {"num_clusters": 100, "num_documents": 10**6,
                           "execution_time_ms": 61000}  # fmt: skip
    sim.kuberay(name, jobDeploymentStatus="Complete", jobStatus="SUCCEEDED", endTime=end(at(7)))
    decision = sim.step(at(7, 5))
    assert [e.reason for e in decision.events] == ["Succeeded"]
    st = sim.status
    assert (st.execution_count, st.consecutive_failures, st.last_execution_status) == (
        1, 0, "succeeded",
    )  # fmt: skip
    entry = st.history[0]  # type: ignore[index]
    assert (entry.job_id, entry.status, entry.num_clusters, entry.num_documents) == (
        name, "succeeded", 100, 10**6,
    )  # fmt: skip
    assert entry.execution_time_ms == 61000 and entry.finished_at == at(7)


def test_failed_rayjobs_count_towards_max_consecutive_failures() -> None:
    sim = KubeRaySim(spec(max_consecutive_failures=2))
    sim.step(at(1))
    for minute in (5, 10):
        [created] = sim.step(at(minute)).create
        sim.kuberay(created.name, jobDeploymentStatus="Failed", jobStatus="FAILED",
                    reason="AppFailed", message='{"status":"failed","error":"out of memory"}',
                    endTime=end(at(minute, 30)))  # fmt: skip
        sim.step(at(minute, 40))
    st = sim.status
    assert st.consecutive_failures == 2 and st.status == "failed"
    assert st.last_execution_error == "out of memory"
    assert sim.step(at(15)).create == []


def test_forbid_skips_while_a_rayjob_runs_and_replace_deletes_it() -> None:
    sim = KubeRaySim(spec())
    sim.step(at(1))
    [first] = sim.step(at(5)).create
    sim.kuberay(first.name, jobDeploymentStatus="Running", jobStatus="RUNNING")
    skipped = sim.step(at(10))
    assert skipped.create == [] and [e.reason for e in skipped.events] == ["SkippedConcurrent"]
    sim.spec = spec(concurrency_policy="Replace")
    replaced = sim.step(at(15))
    assert [(d.name, d.kind) for d in replaced.delete] == [(first.name, "RayJob")]
    assert len(replaced.create) == 1 and first.name not in sim.rayjobs
    statuses = {e.job_id: e.status for e in sim.status.history or []}
    assert statuses[first.name] == "cancelled"
    assert statuses[replaced.create[0].name] == "running"


def test_a_manual_run_creates_a_rayjob_and_history_limits_prune_rayjobs() -> None:
    sim = KubeRaySim(spec(successful_jobs_history_limit=1))
    sim.step(at(1))
    sim.annotation = "2026-11-28T10:02:00Z"
    [manual] = sim.step(at(2)).create
    assert sim.status.history[0].reason == "manual"  # type: ignore[index]
    sim.kuberay(manual.name, jobDeploymentStatus="Complete", jobStatus="SUCCEEDED",
                endTime=end(at(3)))  # fmt: skip
    sim.step(at(3, 10))
    [scheduled] = sim.step(at(5)).create
    sim.kuberay(scheduled.name, jobDeploymentStatus="Complete", jobStatus="SUCCEEDED",
                endTime=end(at(6)))  # fmt: skip
    pruned = sim.step(at(6, 10))
    assert [(d.name, d.kind) for d in pruned.delete] == [(manual.name, "RayJob")]


def test_a_rayjob_deleted_by_hand_is_recorded_as_cancelled() -> None:
    sim = KubeRaySim(spec())
    sim.step(at(1))
    [created] = sim.step(at(5)).create
    del sim.rayjobs[created.name]
    sim.step(at(5) + timedelta(seconds=61))
    assert sim.status.history[0].status == "cancelled"  # type: ignore[index]
