"""RayJobs at their edges: the whole cluster spec, the install's defaults, every status path."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from test_rayjobs import RAY, RAY_CONFIG, SETTINGS, TRIGGER, container, rayjob, request

from recluster.api.clustering import ExecutionConfig
from recluster.core.jobs import TERMINATION_MESSAGE_LIMIT, job_labels
from recluster.core.rayjobs import (
    RaySettings,
    build_rayjob,
    failure_reason,
    is_finished,
    observe_rayjob,
    runtime_problem,
)


def cluster_of(**ray: Any) -> dict[str, Any]:
    config = {**RAY_CONFIG, "ray": ray or None}
    spec = build_rayjob(TRIGGER, None, request(config), SETTINGS, RAY)["spec"]
    return dict(spec["rayClusterSpec"])


# -- the manifest ---------------------------------------------------------------------------


def test_the_cluster_spec_has_one_head_without_ray_tasks_and_one_fixed_worker_group() -> None:
    cluster = cluster_of(workers=3)
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"] == {"num-cpus": "0", "dashboard-host": "0.0.0.0"}
    [group] = cluster["workerGroupSpecs"]
    assert {k: v for k, v in group.items() if k != "template"} == {
        "groupName": "workers",
        "replicas": 3,
        "minReplicas": 3,
        "maxReplicas": 3,
        "rayStartParams": {},
    }
    labels = job_labels("nightly", request().execution, SETTINGS)
    for template, name in ((head["template"], "ray-head"), (group["template"], "ray-worker")):
        assert template["metadata"] == {"labels": labels}
        assert container(template)["name"] == name
        assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in template["spec"]["volumes"]


def test_workers_default_to_two_when_the_ray_block_leaves_them_out() -> None:
    cluster = cluster_of(worker_resources={"limits": {"cpu": "2"}})
    group = cluster["workerGroupSpecs"][0]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (2, 2, 2)
    assert container(group["template"])["resources"] == {"limits": {"cpu": "2"}}


def test_without_a_ray_image_the_pods_run_the_jobs_image() -> None:
    ray = RaySettings(enabled=True)
    spec = build_rayjob(TRIGGER, None, request(), SETTINGS, ray)["spec"]
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]
    assert container(head)["image"] == SETTINGS.image


def test_the_install_ttl_is_kept_and_no_deadline_means_none_set() -> None:
    ray = RaySettings(enabled=True, ttl_seconds_after_finished=600)
    settings = dataclasses.replace(SETTINGS, active_deadline_seconds=None)
    spec = build_rayjob(TRIGGER, None, request(), settings, ray)["spec"]
    assert spec["ttlSecondsAfterFinished"] == 600
    assert "activeDeadlineSeconds" not in spec


# -- what the install and the name allow ----------------------------------------------------


def test_runtime_problems_say_exactly_what_to_do() -> None:
    config = ExecutionConfig.model_validate(RAY_CONFIG)
    assert runtime_problem("nightly", None, RaySettings()) is None
    assert runtime_problem("nightly", config, RaySettings()) == (
        "RayNotEnabled",
        "execution_config.runtime is ray, but this install does not run RayJobs "
        "(enable ray.enabled in the chart, with KubeRay installed)",
    )
    assert runtime_problem("n" * 37, config, RAY) == (
        "RayJobNameInvalid",
        "runtime ray: RayJob names are <trigger name>-<10 hex digits>, and KubeRay takes "
        "at most 47 characters starting with a letter; rename the trigger "
        "to at most 36 characters, starting with a letter",
    )


# -- KubeRay's status -----------------------------------------------------------------------


def test_an_observation_names_the_rayjob_its_execution_and_schedule() -> None:
    obj = rayjob(jobDeploymentStatus="Running")
    seen = observe_rayjob(obj)
    assert seen.name == request().name and seen.execution == request().execution
    assert seen.scheduled_at == datetime(2026, 11, 29, 2, tzinfo=UTC)
    bare = observe_rayjob({"metadata": {"name": "x"}})
    assert (bare.name, bare.execution, bare.scheduled_at, bare.phase) == ("x", "", None, "running")


def test_complete_without_a_job_status_is_a_failure_without_the_summary() -> None:
    seen = observe_rayjob(
        rayjob(jobDeploymentStatus="Complete", endTime="2026-11-29T02:10:00Z"), {"n": 1}
    )
    assert (seen.phase, seen.error, seen.summary) == (
        "failed", "the Ray job ended without a job status", None,
    )  # fmt: skip
    assert seen.finished_at == datetime(2026, 11, 29, 2, 10, tzinfo=UTC)
    failed = observe_rayjob(rayjob(jobDeploymentStatus="ValidationFailed"), {"n": 1})
    assert (failed.phase, failed.summary, failed.error) == ("failed", None, "ValidationFailed")


def test_a_failure_reason_skips_json_lines_without_an_error() -> None:
    engine = json.dumps({"status": "failed", "error": "no such collection"})
    message = f"{engine}\nnot json\n" + json.dumps({"status": "ok"}) + "\n"
    assert failure_reason({"message": message}) == "no such collection"


def test_a_failure_reason_without_reason_or_message_says_failed() -> None:
    assert failure_reason({}) == "Failed"
    assert failure_reason({"jobDeploymentStatus": "Failed", "message": "\n  boom\nmore"}) == (
        "Failed: boom"
    )


def test_failure_reasons_are_bounded_like_termination_messages() -> None:
    long = "x" * (TERMINATION_MESSAGE_LIMIT + 10)
    engine = json.dumps({"status": "failed", "error": long})
    assert failure_reason({"message": engine}) == long[:TERMINATION_MESSAGE_LIMIT]
    assert (
        failure_reason({"reason": "AppFailed", "message": long})
        == (f"AppFailed: {long}"[:TERMINATION_MESSAGE_LIMIT])
    )


def test_is_finished_only_for_terminal_deployments() -> None:
    for deployment in ("Complete", "Failed", "ValidationFailed"):
        assert is_finished(rayjob(jobDeploymentStatus=deployment)), deployment
    for deployment in ("", "Initializing", "Running", "Retrying", "Suspended", "Waiting"):
        assert not is_finished(rayjob(jobDeploymentStatus=deployment)), deployment
    assert not is_finished({"metadata": {"name": "x"}})


def test_a_running_rayjob_has_no_finish_time_even_with_an_earlier_end_time() -> None:
    # an endTime seen before the deployment is terminal does not finish the run
    seen = observe_rayjob(rayjob(jobDeploymentStatus="Retrying", endTime="2026-11-29T02:05:00Z"))
    assert (seen.phase, seen.finished_at) == ("running", None)
