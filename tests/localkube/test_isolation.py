"""What the container runtime enforces, from the pod spec (pure), and the podman command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from recluster.localkube.isolation import Isolation, isolation_of, non_root_violation
from recluster.localkube.kubelet import ContainerConfigError, Mount, PathMap
from recluster.localkube.podman import agent_label, container_name, create_arguments
from recluster.localkube.runtime import ContainerLaunch


def test_the_containers_security_context_wins_over_the_pods() -> None:
    context = {"runAsUser": 1000, "runAsGroup": 2000, "runAsNonRoot": True,
               "supplementalGroups": [3000]}  # fmt: skip
    pod = {"spec": {"securityContext": context}}
    container = {
        "securityContext": {"runAsUser": 10001, "readOnlyRootFilesystem": True,
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
        "resources": {"limits": {"memory": "256Mi", "cpu": "1500m"}},
    }  # fmt: skip
    assert isolation_of(pod, container) == Isolation(
        run_as_user=10001, run_as_group=2000, run_as_non_root=True, supplemental_groups=(3000,),
        read_only_root=True, no_new_privileges=True, capabilities_add=("NET_BIND_SERVICE",),
        capabilities_drop=("ALL",), memory_limit_bytes=256 * 2**20, cpu_limit_cores=1.5,
        cpu_shares=1536,
    )  # fmt: skip


def test_cpu_shares_come_from_the_request_else_the_limit() -> None:
    assert isolation_of({}, {"resources": {"requests": {"cpu": "100m"}}}).cpu_shares == 102
    assert isolation_of({}, {"resources": {"limits": {"cpu": "2"}}}).cpu_shares == 2048
    assert isolation_of({}, {"resources": {"requests": {"cpu": "1m"}}}).cpu_shares == 2
    assert isolation_of({}, {}) == Isolation()


def test_a_bad_user_or_quantity_names_the_field() -> None:
    with pytest.raises(ContainerConfigError, match=r"securityContext\.runAsUser"):
        isolation_of({}, {"securityContext": {"runAsUser": "10001"}})
    with pytest.raises(ContainerConfigError, match="invalid quantity"):
        isolation_of({}, {"resources": {"limits": {"memory": "lots"}}})


@pytest.mark.parametrize(
    ("isolation", "image_user", "violation"),
    [
        (Isolation(), "", None),
        (Isolation(run_as_non_root=True), "10001:10001", None),
        (Isolation(run_as_non_root=True), "", "image will run as root"),
        (Isolation(run_as_non_root=True), "root", "image will run as root"),
        (Isolation(run_as_non_root=True), "app", "non-numeric user (app)"),
        (Isolation(run_as_non_root=True, run_as_user=10001), "", None),
        (Isolation(run_as_non_root=True, run_as_user=0), "10001", "runAsUser breaks"),
    ],
)
def test_run_as_non_root_is_checked_as_the_kubelet_does(
    isolation: Isolation, image_user: str, violation: str | None
) -> None:
    found = non_root_violation(isolation, image_user)
    assert (found is None) if violation is None else (found and violation in found)


def launch(**overrides: object) -> ContainerLaunch:
    fields: dict[str, object] = dict(
        namespace="team-a", pod="job-x-abcde", container="main", image="localhost/recluster:dev",
        command=None, args=["run-job"], env={"A": "1", "MULTI": "two\nlines"},
        paths=PathMap((Mount("/tmp", "/agent/pods/p/volumes/tmp"),
                       Mount("/etc/creds", "/agent/pods/p/volumes/creds", read_only=True))),
        directory=Path("/agent/pods/p/containers/main"), pod_uid="1234-abcd", attempt=2,
    )  # fmt: skip
    fields.update(overrides)
    return ContainerLaunch(**fields)  # type: ignore[arg-type]


def test_the_podman_command_line() -> None:
    iso = Isolation(run_as_user=10001, run_as_group=10001, read_only_root=True,
                    no_new_privileges=True, capabilities_drop=("ALL",),
                    memory_limit_bytes=2**30, cpu_limit_cores=0.5, cpu_shares=512)  # fmt: skip
    name = container_name(launch())
    assert name == "k8s_main_job-x-abcde_team-a_1234-abcd_2"
    argv = create_arguments(launch(isolation=iso), name, "node-1", "/parent/x", "a1b2")
    text = " ".join(argv)
    assert "--label recluster.io/node-agent=a1b2" in text
    assert argv[:7] == ["create", "--name", name, "--pull", "never", "--network", "host"]
    assert "--label recluster.io/node=node-1" in text
    assert "--label io.kubernetes.pod.uid=1234-abcd" in text
    assert argv[argv.index("MULTI=two\nlines") - 1 :][:2] == ["--env", "MULTI=two\nlines"]
    assert "--mount type=bind,source=/agent/pods/p/volumes/tmp,destination=/tmp --" in text
    assert "destination=/etc/creds,ro=true" in text
    assert "--user 10001:10001" in text
    assert "--read-only --read-only-tmpfs=false" in text
    assert "--cap-drop ALL --security-opt no-new-privileges" in text
    assert f"--memory {2**30} --memory-swap {2**30} --cpus 0.5 --cpu-shares 512" in text
    assert "--cgroup-parent /parent/x" in text
    # no command: the image's ENTRYPOINT, with args in place of its CMD
    assert "--entrypoint" not in argv
    assert argv[-2:] == ["localhost/recluster:dev", "run-job"]


def test_a_command_replaces_the_entrypoint_and_the_cmd() -> None:
    argv = create_arguments(launch(command=["python", "-c", "print(1)"], args=[]), "n", "node")
    assert argv[-3:] == ["--entrypoint", '["python", "-c", "print(1)"]', "localhost/recluster:dev"]


def test_a_path_podman_cannot_mount_is_a_config_error() -> None:
    odd = launch(paths=PathMap((Mount("/data", "/host/a,b"),)))
    with pytest.raises(ContainerConfigError, match=r"volume path '/host/a,b'"):
        create_arguments(odd, "n", "node")


def test_the_agent_label_is_stable_for_one_agent_and_differs_between_agents() -> None:
    assert agent_label("node", "/work/a") == agent_label("node", "/work/a")
    assert agent_label("node", "/work/a") != agent_label("node", "/work/b")
    assert agent_label("node", "/work/a") != agent_label("other", "/work/a")
