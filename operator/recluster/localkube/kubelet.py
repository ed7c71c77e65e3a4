"""What a kubelet reports, as pure functions: the Node, its Lease, and Pod status.

Pure: no I/O, no clock (times are passed in). The shell that sends these to
the apiserver is `nodeagent.NodeAgent`; the pieces follow the kubelet's own
conventions so that the Job controller, the scheduler and `kubectl` read
them as they read a kubelet's:

- a Pod goes Pending (container `waiting: ContainerCreating`) -> Running
  (`running`, Ready) -> Succeeded or Failed (`terminated` with exitCode,
  reason `Completed`/`Error`/`OOMKilled`/`DeadlineExceeded`, the termination
  message, start and finish times); restarts move the previous state to
  `lastState` and count in `restartCount`;
- pod conditions are PodReadyToStartContainers, Initialized, ContainersReady
  and Ready (PodScheduled belongs to the scheduler and is left alone); a
  condition's lastTransitionTime changes only when its status does;
- the termination message is the file's content (at most 4096 bytes); with
  `FallbackToLogsOnError` and a failed container and an empty file, the last
  80 lines of the log, at most 2048 bytes (the kubelet's limits).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

TERMINATION_MESSAGE_BYTES = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
LEASE_SECONDS = 40
NODE_LEASE_NAMESPACE = "kube-node-lease"
RUNTIME_PREFIX = "recluster-node-agent://"

State = Literal["waiting", "running", "terminated"]
JSON = dict[str, Any]


def timestamp(moment: datetime) -> str:
    """metav1.Time: RFC 3339 in UTC, seconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_timestamp(moment: datetime) -> str:
    """metav1.MicroTime (Lease renewTime)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- the Node --------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeFacts:
    name: str
    cpus: int
    memory_bytes: int
    storage_bytes: int
    address: str = "127.0.0.1"
    kubelet_version: str = "v0.0.0"
    os_image: str = "linux"
    kernel: str = ""
    architecture: str = "amd64"
    max_pods: int = 110
    runtime: str = "process"
    taints: tuple[Mapping[str, str], ...] = ()
    """Registered with the Node (a kubelet's --register-with-taints)."""


def node_manifest(facts: NodeFacts) -> JSON:
    """The Node object a kubelet registers (labels a node may set on itself only)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": facts.name,
            "labels": {
                "kubernetes.io/hostname": facts.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": facts.architecture,
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": facts.architecture,
            },
        },
        "spec": {"taints": [dict(t) for t in facts.taints]} if facts.taints else {},
    }


def node_status(facts: NodeFacts, now: datetime, previous: Mapping[str, Any] | None = None) -> JSON:
    """Capacity, addresses, versions and the four conditions of a healthy node."""
    capacity = {
        "cpu": str(facts.cpus),
        "memory": f"{facts.memory_bytes // 1024}Ki",
        "ephemeral-storage": f"{facts.storage_bytes // 1024}Ki",
        "pods": str(facts.max_pods),
    }
    wanted = [
        ("Ready", "True", "KubeletReady", "node agent is posting ready status"),
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "no memory pressure"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "no PID pressure"),
    ]
    old = {c.get("type"): c for c in (previous or {}).get("conditions") or []}
    conditions = []
    for kind, status, reason, message in wanted:
        before = old.get(kind) or {}
        since = before.get("lastTransitionTime") if before.get("status") == status else None
        conditions.append({
            "type": kind, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": timestamp(now), "lastTransitionTime": since or timestamp(now),
        })  # fmt: skip
    return {
        "capacity": capacity,
        "allocatable": dict(capacity),
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": facts.address},
            {"type": "Hostname", "address": facts.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
            "kernelVersion": facts.kernel,
            "osImage": facts.os_image,
            "containerRuntimeVersion": RUNTIME_PREFIX + facts.runtime,
            "kubeletVersion": facts.kubelet_version,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": facts.architecture,
        },
    }


def lease_manifest(node: str, node_uid: str, now: datetime) -> JSON:
    """The node's heartbeat Lease, owned by its Node (as the kubelet makes it)."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node,
            "namespace": NODE_LEASE_NAMESPACE,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}
            ],
        },
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": micro_timestamp(now),
        },
    }


# -- containers and pods ---------------------------------------------------------------


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str
    message: str
    started_at: datetime | None
    finished_at: datetime
    signal: int | None = None


@dataclass
class ContainerRecord:
    """What the agent knows of one container of a pod, across restarts."""

    name: str
    image: str
    state: State = "waiting"
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    started_at: datetime | None = None
    terminated: Terminated | None = None
    last_terminated: Terminated | None = None
    restart_count: int = 0
    container_id: str = ""


