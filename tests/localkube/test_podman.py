"""The node agent's container runtime: pods run as podman containers of their image.

A second node agent joins the session's control plane as `container-node`,
with the podman runtime and a taint, so the scheduler keeps every other test's
pods off it; these pods name the node (`spec.nodeName`). The image is a tiny
busybox image built locally (tests/podman_support.py). Everything is asserted
on the Pod as `kubectl get pod -o yaml` shows it. Skipped, with the reason,
where podman is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kube_support import LocalKube
from podman_support import ensure_busybox_image, podman_missing
from recluster.kube.sync import KubeApi
from recluster.localkube.kubelet import PathMap
from recluster.localkube.nodeagent import AgentConfig, NodeAgent
from recluster.localkube.podman import NODE_LABEL, PodmanRuntime, container_name
from recluster.localkube.runtime import ContainerLaunch

pytestmark = pytest.mark.timeout(180)
NODE = "container-node"
TAINT = {"key": "recluster.io/runtime", "value": "container", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def runtime() -> PodmanRuntime:
    podman = PodmanRuntime(NODE)
    reason = podman_missing(podman)
    if reason:
        pytest.skip(reason)
    return podman


@pytest.fixture(scope="module")
def image(runtime: PodmanRuntime, tmp_path_factory: pytest.TempPathFactory) -> str:
    return ensure_busybox_image(runtime, Path.home() / ".cache" / "recluster" / "busybox")


@pytest.fixture(scope="module")
def node(kube: LocalKube, runtime: PodmanRuntime, image: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeAgent]:  # fmt: skip
    """A tainted node whose pods run in podman containers, for this module's tests."""
    api = KubeApi.from_kubeconfig(kube.plane.node_kubeconfig(NODE), "recluster-node-agent")
    config = AgentConfig(
        NODE, tmp_path_factory.mktemp("container-node"),
        apiserver_port=kube.plane.ports["apiserver"], taints=(TAINT,),
    )  # fmt: skip
    agent = NodeAgent(api, PodmanRuntime(NODE, owner=str(config.workdir)), config).start()
    yield agent
    agent.stop()
    kube.cluster.delete("", "v1", "nodes", NODE)
    api.close()
    assert agent.errors == [], f"the container node agent failed: {agent.errors}"


@pytest.fixture
def ns(kube: LocalKube, node: NodeAgent) -> Iterator[str]:
    name = kube.new_namespace(kube.namespace_name("podman"))
    yield name
    kube.delete_namespace(name)


def pod(name: str, image: str, script: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": image, "command": ["/bin/sh", "-c", script]}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"nodeName": NODE, "restartPolicy": "Never",
                 "automountServiceAccountToken": False, "containers": [container], **spec},
    }  # fmt: skip


def wait_pod(kube: LocalKube, ns: str, name: str, check: Any, what: str) -> dict[str, Any]:
    return kube.cluster.wait_for_sync(
        lambda: (p := kube.cluster.get("", "v1", "pods", name, ns)) and check(p) and p,
        120, what,
    )  # fmt: skip


