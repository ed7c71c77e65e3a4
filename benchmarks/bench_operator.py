"""The operator on a real local control plane: apply latency, fire lag, memory per trigger.

Each part starts a fresh local control plane (recluster.localkube: the upstream
etcd, kube-apiserver, kube-controller-manager and kube-scheduler on loopback,
with an audit log), installs our CRDs, and runs the REAL operator as its own
process (`python -m recluster operator`, production pacing, the real clock).
The operator logs in with the token of a ServiceAccount bound to cluster-admin
(--identity serviceaccount, the default): RBAC is evaluated and API Priority
and Fairness classifies it as a chart install's operator (a service account);
--identity admin uses a client certificate in system:masters instead (exempt
from both). Apply and lag also start the node agent in place of a kubelet with
a scripted container runtime: the real Job controller creates each Job's Pod,
the real scheduler binds it, and the bench plays only the kubelet's container,
which exits 0 with a termination message --job-seconds after it started.

    apply   apply -> Job created, per trigger, over --triggers interval triggers with
            start_immediately (each fires as soon as the operator sees it). Two runs:
            "sequential" (one trigger at a time, the next once its Job exists) and
            "burst" (all POSTed back to back, as `kubectl apply -f dir/` does).
            "server" = the Job's create request completed - the trigger's create
            request completed, both from the apiserver's audit log (ResponseComplete
            stageTimestamp, microseconds: the object is stored and answered);
            "client" = this process sends the trigger's POST -> it receives the Job's
            ADDED event on a watch (what a user with `kubectl get -w` sees).
    lag     fire lag = actual - scheduled, with the real clock: --lag-triggers interval
            triggers of --lag-interval .. + --lag-spread - 1 seconds during --lag-window
            seconds. "precise" = the Job's create request completed (audit log) - the
            scheduled instant (the Job's recluster.io/scheduled-at annotation: the core
            schedules on whole seconds, so it is exact); "k8s" = creationTimestamp -
            scheduled-at (second resolution). Every trigger has concurrency_policy
            Forbid: a slot that comes while the previous Job has not finished (as the
            operator sees it) is skipped by design; skipped slots are counted apart from
            missed ones (a grid slot with neither a Job nor a skip).
    rss     --rss-sizes idle interval triggers (--rss-interval s, no Job for a day): time
            until every trigger has status.observedGeneration (a watch in this process),
            then the operator's VmRSS (after --rss-settle s) and VmHWM from
            /proc/<pid>/status, its CPU seconds, and those of etcd and the apiserver;
            the operator's CPU share while idle (over the settle).
    scale   for each of --scale-sizes N: N - --scale-due idle triggers (86,400 s) created
            from --create-workers clients, the time until all are reconciled, RSS after
            --scale-settle s and the idle operator's load (CPU, reconciles/s: the 60 s
            re-checks); then --scale-due triggers due every minute: "interval" = 60 s,
            POSTed evenly over one minute so that their slots spread over it, or "cron" =
            `* * * * *` (all in the minute's first second); fire lags (as in lag) over
            --scale-window s, RSS with their Jobs and pods, control-plane memory, etcd's
            size; then (--scale-restart) a new operator process against all N: time to
            sync its caches and to reconcile every trigger, its RSS and HWM, and the fire
            lag of the slots due until then.
    noise   --noise-triggers idle triggers and --noise-own that fire once (their Jobs and
            pods are in the operator's caches), then --noise-jobs Jobs without Recluster's
            labels whose pods run on the scripted kubelet (they complete and stay): the
            operator's RSS before and after, against a control (the same wait with nothing
            new), its informers' cache sizes and watch events, the label selectors of its
            lists and watches of Jobs and pods (audit log), and what holding those objects
            would cost (tracemalloc, slimmed as the operator slims, and whole).

scale and noise run the operator under a probe (PROBE_SCRIPT: `recluster operator` plus
a thread that writes its informers' cache sizes and event counts, work-queue depth,
reconciles and event-loop lag to a file every second); nothing else changes in it.

API request counts come from the audit log (the operator's user only). Nothing
here is emulated: the apiserver runs validation (schema and CEL), admission
(OwnerReferencesPermissionEnforcement included), RBAC and auditing on every
request, and etcd, the controllers, the operator and this process share the
machine's cores.

Usage:
    .venv/bin/python benchmarks/bench_operator.py
    .venv/bin/python benchmarks/bench_operator.py --parts rss --rss-sizes 1000,10000
    .venv/bin/python benchmarks/bench_operator.py --json results.json
    .venv/bin/python benchmarks/bench_operator.py --parts scale --scale-sizes 10000,100000
    .venv/bin/python benchmarks/bench_operator.py --parts noise --noise-jobs 1000
    # profile the operator process of the rss part:
    .venv/bin/python benchmarks/bench_operator.py --parts rss --profile-operator op.prof
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import logging
import os
import platform
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from recluster.kube.errors import KubeError
from recluster.kube.paths import resource_path
from recluster.kube.sync import KubeApi
from recluster.localkube.controlplane import ControlPlane
from recluster.localkube.nodeagent import AgentConfig, NodeAgent
from recluster.localkube.pki import ADMIN, Identity
from recluster.localkube.runtime import ContainerLaunch, ScriptedRuntime
from recluster.localkube.setup import install_crds

JSON = dict[str, Any]
GROUP, VERSION, PLURAL = "recluster.io", "v1alpha1", "clustertriggers"
NAMESPACE = "default"
IDENTITY_NAMESPACE = "recluster-bench"
NODE = "bench-node"
IMAGE = "recluster:bench"
"""Never run: the node agent's runtime here is scripted."""
BENCH_AGENT = "recluster-bench"
ANNOTATION_SCHEDULED_AT = "recluster.io/scheduled-at"
CONFIG = {"collection_ids": ["col_bench"], "config": {"algorithm": "kmeans", "n_clusters": 3}}
JOB_SUMMARY = {"num_clusters": 3, "num_documents": 1000, "execution_time_ms": 900}
GOAL_LATENCY_S = 1.0
GOAL_RSS_MB = 150.0
"""Issue 11: 10,000 triggers at <= 150 MB (issue 4 asked < 300 MB)."""
MB = 2**20

log = logging.getLogger("bench_operator")


# -- helpers -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": float(len(values)),
        "min": min(values) if values else float("nan"),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else float("nan"),
    }


def trigger_manifest(
    name: str, interval: int, start_immediately: bool, labels: dict[str, str] | None = None
) -> JSON:
    meta: JSON = {"name": name, "namespace": NAMESPACE}
    if labels:
        meta["labels"] = labels
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterTrigger",
        "metadata": meta,
        "spec": {
            "trigger_type": "interval",
            "schedule_config": {
                "interval_seconds": interval,
                "start_immediately": start_immediately,
            },
            "execution_config": CONFIG,
        },
    }


def cron_manifest(name: str, expression: str, labels: dict[str, str] | None = None) -> JSON:
    body = trigger_manifest(name, 60, False, labels)
    body["spec"]["trigger_type"] = "cron"
    body["spec"]["schedule_config"] = {"cron_expression": expression, "timezone": "UTC"}
    return body


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def trigger_of_job(job_name: str) -> str:
    """Jobs are named `<trigger>-<ten hex digits>` (core/jobs.py job_name)."""
    return job_name[:-11]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, ... of a process in bytes, from /proc/<pid>/status."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key.startswith("Vm") and rest.strip().endswith("kB"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def self_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_total = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "mem_total_gb": round(mem_total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_start": loadavg(),
    }


# -- the apiserver's audit log -----------------------------------------------------------


@dataclass(frozen=True)
class Audited:
    """One request, from the apiserver's audit log (times: epoch seconds, apiserver clock)."""

    verb: str
    resource: str
    """plural[/subresource]; empty for non-resource URLs."""
    namespace: str
    name: str
    user: str
    user_agent: str
    code: int
    received: float
    completed: float
    """stageTimestamp of ResponseComplete (ResponseStarted for a watch still open)."""
    uri: str = ""
    """The request URI, query included (a list's or watch's labelSelector)."""


def read_audit(path: Path, since: int = 0) -> list[Audited]:
    """Every request logged after byte offset `since`, once each (by audit ID)."""
    found: dict[str, Audited] = {}
    with path.open("rb") as audit:
        audit.seek(since)
        for line in audit:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line being written
            stage = event.get("stage")
            if stage not in ("ResponseComplete", "ResponseStarted"):
                continue
            audit_id = str(event.get("auditID"))
            if stage == "ResponseStarted" and audit_id in found:
                continue
            ref = event.get("objectRef") or {}
            resource = str(ref.get("resource") or "")
            if ref.get("subresource"):
                resource = f"{resource}/{ref['subresource']}"
            found[audit_id] = Audited(
                verb=str(event.get("verb") or ""),
                resource=resource or str(event.get("requestURI") or "").split("?")[0],
                namespace=str(ref.get("namespace") or ""),
                name=str(ref.get("name") or ""),
                user=str((event.get("user") or {}).get("username") or ""),
                user_agent=str(event.get("userAgent") or ""),
                code=int((event.get("responseStatus") or {}).get("code") or 0),
                received=parse_time(event["requestReceivedTimestamp"]).timestamp(),
                completed=parse_time(event["stageTimestamp"]).timestamp(),
                uri=str(event.get("requestURI") or ""),
            )
    return list(found.values())