def exit_reason(exit_code: int, oom_killed: bool = False) -> str:
    if oom_killed:
        return "OOMKilled"
    return "Completed" if exit_code == 0 else "Error"


def termination_message(
    file_text: str | None, log_text: str, policy: str | None, exit_code: int
) -> str:
    """The container's termination message as the kubelet computes it."""
    message = (file_text or "").encode()[:TERMINATION_MESSAGE_BYTES].decode(errors="ignore")
    if message or policy != "FallbackToLogsOnError" or exit_code == 0:
        return message
    tail = "\n".join(log_text.splitlines()[-FALLBACK_LOG_LINES:])
    data = tail.encode()
    return data[-FALLBACK_LOG_BYTES:].decode(errors="ignore")


def _terminated_json(t: Terminated, container_id: str) -> JSON:
    body: JSON = {
        "exitCode": t.exit_code,
        "reason": t.reason,
        "finishedAt": timestamp(t.finished_at),
    }
    if t.started_at is not None:
        body["startedAt"] = timestamp(t.started_at)
    if t.message:
        body["message"] = t.message
    if t.signal is not None:
        body["signal"] = t.signal
    if container_id:
        body["containerID"] = container_id
    return body


def container_status(record: ContainerRecord) -> JSON:
    state: JSON
    if record.state == "running":
        state = {"running": {"startedAt": timestamp(record.started_at or datetime.min)}}
    elif record.state == "terminated" and record.terminated is not None:
        state = {"terminated": _terminated_json(record.terminated, record.container_id)}
    else:
        waiting: JSON = {"reason": record.waiting_reason}
        if record.waiting_message:
            waiting["message"] = record.waiting_message
        state = {"waiting": waiting}
    last = (
        {"terminated": _terminated_json(record.last_terminated, "")}
        if record.last_terminated is not None
        else {}
    )
    body: JSON = {
        "name": record.name,
        "image": record.image,
        "imageID": "",
        "ready": record.state == "running",
        "started": record.state == "running",
        "restartCount": record.restart_count,
        "state": state,
        "lastState": last,
    }
    if record.container_id:
        body["containerID"] = record.container_id
    return body


PodPhase = Literal["Pending", "Running", "Succeeded", "Failed"]


def pod_phase(records: Sequence[ContainerRecord], restart_policy: str, final: bool) -> PodPhase:
    """The phase from the containers' states (final: no container will run again)."""
    if any(r.state == "running" for r in records):
        return "Running"
    if records and all(r.state == "terminated" for r in records):
        if final or restart_policy == "Never":
            failed = any(r.terminated and r.terminated.exit_code != 0 for r in records)
            return "Failed" if failed else "Succeeded"
        if restart_policy == "OnFailure" and all(
            r.terminated and r.terminated.exit_code == 0 for r in records
        ):
            return "Succeeded"
        return "Running"
    return "Pending"


