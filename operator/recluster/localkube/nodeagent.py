"""The node agent: a stand-in for the kubelet that runs Pods through a PodRuntime.

It registers a Node, renews the Node's Lease, watches the Pods the scheduler
binds to it, and for each one prepares volumes and environment, runs the
containers (runtime.py), and reports status as a kubelet does (kubelet.py
holds the pure rules). Deletion works as on a cluster: a Pod marked for
deletion gets SIGTERM, SIGKILL after its grace period, and the agent then
confirms the deletion (grace period 0), as the kubelet does.

Rules:

1. The agent authenticates as `system:node:<name>`: the Node authorizer and
   NodeRestriction limit it to its Node, its Lease and its Pods (and the
   Secrets, ConfigMaps and claims they reference), as a kubelet is limited.
2. One worker thread per live Pod owns that Pod's containers and status
   writes; it outlives its processes (they die with it, processes.py).
3. A Pod the agent finds running without a worker (the agent restarted and
   its processes died with it) is reported terminated with
   `ContainerStatusUnknown`, exit code 137, as the kubelet reports a
   container it lost.
4. Terminal Pods have no worker; their deletion is confirmed at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..kube.errors import KubeError
from ..kube.paths import MERGE_PATCH, STRATEGIC_MERGE_PATCH, resource_path
from ..kube.sync import KubeApi
from . import kubelet
from .isolation import isolation_of
from .kubelet import (
    ContainerConfigError,
    ContainerRecord,
    Mount,
    NodeFacts,
    PathMap,
    Terminated,
)
from .runtime import ContainerLaunch, ImageUnavailable, PodRuntime, RunningContainer

log = logging.getLogger(__name__)
JSON = dict[str, Any]
LEASE_RENEW_SECONDS = 10.0
NODE_STATUS_SECONDS = 60.0
RESTART_BACKOFF = (10.0, 300.0)
CONFIG_RETRY_SECONDS = 2.0
DEFAULT_GRACE_SECONDS = 30.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def machine_facts(
    name: str,
    workdir: Path,
    kubelet_version: str,
    runtime: str = "process",
    taints: tuple[Mapping[str, str], ...] = (),
) -> NodeFacts:
    memory = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return NodeFacts(
        name=name,
        cpus=os.cpu_count() or 1,
        memory_bytes=memory or 8 * 2**30,
        storage_bytes=shutil.disk_usage(workdir).total,
        kubelet_version=kubelet_version,
        os_image=platform.platform(),
        kernel=platform.release(),
        architecture=arch,
        runtime=runtime,
        taints=taints,
    )


@dataclass(frozen=True)
class AgentConfig:
    node: str
    workdir: Path
    apiserver_host: str = "127.0.0.1"
    apiserver_port: int = 443
    kubelet_version: str = "v0.0.0"
    clock: Callable[[], datetime] = utcnow
    taints: tuple[Mapping[str, str], ...] = ()
    """Taints the Node registers with ({"key", "value", "effect"}), as --register-with-taints."""


class NodeAgent:
    """Register the Node, keep it alive, run its Pods. `start()`, then `stop()`."""

    def __init__(self, api: KubeApi, runtime: PodRuntime, config: AgentConfig) -> None:
        self.api, self.runtime, self.config = api, runtime, config
        self.node = config.node
        config.workdir.mkdir(parents=True, exist_ok=True)
        self.facts = machine_facts(
            config.node, config.workdir, config.kubelet_version, runtime.name, config.taints
        )
        self.stopping = threading.Event()
        self.workers: dict[str, PodWorker] = {}
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.node_uid = ""
        self.errors: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> NodeAgent:
        self.config.workdir.mkdir(parents=True, exist_ok=True)
        self.runtime.clean_up()
        self._register()
        self._renew_lease()
        for target, name in ((self._heartbeat, "heartbeat"), (self._watch_pods, "pods")):
            thread = threading.Thread(target=target, name=f"node-agent-{name}", daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching and kill every container (the node goes away with its pods)."""
        self.stopping.set()
        with self.lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.shutdown()
        for worker in workers:
            worker.thread.join(timeout)
        # the pod watch may sit in a long read: it ends at its next event, at the
        # watch's timeout, or when the apiserver goes; it touches nothing after stop
        for thread in self.threads:
            thread.join(0.5)

    def __enter__(self) -> NodeAgent:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- the Node and its Lease --------------------------------------------------------

    def _register(self) -> None:
        path = resource_path("v1", "nodes", None, self.node)
        try:
            node = self.api.request("POST", resource_path("v1", "nodes"),
                                    kubelet.node_manifest(self.facts))  # fmt: skip
        except KubeError as exc:
            if exc.status != 409:
                raise
            node = self.api.request("GET", path)
        self.node_uid = str(node["metadata"]["uid"])
        self._post_node_status(node.get("status"))

    def _post_node_status(self, previous: Mapping[str, Any] | None) -> None:
        status = kubelet.node_status(self.facts, self.config.clock(), previous)
        self.api.request(
            "PATCH", resource_path("v1", "nodes", None, self.node, "status"),
            {"status": status}, content_type=STRATEGIC_MERGE_PATCH,
        )  # fmt: skip

    def _renew_lease(self) -> None:
        lease = kubelet.lease_manifest(self.node, self.node_uid, self.config.clock())
        namespace = kubelet.NODE_LEASE_NAMESPACE
        path = resource_path("coordination.k8s.io/v1", "leases", namespace, self.node)
        try:
            self.api.request("PATCH", path, {"spec": lease["spec"]}, content_type=MERGE_PATCH)
        except KubeError as exc:
            if exc.status != 404:
                raise
            self.api.request(
                "POST", resource_path("coordination.k8s.io/v1", "leases", namespace), lease
            )

    def _heartbeat(self) -> None:
        last_status = time.monotonic()
        while not self.stopping.wait(LEASE_RENEW_SECONDS):
            try:
                self._renew_lease()
                if time.monotonic() - last_status >= NODE_STATUS_SECONDS:
                    node = self.api.get(resource_path("v1", "nodes", None, self.node))
                    self._post_node_status((node or {}).get("status"))
                    last_status = time.monotonic()
            except (KubeError, OSError) as exc:
                log.warning("node heartbeat failed: %s", exc)

    # -- Pods --------------------------------------------------------------------------

    def _watch_pods(self) -> None:
        path = resource_path("v1", "pods")
        selector = {"fieldSelector": f"spec.nodeName={self.node}"}
        version = ""
        while not self.stopping.is_set():
            try:
                if not version:
                    listed = self.api.request("GET", path, query=selector)
                    version = str(listed["metadata"]["resourceVersion"])
                    for pod in listed.get("items") or []:
                        self._dispatch("ADDED", pod)
                query = {**selector, "resourceVersion": version, "allowWatchBookmarks": "true"}
                for event in self.api.watch(path, query, timeout_seconds=30):
                    if self.stopping.is_set():
                        return
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        version = ""  # 410 Gone: list again
                        break
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self._dispatch(str(kind), obj)
            except Exception as exc:
                if self.stopping.is_set():
                    return
                self.errors.append(repr(exc))
                log.warning("pod watch failed, listing again: %r", exc)
                version = ""
                self.stopping.wait(1.0)

    def _dispatch(self, kind: str, pod: JSON) -> None:
        uid = str(pod["metadata"]["uid"])
        with self.lock:
            worker = self.workers.get(uid)
            if worker is not None:
                if kind == "DELETED":
                    worker.shutdown()
                else:
                    worker.update(pod)
                return
            if kind == "DELETED" or self.stopping.is_set():
                return
            phase = (pod.get("status") or {}).get("phase")
            deleting = bool(pod["metadata"].get("deletionTimestamp"))
            if phase in ("Succeeded", "Failed") or deleting:
                if phase not in ("Succeeded", "Failed"):
                    self._report_lost(pod)
                if deleting:
                    self.confirm_deletion(pod)
                return
            if _has_started(pod):
                self._report_lost(pod)
                return
            worker = PodWorker(self, pod)
            self.workers[uid] = worker
        worker.thread.start()

    def finished(self, uid: str) -> None:
        with self.lock:
            self.workers.pop(uid, None)

    def _report_lost(self, pod: JSON) -> None:
        """A pod that ran before the agent restarted: its containers are gone."""
        now = self.config.clock()
        records = []
        for c in pod["spec"]["containers"]:
            record = ContainerRecord(name=c["name"], image=c["image"], state="terminated")
            record.terminated = Terminated(
                137, "ContainerStatusUnknown",
                "The container could not be located when the pod was terminated", None, now,
            )  # fmt: skip
            records.append(record)
        started = _time(pod.get("status", {}).get("startTime")) or now
        status = kubelet.pod_status(pod, records, "Failed", now, host_ip=self.facts.address,
                                    started_at=started)  # fmt: skip
        self.patch_status(pod, status)

    # -- API calls workers make ------------------------------------------------------

    def patch_status(self, pod: Mapping[str, Any], status: JSON) -> bool:
        """Strategic-merge the status; False when the pod is gone (or was replaced)."""
        meta = pod["metadata"]
        path = resource_path("v1", "pods", meta["namespace"], meta["name"], "status")
        try:
            self.api.request("PATCH", path, {"metadata": {"uid": meta["uid"]}, "status": status},
                             content_type=STRATEGIC_MERGE_PATCH)  # fmt: skip
        except KubeError as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    def confirm_deletion(self, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
            "preconditions": {"uid": meta["uid"]},
        }  # fmt: skip
        with contextlib.suppress(KubeError):
            self.api.request("DELETE", resource_path("v1", "pods", meta["namespace"],
                                                     meta["name"]), body)  # fmt: skip

    def event(self, pod: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        """A core/v1 Event about the pod, as the kubelet posts them."""
        meta = pod["metadata"]
        now = kubelet.timestamp(self.config.clock())
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"]},
            "type": kind, "reason": reason, "message": message[:1024],
            "source": {"component": "kubelet", "host": self.node},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": "kubelet", "reportingInstance": self.node,
        }  # fmt: skip
        try:
            self.api.request("POST", resource_path("v1", "events", meta["namespace"]), body)
        except KubeError as exc:
            log.debug("event %s for %s not posted: %s", reason, meta["name"], exc)

    def lookup(self, namespace: str) -> Callable[[str, str], Mapping[str, str] | None]:
        """Secrets and ConfigMaps of a namespace as text (what the Node authorizer allows)."""

        def find(kind: str, name: str) -> Mapping[str, str] | None:
            plural = "secrets" if kind == "Secret" else "configmaps"
            try:
                found = self.api.get(resource_path("v1", plural, namespace, name))
            except KubeError as exc:
                # e.g. 403 while the Node authorizer has not yet linked the pod to it
                raise ContainerConfigError(f"{kind.lower()} {name!r}: {exc.message}") from None
            if found is None:
                return None
            if kind == "Secret":
                import base64

                return {k: base64.b64decode(v).decode(errors="replace")
                        for k, v in (found.get("data") or {}).items()}  # fmt: skip
            return dict(found.get("data") or {})

        return find