def created(entries: Sequence[Audited], resource: str) -> dict[str, Audited]:
    """The first successful create of each object of a resource, by name."""
    first: dict[str, Audited] = {}
    for e in entries:
        ok = e.verb == "create" and e.resource == resource and e.code == 201
        if ok and (e.name not in first or e.completed < first[e.name].completed):
            first[e.name] = e
    return first


def request_summary(entries: Sequence[Audited], user: str, triggers: int) -> dict[str, Any]:
    counts: collections.Counter[str] = collections.Counter(
        f"{e.verb} {e.resource} {e.code}" for e in entries if e.user == user
    )
    total = sum(counts.values())
    return {
        "total": total,
        "per_trigger": round(total / max(triggers, 1), 1),
        "conflicts_409": sum(v for k, v in counts.items() if k.endswith(" 409")),
        "unprocessable_422": sum(v for k, v in counts.items() if k.endswith(" 422")),
        "throttled_429": sum(v for k, v in counts.items() if k.endswith(" 429")),
        "by_kind": dict(counts.most_common()),
    }


# -- the kubelet's part: scripted containers ---------------------------------------------


class ScriptedKubelet:
    """Each container the node agent starts runs `seconds`, then exits 0 with a summary."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.runtime = ScriptedRuntime(outcome=self._started)
        self.started = 0

    def _started(self, launch: ContainerLaunch) -> None:
        self.started += 1
        timer = threading.Timer(self.seconds, self._finish, (launch,))
        timer.daemon = True
        timer.start()

    def _finish(self, launch: ContainerLaunch) -> None:
        with contextlib.suppress(KeyError, OSError):
            self.runtime.finish(launch, 0, json.dumps(JOB_SUMMARY))


# -- the local cluster ---------------------------------------------------------------------


class LocalCluster:
    """A fresh control plane with our CRDs, an identity for the operator (or gateway), and
    optionally the node agent with scripted containers."""

    def __init__(
        self,
        workdir: Path,
        *,
        identity: str = "serviceaccount",
        account: str = "operator",
        job_seconds: float | None = None,
    ) -> None:
        self.workdir = workdir
        self.plane = ControlPlane(workdir / "control-plane")
        self.identity_kind = identity
        self.account = account
        self.job_seconds = job_seconds
        self.kubelet: ScriptedKubelet | None = None
        self.agent: NodeAgent | None = None
        self.api: KubeApi | None = None
        self.user = ""
        """The audit log's user name of the operator (or gateway)."""
        self.kubeconfig = workdir / f"{account}.kubeconfig"

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        started = time.monotonic()
        self.plane.start()
        self.api = self.new_api()
        install_crds(self.api)
        self._identity()
        if self.job_seconds is not None:
            self.kubelet = ScriptedKubelet(self.job_seconds)
            node_api = KubeApi.from_kubeconfig(self.plane.node_kubeconfig(NODE), "node-agent")
            config = AgentConfig(
                NODE, self.workdir / "node", apiserver_port=self.plane.ports["apiserver"]
            )
            self.agent = NodeAgent(node_api, self.kubelet.runtime, config).start()
        log.info("control plane ready in %.1f s", time.monotonic() - started)

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()
            self.agent = None
        if self.api is not None:
            self.api.close()
            self.api = None
        self.plane.stop()

    def new_api(self) -> KubeApi:
        """An admin client of this process's own (one per thread)."""
        return KubeApi.from_kubeconfig(self.plane.admin_kubeconfig, BENCH_AGENT)

    @property
    def admin(self) -> KubeApi:
        assert self.api is not None
        return self.api

    def _identity(self) -> None:
        if self.identity_kind == "admin":
            identity = Identity(f"recluster-bench-{self.account}", ("system:masters",))
            self.plane.kubeconfig(self.kubeconfig, identity)
            self.user = identity.user
            return
        api = self.admin
        api.request("POST", resource_path("v1", "namespaces"),
                    {"metadata": {"name": IDENTITY_NAMESPACE}})  # fmt: skip
        api.request("POST", resource_path("v1", "serviceaccounts", IDENTITY_NAMESPACE),
                    {"metadata": {"name": self.account}})  # fmt: skip
        binding = {
            "metadata": {"name": f"recluster-bench-{self.account}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": self.account,
                          "namespace": IDENTITY_NAMESPACE}],
        }  # fmt: skip
        api.request("POST", resource_path("rbac.authorization.k8s.io/v1", "clusterrolebindings"),
                    binding)  # fmt: skip
        path = resource_path("v1", "serviceaccounts", IDENTITY_NAMESPACE, self.account, "token")
        request = {"spec": {"expirationSeconds": 86_400}}
        token = str(api.request("POST", path, request)["status"]["token"])
        self.user = f"system:serviceaccount:{IDENTITY_NAMESPACE}:{self.account}"
        self.plane.token_kubeconfig(self.kubeconfig, token, self.user)
        # the binding counts once the apiserver's RBAC cache has it
        probe = KubeApi.from_kubeconfig(self.kubeconfig, BENCH_AGENT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    probe.request("GET", resource_path(f"{GROUP}/{VERSION}", PLURAL, NAMESPACE))
                    break
                except KubeError as exc:
                    if exc.status != 403 or time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        finally:
            probe.close()

    # -- measuring -------------------------------------------------------------------

    def audit_mark(self) -> int:
        try:
            return self.plane.audit_log.stat().st_size
        except OSError:
            return 0

    def audit(self, since: int) -> list[Audited]:
        """The audit log from `since`, once every request answered so far is in it.

        The apiserver writes a request's event as it completes, a moment after the
        client has its answer: a marker request made now shows when they all have.
        """
        marker = f"audit-marker-{time.monotonic_ns()}"
        self.admin.get(resource_path("v1", "configmaps", NAMESPACE, marker))
        deadline = time.monotonic() + 30
        while True:
            entries = read_audit(self.plane.audit_log, since)
            if any(e.name == marker for e in entries) or time.monotonic() > deadline:
                return [e for e in entries if e.name != marker]
            time.sleep(0.2)

    def rate_limiter_waits(self) -> dict[str, float]:
        """client-go's client-side rate limiter in the controller-manager: total seconds its
        requests waited, and how many waited (its /metrics; --kube-api-qps defaults to 20)."""
        pair = self.plane.pki.client(ADMIN)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the component's self-signed serving certificate
        context.load_cert_chain(str(pair.cert), str(pair.key))
        url = f"https://127.0.0.1:{self.plane.ports['controller_manager']}/metrics"
        waited = {"seconds": 0.0, "requests": 0.0}
        try:
            with urllib.request.urlopen(url, timeout=5, context=context) as response:
                text = response.read().decode()
        except OSError as exc:
            return {"error": float("nan"), **waited} if not str(exc) else waited
        for line in text.splitlines():
            if line.startswith("rest_client_rate_limiter_duration_seconds_sum"):
                waited["seconds"] += float(line.rsplit(" ", 1)[1])
            elif line.startswith("rest_client_rate_limiter_duration_seconds_count"):
                waited["requests"] += float(line.rsplit(" ", 1)[1])
        return {k: round(v, 2) for k, v in waited.items()}

    def components(self) -> dict[str, dict[str, float]]:
        """CPU seconds and RSS (MB) of etcd, the apiserver and the controllers now."""
        usage = {}
        for child in self.plane.children:
            if child.pid is None:
                continue
            with contextlib.suppress(OSError):
                usage[child.name] = {
                    "cpu_s": proc_cpu_seconds(child.pid),
                    "rss_mb": round(proc_status(child.pid)["VmRSS"] / MB, 1),
                }
        return usage


def component_usage(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    return {
        name: {
            "cpu_s": round(now["cpu_s"] - before.get(name, {}).get("cpu_s", 0.0), 2),
            "rss_mb": now["rss_mb"],
        }
        for name, now in after.items()
    }


# -- watching objects --------------------------------------------------------------------


class Watcher:
    """A watch stream in a thread of its own: each event, with its local receive time.

    `start()` lists first (synchronously), so every change made after it returns
    is seen; the stream is resumed from the last resourceVersion when the server
    ends it, and listed again after a 410 Gone (noted in `errors`).
    """

    def __init__(
        self,
        cluster: LocalCluster,
        path: str,
        on_event: Callable[[str, JSON, float], None],
    ) -> None:
        self.api = cluster.new_api()
        self.path = path
        self.on_event = on_event
        self.version = ""
        self.stopping = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, name=f"watch {path}", daemon=True)

    def start(self) -> Watcher:
        self._list()
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # the thread ends at its next event or the stream's end

    def _list(self) -> None:
        listed = self.api.request("GET", self.path)
        now = time.time()
        self.version = str(listed["metadata"]["resourceVersion"])
        for item in listed.get("items") or []:
            self.on_event("ADDED", item, now)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                if not self.version:
                    self._list()
                query = {"resourceVersion": self.version, "allowWatchBookmarks": "true"}
                for event in self.api.watch(self.path, query, timeout_seconds=60):
                    now = time.time()
                    if self.stopping.is_set():
                        return
                    kind, obj = str(event.get("type")), event.get("object") or {}
                    if kind == "ERROR":
                        self.errors.append(f"watch {self.path}: {obj.get('message')}")
                        self.version = ""
                        break
                    self.version = str(obj["metadata"]["resourceVersion"])
                    if kind != "BOOKMARK":
                        self.on_event(kind, obj, now)
            except Exception as exc:
                if self.stopping.is_set():
                    return
                self.errors.append(f"watch {self.path}: {exc!r}")
                time.sleep(0.5)


@dataclass
class JobLog:
    """Jobs as this process sees them on a watch: first seen, and seen complete."""

    seen: dict[str, float] = field(default_factory=dict)
    bodies: dict[str, JSON] = field(default_factory=dict)
    by_trigger: dict[str, list[str]] = field(default_factory=dict)
    completed: dict[str, float] = field(default_factory=dict)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def on_event(self, kind: str, job: JSON, at: float) -> None:
        if kind == "DELETED":
            return
        name = str(job["metadata"]["name"])
        conditions = (job.get("status") or {}).get("conditions") or []
        done = any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)
        with self.lock:
            if name not in self.seen:
                self.seen[name] = at
                self.bodies[name] = job
                self.by_trigger.setdefault(trigger_of_job(name), []).append(name)
                self.lock.notify_all()
            if done and name not in self.completed:
                self.completed[name] = at

    def first_job(self, trigger: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        with self.lock:
            while trigger not in self.by_trigger:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no Job for {trigger} after {timeout:.0f} s")
                self.lock.wait(left)
            return self.by_trigger[trigger][0]


@dataclass
class TriggerLog:
    """Which triggers the operator has reconciled (status.observedGeneration is current)."""

    reconciled: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_event(self, kind: str, trigger: JSON, _at: float) -> None:
        meta = trigger["metadata"]
        observed = (trigger.get("status") or {}).get("observedGeneration")
        with self.lock:
            if kind != "DELETED" and observed == meta.get("generation"):
                self.reconciled.add(str(meta["name"]))
            else:
                self.reconciled.discard(str(meta["name"]))

    def count(self) -> int:
        with self.lock:
            return len(self.reconciled)


# -- the operator, a process of its own ----------------------------------------------------


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            status: int = response.status
            return status
    except OSError:
        return 0


PROBE_SCRIPT = """\
# `recluster operator`, plus a thread that writes what the operator holds to a JSON file
# every second: each informer's cache size, lists and events received, the work queue,
# reconciles, and the event loop's lag (a callback scheduled from this thread: how long
# until the loop runs it). Written by benchmarks/bench_operator.py; nothing else changes.
import asyncio, collections, json, os, sys, threading, time

from recluster.controller import informer, operator

OUT = os.environ["RECLUSTER_BENCH_PROBE"]
controllers = []
events = collections.Counter()
init, apply = operator.Controller.__init__, informer.Informer._apply


def probed_init(self, *args, **kwargs):
    init(self, *args, **kwargs)
    controllers.append((self, asyncio.get_running_loop()))


def probed_apply(self, kind, obj, **options):
    events[self.plural] += 1
    apply(self, kind, obj, **options)


operator.Controller.__init__ = probed_init
informer.Informer._apply = probed_apply


def loop_lag(loop):
    ran = threading.Event()
    started = time.monotonic()
    loop.call_soon_threadsafe(ran.set)
    ran.wait(30)
    return round((time.monotonic() - started) * 1000, 1)


def report():
    while True:
        time.sleep(1.0)
        if not controllers:
            continue
        c, loop = controllers[-1]
        state = {
            "time": time.time(),
            "caches": {i.plural: len(i.store) for i in c.informers},
            "lists": {i.plural: i.lists for i in c.informers},
            "events": dict(events),
            "queue_ready": len(c.queue),
            "queue_waiting": c.queue.waiting,
            "reconciles": c.reconciles,
            "loop_lag_ms": loop_lag(loop),
        }
        with open(OUT + ".tmp", "w") as out:
            json.dump(state, out)
        os.replace(OUT + ".tmp", OUT)


threading.Thread(target=report, name="bench-probe", daemon=True).start()
from recluster.cli import main

sys.argv[0] = "recluster"
main()
"""


def read_probe(path: Path | None) -> JSON:
    """The probe's last report ({} before the first)."""
    if path is None:
        return {}
    try:
        data: JSON = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


class Sampler:
    """Every `every` seconds: the operator's RSS and CPU, and the probe's report."""

    def __init__(self, pid: int, probe: Path | None, every: float = 1.0) -> None:
        self.pid, self.probe, self.every = pid, probe, every
        self.samples: list[JSON] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> Sampler:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)

    def _run(self) -> None:
        while not self.stopping.wait(self.every):
            with contextlib.suppress(OSError):
                self.samples.append(
                    {
                        "time": time.time(),
                        "rss": proc_status(self.pid)["VmRSS"],
                        "cpu_s": proc_cpu_seconds(self.pid),
                        "probe": read_probe(self.probe),
                    }
                )

    def between(self, start: float, end: float) -> list[JSON]:
        return [s for s in list(self.samples) if start <= s["time"] <= end]


