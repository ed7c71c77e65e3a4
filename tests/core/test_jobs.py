"""Job manifests of a firing, and what a finished Job tells the trigger."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from recluster.api.clustering import ExecutionConfig
from recluster.api.jobtemplate import JobTemplate, ResourceRequirements
from recluster.core.jobs import (
    JobObservation,
    JobRequest,
    JobSettings,
    build_job,
    execution_id,
    job_name,
    observe_job,
    parse_summary,
)

TRIGGER = {"name": "daily-2am", "namespace": "team-a", "uid": "1234-uid"}
CONFIG = ExecutionConfig.model_validate(
    {"collection_ids": ["col_abc123"], "config": {"algorithm": "kmeans", "n_clusters": 5}}
)
SETTINGS = JobSettings(image="ghcr.io/recluster/recluster:0.1.0", store_uri="s3://bucket/store")


def request(reason: str = "schedule") -> JobRequest:
    ex = execution_id("1234-uid", "scheduled/2026-11-29T02:00:00Z")
    return JobRequest(
        job_name("daily-2am", ex),
        ex,
        datetime(2026, 11, 29, 2, tzinfo=UTC),
        reason,
        CONFIG,  # type: ignore[arg-type]
    )


def test_names_are_deterministic_and_fit_63_characters() -> None:
    a = execution_id("uid", "scheduled/2026-11-29T02:00:00Z")
    assert a == execution_id("uid", "scheduled/2026-11-29T02:00:00Z")
    assert a != execution_id("uid", "scheduled/2026-11-30T02:00:00Z")
    assert a != execution_id("other-uid", "scheduled/2026-11-29T02:00:00Z")
    assert len(job_name("x" * 52, a)) == 63


def test_job_carries_labels_owner_config_and_template() -> None:
    template = JobTemplate.model_validate(
        {
            "image": "custom:1",
            "resources": {"limits": {"memory": "4Gi", "cpu": 2}},
            "nodeSelector": {"pool": "batch"},
            "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
            "serviceAccountName": "clusterer",
            "backoffLimit": 0,
            "activeDeadlineSeconds": 3600,
            "env": [{"name": "OMP_NUM_THREADS", "value": "2"}],
        }
    )
    job = build_job(TRIGGER, template, request(), SETTINGS)
    meta = job["metadata"]
    assert meta["name"] == request().name and meta["namespace"] == "team-a"
    assert meta["labels"]["recluster.io/trigger"] == "daily-2am"
    assert meta["labels"]["recluster.io/execution"] == request().execution
    assert meta["annotations"]["recluster.io/scheduled-at"] == "2026-11-29T02:00:00Z"
    owner = meta["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "ClusterTrigger", "daily-2am", "1234-uid", True,
    )  # fmt: skip
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 3600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "clusterer"
    assert pod["nodeSelector"] == {"pool": "batch"}
    assert pod["tolerations"] == [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}]
    container = pod["containers"][0]
    assert container["image"] == "custom:1" and container["args"] == ["run-job"]
    assert container["resources"] == {"limits": {"memory": "4Gi", "cpu": 2}}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert json.loads(env["RECLUSTER_EXECUTION_CONFIG"]) == {
        "collection_ids": ["col_abc123"],
        "config": {"algorithm": "kmeans", "n_clusters": 5},
    }
    assert env["RECLUSTER_STORE_URI"] == "s3://bucket/store"
    assert env["RECLUSTER_RUN_ID"] == request().name
    namespace = next(e for e in container["env"] if e["name"] == "RECLUSTER_NAMESPACE")
    assert namespace == {
        "name": "RECLUSTER_NAMESPACE",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
    }
    names = [e["name"] for e in container["env"]]
    assert names.index("OMP_NUM_THREADS") < names.index("RECLUSTER_NAMESPACE"), (
        "the install's variables come last: Kubernetes keeps the last of a name"
    )
    assert env["OMP_NUM_THREADS"] == "2"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


LABELS = {
    "app.kubernetes.io/name": "recluster",
    "app.kubernetes.io/component": "clustering-job",
    "app.kubernetes.io/managed-by": "recluster-operator",
    "recluster.io/trigger": "daily-2am",
    "recluster.io/execution": "dad0e9c6c0",
}


def test_the_whole_manifest_of_a_plain_firing() -> None:
    """Every field, written out: what `kubectl get job -o yaml` shows for a bare trigger."""
    assert request().name == "daily-2am-dad0e9c6c0"
    assert build_job(TRIGGER, None, request(), SETTINGS) == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "daily-2am-dad0e9c6c0",
            "namespace": "team-a",
            "labels": LABELS,
            "annotations": {
                "recluster.io/reason": "schedule",
                "recluster.io/scheduled-at": "2026-11-29T02:00:00Z",
            },
            "ownerReferences": [{
                "apiVersion": "recluster.io/v1alpha1", "kind": "ClusterTrigger",
                "name": "daily-2am", "uid": "1234-uid",
                "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": {
            "backoffLimit": 1,
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "containers": [{
                        "name": "recluster",
                        "image": "ghcr.io/recluster/recluster:0.1.0",
                        "args": ["run-job"],
                        "env": [
                            {"name": "RECLUSTER_EXECUTION_CONFIG", "value": (
                                '{"collection_ids":["col_abc123"],'
                                '"config":{"algorithm":"kmeans","n_clusters":5}}')},
                            {"name": "RECLUSTER_STORE_URI", "value": "s3://bucket/store"},
                            {"name": "RECLUSTER_NAMESPACE",
                             "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                            {"name": "RECLUSTER_RUN_ID", "value": "daily-2am-dad0e9c6c0"},
                        ],
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "securityContext": {
                            "runAsNonRoot": True,
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }  # fmt: skip


def test_install_labels_and_pull_policy_and_no_scheduled_at_for_manual() -> None:
    settings = JobSettings(
        image="i", store_uri="/s", image_pull_policy="IfNotPresent",
        service_account_name="install-sa", labels={"team": "search"},
    )  # fmt: skip
    manual = JobRequest("t-1", "1", None, "manual", CONFIG)
    job = build_job(TRIGGER, None, manual, settings)
    assert job["metadata"]["annotations"] == {"recluster.io/reason": "manual"}
    assert job["metadata"]["labels"] == {**LABELS, "team": "search", "recluster.io/execution": "1"}
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "install-sa"
    assert pod["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert "activeDeadlineSeconds" not in job["spec"] and "affinity" not in pod
    assert "resources" not in pod["containers"][0] and "nodeSelector" not in pod
    template = JobTemplate.model_validate({"imagePullPolicy": "Always"})
    job = build_job(TRIGGER, template, manual, settings)
    assert job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Always"


def test_defaults_come_from_the_install() -> None:
    job = build_job(TRIGGER, None, request("manual"), SETTINGS)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == SETTINGS.image
    assert job["spec"]["backoffLimit"] == 1
    assert job["metadata"]["annotations"]["recluster.io/reason"] == "manual"


INSTALL_DEFAULTS = JobSettings(
    image="i",
    store_uri="/store",
    affinity={
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "topologyKey": "kubernetes.io/hostname",
                    "namespaces": ["recluster"],
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "operator"}},
                }
            ]
        }
    },
    active_deadline_seconds=21600,
    resources=ResourceRequirements(
        requests={"cpu": "500m", "memory": "1Gi"}, limits={"memory": "4Gi"}
    ),
)


def test_the_install_bounds_every_job_and_holds_it_near_the_store() -> None:
    job = build_job(TRIGGER, None, request(), INSTALL_DEFAULTS)
    assert job["spec"]["activeDeadlineSeconds"] == 21600
    pod = job["spec"]["template"]["spec"]
    assert pod["affinity"] == INSTALL_DEFAULTS.affinity
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"memory": "4Gi"},
    }
    bare = build_job(TRIGGER, None, request(), SETTINGS)
    assert "activeDeadlineSeconds" not in bare["spec"]
    assert "affinity" not in bare["spec"]["template"]["spec"]
    assert "resources" not in bare["spec"]["template"]["spec"]["containers"][0]


def test_the_job_template_wins_over_the_install_but_not_for_the_store_affinity() -> None:
    template = JobTemplate.model_validate(
        {
            "activeDeadlineSeconds": 600,
            "resources": {"limits": {"memory": "16Gi"}},
            "nodeSelector": {"pool": "batch"},
        }
    )
    job = build_job(TRIGGER, template, request(), INSTALL_DEFAULTS)
    assert job["spec"]["activeDeadlineSeconds"] == 600
    pod = job["spec"]["template"]["spec"]
    # resources are replaced whole: a template's limits do not inherit the install's requests
    assert pod["containers"][0]["resources"] == {"limits": {"memory": "16Gi"}}
    assert pod["affinity"] == INSTALL_DEFAULTS.affinity
    assert pod["nodeSelector"] == {"pool": "batch"}


def job_with(conditions: list[dict[str, str]], status: dict[str, object] | None = None) -> dict:
    return {
        "metadata": {
            "name": "daily-2am-abc",
            "labels": {"recluster.io/execution": "abc"},
            "creationTimestamp": "2026-11-29T02:00:01Z",
            "annotations": {"recluster.io/scheduled-at": "2026-11-29T02:00:00Z"},
        },
        "status": {"conditions": conditions, **(status or {})},
    }


def pod(terminated: dict[str, str]) -> dict:
    return {
        "status": {
            "containerStatuses": [{"name": "recluster", "state": {"terminated": terminated}}]
        }
    }


def test_success_reads_the_summary_from_the_termination_message() -> None:
    summary = {"num_clusters": 5, "num_documents": 1000, "execution_time_ms": 812}
    job = job_with(
        [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-11-29T02:01:00Z"}],
        {"succeeded": 1, "completionTime": "2026-11-29T02:01:00Z"},
    )
    seen = observe_job(job, [pod({"exitCode": "0", "message": json.dumps(summary)})])
    assert seen.phase == "succeeded" and seen.summary == summary and seen.error is None
    assert seen.finished_at == datetime(2026, 11, 29, 2, 1, tzinfo=UTC)
    assert seen.scheduled_at == datetime(2026, 11, 29, 2, tzinfo=UTC)
    assert seen.execution == "abc"


def test_failure_reasons_in_order_of_usefulness() -> None:
    failed = [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
               "message": "Job was active longer than specified deadline"}]  # fmt: skip
    assert observe_job(job_with(failed)).error == (
        "DeadlineExceeded: Job was active longer than specified deadline"
    )
    runner = pod({"message": json.dumps({"error": "collection 'col_x' not found"})})
    assert observe_job(job_with(failed), [runner]).error == "collection 'col_x' not found"
    oom = pod({"reason": "OOMKilled", "exitCode": "137"})
    assert observe_job(job_with(failed), [oom]).error.startswith("OOMKilled")  # type: ignore[union-attr]
    logs = pod({"message": "Traceback ...\nMemoryError: out of memory"})
    assert observe_job(job_with(failed), [logs]).error == "MemoryError: out of memory"
    backoff = [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]
    assert observe_job(job_with(backoff)).error == "BackoffLimitExceeded"


def test_an_outcome_waits_for_the_pods_report_only_while_a_pod_is_there() -> None:
    failed = [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
               "lastTransitionTime": "2026-11-29T02:01:00Z"}]  # fmt: skip
    running = {"status": {"containerStatuses": [{"name": "recluster", "state": {"running": {}}}]}}
    assert observe_job(job_with(failed), [running]).terminated_seen is False
    assert observe_job(job_with(failed), [pod({"exitCode": "1"})]).terminated_seen is True
    # the Job controller deleted the pods at the deadline: no report will ever come
    assert observe_job(job_with(failed), []).terminated_seen is True


def test_running_job() -> None:
    seen = observe_job(job_with([], {"active": 1}))
    assert seen == JobObservation(
        name="daily-2am-abc",
        execution="abc",
        phase="running",
        created_at=datetime(2026, 11, 29, 2, 0, 1, tzinfo=UTC),
        scheduled_at=datetime(2026, 11, 29, 2, tzinfo=UTC),
    )


def test_the_newest_terminated_state_of_the_recluster_container_counts() -> None:
    failed = [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
               "lastTransitionTime": "2026-11-29T02:05:00Z"}]  # fmt: skip

    def pod_of(*statuses: dict) -> dict:
        return {"status": {"containerStatuses": list(statuses)}}

    first = pod_of({"name": "recluster", "state": {"terminated": {
        "finishedAt": "2026-11-29T02:01:00Z", "message": '{"error": "first try"}'}}})  # fmt: skip
    # a restarted container reports its previous end in lastState
    second = pod_of({"name": "recluster", "state": {"waiting": {}}, "lastState": {"terminated": {
        "finishedAt": "2026-11-29T02:04:00Z", "message": '{"error": "second try"}'}}})  # fmt: skip
    sidecar = pod_of({"name": "istio-proxy", "state": {"terminated": {
        "finishedAt": "2026-11-29T02:09:00Z", "message": '{"error": "not ours"}'}}})  # fmt: skip
    seen = observe_job(job_with(failed), [second, first, sidecar])
    assert seen.error == "second try" and seen.summary == {"error": "second try"}
    assert seen.finished_at == datetime(2026, 11, 29, 2, 5, tzinfo=UTC)
    assert observe_job(job_with(failed), [sidecar]).terminated_seen is False


def test_a_summary_is_a_json_object_or_nothing() -> None:
    assert parse_summary(None) is None and parse_summary("") is None
    assert parse_summary("not json") is None and parse_summary("[1, 2]") is None
    assert parse_summary('{"num_clusters": 3}') == {"num_clusters": 3}


def test_failure_reasons_are_cut_to_the_termination_message_limit() -> None:
    failed = [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]
    long_error = pod({"message": json.dumps({"error": "e" * 5000})})
    assert observe_job(job_with(failed), [long_error]).error == "e" * 4096
    long_line = pod({"message": "first\n" + "x" * 5000})
    assert observe_job(job_with(failed), [long_line]).error == "x" * 4096
    blank = pod({"message": "   "})
    assert observe_job(job_with(failed), [blank]).error == "BackoffLimitExceeded"
    summary_without_error = pod({"message": json.dumps({"num_clusters": 3})})
    assert observe_job(job_with(failed), [summary_without_error]).error == "BackoffLimitExceeded"
    oom = pod({"reason": "OOMKilled", "exitCode": "137"})
    assert observe_job(job_with(failed), [oom]).error == (
        "OOMKilled: the clustering container ran out of memory (raise its memory limit)"
    )


def test_store_secret_and_volumes_from_the_install() -> None:
    settings = JobSettings(
        image="i",
        store_uri="postgresql://user:hunter2@db/recluster",
        store_uri_secret=("recluster-store", "dsn"),
        volumes=[{"name": "store", "persistentVolumeClaim": {"claimName": "parquet"}}],
        volume_mounts=[{"name": "store", "mountPath": "/data"}],
    )
    job = build_job(TRIGGER, None, request(), settings)
    pod = job["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["RECLUSTER_STORE_URI"] == {
        "name": "RECLUSTER_STORE_URI",
        "valueFrom": {"secretKeyRef": {"name": "recluster-store", "key": "dsn"}},
    }
    assert "hunter2" not in str(job), "the DSN password never appears in the Job"
    assert {"name": "store", "persistentVolumeClaim": {"claimName": "parquet"}} in pod["volumes"]
    assert {"name": "store", "mountPath": "/data"} in pod["containers"][0]["volumeMounts"]


def test_a_job_mounts_only_its_namespaces_directory_of_the_store_volume() -> None:
    settings = JobSettings(
        image="i",
        store_uri="/var/lib/recluster/store",
        volumes=[{"name": "store", "persistentVolumeClaim": {"claimName": "parquet"}}],
        # a subPath of the install's is replaced: Kubernetes refuses subPath with subPathExpr
        volume_mounts=[{"name": "store", "mountPath": "/var/lib/recluster/store",
                        "subPath": "shared"},
                       {"name": "extra", "mountPath": "/extra"}],
        store_volume="store",
        env=[{"name": "INSTALL", "value": "1"}],
    )  # fmt: skip
    template = JobTemplate.model_validate(
        {"env": [{"name": "TEAM", "value": "tenant-b"}, {"name": "MODE", "value": "fast"}]}
    )
    job = build_job(TRIGGER, template, request(), settings)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["volumeMounts"] == [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "store", "mountPath": "/var/lib/recluster/store",
         "subPathExpr": "$(RECLUSTER_NAMESPACE)"},
        {"name": "extra", "mountPath": "/extra"},
    ]  # fmt: skip
    names = [e["name"] for e in container["env"]]
    # subPathExpr expands from the last RECLUSTER_NAMESPACE of the env: the downward API's
    last = [e for e in container["env"] if e["name"] == "RECLUSTER_NAMESPACE"][-1]
    assert last["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    # the trigger's variables, the install's, then the operator's own
    assert names == ["TEAM", "MODE", "INSTALL", "RECLUSTER_EXECUTION_CONFIG",
                     "RECLUSTER_STORE_URI", "RECLUSTER_STORE_SCOPE", "RECLUSTER_NAMESPACE",
                     "RECLUSTER_RUN_ID"]  # fmt: skip
    scope = container["env"][names.index("RECLUSTER_STORE_SCOPE")]
    assert scope == {"name": "RECLUSTER_STORE_SCOPE", "value": "namespace"}

    whole = build_job(TRIGGER, None, request(), SETTINGS)
    assert "RECLUSTER_STORE_SCOPE" not in str(whole), "object stores: partition by credentials"


def test_only_the_store_volume_scopes_the_store_to_the_namespace() -> None:
    """An install's own subPathExpr mount (say, logs per pod) is not the store's directory."""
    logs = {"name": "logs", "mountPath": "/logs", "subPathExpr": "$(POD_NAME)"}
    settings = JobSettings(image="i", store_uri="s3://bucket/store", volume_mounts=[logs])
    container = build_job(TRIGGER, None, request(), settings)["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert logs in container["volumeMounts"]
    assert "RECLUSTER_STORE_SCOPE" not in [e["name"] for e in container["env"]]


def test_the_phase_comes_from_the_conditions_or_the_counts() -> None:
    complete = [
        {"type": "Complete", "status": "True", "lastTransitionTime": "2026-11-29T02:02:00Z"}
    ]
    by_condition = observe_job(job_with(complete))
    assert by_condition.phase == "succeeded"
    assert by_condition.finished_at == datetime(2026, 11, 29, 2, 2, tzinfo=UTC)
    # a succeeded count before the condition shows (an older Job controller)
    by_count = observe_job(job_with([], {"succeeded": 1, "completionTime": "2026-11-29T02:03:00Z"}))
    assert by_count.phase == "succeeded"
    assert by_count.finished_at == datetime(2026, 11, 29, 2, 3, tzinfo=UTC)
    not_true = [{"type": "Complete", "status": "False"}]
    assert observe_job(job_with(not_true)).phase == "running"
    failed = observe_job(job_with([{"type": "Failed", "status": "True"}]))
    assert (failed.phase, failed.error) == ("failed", "Failed")  # no reason given
    bare = observe_job({"metadata": {"name": "j"}})
    assert (bare.phase, bare.execution, bare.created_at) == ("running", "", None)


def test_the_recluster_container_is_found_among_others_and_the_newest_end_wins() -> None:
    failed = [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]
    statuses = [
        {"name": "istio-proxy", "state": {"running": {}}},
        {"name": "recluster", "state": {"terminated": {"message": '{"error": "ours"}'}}},
    ]
    assert observe_job(job_with(failed), [{"status": {"containerStatuses": statuses}}]).error == (
        "ours"
    )
    undated = pod({"message": '{"error": "undated"}'})
    dated = pod({"finishedAt": "2026-11-29T02:01:00Z", "message": '{"error": "dated"}'})
    assert observe_job(job_with(failed), [dated, undated]).error == "dated"
    three_lines = pod({"message": "Traceback\n  File x\nValueError: bad"})
    assert observe_job(job_with(failed), [three_lines]).error == "ValueError: bad"


def test_environment_from_the_template_and_the_install() -> None:
    template = JobTemplate.model_validate({"env": [
        {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]})  # fmt: skip
    settings = JobSettings(image="i", store_uri="/s", env=[{"name": "INSTALL", "value": "1"}])
    env = build_job(TRIGGER, template, request(), settings)["spec"]["template"]["spec"][
        "containers"
    ][0]["env"]
    assert env[:2] == [
        {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "INSTALL", "value": "1"},
    ]