def run(kube: LocalKube, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    kube.cluster.create("", "v1", "pods", body, ns)
    name = body["metadata"]["name"]
    return wait_pod(
        kube, ns, name,
        lambda p: p.get("status", {}).get("phase") in ("Succeeded", "Failed"),
        f"pod {name} to finish",
    )  # fmt: skip


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    return dict(pod["status"]["containerStatuses"][0]["state"]["terminated"])


def containers_of(runtime: PodmanRuntime, uid: str) -> list[str]:
    done = runtime.run("ps", "--all", "--filter", f"label=io.kubernetes.pod.uid={uid}",
                       "--format", "{{.Names}}")  # fmt: skip
    return done.stdout.split()


SCRIPT = """
set -e
echo "starting as $(id -u)"
touch /work/written
if touch /cannot-write 2>/tmp/err || touch /tmp/cannot-write 2>/tmp/err; then
  echo "root file system is writable"; exit 9
fi
printf 'uid=%s gid=%s env=%s name=%s secret=%s work=%s' "$(id -u)" "$(id -g)" "$GREETING" \
  "$POD_NAME" "$(cat /etc/creds/password)" "$(ls /work)" > /dev/termination-log
"""


def test_a_pod_runs_in_its_container_with_env_volumes_user_and_a_read_only_root(
    kube: LocalKube, ns: str, image: str, runtime: PodmanRuntime
) -> None:
    cluster = kube.cluster
    cluster.create("", "v1", "secrets", {"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}},
                   ns)  # fmt: skip
    cluster.create("", "v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "settings"}, "data": {"greeting": "hello"}},
                   ns)  # fmt: skip
    body = pod("env-volumes", image, SCRIPT,
               securityContext={"runAsUser": 10001, "runAsGroup": 10001, "runAsNonRoot": True},
               volumes=[{"name": "work", "emptyDir": {}},
                        {"name": "creds", "secret": {"secretName": "creds"}}],
               container={
                   "securityContext": {"readOnlyRootFilesystem": True,
                                       "allowPrivilegeEscalation": False,
                                       "capabilities": {"drop": ["ALL"]}},
                   "env": [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {
                                "name": "settings", "key": "greeting"}}},
                           {"name": "POD_NAME", "valueFrom": {"fieldRef": {
                                "fieldPath": "metadata.name"}}}],
                   "volumeMounts": [{"name": "work", "mountPath": "/work"},
                                    {"name": "creds", "mountPath": "/etc/creds",
                                     "readOnly": True}],
               })  # fmt: skip
    done = run(kube, ns, body)
    state = terminated(done)
    assert done["status"]["phase"] == "Succeeded", state
    assert state["exitCode"] == 0 and state["reason"] == "Completed"
    assert state["message"] == (
        "uid=10001 gid=10001 env=hello name=env-volumes secret=s3cret work=written"
    )
    assert state["containerID"].startswith("podman://")
    # the container is removed once its exit is read
    assert containers_of(runtime, done["metadata"]["uid"]) == []


def test_a_process_over_the_memory_limit_is_oom_killed(
    kube: LocalKube, ns: str, image: str
) -> None:
    hog = 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo "survived ${#x}"'
    body = pod("hog", image, hog,
               container={"resources": {"limits": {"memory": "32Mi", "cpu": "500m"}}})  # fmt: skip
    done = run(kube, ns, body)
    state = terminated(done)
    assert done["status"]["phase"] == "Failed"
    assert state["reason"] == "OOMKilled", state
    assert state["exitCode"] == 137


def test_exit_code_and_termination_message_at_its_path(
    kube: LocalKube, ns: str, image: str
) -> None:
    body = pod("fails", image, "echo 'no clusters: empty collection' > /run/why; exit 3",
               volumes=[{"name": "run", "emptyDir": {}}],
               container={"terminationMessagePath": "/run/why",
                          "volumeMounts": [{"name": "run", "mountPath": "/run"}]})  # fmt: skip
    done = run(kube, ns, body)
    state = terminated(done)
    assert done["status"]["phase"] == "Failed"
    assert (state["exitCode"], state["reason"]) == (3, "Error")
    assert state["message"] == "no clusters: empty collection\n"


def test_the_log_is_the_message_when_the_file_is_empty_and_the_container_failed(
    kube: LocalKube, ns: str, image: str
) -> None:
    body = pod("logs", image, "echo first line; echo 'the last words' >&2; exit 1",
               container={"terminationMessagePolicy": "FallbackToLogsOnError"})  # fmt: skip
    state = terminated(run(kube, ns, body))
    assert state["exitCode"] == 1
    assert state["message"].splitlines()[-2:] == ["first line", "the last words"]


