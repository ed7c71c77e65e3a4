"""The kubelet's rules the node agent follows (pure, no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from recluster.localkube.kubelet import (
    ContainerConfigError,
    ContainerRecord,
    Mount,
    NodeFacts,
    PathMap,
    Terminated,
    expand,
    node_status,
    pod_phase,
    pod_status,
    quantity,
    resolve_env,
    subpath,
    termination_message,
)
from recluster.localkube.nodeagent import mount_source
from recluster.localkube.runtime import ContainerLaunch, ImageProfile, ProcessRuntime

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
POD = {
    "metadata": {"name": "p", "namespace": "team-a", "uid": "u-1",
                 "labels": {"app": "x"}, "annotations": {"a/b": "c"}},
    "spec": {"nodeName": "n1", "serviceAccountName": "sa"},
}  # fmt: skip


def terminated(code: int) -> ContainerRecord:
    record = ContainerRecord(name="c", image="i", state="terminated")
    record.terminated = Terminated(code, "Completed" if code == 0 else "Error", "", T0, T0)
    return record


def test_termination_message_file_first_then_the_log_on_error_only() -> None:
    log = "\n".join(f"line {i}" for i in range(200))
    assert termination_message('{"ok": 1}', log, "FallbackToLogsOnError", 1) == '{"ok": 1}'
    fallback = termination_message("", log, "FallbackToLogsOnError", 1)
    assert fallback.endswith("line 199") and "line 119" not in fallback  # the last 80 lines
    assert termination_message("", log, "FallbackToLogsOnError", 0) == ""
    assert termination_message("", log, "File", 1) == ""
    assert len(termination_message("x" * 10_000, "", None, 0)) == 4096
    assert len(termination_message("", "y" * 10_000, "FallbackToLogsOnError", 2)) == 2048


def test_environment_in_order_with_expansion_and_the_downward_api() -> None:
    container = {
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "env": [
            {"name": "A", "value": "1"},
            {"name": "B", "value": "$(A)-$(MISSING)-$$(A)"},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                               "divisor": "1Mi"}}},
        ],
        "resources": {"limits": {"memory": "2Gi"}},
    }  # fmt: skip
    data = {("ConfigMap", "cm"): {"X": "y"}, ("Secret", "s"): {"pw": "hunter2"}}
    env = resolve_env(POD, container, lambda kind, name: data.get((kind, name)), "127.0.0.1")
    assert env == {"CM_X": "y", "A": "1", "B": "1-$(MISSING)-$(A)", "NS": "team-a",
                   "APP": "x", "PW": "hunter2", "MEM": "2048"}  # fmt: skip


def test_a_missing_secret_is_a_container_config_error_unless_optional() -> None:
    ref = {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "pw"}}}
    with pytest.raises(ContainerConfigError, match='secret "absent" not found'):
        resolve_env(POD, {"env": [ref]}, lambda kind, name: None, "h")
    ref["valueFrom"]["secretKeyRef"]["optional"] = True  # type: ignore[index]
    assert resolve_env(POD, {"env": [ref]}, lambda kind, name: None, "h") == {}
    missing_key = {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope"}}}
    with pytest.raises(ContainerConfigError, match="couldn't find key nope in Secret team-a/s"):
        resolve_env(POD, {"env": [missing_key]}, lambda kind, name: {"pw": "x"}, "h")


def test_expand_escapes_and_leaves_unknown_references() -> None:
    assert expand("$(A)$$(A)$(B)", {"A": "a"}) == "a$(A)$(B)"


def test_quantities() -> None:
    assert quantity("500m") == 0.5 and quantity("2") == 2
    assert quantity("1Gi") == 2**30 and quantity("1G") == 10**9
    with pytest.raises(ContainerConfigError):
        quantity("lots")


def test_phases_follow_the_restart_policy() -> None:
    running = ContainerRecord(name="c", image="i", state="running")
    assert pod_phase([running], "Never", final=False) == "Running"
    assert pod_phase([terminated(0)], "Never", final=False) == "Succeeded"
    assert pod_phase([terminated(1)], "Never", final=False) == "Failed"
    assert pod_phase([terminated(1)], "OnFailure", final=False) == "Running", "it restarts"
    assert pod_phase([terminated(0)], "OnFailure", final=False) == "Succeeded"
    assert pod_phase([terminated(0)], "Always", final=False) == "Running"
    assert pod_phase([terminated(1)], "Always", final=True) == "Failed"
    assert pod_phase([ContainerRecord(name="c", image="i")], "Never", final=False) == "Pending"


def test_conditions_keep_their_transition_time_until_their_status_changes() -> None:
    running = ContainerRecord(name="c", image="i", state="running", started_at=T0)
    first = pod_status(POD, [running], "Running", T0, host_ip="h", started_at=T0)
    ready = {c["type"]: c for c in first["conditions"]}
    assert ready["Ready"]["status"] == "True" and ready["Ready"]["lastTransitionTime"]
    pod = {**POD, "status": first}
    later = T0 + timedelta(minutes=5)
    again = pod_status(pod, [running], "Running", later, host_ip="h", started_at=T0)
    assert again["conditions"] == first["conditions"]
    done = pod_status(pod, [terminated(0)], "Succeeded", later, host_ip="h", started_at=T0)
    conditions = {c["type"]: c for c in done["conditions"]}
    assert conditions["Ready"] == {
        "type": "Ready", "status": "False", "reason": "PodCompleted", "lastProbeTime": None,
        "lastTransitionTime": "2026-11-30T12:05:00Z",
    }  # fmt: skip
    [container] = done["containerStatuses"]
    assert container["state"]["terminated"]["exitCode"] == 0
    assert container["ready"] is False and container["restartCount"] == 0


def test_node_capacity_and_healthy_conditions() -> None:
    facts = NodeFacts(name="n1", cpus=2, memory_bytes=8 * 2**30, storage_bytes=100 * 2**30)
    status = node_status(facts, T0)
    assert status["capacity"] == {"cpu": "2", "memory": "8388608Ki",
                                  "ephemeral-storage": "104857600Ki", "pods": "110"}  # fmt: skip
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Ready": "True", "MemoryPressure": "False", "DiskPressure": "False",
                          "PIDPressure": "False"}  # fmt: skip


def test_sub_paths_expand_from_the_env_and_never_step_out(tmp_path: Path) -> None:
    env = {"NS": "team-a", "EVIL": "../team-b", "ROOT": "/etc", "EMPTY": ""}
    assert subpath({"name": "v", "subPath": "a/b"}, env) == "a/b"
    assert subpath({"name": "v", "subPathExpr": "$(NS)/data"}, env) == "team-a/data"
    assert subpath({"name": "v", "mountPath": "/x"}, env) is None
    refused = {
        "$(EVIL)": "unable to provision SubPath `../team-b`: must not contain '..'",
        "$(ROOT)": "error SubPath `/etc` must not be an absolute path",
        "$(EMPTY)": "subPathExpr '$(EMPTY)': missing value for EMPTY",
        "$(NS)/$(GONE)": "missing value for GONE",
    }
    for expr, reason in refused.items():
        with pytest.raises(ContainerConfigError) as caught:
            subpath({"name": "store", "subPathExpr": expr}, env)
        assert "volumeMount 'store': " in str(caught.value)
        assert str(caught.value).endswith(reason), caught.value
    volume = tmp_path / "volume"
    volume.mkdir()
    assert mount_source(volume, None) == volume
    assert mount_source(volume, "team-a").is_dir(), "created like the kubelet does"
    (volume / "link").symlink_to(tmp_path)
    with pytest.raises(ContainerConfigError, match="resolves outside of its volume"):
        mount_source(volume, "link/elsewhere")
    assert not (tmp_path / "elsewhere").exists()


def test_paths_are_translated_to_the_longest_matching_mount() -> None:
    paths = PathMap((Mount("/data", "/host/d"), Mount("/data/store", "/host/s"),
                     Mount("/tmp", "/host/t")))  # fmt: skip
    assert paths.translate("/data/store/x.parquet") == "/host/s/x.parquet"
    assert paths.translate("/data/other") == "/host/d/other"
    assert paths.translate("/tmp") == "/host/t"
    assert paths.translate("/tmpfiles") == "/tmpfiles", "a prefix of a name is not a path"
    assert paths.translate('{"path": "/data"}') == '{"path": "/data"}', "only leading paths"


def test_the_process_runtime_keeps_its_own_entry_point_out_of_the_pods_paths(
    tmp_path: Path,
) -> None:
    """A checkout under /tmp (CI's) must not see its Python rewritten into the pod's /tmp."""
    profile = ImageProfile(pattern="img", entrypoint=("/tmp/venv/bin/python", "-c"), cmd=())
    launch = ContainerLaunch(
        namespace="ns", pod="p", container="c", image="img", command=None,
        args=["import sys; print(sys.argv)", "/tmp/data"], env={"OUT": "/tmp/out"},
        paths=PathMap((Mount("/tmp", str(tmp_path / "pod-tmp")),)), directory=tmp_path,
    )  # fmt: skip
    seen: dict[str, Any] = {}

    class Spy(ProcessRuntime):
        def start(self, launch: ContainerLaunch) -> Any:
            import recluster.localkube.runtime as runtime

            original = runtime.ChildProcess

            class Recording(original):  # type: ignore[misc, valid-type]
                def start(self) -> None:
                    seen["argv"], seen["env"] = self.argv, self.env

            runtime.ChildProcess = Recording  # type: ignore[misc]
            try:
                return super().start(launch)
            finally:
                runtime.ChildProcess = original  # type: ignore[misc]

    Spy(profiles=(profile,)).start(launch)
    assert seen["argv"] == ["/tmp/venv/bin/python", "-c", "import sys; print(sys.argv)",
                            f"{tmp_path}/pod-tmp/data"]  # fmt: skip
    assert seen["env"]["OUT"] == f"{tmp_path}/pod-tmp/out"