def pod_status(
    pod: Mapping[str, Any],
    records: Sequence[ContainerRecord],
    phase: PodPhase,
    now: datetime,
    *,
    host_ip: str,
    started_at: datetime,
    reason: str | None = None,
    message: str | None = None,
) -> JSON:
    """The status to patch onto a pod (a strategic merge patch: conditions merge by type)."""
    previous = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
    ready = phase == "Running" and all(r.state == "running" for r in records)
    sandbox = phase in ("Pending", "Running")

    def condition(kind: str, value: bool, why: str | None = None) -> JSON:
        status = "True" if value else "False"
        before = previous.get(kind) or {}
        since = before.get("lastTransitionTime") if before.get("status") == status else None
        body: JSON = {"type": kind, "status": status, "lastProbeTime": None,
                      "lastTransitionTime": since or timestamp(now)}  # fmt: skip
        if why and not value:
            body["reason"] = why
        return body

    not_ready = "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
    status: JSON = {
        "phase": phase,
        "conditions": [
            condition("PodReadyToStartContainers", sandbox),
            condition("Initialized", True),
            condition("Ready", ready, not_ready),
            condition("ContainersReady", ready, not_ready),
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": host_ip,
        "podIPs": [{"ip": host_ip}],
        "startTime": timestamp(started_at),
        "containerStatuses": [container_status(r) for r in records],
    }
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    return status


# -- what a container is given -----------------------------------------------------------

Lookup = Callable[[str, str], Mapping[str, str] | None]
"""(kind "Secret"|"ConfigMap", name) -> its data as text, or None when it does not exist."""


class ContainerConfigError(ValueError):
    """The kubelet's CreateContainerConfigError: a Secret, ConfigMap or key is missing."""


def field_value(pod: Mapping[str, Any], path: str, host_ip: str) -> str:
    """A downward-API fieldRef: the paths the kubelet supports."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": host_ip,
        "status.podIP": host_ip,
        "status.hostIPs": host_ip,
        "status.podIPs": host_ip,
    }
    if path in simple:
        return str(simple[path] or "")
    found = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if found:
        return str((meta.get(found.group(1)) or {}).get(found.group(2), ""))
    raise ContainerConfigError(f"unsupported fieldRef fieldPath {path!r}")


def _data(lookup: Lookup, kind: str, name: str, optional: bool) -> Mapping[str, str] | None:
    data = lookup(kind, name)
    if data is None and not optional:
        raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
    return data


def resolve_env(
    pod: Mapping[str, Any], container: Mapping[str, Any], lookup: Lookup, host_ip: str
) -> dict[str, str]:
    """envFrom then env, in order, with `$(VAR)` expansion as the kubelet does it."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(key)
            if ref:
                data = _data(lookup, kind, str(ref["name"]), bool(ref.get("optional")))
                env.update({prefix + k: v for k, v in (data or {}).items()})
    for item in container.get("env") or []:
        name = str(item["name"])
        if "valueFrom" not in item:
            env[name] = expand(str(item.get("value", "")), env)
            continue
        source = item["valueFrom"]
        if "fieldRef" in source:
            env[name] = field_value(pod, str(source["fieldRef"]["fieldPath"]), host_ip)
        elif "resourceFieldRef" in source:
            env[name] = _resource_value(container, source["resourceFieldRef"])
        else:
            kind, ref = (
                ("Secret", source["secretKeyRef"]) if "secretKeyRef" in source
                else ("ConfigMap", source["configMapKeyRef"])
            )  # fmt: skip
            optional = bool(ref.get("optional"))
            data = _data(lookup, kind, str(ref["name"]), optional)
            if data is None:
                continue
            if ref["key"] not in data:
                if optional:
                    continue
                where = f"{pod['metadata']['namespace']}/{ref['name']}"
                raise ContainerConfigError(f"couldn't find key {ref['key']} in {kind} {where}")
            env[name] = data[ref["key"]]
    return env


def expand(value: str, env: Mapping[str, str]) -> str:
    """`$(NAME)` references to earlier variables; `$$` escapes; unknown ones stay."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)", one, value)


def subpath(mount: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
    """The sub-path of a volumeMount (`subPath`, or `subPathExpr` expanded from the
    container's env), checked as the kubelet checks it; None when the mount has none.

    Like the kubelet: every `$(VAR)` of `subPathExpr` must have a non-empty value,
    and the result must be relative and must not step out (`..`). The node agent
    then joins it to the volume, refuses a result that symlinks out, and creates it.
    """
    path = str(mount.get("subPath") or "")
    expr = str(mount.get("subPathExpr") or "")
    if expr:
        missing = sorted(
            {name for name in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)", expr)
             if not env.get(name)}
        )  # fmt: skip
        if missing:
            raise ContainerConfigError(
                f"volumeMount {mount.get('name')!r}: subPathExpr {expr!r}: missing value for "
                + ", ".join(missing)
            )
        path = expand(expr, env)
    if not path:
        return None
    if path.startswith("/"):
        raise ContainerConfigError(
            f"volumeMount {mount.get('name')!r}: error SubPath `{path}` must not be an "
            "absolute path"
        )
    if ".." in path.split("/"):
        raise ContainerConfigError(
            f"volumeMount {mount.get('name')!r}: unable to provision SubPath `{path}`: "
            "must not contain '..'"
        )
    return path


_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}  # fmt: skip


def quantity(value: str) -> float:
    """A resource.Quantity as a number (cores for CPU, bytes for memory)."""
    found = re.fullmatch(r"([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G|T)?", value.strip())
    if not found:
        raise ContainerConfigError(f"invalid quantity {value!r}")
    number, unit = float(found.group(1)), found.group(2) or ""
    return number / 1000 if unit == "m" else number * _UNITS[unit]


def _resource_value(container: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
    kind, _, name = str(ref["resource"]).partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(name)
    if value is None:
        return "0"
    divisor = quantity(str(ref.get("divisor") or "1"))
    return str(max(1, int(-(-quantity(str(value)) // divisor))))


@dataclass(frozen=True)
class Mount:
    container_path: str
    host_path: str
    read_only: bool = False


@dataclass(frozen=True)
class PathMap:
    """Container paths -> host paths, for a runtime without its own mount namespace."""

    mounts: tuple[Mount, ...] = field(default_factory=tuple)

    def translate(self, value: str) -> str:
        """value with a leading container mount path replaced by its host directory."""
        for mount in sorted(self.mounts, key=lambda m: -len(m.container_path)):
            path = mount.container_path.rstrip("/") or "/"
            if value == path or value.startswith(path + "/"):
                return mount.host_path + value[len(path) :]
        return value