def _has_started(pod: Mapping[str, Any]) -> bool:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = status.get("state") or {}
        if "running" in state or "terminated" in state:
            return True
    return False


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class PodWorker:
    """Runs one Pod from start to its terminal phase (rules 2 and 3 of the module)."""

    def __init__(self, agent: NodeAgent, pod: JSON) -> None:
        self.agent = agent
        self.pod = pod
        meta = pod["metadata"]
        self.uid = str(meta["uid"])
        self.key = f"{meta['namespace']}/{meta['name']}"
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{meta['namespace']}_{meta['name']}_{self.uid}")
        self.directory = agent.config.workdir / "pods" / safe
        self.changed = threading.Condition()
        self.deleting = False
        self.gone = False
        self.deadline_exceeded = False
        self.thread = threading.Thread(target=self._run, name=f"pod-{self.key}", daemon=True)
        self.started_at = agent.config.clock()
        self.records = [
            ContainerRecord(name=c["name"], image=c["image"]) for c in pod["spec"]["containers"]
        ]
        self.running: dict[str, RunningContainer] = {}
        self._launches: dict[str, ContainerLaunch] = {}

    # -- signals from the agent --------------------------------------------------------

    def update(self, pod: JSON) -> None:
        with self.changed:
            self.pod = pod
            if pod["metadata"].get("deletionTimestamp"):
                self.deleting = True
            self.changed.notify_all()

    def shutdown(self) -> None:
        """The pod is gone from the API, or the agent stops: kill at once."""
        with self.changed:
            self.deleting = self.gone = True
            self.changed.notify_all()

    def _wait_change(self, seconds: float) -> None:
        with self.changed:
            if not self.deleting:
                self.changed.wait(seconds)

    # -- the pod's life ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._life()
        except Exception as exc:
            log.exception("pod %s: the node agent failed", self.key)
            self.agent.errors.append(f"{self.key}: {exc!r}")
            for running in self.running.values():
                running.terminate(0)
        finally:
            self.agent.finished(self.uid)

    def _life(self) -> None:
        policy = str(self.pod["spec"].get("restartPolicy") or "Always")
        self._report("Pending")
        attempt = 0
        while True:
            launches = self._prepare(attempt)
            if launches is None:
                if self.deleting:
                    break
                self._report("Pending")
                self._wait_change(CONFIG_RETRY_SECONDS)
                continue
            if not self._start(launches):
                if self.deleting:
                    break
                self._report("Pending")
                self._wait_change(CONFIG_RETRY_SECONDS)
                continue
            self._report("Running")
            self._wait_for_exit()
            final = (
                self.deleting
                or self.deadline_exceeded
                or policy == "Never"
                or (
                    policy == "OnFailure"
                    and all(r.terminated and r.terminated.exit_code == 0 for r in self.records)
                )
            )
            if final:
                break
            attempt += 1
            delay = min(RESTART_BACKOFF[0] * 2 ** (attempt - 1), RESTART_BACKOFF[1])
            for record in self.records:
                record.waiting_reason = "CrashLoopBackOff"
            self._report("Running")
            self._wait_change(delay)
            if self.deleting:
                break
        phase = kubelet.pod_phase(self.records, policy, final=True)
        if not self.gone:
            if self.deadline_exceeded:
                self._report("Failed", reason="DeadlineExceeded",
                             message="Pod was active on the node longer than the specified "
                             "deadline")  # fmt: skip
            elif (
                any(r.state != "waiting" or r.terminated for r in self.records) or not self.deleting
            ):
                self._report(phase if phase in ("Succeeded", "Failed") else "Failed")
            if self.deleting:
                self.agent.confirm_deletion(self.pod)
        shutil.rmtree(self.directory / "volumes", ignore_errors=True)

    def _report(
        self, phase: kubelet.PodPhase, reason: str | None = None, message: str | None = None
    ) -> None:
        if self.gone:
            return
        status = kubelet.pod_status(self.pod, self.records, phase, self.agent.config.clock(),
                                    host_ip=self.agent.facts.address, started_at=self.started_at,
                                    reason=reason, message=message)  # fmt: skip
        if not self.agent.patch_status(self.pod, status):
            self.shutdown()

    # -- preparing and running containers --------------------------------------------

    def _prepare(self, attempt: int) -> list[ContainerLaunch] | None:
        """Volumes and environment; None (and a waiting reason) when something is missing."""
        pod = self.pod
        meta, spec = pod["metadata"], pod["spec"]
        lookup = self.agent.lookup(meta["namespace"])
        try:
            volumes = prepare_volumes(self.agent, pod, self.directory / "volumes", lookup)
        except ContainerConfigError as exc:
            self._waiting_all("CreateContainerConfigError", str(exc))
            return None
        launches = []
        for container in spec["containers"]:
            try:
                env = kubelet.resolve_env(pod, container, lookup, self.agent.facts.address)
                isolation = isolation_of(pod, container)
            except ContainerConfigError as exc:
                self._waiting_all("CreateContainerConfigError", str(exc))
                self.agent.event(pod, "Warning", "Failed", f"Error: {exc}")
                return None
            env = {
                "HOSTNAME": meta["name"],
                "KUBERNETES_SERVICE_HOST": self.agent.config.apiserver_host,
                "KUBERNETES_SERVICE_PORT": str(self.agent.config.apiserver_port),
                "KUBERNETES_SERVICE_PORT_HTTPS": str(self.agent.config.apiserver_port),
                **env,
            }
            mounts = []
            for mount in container.get("volumeMounts") or []:
                host = volumes.get(mount["name"])
                if host is None:
                    self._waiting_all("CreateContainerConfigError",
                                      f"volume {mount['name']} is not defined")  # fmt: skip
                    return None
                try:
                    host = mount_source(host, kubelet.subpath(mount, env))
                except ContainerConfigError as exc:
                    self._waiting_all("CreateContainerConfigError", str(exc))
                    self.agent.event(pod, "Warning", "Failed", f"Error: {exc}")
                    return None
                mounts.append(Mount(str(mount["mountPath"]), str(host),
                                    bool(mount.get("readOnly"))))  # fmt: skip
            directory = self.directory / "containers" / container["name"]
            directory.mkdir(parents=True, exist_ok=True)
            termination = str(container.get("terminationMessagePath") or "/dev/termination-log")
            mounts.append(Mount(termination, str(directory / "termination-log")))
            launches.append(ContainerLaunch(
                namespace=meta["namespace"], pod=meta["name"], container=container["name"],
                image=container["image"], command=container.get("command"),
                args=list(container.get("args") or []), env=env, paths=PathMap(tuple(mounts)),
                directory=directory, termination_path=termination,
                working_dir=container.get("workingDir"), attempt=attempt, pod_uid=self.uid,
                isolation=isolation,
            ))  # fmt: skip
        return launches

    def _waiting_all(self, reason: str, message: str) -> None:
        for record in self.records:
            if record.state != "running":
                record.state, record.waiting_reason, record.waiting_message = (
                    "waiting",
                    reason,
                    message,
                )

    def _start(self, launches: list[ContainerLaunch]) -> bool:
        for launch, record in zip(launches, self.records, strict=True):
            if self.deleting:
                return False
            launch.termination_file.unlink(missing_ok=True)
            try:
                running = self.agent.runtime.start(launch)
            except (ImageUnavailable, ContainerConfigError) as exc:
                # ErrImagePull, or what the runtime refuses (e.g. runAsNonRoot and a root image)
                if isinstance(exc, ImageUnavailable):
                    self._waiting_all("ErrImagePull", str(exc))
                    self.agent.event(self.pod, "Warning", "Failed", f"Failed to pull image: {exc}")
                else:
                    self._waiting_all("CreateContainerConfigError", str(exc))
                    self.agent.event(self.pod, "Warning", "Failed", f"Error: {exc}")
                for other in self.running.values():
                    other.terminate(0)
                self._wait_for_exit()
                return False
            self.running[launch.container] = running
            self._launches[launch.container] = launch
            if record.terminated is not None:
                record.last_terminated = record.terminated
                record.restart_count += 1
            record.state, record.terminated = "running", None
            record.started_at = self.agent.config.clock()
            record.container_id = running.container_id
            record.waiting_message = ""
            self.agent.event(self.pod, "Normal", "Started", f"Started container {launch.container}")
        return True

    def _wait_for_exit(self) -> None:
        """Until every container exited; deletion or the pod's deadline stop them."""
        deadline_seconds = self.pod["spec"].get("activeDeadlineSeconds")
        killed_for: str | None = None
        while self.running:
            for name, running in list(self.running.items()):
                ended = running.wait(0.05)
                if ended is not None:
                    self._record_exit(name, ended, killed_for)
                    del self.running[name]
            if not self.running:
                break
            if self.deleting and killed_for is None:
                killed_for = "deleted"
                grace = self._grace_seconds()
                for name, running in self.running.items():
                    self.agent.event(self.pod, "Normal", "Killing", f"Stopping container {name}")
                    running.terminate(0 if self.gone else grace)
            elif (
                deadline_seconds is not None
                and killed_for is None
                and (self.agent.config.clock() - self.started_at).total_seconds()
                > float(deadline_seconds)
            ):
                killed_for = "DeadlineExceeded"
                for running in self.running.values():
                    running.terminate(0)
            self._wait_change(0.2)
        if killed_for == "DeadlineExceeded":
            self.deadline_exceeded = True

    def _grace_seconds(self) -> float:
        meta = self.pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
        return float(grace)

    def _record_exit(self, name: str, ended: Any, killed_for: str | None) -> None:
        index = next(i for i, r in enumerate(self.records) if r.name == name)
        record = self.records[index]
        launch = self._launches[name]
        container = self.pod["spec"]["containers"][index]
        try:
            file_text = launch.termination_file.read_text(errors="replace")
        except OSError:
            file_text = None
        try:
            log_text = launch.log_file.read_text(errors="replace")
        except OSError:
            log_text = ""
        message = kubelet.termination_message(
            file_text, log_text, container.get("terminationMessagePolicy"), ended.exit_code
        )
        reason = ended.reason or kubelet.exit_reason(ended.exit_code, ended.oom_killed)
        record.terminated = Terminated(
            ended.exit_code, reason, message, record.started_at, self.agent.config.clock(),
            ended.signal,
        )  # fmt: skip
        record.state = "terminated"