def test_deletion_sends_sigterm_and_the_pod_goes_within_its_grace_period(
    kube: LocalKube, ns: str, image: str, runtime: PodmanRuntime, tmp_path: Path
) -> None:
    tmp_path.chmod(0o777)
    script = (
        "trap 'echo got TERM > /out/signal; exit 0' TERM; echo started > /out/signal; "
        "while true; do sleep 1; done"
    )
    body = pod("sleeper", image, script, terminationGracePeriodSeconds=60,
               volumes=[{"name": "out", "hostPath": {"path": str(tmp_path)}}],
               container={"volumeMounts": [{"name": "out", "mountPath": "/out"}]})  # fmt: skip
    kube.cluster.create("", "v1", "pods", body, ns)
    running = wait_pod(kube, ns, "sleeper",
                       lambda p: p.get("status", {}).get("phase") == "Running",
                       "the pod to run")  # fmt: skip
    uid = running["metadata"]["uid"]
    kube.cluster.wait_for_sync(lambda: (tmp_path / "signal").exists(), 60, "the script to start")
    assert containers_of(runtime, uid) == [f"k8s_main_sleeper_{ns}_{uid}_0"], (
        "the container is named from the pod's uid"
    )
    kube.cluster.delete("", "v1", "pods", "sleeper", ns)
    # the script exits on SIGTERM: the pod goes long before its 60 s grace period ends
    kube.cluster.wait_for_sync(
        lambda: kube.cluster.get("", "v1", "pods", "sleeper", ns) is None, 45, "the pod to go"
    )
    assert (tmp_path / "signal").read_text() == "got TERM\n"
    kube.cluster.wait_for_sync(lambda: containers_of(runtime, uid) == [], 30,
                               "the container to be removed")  # fmt: skip


def test_an_image_not_in_the_store_is_err_image_pull(kube: LocalKube, ns: str) -> None:
    body = pod("absent", "localhost/not-built-here:1", "true")
    kube.cluster.create("", "v1", "pods", body, ns)
    found = wait_pod(
        kube, ns, "absent",
        lambda p: (p.get("status", {}).get("containerStatuses") or [{}])[0]
        .get("state", {}).get("waiting", {}).get("reason") == "ErrImagePull",
        "ErrImagePull",
    )  # fmt: skip
    waiting = found["status"]["containerStatuses"][0]["state"]["waiting"]
    assert "localhost/not-built-here:1" in waiting["message"]
    assert "does not pull" in waiting["message"]
    assert found["status"]["phase"] == "Pending"