def load_summary(samples: Sequence[JSON]) -> dict[str, Any]:
    """What the operator was doing over some samples: CPU share, queue depth, loop lag, RSS."""
    if len(samples) < 2:
        return {}
    first, last = samples[0], samples[-1]
    probes = [s["probe"] for s in samples if s["probe"]]
    lags = [float(p["loop_lag_ms"]) for p in probes]
    ready = [float(p["queue_ready"]) for p in probes]
    reconciles = [int(p["reconciles"]) for p in probes]
    return {
        "seconds": round(last["time"] - first["time"], 1),
        "operator_cpu_share": round(
            (last["cpu_s"] - first["cpu_s"]) / max(last["time"] - first["time"], 1e-9), 3
        ),
        "reconciles_per_s": round(
            (reconciles[-1] - reconciles[0]) / max(last["time"] - first["time"], 1e-9), 1
        )
        if len(reconciles) > 1
        else None,
        "queue_ready": summary(ready) if ready else {},
        "loop_lag_ms": summary(lags) if lags else {},
        "rss_mb": {
            "min": round(min(s["rss"] for s in samples) / MB, 1),
            "max": round(max(s["rss"] for s in samples) / MB, 1),
        },
    }


@contextlib.contextmanager
def operator_process(
    cluster: LocalCluster, profile: Path | None = None, probe: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m recluster operator` with KUBECONFIG of the operator identity; ready.

    With `probe`, the operator runs under PROBE_SCRIPT, which reports its caches,
    queue and event loop lag to that file every second (read_probe).
    """
    health = f"http://127.0.0.1:{free_port()}/healthz"
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "RECLUSTER_IMAGE": IMAGE,
        "RECLUSTER_STORE_URI": "/data/store",
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable]
    if profile is not None:
        command += ["-m", "cProfile", "-o", str(profile)]
    if probe is not None:
        script = cluster.workdir / "operator_probe.py"
        script.write_text(PROBE_SCRIPT)
        env["RECLUSTER_BENCH_PROBE"] = str(probe)
        command += [str(script)]
    else:
        command += ["-m", "recluster"]
    command += ["operator", "--liveness", health]
    log_path = cluster.workdir / "operator.log"
    with open(log_path, "ab") as log_file:  # a restarted operator's log follows the first
        proc = subprocess.Popen(command, env=env, stdout=log_file, stderr=log_file)
    try:
        deadline = time.monotonic() + 60
        while _get(health) != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the operator did not become ready")
            time.sleep(0.2)
        time.sleep(1.0)  # its watches are established
        yield proc
    except BaseException:
        sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
        raise
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def post_trigger(api: KubeApi, body: JSON) -> None:
    api.request("POST", resource_path(f"{GROUP}/{VERSION}", PLURAL, NAMESPACE), body)


def jobs_path() -> str:
    return resource_path("batch/v1", "jobs", NAMESPACE)


def triggers_path() -> str:
    return resource_path(f"{GROUP}/{VERSION}", PLURAL, NAMESPACE)


# -- part 1: apply -> Job created ----------------------------------------------------------


def bench_apply(
    n: int, job_seconds: float, timeout: float, workdir: Path, identity: str
) -> dict[str, Any]:
    load_start = loadavg()
    with LocalCluster(workdir, identity=identity, job_seconds=job_seconds) as cluster:
        jobs = JobLog()
        watcher = Watcher(cluster, jobs_path(), jobs.on_event).start()
        api = cluster.admin
        with operator_process(cluster) as proc:
            mark = cluster.audit_mark()
            cpu0, components0 = proc_cpu_seconds(proc.pid), cluster.components()
            posted: dict[str, float] = {}
            sequential = [f"seq-{i:04d}" for i in range(n)]
            for name in sequential:
                posted[name] = time.time()
                post_trigger(api, trigger_manifest(name, 3600, True))
                jobs.first_job(name, timeout)
            time.sleep(1.0)
            burst = [f"burst-{i:04d}" for i in range(n)]
            burst_started = time.time()
            for name in burst:
                posted[name] = time.time()
                post_trigger(api, trigger_manifest(name, 3600, True))
            burst_posted = time.time() - burst_started
            for name in burst:
                jobs.first_job(name, timeout)
            cpu = proc_cpu_seconds(proc.pid) - cpu0
            components = component_usage(components0, cluster.components())
            entries = cluster.audit(mark)
        watcher.stop()
    triggers = created(entries, PLURAL)
    created_jobs = created(entries, "jobs")
    job_of = {trigger_of_job(name): e for name, e in created_jobs.items()}

    def latencies(names: list[str]) -> dict[str, dict[str, float]]:
        server, received, client = [], [], []
        for name in names:
            job = job_of[name]
            server.append(job.completed - triggers[name].completed)
            received.append(job.completed - triggers[name].received)
            client.append(jobs.seen[jobs.by_trigger[name][0]] - posted[name])
        return {
            "server_s": summary(server),
            "server_from_request_s": summary(received),
            "client_s": summary(client),
        }

    return {
        "triggers": n,
        "sequential": latencies(sequential),
        "burst": latencies(burst),
        "burst_posting_s": round(burst_posted, 2),
        "operator_cpu_s": round(cpu, 2),
        "components": components,
        "requests": request_summary(entries, cluster.user, 2 * n),
        "watch_errors": watcher.errors,
        "loadavg": [load_start, loadavg()],
    }


def fire_lags(
    periods: dict[str, int],
    jobs: JobLog,
    created_jobs: dict[str, Audited],
    statuses: dict[str, JSON],
    ended: float,
) -> dict[str, Any]:
    """Fire lags of the Jobs of these triggers (name -> period in s) created before `ended`.

    precise = the Job's create completed (audit log) - its recluster.io/scheduled-at;
    request = the create request received - scheduled-at; watch = this process saw the
    Job - scheduled-at; k8s = creationTimestamp - scheduled-at (whole seconds). Skipped
    slots come from the triggers' history (Forbid), missed ones are grid slots with
    neither a Job nor a skip, overdue triggers were due more than a second before the end
    and had not fired.
    """
    precise: list[float] = []
    requested: list[float] = []
    seen: list[float] = []
    k8s: list[float] = []
    round_trip: list[float] = []
    missed = skipped = overdue = 0
    for name, every in periods.items():
        slots: set[float] = set()
        for job_name in jobs.by_trigger.get(name, []):
            audited = created_jobs.get(job_name)
            if audited is None or audited.completed > ended:
                continue
            meta = jobs.bodies[job_name]["metadata"]
            scheduled = parse_time(meta["annotations"][ANNOTATION_SCHEDULED_AT]).timestamp()
            slots.add(scheduled)
            precise.append(audited.completed - scheduled)
            requested.append(audited.received - scheduled)
            seen.append(jobs.seen[job_name] - scheduled)
            k8s.append(parse_time(meta["creationTimestamp"]).timestamp() - scheduled)
            if job_name in jobs.completed:
                round_trip.append(jobs.completed[job_name] - audited.completed)
        status = statuses.get(name, {})
        skips = {
            parse_time(h["scheduled_at"]).timestamp()
            for h in status.get("history") or []
            if h.get("status") == "skipped" and h.get("scheduled_at")
        }
        skips = {s for s in skips if s <= ended}
        skipped += len(skips)
        grid = slots | skips
        if grid:  # slots between the first and the last one with neither a Job nor a skip
            missed += round((max(grid) - min(grid)) / every) + 1 - len(grid)
        pending = status.get("next_scheduled_at")
        if pending is None or parse_time(pending).timestamp() < ended - GOAL_LATENCY_S:
            overdue += 1  # due more than a second before the end and still not fired
    return {
        "fires": len(precise),
        "skipped_slots": skipped,
        "missed_slots": missed,
        "overdue_at_end": overdue,
        "precise_lag_s": summary(precise),
        "request_lag_s": summary(requested),
        "watch_lag_s": summary(seen),
        "k8s_lag_s": summary(k8s),
        "job_created_to_complete_s": summary(round_trip),
    }


# -- part 2: fire lag ------------------------------------------------------------------------


def bench_lag(
    n: int,
    interval: int,
    spread: int,
    window: float,
    job_seconds: float,
    workdir: Path,
    identity: str,
) -> dict[str, Any]:
    load_start = loadavg()
    with LocalCluster(workdir, identity=identity, job_seconds=job_seconds) as cluster:
        jobs = JobLog()
        watcher = Watcher(cluster, jobs_path(), jobs.on_event).start()
        api = cluster.admin
        intervals: dict[str, int] = {}
        with operator_process(cluster) as proc:
            mark = cluster.audit_mark()
            for i in range(n):
                name = f"lag-{i:04d}"
                intervals[name] = interval + i % max(spread, 1)
                post_trigger(api, trigger_manifest(name, intervals[name], False))
            cpu0, components0 = proc_cpu_seconds(proc.pid), cluster.components()
            waits0 = cluster.rate_limiter_waits()
            started = time.time()
            time.sleep(window)
            ended = time.time()
            waits = cluster.rate_limiter_waits()
            cpu = proc_cpu_seconds(proc.pid) - cpu0
            components = component_usage(components0, cluster.components())
            listed = api.request("GET", triggers_path())
            statuses = {
                str(t["metadata"]["name"]): dict(t.get("status") or {})
                for t in listed.get("items") or []
            }
            entries = cluster.audit(mark)
            pods_started = cluster.kubelet.started if cluster.kubelet else 0
            agent_errors = list(cluster.agent.errors) if cluster.agent else []
        watcher.stop()

    created_jobs = created(entries, "jobs")
    fires = fire_lags(intervals, jobs, created_jobs, statuses, ended)
    return {
        "triggers": n,
        "intervals_s": sorted(set(intervals.values())),
        "window_s": round(ended - started, 2),
        "job_seconds": job_seconds,
        **fires,
        "pods_started": pods_started,
        "jobs_unfinished_at_end": sum(
            1 for j in jobs.seen if j not in jobs.completed and created_jobs.get(j) is not None
        ),
        "controller_manager_rate_limiter": {
            k: round(waits.get(k, 0.0) - waits0.get(k, 0.0), 2) for k in ("seconds", "requests")
        },
        "operator_cpu_s": round(cpu, 2),
        "components": components,
        "requests": request_summary(entries, cluster.user, n),
        "watch_errors": watcher.errors,
        "agent_errors": agent_errors[:20],
        "loadavg": [load_start, loadavg()],
    }


def create_and_reconcile(
    cluster: LocalCluster,
    proc: subprocess.Popen[bytes],
    triggers: TriggerLog,
    n: int,
    make: Callable[[int], JSON],
    workers: int,
    timeout: float,
) -> tuple[float, float, list[tuple[float, int, int]]]:
    """POST make(0..n-1) from `workers` threads; wait until the operator has reconciled them
    all (TriggerLog counts n more). Returns (all created after s, all reconciled after s,
    progress: (s, reconciled, operator RSS) every 0.5 s)."""
    target = triggers.count() + n
    apis = [cluster.new_api() for _ in range(workers)]

    def post_batch(w: int) -> None:
        for i in range(w, n, workers):
            post_trigger(apis[w], make(i))

    started = time.perf_counter()
    pool = ThreadPoolExecutor(workers)
    posting = [pool.submit(post_batch, w) for w in range(workers)]
    created_s: float | None = None
    progress: list[tuple[float, int, int]] = []
    done = triggers.count()
    try:
        while done < target or created_s is None:
            if proc.poll() is not None:
                raise RuntimeError(f"the operator exited with {proc.returncode}")
            elapsed = time.perf_counter() - started
            if elapsed > timeout:
                raise TimeoutError(f"only {done}/{target} triggers reconciled after {timeout} s")
            if created_s is None and all(f.done() for f in posting):
                for f in posting:
                    f.result()
                created_s = elapsed
            time.sleep(0.5)
            done = triggers.count()
            progress.append((round(elapsed, 1), done, proc_status(proc.pid)["VmRSS"]))
        return created_s, time.perf_counter() - started, progress
    finally:
        pool.shutdown(cancel_futures=True)
        for api in apis:
            api.close()


# -- part 3: operator RSS --------------------------------------------------------------------


def bench_rss(
    n: int,
    interval: int,
    settle: float,
    timeout: float,
    workdir: Path,
    identity: str,
    workers: int,
    profile: Path | None,
) -> dict[str, Any]:
    load_start = loadavg()
    with LocalCluster(workdir, identity=identity) as cluster:
        triggers = TriggerLog()
        watcher = Watcher(cluster, triggers_path(), triggers.on_event).start()
        profile_path = profile.with_suffix(f".{n}.prof") if profile is not None else None
        with operator_process(cluster, profile_path) as proc:
            mark = cluster.audit_mark()
            idle = proc_status(proc.pid)
            cpu_idle = proc_cpu_seconds(proc.pid)
            components0 = cluster.components()
            bench_cpu0 = self_cpu_seconds()
            created_s, all_reconciled, progress = create_and_reconcile(
                cluster, proc, triggers, n,
                lambda i: trigger_manifest(f"idle-{i:05d}", interval, False), workers, timeout,
            )  # fmt: skip
            cpu_reconcile = proc_cpu_seconds(proc.pid) - cpu_idle
            components = component_usage(components0, cluster.components())
            bench_cpu = self_cpu_seconds() - bench_cpu0
            at_done = proc_status(proc.pid)
            cpu_done, settle_start = proc_cpu_seconds(proc.pid), time.perf_counter()
            time.sleep(settle)
            after = proc_status(proc.pid)
            cpu_idle_share = (proc_cpu_seconds(proc.pid) - cpu_done) / (
                time.perf_counter() - settle_start
            )
            sample = cluster.admin.request("GET", f"{triggers_path()}/idle-{n - 1:05d}")
            entries = cluster.audit(mark)
        watcher.stop()
    return {
        "triggers": n,
        "interval_s": interval,
        "create_s": round(created_s, 2),
        "create_workers": workers,
        "all_reconciled_s": round(all_reconciled, 2),
        "operator_cpu_reconcile_s": round(cpu_reconcile, 2),
        "operator_cpu_idle_share": round(cpu_idle_share, 3),
        "bench_cpu_s": round(bench_cpu, 2),
        "components": components,
        "rss_idle_0_mb": round(idle["VmRSS"] / MB, 1),
        "rss_at_done_mb": round(at_done["VmRSS"] / MB, 1),
        "rss_settled_mb": round(after["VmRSS"] / MB, 1),
        "hwm_mb": round(after["VmHWM"] / MB, 1),
        "settle_s": settle,
        "per_trigger_kb": round((after["VmRSS"] - idle["VmRSS"]) / n / 1024, 1),
        "trigger_json_bytes": len(json.dumps(sample, separators=(",", ":"))),
        "managed_fields_json_bytes": len(
            json.dumps(sample["metadata"].get("managedFields") or [], separators=(",", ":"))
        ),
        "progress": progress[:: max(1, len(progress) // 20)],
        "requests": request_summary(entries, cluster.user, n),
        "watch_errors": watcher.errors,
        "loadavg": [load_start, loadavg()],
    }


# -- part 4: scale: many idle triggers, some due every minute ---------------------------------

DUE_LABELS = {"recluster-bench/role": "due"}
DUE_SELECTOR = "recluster-bench/role=due"


def etcd_db_mb(cluster: LocalCluster) -> dict[str, float]:
    """etcd's database file, and the part of it in use (its /metrics)."""
    url = f"http://127.0.0.1:{cluster.plane.ports['etcd']}/metrics"
    sizes = {"total": float("nan"), "in_use": float("nan")}
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return sizes
    for line in text.splitlines():
        if line.startswith("etcd_mvcc_db_total_size_in_bytes "):
            sizes["total"] = round(float(line.split()[1]) / MB, 1)
        elif line.startswith("etcd_mvcc_db_total_size_in_use_in_bytes "):
            sizes["in_use"] = round(float(line.split()[1]) / MB, 1)
    return sizes


def post_paced(api: KubeApi, bodies: Sequence[JSON], over: float) -> None:
    """POST the bodies evenly spread over `over` seconds (one every over/len)."""
    start = time.monotonic()
    for i, body in enumerate(bodies):
        wait = start + i * over / len(bodies) - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        post_trigger(api, body)


def post_all(cluster: LocalCluster, bodies: Sequence[JSON], workers: int) -> None:
    """POST every body (to its kind's collection) from `workers` threads."""
    apis = [cluster.new_api() for _ in range(workers)]

    def post_share(w: int) -> None:
        for body in bodies[w::workers]:
            path = jobs_path() if body["kind"] == "Job" else triggers_path()
            apis[w].request("POST", path, body)

    try:
        with ThreadPoolExecutor(workers) as pool:
            for future in [pool.submit(post_share, w) for w in range(workers)]:
                future.result()
    finally:
        for api in apis:
            api.close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until condition() holds (checked every 0.2 s); TimeoutError after timeout."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - started


def bench_scale(
    n: int,
    due: int,
    due_kind: str,
    window: float,
    job_seconds: float,
    settle: float,
    restart: bool,
    timeout: float,
    workdir: Path,
    identity: str,
    workers: int,
    profile: Path | None,
) -> dict[str, Any]:
    """n triggers: n - due idle (interval 86,400 s) created first, then `due` that fire
    every minute (interval 60 s, created evenly over a minute so that their slots spread
    over it; or cron `* * * * *`, all in the minute's first second); fire lags over
    `window` s; then, optionally, the operator restarted against all n."""
    load_start = loadavg()
    idle_n = n - due
    result: dict[str, Any] = {"triggers": n, "idle": idle_n, "due": due, "due_kind": due_kind}
    with LocalCluster(workdir, identity=identity, job_seconds=job_seconds) as cluster:
        triggers = TriggerLog()
        trigger_watch = Watcher(cluster, triggers_path(), triggers.on_event).start()
        jobs = JobLog()
        job_watch = Watcher(cluster, jobs_path(), jobs.on_event).start()
        probe = cluster.workdir / "probe.json"
        profile_path = profile.with_suffix(f".scale{n}.prof") if profile is not None else None
        with operator_process(cluster, profile_path, probe) as proc:
            sampler = Sampler(proc.pid, probe).start()
            mark = cluster.audit_mark()
            empty = proc_status(proc.pid)
            components0, cpu0 = cluster.components(), proc_cpu_seconds(proc.pid)
            print(f"  {idle_n} idle triggers ...", flush=True)
            created_s, reconciled_s, progress = create_and_reconcile(
                cluster, proc, triggers, idle_n,
                lambda i: trigger_manifest(f"idle-{i:06d}", 86_400, False), workers, timeout,
            )  # fmt: skip
            result["idle_create_s"] = round(created_s, 1)
            result["idle_all_reconciled_s"] = round(reconciled_s, 1)
            result["idle_reconciled_after_last_create_s"] = round(reconciled_s - created_s, 1)
            result["idle_progress"] = progress[:: max(1, len(progress) // 20)]
            result["operator_cpu_create_s"] = round(proc_cpu_seconds(proc.pid) - cpu0, 1)
            result["components_create"] = component_usage(components0, cluster.components())
            settle_start = time.time()
            time.sleep(settle)
            result["rss_empty_mb"] = round(empty["VmRSS"] / MB, 1)
            result["idle_rss_mb"] = round(proc_status(proc.pid)["VmRSS"] / MB, 1)
            result["idle_hwm_mb"] = round(proc_status(proc.pid)["VmHWM"] / MB, 1)
            result["idle_load"] = load_summary(sampler.between(settle_start, time.time()))
            result["idle_probe"] = read_probe(probe)

            # the triggers due every minute
            print(f"  {due} due triggers ({due_kind}) ...", flush=True)
            api = cluster.admin
            periods = {f"due-{i:04d}": 60 for i in range(due)}
            posting_start = time.time()
            if due_kind == "cron":
                post_all(cluster, [cron_manifest(k, "* * * * *", DUE_LABELS) for k in periods],
                         workers)  # fmt: skip
            else:
                bodies = [trigger_manifest(k, 60, False, DUE_LABELS) for k in periods]
                post_paced(api, bodies, 60.0)
            result["due_posting_s"] = round(time.time() - posting_start, 1)
            wait_for(lambda: triggers.count() >= n, timeout, "due triggers reconciled")
            components1, cpu1 = cluster.components(), proc_cpu_seconds(proc.pid)
            waits0 = cluster.rate_limiter_waits()
            window_mark = cluster.audit_mark()
            started = time.time()
            print(f"  fire lags for {window:.0f} s ...", flush=True)
            time.sleep(window)
            ended = time.time()
            result["window_s"] = round(ended - started, 1)
            result["window_load"] = load_summary(sampler.between(started, ended))
            result["operator_cpu_window_s"] = round(proc_cpu_seconds(proc.pid) - cpu1, 1)
            result["components_window"] = component_usage(components1, cluster.components())
            waits = cluster.rate_limiter_waits()
            result["controller_manager_rate_limiter"] = {
                k: round(waits.get(k, 0.0) - waits0.get(k, 0.0), 2) for k in ("seconds", "requests")
            }
            end_status = proc_status(proc.pid)
            result["rss_mb"] = round(end_status["VmRSS"] / MB, 1)
            result["hwm_mb"] = round(end_status["VmHWM"] / MB, 1)
            result["probe"] = read_probe(probe)
            result["etcd_db_mb"] = etcd_db_mb(cluster)
            listed = api.request("GET", triggers_path(), query={"labelSelector": DUE_SELECTOR})
            statuses = {
                str(t["metadata"]["name"]): dict(t.get("status") or {})
                for t in listed.get("items") or []
            }
            window_entries = [e for e in cluster.audit(window_mark) if e.received <= ended]
            sampler.stop()

        if restart:  # the same n triggers, a new operator process: list, then reconcile all
            print(f"  operator restarted against {n} triggers ...", flush=True)
            probe2 = cluster.workdir / "probe-restart.json"
            restart_start = time.time()
            with operator_process(cluster, None, probe2) as proc:
                ready_s = time.time() - restart_start
                sampler = Sampler(proc.pid, probe2).start()
                cpu0 = proc_cpu_seconds(proc.pid)
                all_s = ready_s + wait_for(
                    lambda: int(read_probe(probe2).get("reconciles") or 0) >= n,
                    timeout, "restart: all reconciled",
                )  # fmt: skip
                restart_done = time.time()
                time.sleep(settle)
                after = proc_status(proc.pid)
                synced = [
                    x["time"] - restart_start
                    for x in sampler.samples
                    if ((x["probe"] or {}).get("caches") or {}).get("clustertriggers", 0) >= n
                ]
                result["restart"] = {
                    "ready_s": round(ready_s, 1),
                    "synced_s": round(min(synced), 1) if synced else None,
                    "all_reconciled_s": round(all_s, 1),
                    "operator_cpu_s": round(proc_cpu_seconds(proc.pid) - cpu0, 1),
                    "rss_mb": round(after["VmRSS"] / MB, 1),
                    "hwm_mb": round(after["VmHWM"] / MB, 1),
                    "load": load_summary(sampler.between(restart_start, restart_done)),
                    "probe": read_probe(probe2),
                }
                sampler.stop()
            restart_end = time.time()
        entries = cluster.audit(mark)
        result["components_end"] = cluster.components()
        trigger_watch.stop()
        job_watch.stop()

    created_jobs = created(entries, "jobs")
    result.update(fire_lags(periods, jobs, created_jobs, statuses, ended))
    result["requests"] = request_summary(entries, cluster.user, n)
    result["window_requests"] = request_summary(window_entries, cluster.user, due)
    if restart:
        # firings due from the restart until the new operator had reconciled every trigger
        restarted = JobLog()
        for name, at in jobs.seen.items():
            audited = created_jobs.get(name)
            body = jobs.bodies[name]
            scheduled = body["metadata"].get("annotations", {}).get(ANNOTATION_SCHEDULED_AT)
            if (
                audited is not None
                and scheduled
                and (restart_start <= parse_time(scheduled).timestamp() <= restart_done)
            ):
                restarted.on_event("ADDED", body, at)
        lags = fire_lags(periods, restarted, created_jobs, {}, restart_end)
        result["restart"]["fires"] = lags["fires"]
        result["restart"]["precise_lag_s"] = lags["precise_lag_s"]
    result["watch_errors"] = trigger_watch.errors + job_watch.errors
    result["loadavg"] = [load_start, loadavg()]
    return result


# -- part 5: unrelated Jobs and pods --------------------------------------------------------


def noise_job(name: str) -> JSON:
    """A Job with none of Recluster's labels; its pod runs on the scripted kubelet."""
    labels = {"app.kubernetes.io/name": "noise", "app.kubernetes.io/part-of": "someone-else"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "registry.example/noise:1", "args": ["work"]}
                    ],
                },
            },
        },
    }


def cached_size(objects: Sequence[JSON], slim: Callable[[JSON], JSON]) -> int:
    """Bytes of Python objects that keeping slim(obj) of each object, parsed from JSON as a
    watch brings it, takes (tracemalloc: what stays allocated)."""
    import tracemalloc

    texts = [json.dumps(o) for o in objects]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [slim(json.loads(text)) for text in texts]
    size = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del kept
    return size


def bench_noise(
    noise: int,
    n: int,
    own: int,
    job_seconds: float,
    settle: float,
    timeout: float,
    workdir: Path,
    identity: str,
    workers: int,
) -> dict[str, Any]:
    """n idle triggers and `own` triggers that fire once, then `noise` Jobs (and their pods)
    without Recluster's labels: the operator's RSS, caches and watch events before/after."""
    from recluster.controller.operator import slim_job, slim_pod

    def whole(obj: JSON) -> JSON:
        return obj

    load_start = loadavg()
    with LocalCluster(workdir, identity=identity, job_seconds=job_seconds) as cluster:
        triggers = TriggerLog()
        trigger_watch = Watcher(cluster, triggers_path(), triggers.on_event).start()
        jobs = JobLog()
        job_watch = Watcher(cluster, jobs_path(), jobs.on_event).start()
        probe = cluster.workdir / "probe.json"
        with operator_process(cluster, None, probe) as proc:
            sampler = Sampler(proc.pid, probe).start()
            bodies = [trigger_manifest(f"idle-{i:05d}", 86_400, False) for i in range(n)]
            bodies += [trigger_manifest(f"own-{i:04d}", 86_400, True) for i in range(own)]
            post_all(cluster, bodies, workers)
            wait_for(lambda: triggers.count() >= n + own, timeout, "triggers reconciled")
            wait_for(
                lambda: sum(1 for j in jobs.completed if j.startswith("own-")) >= own,
                timeout, "own Jobs complete",
            )  # fmt: skip
            time.sleep(settle)  # their outcomes recorded; the pod cache settled

            def snapshot() -> JSON:
                time.sleep(1.5)  # the probe writes every second
                return {
                    "time": time.time(),
                    "rss_mb": round(proc_status(proc.pid)["VmRSS"] / MB, 2),
                    "probe": read_probe(probe),
                }

            quiet0 = snapshot()
            time.sleep(settle)
            quiet1 = snapshot()  # the control: the same wait with nothing new in the cluster
            noise_start = time.time()
            post_all(cluster, [noise_job(f"noise-{i:04d}") for i in range(noise)], workers)
            posted_s = time.time() - noise_start
            complete_s = wait_for(
                lambda: sum(1 for j in jobs.completed if j.startswith("noise-")) >= noise,
                timeout, "unrelated Jobs complete",
            )  # fmt: skip
            time.sleep(settle)
            after = snapshot()
            noise_end = time.time()
            api = cluster.admin
            every_job = api.request("GET", jobs_path()).get("items") or []
            every_pod = (
                api.request("GET", resource_path("v1", "pods", NAMESPACE)).get("items") or []
            )
            selected_jobs = api.request(
                "GET", jobs_path(), query={"labelSelector": "recluster.io/trigger"}
            )
            selected_pods = api.request(
                "GET", resource_path("v1", "pods", NAMESPACE),
                query={"labelSelector": "recluster.io/execution"},
            )  # fmt: skip
            entries = cluster.audit(0)
            load = load_summary(sampler.between(noise_start, noise_end))
            sampler.stop()
        trigger_watch.stop()
        job_watch.stop()

    noise_jobs = [j for j in every_job if j["metadata"]["name"].startswith("noise-")]
    noise_pods = [p for p in every_pod if p["metadata"]["name"].startswith("noise-")]
    operator_reads = sorted(
        {
            f"{e.verb} {e.resource} {e.uri.split('?', 1)[1] if '?' in e.uri else ''}"
            for e in entries
            if e.user == cluster.user and e.verb in ("list", "watch")
            and e.resource in ("jobs", "pods")
        }
    )  # fmt: skip
    # keep only the selector part of each query (resourceVersions and timeouts vary)
    selectors = sorted(
        {
            " ".join(
                [r.split(" ", 2)[0], r.split(" ", 2)[1]]
                + [q for q in r.split(" ", 2)[2].split("&") if q.startswith("labelSelector=")]
            )
            for r in operator_reads
        }
    )
    during = [e for e in entries if noise_start <= e.received <= noise_end]
    return {
        "noise_jobs": noise,
        "triggers": n + own,
        "own_jobs": own,
        "noise_posted_s": round(posted_s, 1),
        "noise_complete_s": round(complete_s, 1),
        "cluster_jobs": len(every_job),
        "cluster_pods": len(every_pod),
        "noise_jobs_present": len(noise_jobs),
        "noise_pods_present": len(noise_pods),
        "noise_pods_succeeded": sum(
            1 for p in noise_pods if (p.get("status") or {}).get("phase") == "Succeeded"
        ),
        "selected_jobs_server": len(selected_jobs.get("items") or []),
        "selected_pods_server": len(selected_pods.get("items") or []),
        "noise_json_mb": round(
            sum(len(json.dumps(o, separators=(",", ":"))) for o in noise_jobs + noise_pods) / MB,
            2,
        ),
        "noise_if_cached_mb": round(
            (cached_size(noise_jobs, slim_job) + cached_size(noise_pods, slim_pod)) / MB, 2
        ),
        "noise_if_cached_whole_mb": round(
            (cached_size(noise_jobs, whole) + cached_size(noise_pods, whole)) / MB, 2
        ),
        "quiet_before": quiet0,
        "quiet_after": quiet1,
        "after_noise": after,
        "rss_change_quiet_mb": round(quiet1["rss_mb"] - quiet0["rss_mb"], 2),
        "rss_change_noise_mb": round(after["rss_mb"] - quiet1["rss_mb"], 2),
        "operator_list_watch_selectors": selectors,
        "requests_during_noise": request_summary(during, cluster.user, noise),
        "load_during_noise": load,
        "watch_errors": trigger_watch.errors + job_watch.errors,
        "loadavg": [load_start, loadavg()],
    }


# -- report ---------------------------------------------------------------------------------


def verdict(value: float, goal: float, *, inclusive: bool = False) -> str:
    return "ok" if value < goal or (inclusive and value == goal) else "MISSED"


def ms(s: dict[str, float]) -> str:
    return (
        f"p50 {s['p50'] * 1000:.0f} ms  p99 {s['p99'] * 1000:.0f} ms  max {s['max'] * 1000:.0f} ms"
    )


def requests_row(requests: dict[str, Any], what: str) -> tuple[str, str, str, str]:
    return (
        what,
        f"{requests['total']} ({requests['per_trigger']}/trigger, "
        f"{requests['conflicts_409']} answered 409, {requests['unprocessable_422']} 422, "
        f"{requests['throttled_429']} 429)",
        "",
        "",
    )


def cpu_row(result: dict[str, Any], what: str) -> tuple[str, str, str, str]:
    parts = [f"operator {result.get('operator_cpu_s', result.get('operator_cpu_reconcile_s'))}"]
    parts += [f"{name} {u['cpu_s']}" for name, u in result["components"].items()]
    return (what, "CPU s: " + ", ".join(parts), "", "")


def load_text(load: JSON) -> str:
    if not load:
        return "n/a"
    lag, ready = load.get("loop_lag_ms") or {}, load.get("queue_ready") or {}
    return (
        f"CPU {load['operator_cpu_share'] * 100:.0f} % of a core, "
        f"{load.get('reconciles_per_s')} reconciles/s, queue p50/max "
        f"{ready.get('p50', float('nan')):.0f}/{ready.get('max', float('nan')):.0f}, "
        f"loop lag p99 {lag.get('p99', float('nan')):.0f} ms "
        f"(max {lag.get('max', float('nan')):.0f})"
    )


def scale_rows(r: JSON) -> list[tuple[str, str, str, str]]:
    n, due = r["triggers"], r["due"]
    tag = f"scale {n}"
    p = r["precise_lag_s"]
    rows = [
        (
            f"{tag}: reconcile all {r['idle']} idle",
            f"{r['idle_all_reconciled_s']:.0f} s (created in {r['idle_create_s']:.0f} s; "
            f"last reconciled {r['idle_reconciled_after_last_create_s']:.1f} s after the last "
            "create)",
            "",
            "",
        ),
        (
            f"{tag}: operator RSS, {r['idle']} idle",
            f"{r['idle_rss_mb']:.0f} MB (HWM {r['idle_hwm_mb']:.0f}, empty "
            f"{r['rss_empty_mb']:.0f})",
            f"<= {GOAL_RSS_MB:.0f} MB" if n == 10_000 else "",
            "",
        ),
        (f"{tag}: operator idle", load_text(r["idle_load"]), "", ""),
        (
            f"{tag}: fire lag, {due} {r['due_kind']} due each minute ({p['n']:.0f} fires)",
            ms(p),
            "p99 < 1 s",
            verdict(p["p99"], GOAL_LATENCY_S),
        ),
        (f"{tag}: fire lag at the request", ms(r["request_lag_s"]), "", ""),
        (
            f"{tag}: skipped (Forbid) / missed / overdue",
            f"{r['skipped_slots']} / {r['missed_slots']} / {r['overdue_at_end']}",
            "- / 0 / 0",
            "ok" if r["missed_slots"] == r["overdue_at_end"] == 0 else "MISSED",
        ),
        (f"{tag}: Job created -> Complete seen", ms(r["job_created_to_complete_s"]), "", ""),
        (f"{tag}: operator while firing", load_text(r["window_load"]), "", ""),
        (
            f"{tag}: operator RSS at the end",
            f"{r['rss_mb']:.0f} MB (HWM {r['hwm_mb']:.0f})",
            f"<= {GOAL_RSS_MB:.0f} MB" if n == 10_000 else "",
            verdict(r["rss_mb"], GOAL_RSS_MB, inclusive=True) if n == 10_000 else "",
        ),
        requests_row(r["window_requests"], f"{tag}: operator requests while firing, per due"),
        (
            f"{tag}: control plane at the end",
            ", ".join(f"{k} {v['rss_mb']:.0f} MB" for k, v in r["components_end"].items())
            + f"; etcd db {r['etcd_db_mb']['total']:.0f} MB",
            "",
            "",
        ),
    ]
    if "restart" in r:
        x = r["restart"]
        rows += [
            (
                f"{tag}: restarted operator",
                f"caches synced after {x.get('synced_s')} s, all {n} reconciled after "
                f"{x['all_reconciled_s']:.0f} "
                f"s, {x['operator_cpu_s']:.0f} CPU s, RSS {x['rss_mb']:.0f} MB (HWM "
                f"{x['hwm_mb']:.0f})",
                "",
                "",
            ),
            (
                f"{tag}: fire lag while restarting ({x['fires']} fires)",
                ms(x["precise_lag_s"]) if x["fires"] else "none due",
                "",
                "",
            ),
        ]
    return rows


def noise_rows(r: JSON) -> list[tuple[str, str, str, str]]:
    before, quiet, after = r["quiet_before"], r["quiet_after"], r["after_noise"]
    caches = [(p.get("probe") or {}).get("caches") for p in (before, quiet, after)]
    events = [(p.get("probe") or {}).get("events") or {} for p in (quiet, after)]
    new_events = {
        k: events[1].get(k, 0) - events[0].get(k, 0) for k in ("jobs", "pods", "clustertriggers")
    }
    unchanged = caches[1] == caches[2] and new_events["jobs"] == new_events["pods"] == 0
    small = abs(r["rss_change_noise_mb"]) <= max(1.0, 2 * abs(r["rss_change_quiet_mb"]))
    return [
        (
            f"noise: {r['noise_jobs_present']} unrelated Jobs + {r['noise_pods_present']} pods",
            f"operator RSS {quiet['rss_mb']:.1f} -> {after['rss_mb']:.1f} MB "
            f"({r['rss_change_noise_mb']:+.1f}; control, same wait without them: "
            f"{r['rss_change_quiet_mb']:+.1f}); "
            f"were they cached: ~{r['noise_if_cached_mb']:.1f} MB slimmed, "
            f"{r['noise_if_cached_whole_mb']:.1f} MB whole",
            "unchanged",
            "ok" if small else "MISSED",
        ),
        (
            "noise: operator caches / watch events",
            f"caches {caches[1]} -> {caches[2]}; events while they ran: {new_events}",
            "unchanged / 0",
            "ok" if unchanged else "MISSED",
        ),
        (
            "noise: the operator's lists and watches",
            "; ".join(r["operator_list_watch_selectors"]),
            "",
            "",
        ),
        requests_row(r["requests_during_noise"], "noise: operator requests meanwhile"),
    ]


def print_report(results: dict[str, Any]) -> None:
    rows: list[tuple[str, str, str, str]] = []
    if "apply" in results:
        a = results["apply"]
        for mode in ("sequential", "burst"):
            for key, label in (("server_s", "server"), ("client_s", "client")):
                s = a[mode][key]
                rows.append(
                    (
                        f"apply -> Job, {mode}, {label} ({a['triggers']} triggers)",
                        ms(s),
                        "p99 < 1 s" if key == "server_s" else "",
                        verdict(s["p99"], GOAL_LATENCY_S) if key == "server_s" else "",
                    )
                )
        rows.append(requests_row(a["requests"], "apply: operator API requests"))
        rows.append(cpu_row(a, "apply: CPU"))
    if "lag" in results:
        g = results["lag"]
        p = g["precise_lag_s"]
        what = f"fire lag, precise ({g['triggers']} triggers, {g['fires']} fires)"
        rows.append((what, ms(p), "p99 < 1 s", verdict(p["p99"], GOAL_LATENCY_S)))
        rows.append(("fire lag, seen on a watch", ms(g["watch_lag_s"]), "", ""))
        k = g["k8s_lag_s"]
        rows.append(
            (
                "fire lag, creationTimestamp - scheduled-at",
                f"p50 {k['p50']:.0f} s  p99 {k['p99']:.0f} s  max {k['max']:.0f} s",
                "",
                "",
            )
        )
        rows.append(("Job created -> Complete seen", ms(g["job_created_to_complete_s"]), "", ""))
        rows.append(
            (
                "skipped (Forbid) / missed slots / overdue at end",
                f"{g['skipped_slots']} / {g['missed_slots']} / {g['overdue_at_end']}",
                "- / 0 / 0",
                "ok" if g["missed_slots"] == g["overdue_at_end"] == 0 else "MISSED",
            )
        )
        rows.append(requests_row(g["requests"], "lag: operator API requests"))
        rows.append(cpu_row(g, "lag: CPU"))
    for r in results.get("rss", []):
        big = r["triggers"] >= 10_000
        rows.append(
            (
                f"operator RSS, {r['triggers']} idle triggers",
                f"{r['rss_settled_mb']:.0f} MB (HWM {r['hwm_mb']:.0f}, empty "
                f"{r['rss_idle_0_mb']:.0f}, {r['per_trigger_kb']:.0f} kB/trigger)",
                f"<= {GOAL_RSS_MB:.0f} MB" if big else "",
                verdict(r["rss_settled_mb"], GOAL_RSS_MB, inclusive=True) if big else "",
            )
        )
        rows.append(
            (
                f"reconcile all {r['triggers']}",
                f"{r['all_reconciled_s']:.1f} s (created in {r['create_s']:.1f} s)",
                "",
                "",
            )
        )
        rows.append(cpu_row(r, f"rss {r['triggers']}: CPU"))
        rows.append(requests_row(r["requests"], f"rss {r['triggers']}: operator API requests"))
        rows.append(
            (f"rss {r['triggers']}: operator CPU when idle",
             f"{r.get('operator_cpu_idle_share', float('nan')) * 100:.1f} % of a core", "", "")
        )  # fmt: skip
    for r in results.get("scale", []):
        rows += scale_rows(r)
    if "noise" in results:
        rows += noise_rows(results["noise"])
    header = ("measure", "figure", "goal", "")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    m = results["machine"]
    print(
        f"\nmachine: {m['cpus']} CPUs ({m['cpu_model']}), {m['mem_total_gb']} GB, Python "
        f"{m['python']}; load average {m['loadavg_start'][0]:.2f} at start, "
        f"{results['loadavg_end'][0]:.2f} at end"
    )


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument(
        "--parts", default="apply,lag,rss", help="comma list: apply,lag,rss,scale,noise"
    )
    parser.add_argument("--triggers", type=int, default=100, help="apply: triggers per run")
    parser.add_argument("--lag-triggers", type=int, default=100)
    parser.add_argument("--lag-interval", type=int, default=3, help="shortest interval (s)")
    parser.add_argument(
        "--lag-spread", type=int, default=3, help="intervals are interval .. interval+spread-1"
    )
    parser.add_argument("--lag-window", type=float, default=30.0, help="real seconds")
    parser.add_argument("--job-seconds", type=float, default=1.0, help="each container's run")
    parser.add_argument("--rss-sizes", default="1000,10000", help="comma list of trigger counts")
    parser.add_argument("--rss-interval", type=int, default=86_400, help="idle triggers' interval")
    parser.add_argument("--rss-settle", type=float, default=10.0, help="s idle before reading RSS")
    parser.add_argument(
        "--create-workers", type=int, default=4, help="rss: concurrent trigger POSTs"
    )
    parser.add_argument(
        "--scale-sizes", default="10000", help="scale: comma list of total trigger counts"
    )
    parser.add_argument("--scale-due", type=int, default=1000, help="scale: triggers due each min")
    parser.add_argument(
        "--scale-due-kind",
        choices=("interval", "cron"),
        default="interval",
        help="interval: every 60 s, created evenly over a minute (slots spread over it); "
        "cron: '* * * * *' (all in the minute's first second)",
    )
    parser.add_argument("--scale-window", type=float, default=180.0, help="scale: lag window (s)")
    parser.add_argument("--scale-settle", type=float, default=60.0, help="scale: idle wait (s)")
    parser.add_argument(
        "--scale-restart",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="scale: then restart the operator against all the triggers",
    )
    parser.add_argument("--noise-jobs", type=int, default=1000, help="noise: unrelated Jobs")
    parser.add_argument("--noise-triggers", type=int, default=100, help="noise: idle triggers")
    parser.add_argument("--noise-own", type=int, default=10, help="noise: triggers that fire once")
    parser.add_argument("--noise-settle", type=float, default=20.0, help="noise: waits (s)")
    parser.add_argument(
        "--identity",
        choices=("serviceaccount", "admin"),
        default="serviceaccount",
        help="the operator's credentials: a ServiceAccount token bound to cluster-admin, or "
        "a client certificate in system:masters",
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="per wait (s)")
    parser.add_argument("--profile-operator", type=Path, help="cProfile the rss operator here")
    parser.add_argument("--keep", type=Path, help="keep control-plane dirs (logs) under here")
    parser.add_argument("--json", type=Path, help="write all figures as JSON here")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    results: dict[str, Any] = {"machine": machine(), "args": {**vars(args)}}
    if "apply" in parts:
        print(f"apply: {args.triggers} triggers ...", flush=True)
        results["apply"] = bench_apply(
            args.triggers, args.job_seconds, args.timeout, root / "apply", args.identity
        )
    if "lag" in parts:
        print(f"lag: {args.lag_triggers} triggers for {args.lag_window:.0f} s ...", flush=True)
        results["lag"] = bench_lag(
            args.lag_triggers, args.lag_interval, args.lag_spread, args.lag_window,
            args.job_seconds, root / "lag", args.identity,
        )  # fmt: skip
    if "rss" in parts:
        results["rss"] = []
        for size in (int(s) for s in args.rss_sizes.split(",") if s.strip()):
            print(f"rss: {size} triggers ...", flush=True)
            results["rss"].append(
                bench_rss(
                    size,
                    args.rss_interval,
                    args.rss_settle,
                    args.timeout,
                    root / f"rss-{size}",
                    args.identity,
                    args.create_workers,
                    args.profile_operator,
                )
            )
    if "scale" in parts:
        results["scale"] = []
        for size in (int(s) for s in args.scale_sizes.split(",") if s.strip()):
            print(f"scale: {size} triggers, {args.scale_due} due each minute ...", flush=True)
            results["scale"].append(
                bench_scale(
                    size, args.scale_due, args.scale_due_kind, args.scale_window,
                    args.job_seconds, args.scale_settle, args.scale_restart, args.timeout,
                    root / f"scale-{size}", args.identity, args.create_workers,
                    args.profile_operator,
                )
            )  # fmt: skip
    if "noise" in parts:
        print(f"noise: {args.noise_jobs} unrelated Jobs ...", flush=True)
        results["noise"] = bench_noise(
            args.noise_jobs, args.noise_triggers, args.noise_own, args.job_seconds,
            args.noise_settle, args.timeout, root / "noise", args.identity, args.create_workers,
        )  # fmt: skip
    results["loadavg_end"] = loadavg()
    return results


class LogCounter(logging.Handler):
    """Counts the warnings and errors of the node agent and of urllib3 (its connection pool
    overflows under load) instead of printing each; keeps the first few of each kind."""

    QUIET = ("recluster.localkube", "urllib3")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: collections.Counter[str] = collections.Counter()
        self.first: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        kind = f"{record.levelname} {record.name}: {message.split(':', 1)[0][:60]}"
        if record.exc_info and record.exc_info[1] is not None:
            kind += f" ({type(record.exc_info[1]).__name__})"
            message += f": {record.exc_info[1]}"
        self.counts[kind] += 1
        self.first.setdefault(kind, message[:400])

    @classmethod
    def quiet(cls, record: logging.LogRecord) -> bool:
        return not record.name.startswith(cls.QUIET)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    counter = LogCounter()
    for handler in logging.getLogger().handlers:
        handler.addFilter(LogCounter.quiet)
    logging.getLogger().addHandler(counter)
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-operator-"))
    try:
        results = run(args, root)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    results["node_agent_and_urllib3_logs"] = {
        kind: {"count": n, "first": counter.first[kind]} for kind, n in counter.counts.items()
    }
    print()
    for kind, n in counter.counts.most_common():
        print(f"{n} x {kind}")
    print_report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