# -- volumes -----------------------------------------------------------------------------


def prepare_volumes(
    agent: NodeAgent,
    pod: Mapping[str, Any],
    root: Path,
    lookup: Callable[[str, str], Mapping[str, str] | None],
) -> dict[str, Path]:
    """Each volume of the pod as a host directory (see docs/localkube.md for the mapping)."""
    namespace = pod["metadata"]["namespace"]
    found: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = str(volume["name"])
        target = root / name
        if "emptyDir" in volume:
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(0o777)  # the kubelet's mode: any user of the pod may write it
        elif "hostPath" in volume:
            target = Path(volume["hostPath"]["path"])
            if volume["hostPath"].get("type") in ("DirectoryOrCreate",):
                target.mkdir(parents=True, exist_ok=True)
        elif "persistentVolumeClaim" in volume:
            target = _claim_path(
                agent, namespace, str(volume["persistentVolumeClaim"]["claimName"])
            )
        elif "secret" in volume or "configMap" in volume:
            kind, source = (
                ("Secret", volume["secret"]) if "secret" in volume
                else ("ConfigMap", volume["configMap"])
            )  # fmt: skip
            ref = str(source.get("secretName") or source.get("name"))
            data = lookup(kind, ref)
            if data is None and not source.get("optional"):
                raise ContainerConfigError(f'{kind.lower()} "{ref}" not found')
            _write_items(target, data or {}, source.get("items"))
        elif "projected" in volume:
            target.mkdir(parents=True, exist_ok=True)
            for item in volume["projected"].get("sources") or []:
                _project(agent, pod, target, item, lookup)
        elif "downwardAPI" in volume:
            _project(agent, pod, target, {"downwardAPI": volume["downwardAPI"]}, lookup)
        else:
            raise ContainerConfigError(
                f"volume {name}: only emptyDir, hostPath, persistentVolumeClaim, secret, "
                "configMap, projected and downwardAPI volumes are supported by the node agent"
            )
        found[name] = target
    return found