def test_run_as_non_root_refuses_an_image_that_runs_as_root(
    kube: LocalKube, ns: str, image: str
) -> None:
    body = pod("root", image, "true", securityContext={"runAsNonRoot": True})
    kube.cluster.create("", "v1", "pods", body, ns)
    found = wait_pod(
        kube, ns, "root",
        lambda p: (p.get("status", {}).get("containerStatuses") or [{}])[0]
        .get("state", {}).get("waiting", {}).get("reason") == "CreateContainerConfigError",
        "CreateContainerConfigError",
    )  # fmt: skip
    waiting = found["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["message"] == "container has runAsNonRoot and image will run as root"


def test_an_agent_that_starts_again_removes_what_its_last_run_left(
    runtime: PodmanRuntime, image: str, tmp_path: Path
) -> None:
    other = PodmanRuntime("crashed-node", owner=str(tmp_path))
    bystander = PodmanRuntime("crashed-node", owner=str(tmp_path / "another-session"))
    launch = ContainerLaunch(
        namespace="ns", pod="left", container="main", image=image,
        command=["/bin/sh", "-c", "sleep 600"], args=[], env={}, paths=PathMap(),
        directory=tmp_path, pod_uid="0000-left",
    )  # fmt: skip
    container = other.start(launch)
    name = container_name(launch)
    listed = other.run("ps", "--all", "--filter", f"label={NODE_LABEL}=crashed-node",
                       "--format", "{{.Names}}")  # fmt: skip
    assert name in listed.stdout.split()
    # an agent of the same node name elsewhere (another test session) leaves it alone
    bystander.clean_up()
    assert other.run("container", "exists", name, check=False).returncode == 0
    PodmanRuntime("crashed-node", owner=str(tmp_path)).clean_up()  # a restarted agent's first act
    assert other.run("container", "exists", name, check=False).returncode == 1
    assert container.wait(30) is not None


def test_the_service_account_token_is_projected_as_in_cluster_clients_expect(
    kube: LocalKube, ns: str, image: str
) -> None:
    """What `rest.InClusterConfig` reads: the token, the CA, the namespace, the apiserver's env."""
    script = (
        "cd /var/run/secrets/kubernetes.io/serviceaccount; "
        'printf "%s %s %s %s" "$(cat namespace)" "$(head -c 27 ca.crt)" '
        '"$(cut -c1-3 token)" "$KUBERNETES_SERVICE_HOST" > /dev/termination-log'
    )
    body = pod("in-cluster", image, script, automountServiceAccountToken=True,
               securityContext={"runAsUser": 10001})  # fmt: skip
    state = terminated(run(kube, ns, body))
    assert state["exitCode"] == 0, state
    assert state["message"] == f"{ns} -----BEGIN CERTIFICATE----- eyJ 127.0.0.1"


def test_a_command_the_image_lacks_is_a_start_error(kube: LocalKube, ns: str, image: str) -> None:
    container = {"command": ["/opt/missing"], "terminationMessagePolicy": "FallbackToLogsOnError"}
    body = pod("no-such-command", image, "unused", container=container)
    done = run(kube, ns, body)
    state = terminated(done)
    assert done["status"]["phase"] == "Failed"
    assert (state["exitCode"], state["reason"]) == (128, "StartError")
    assert "/opt/missing" in state["message"]


def test_a_container_that_ignores_sigterm_is_killed_when_its_grace_period_ends(
    kube: LocalKube, ns: str, image: str, runtime: PodmanRuntime
) -> None:
    script = "trap '' TERM; echo ignoring TERM; while true; do sleep 1; done"
    body = pod("stubborn", image, script, terminationGracePeriodSeconds=2)
    kube.cluster.create("", "v1", "pods", body, ns)
    running = wait_pod(kube, ns, "stubborn",
                       lambda p: p.get("status", {}).get("phase") == "Running",
                       "the pod to run")  # fmt: skip
    uid = running["metadata"]["uid"]
    kube.cluster.delete("", "v1", "pods", "stubborn", ns)
    # without SIGKILL at the end of the 2 s grace period the pod would stay Terminating
    kube.cluster.wait_for_sync(
        lambda: kube.cluster.get("", "v1", "pods", "stubborn", ns) is None, 60, "the pod to go"
    )
    kube.cluster.wait_for_sync(lambda: containers_of(runtime, uid) == [], 30,
                               "the container to be removed")  # fmt: skip


def test_cpu_and_memory_limits_are_the_containers_cgroup_limits(
    kube: LocalKube, ns: str, image: str
) -> None:
    if not Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists():
        pytest.skip("reads cgroup v1 files; this host has cgroup v2")
    script = (
        "cd /sys/fs/cgroup; printf '%s/%s cpu, %s shares, %s bytes' "
        '"$(cat cpu/cpu.cfs_quota_us)" "$(cat cpu/cpu.cfs_period_us)" "$(cat cpu/cpu.shares)" '
        '"$(cat memory/memory.limit_in_bytes)" > /dev/termination-log'
    )
    resources = {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "64Mi"}}
    body = pod("limits", image, script, container={"resources": resources})
    state = terminated(run(kube, ns, body))
    assert state["exitCode"] == 0, state
    assert state["message"] == f"50000/100000 cpu, 256 shares, {64 * 2**20} bytes"
