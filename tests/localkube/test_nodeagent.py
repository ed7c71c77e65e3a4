"""The node agent as the scheduler and the Job controller see it: pods report like a kubelet's.

Pods of the image `recluster:local` run as local processes (their command is
`/bin/sh -c ...`); everything else is the real control plane of the session.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kube_support import LocalKube
from recluster.kube.sync import KubeApi
from recluster.localkube.nodeagent import AgentConfig, NodeAgent
from recluster.localkube.runtime import ProcessRuntime

pytestmark = pytest.mark.timeout(120)
IMAGE = "recluster:local"


@pytest.fixture
def ns(kube: LocalKube) -> Iterator[str]:
    name = kube.new_namespace(kube.namespace_name("agent"))
    yield name
    kube.delete_namespace(name)


def pod(name: str, script: str, *args: str, **spec: Any) -> dict[str, Any]:
    """A pod running `sh -c script sh args...` (paths go in args: they are translated)."""
    container = {"name": "main", "image": IMAGE,
                 "command": ["/bin/sh", "-c", script, "sh", *args]}  # fmt: skip
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                 "containers": [container], **spec},
    }  # fmt: skip


def run(
    kube: LocalKube, ns: str, body: dict[str, Any], phase: tuple[str, ...] = ("Succeeded", "Failed")
) -> dict[str, Any]:
    kube.cluster.create("", "v1", "pods", body, ns)
    name = body["metadata"]["name"]
    return kube.cluster.wait_for_sync(
        lambda: (p := kube.cluster.get("", "v1", "pods", name, ns))
        and p.get("status", {}).get("phase") in phase and p,
        60, f"pod {name} to reach {phase}",
    )  # fmt: skip


def state(pod: dict[str, Any]) -> dict[str, Any]:
    return dict(pod["status"]["containerStatuses"][0]["state"])


def test_env_volumes_and_the_termination_message(kube: LocalKube, ns: str) -> None:
    kube.cluster.create("", "v1", "secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
        "data": {"token": base64.b64encode(b"s3cr3t").decode()}}, ns)  # fmt: skip
    # the process runtime translates container paths given as arguments (docs/localkube.md)
    script = 'printf "%s %s %s" "$NS" "$TOKEN" "$(cat "$1")" > "$3"; echo x > "$2" && test -f "$2"'
    body = pod("env", script, "/etc/creds/token", "/scratch/file", "/dev/termination-log", volumes=[
        {"name": "creds", "secret": {"secretName": "creds"}},
        {"name": "scratch", "emptyDir": {}},
    ], container={
        "env": [{"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds",
                                                                 "key": "token"}}}],
        "volumeMounts": [{"name": "creds", "mountPath": "/etc/creds"},
                         {"name": "scratch", "mountPath": "/scratch"}],
    })  # fmt: skip
    done = run(kube, ns, body)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    terminated = state(done)["terminated"]
    assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"
    assert terminated["message"] == f"{ns} s3cr3t s3cr3t"
    conditions = {c["type"]: c["status"] for c in done["status"]["conditions"]}
    assert conditions["PodScheduled"] == "True" and conditions["Ready"] == "False"
    assert done["spec"]["nodeName"] == "local-node"


def test_sub_path_expr_mounts_the_namespaces_directory_of_the_volume(
    kube: LocalKube, ns: str, tmp_path: Path
) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "secret").write_text("not yours")
    script = 'echo mine > "$1/file"; ! test -e "$1/other/secret" && ! test -e "$1/$NS"'
    body = pod("subpath", script, "/store", volumes=[
        {"name": "store", "hostPath": {"path": str(tmp_path), "type": "Directory"}},
    ], container={
        "env": [{"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
        "volumeMounts": [{"name": "store", "mountPath": "/store", "subPathExpr": "$(NS)"}],
    })  # fmt: skip
    done = run(kube, ns, body)
    # the container's own state in the message: a Failed phase alone (one run in three
    # under load in session 4) said nothing of why
    assert done["status"]["phase"] == "Succeeded", state(done)
    assert (tmp_path / ns / "file").read_text() == "mine\n", "the namespace's directory, created"


def test_a_sub_path_expr_that_steps_out_is_refused_with_the_reason(
    kube: LocalKube, ns: str, tmp_path: Path
) -> None:
    body = pod("escape", "true", volumes=[
        {"name": "store", "hostPath": {"path": str(tmp_path), "type": "Directory"}},
    ], container={
        "env": [{"name": "SUB", "value": "../elsewhere"}],
        "volumeMounts": [{"name": "store", "mountPath": "/store", "subPathExpr": "$(SUB)"}],
    })  # fmt: skip
    kube.cluster.create("", "v1", "pods", body, ns)
    waiting = kube.cluster.wait_for_sync(
        lambda: (p := kube.cluster.get("", "v1", "pods", "escape", ns))
        and p.get("status", {}).get("containerStatuses")
        and state(p).get("waiting", {}).get("reason") == "CreateContainerConfigError"
        and state(p)["waiting"],
        30, "CreateContainerConfigError",
    )  # fmt: skip
    assert waiting["message"] == (
        "volumeMount 'store': unable to provision SubPath `../elsewhere`: must not contain '..'"
    )
    assert not (tmp_path.parent / "elsewhere").exists()
    kube.cluster.wait_for_sync(
        lambda: any(
            e["reason"] == "Failed" and "must not contain '..'" in e["message"]
            for e in kube.cluster.objects("", "v1", "events", ns)
        ),
        30, "a Failed Event naming the reason",
    )  # fmt: skip


def test_a_failure_falls_back_to_the_log(kube: LocalKube, ns: str) -> None:
    body = pod("fails", "echo first; echo 'ValueError: bad config' >&2; exit 3",
               container={"terminationMessagePolicy": "FallbackToLogsOnError"})  # fmt: skip
    done = run(kube, ns, body)
    terminated = state(done)["terminated"]
    assert done["status"]["phase"] == "Failed"
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert terminated["message"].splitlines()[-1] == "ValueError: bad config"


def test_deletion_stops_the_process_and_confirms(kube: LocalKube, ns: str, tmp_path: Path) -> None:
    marker = tmp_path / "alive"
    body = pod(
        "sleeper", 'touch "$1"; trap \'rm "$1"; exit 0\' TERM; sleep 300 & wait', str(marker)
    )
    run(kube, ns, body, phase=("Running",))
    kube.cluster.wait_for_sync(marker.exists, 30, "the process to start")
    kube.cluster.delete("", "v1", "pods", "sleeper", ns)  # a grace period of 30 s
    kube.cluster.wait_for_sync(
        lambda: kube.cluster.get("", "v1", "pods", "sleeper", ns) is None, 30, "the pod to go"
    )
    assert not marker.exists(), "SIGTERM reached the process, which cleaned up"


def test_active_deadline_ends_the_pod(kube: LocalKube, ns: str) -> None:
    done = run(kube, ns, pod("slow", "sleep 300", activeDeadlineSeconds=1))
    assert done["status"]["phase"] == "Failed"
    assert done["status"]["reason"] == "DeadlineExceeded"
    assert state(done)["terminated"]["exitCode"] == 143


def test_an_image_it_cannot_run_waits_as_err_image_pull(kube: LocalKube, ns: str) -> None:
    body = pod("exotic", "true", container={"image": "ghcr.io/other/thing:1"})
    kube.cluster.create("", "v1", "pods", body, ns)
    waiting = kube.cluster.wait_for_sync(
        lambda: (p := kube.cluster.get("", "v1", "pods", "exotic", ns))
        and p.get("status", {}).get("containerStatuses")
        and state(p).get("waiting", {}).get("reason") == "ErrImagePull" and state(p)["waiting"],
        30, "ErrImagePull",
    )  # fmt: skip
    assert "cannot run as a local process" in waiting["message"]


def test_a_missing_secret_waits_then_runs_once_it_exists(kube: LocalKube, ns: str) -> None:
    body = pod(
        "patient",
        'test "$V" = ok',
        container={
            "env": [{"name": "V", "valueFrom": {"secretKeyRef": {"name": "later", "key": "v"}}}]
        },
    )
    kube.cluster.create("", "v1", "pods", body, ns)
    kube.cluster.wait_for_sync(
        lambda: (p := kube.cluster.get("", "v1", "pods", "patient", ns))
        and p.get("status", {}).get("containerStatuses")
        and state(p).get("waiting", {}).get("reason") == "CreateContainerConfigError",
        30, "CreateContainerConfigError",
    )  # fmt: skip
    kube.cluster.create("", "v1", "secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "later"},
        "data": {"v": base64.b64encode(b"ok").decode()}}, ns)  # fmt: skip
    done = kube.cluster.wait_for_sync(
        lambda: (p := kube.cluster.get("", "v1", "pods", "patient", ns))
        and p.get("status", {}).get("phase") == "Succeeded" and p,
        60, "the pod to run once the Secret exists",
    )  # fmt: skip
    assert state(done)["terminated"]["exitCode"] == 0


def test_a_pod_it_lost_in_a_restart_is_reported_unknown(
    kube: LocalKube, ns: str, tmp_path: Path
) -> None:
    """A pod Running on a node whose agent starts afresh: its process died with the agent."""
    node = "restarted-node"
    body = pod("orphan", "sleep 300", nodeName=node)
    kube.cluster.create("", "v1", "pods", body, ns)
    kube.cluster.patch_status("", "v1", "pods", "orphan", {
        "phase": "Running",
        "containerStatuses": [{"name": "main", "image": IMAGE, "imageID": "", "ready": True,
                               "restartCount": 0,
                               "state": {"running": {"startedAt": "2026-11-30T00:00:00Z"}}}],
    }, ns)  # fmt: skip
    api = KubeApi.from_kubeconfig(kube.plane.node_kubeconfig(node), "node-agent")
    config = AgentConfig(node, tmp_path / "agent", apiserver_port=kube.plane.ports["apiserver"])
    agent = NodeAgent(api, ProcessRuntime(), config).start()
    try:
        lost = kube.cluster.wait_for_sync(
            lambda: (p := kube.cluster.get("", "v1", "pods", "orphan", ns))
            and p["status"].get("phase") == "Failed" and p,
            30, "the lost pod to be reported",
        )  # fmt: skip
    finally:
        agent.stop()
        api.close()
        kube.cluster.delete("", "v1", "nodes", node)
    terminated = state(lost)["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "ContainerStatusUnknown")