def mount_source(volume: Path, subpath: str | None) -> Path:
    """The host directory a volumeMount binds: the volume, or its checked sub-path.

    The sub-path (already relative and without `..`, `kubelet.subpath`) must
    still resolve inside the volume once symlinks are followed (the kubelet's
    safe sub-path opening); it is created when missing, as the kubelet does.
    """
    if subpath is None:
        return volume
    target = volume / subpath
    root = volume.resolve()
    if not target.resolve().is_relative_to(root):
        raise ContainerConfigError(
            f"subPath {subpath!r} resolves outside of its volume (a symbolic link)"
        )
    target.mkdir(parents=True, exist_ok=True)
    return target


def _write_items(
    target: Path, data: Mapping[str, str], items: list[Mapping[str, Any]] | None
) -> None:
    target.mkdir(parents=True, exist_ok=True)
    chosen = {str(i["key"]): str(i.get("path") or i["key"]) for i in items} if items else None
    for key, value in data.items():
        if chosen is not None and key not in chosen:
            continue
        path = target / (chosen[key] if chosen else key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)


def _project(
    agent: NodeAgent,
    pod: Mapping[str, Any],
    target: Path,
    source: Mapping[str, Any],
    lookup: Callable[[str, str], Mapping[str, str] | None],
) -> None:
    if "secret" in source or "configMap" in source:
        kind, ref = ("Secret", source["secret"]) if "secret" in source else (
            "ConfigMap", source["configMap"])  # fmt: skip
        data = lookup(kind, str(ref["name"]))
        if data is None and not ref.get("optional"):
            raise ContainerConfigError(f'{kind.lower()} "{ref["name"]}" not found')
        _write_items(target, data or {}, ref.get("items"))
    elif "downwardAPI" in source:
        target.mkdir(parents=True, exist_ok=True)
        for item in source["downwardAPI"].get("items") or []:
            if "fieldRef" in item:
                value = kubelet.field_value(pod, str(item["fieldRef"]["fieldPath"]),
                                            agent.facts.address)  # fmt: skip
                (target / str(item["path"])).write_text(value)
    elif "serviceAccountToken" in source:
        spec = source["serviceAccountToken"]
        meta = pod["metadata"]
        account = pod["spec"].get("serviceAccountName") or "default"
        request = {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {
                "audiences": [spec["audience"]] if spec.get("audience") else [],
                "expirationSeconds": int(spec.get("expirationSeconds") or 3607),
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                                   "name": meta["name"], "uid": meta["uid"]},
            },
        }  # fmt: skip
        path = resource_path("v1", "serviceaccounts", meta["namespace"], account, "token")
        try:
            token = agent.api.request("POST", path, request)["status"]["token"]
        except KubeError as exc:
            raise ContainerConfigError(f"service account token: {exc.message}") from None
        target.mkdir(parents=True, exist_ok=True)
        (target / str(spec.get("path") or "token")).write_text(str(token))


def _claim_path(agent: NodeAgent, namespace: str, claim: str) -> Path:
    """The directory of a bound claim's volume (hostPath or local PersistentVolumes)."""
    pvc = agent.api.get(resource_path("v1", "persistentvolumeclaims", namespace, claim))
    if pvc is None:
        raise ContainerConfigError(f'persistentvolumeclaim "{claim}" not found')
    volume = (pvc.get("spec") or {}).get("volumeName")
    pv = agent.api.get(resource_path("v1", "persistentvolumes", None, volume)) if volume else None
    spec = (pv or {}).get("spec") or {}
    path = (spec.get("hostPath") or spec.get("local") or {}).get("path")
    if not path:
        raise ContainerConfigError(
            f'persistentvolumeclaim "{claim}" is not bound to a hostPath or local volume'
        )
    return Path(path)
