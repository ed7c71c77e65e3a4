"""The operator on the emulated Kubernetes API: apply latency, fire lag, memory per trigger.

Three measurements, each against a fresh ``EmulatedCluster`` (real HTTP on 127.0.0.1)
and the REAL operator (``run_operator``: kopf, the daemons, the pure core):

    apply   apply -> Job created, per trigger, over --triggers interval triggers with
            start_immediately (each fires as soon as the operator sees it). Two runs:
            "sequential" (one trigger at a time, the next once its Job exists) and
            "burst" (all created back to back). The start is the moment the emulator
            commits the trigger, the end the moment it commits the Job (a hook on the
            store's watch fan-out, perf_counter: microseconds, no polling).
    lag     fire lag = actual - scheduled, with the real clock: --lag-triggers interval
            triggers of a few seconds (--lag-interval .. + --lag-spread - 1) during
            --lag-window seconds. The bench plays the Job controller (each Job succeeds
            after --job-seconds, with a pod and a termination message), so every slot
            fires. "precise" = the instant the Job appears in the store - the exact
            scheduled instant (the Job's recluster.io/scheduled-at annotation; the core
            schedules on whole seconds, so that annotation is exact); "k8s" = the Job's
            creationTimestamp - scheduled-at, what a user sees (second resolution).
    rss     the operator as its own process (``python -m recluster operator``, KUBECONFIG
            pointing at the emulator served by this process) with --rss-sizes interval
            triggers of --rss-interval seconds (idle). Time until every trigger has
            status.observedGeneration, then VmRSS (after --rss-settle s) and VmHWM from
            /proc/<pid>/status, and the operator's CPU seconds.

Parts apply and lag run the operator in this process, in the event loop that also
serves the emulator (as the tests do): the emulator's work is inside the figures.

Usage:
    .venv/bin/python benchmarks/bench_operator.py
    .venv/bin/python benchmarks/bench_operator.py --parts rss --rss-sizes 1000,10000
    .venv/bin/python benchmarks/bench_operator.py --json results.json
    # profile the operator process of the rss part:
    .venv/bin/python benchmarks/bench_operator.py --parts rss --profile-operator op.prof
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf

from recluster.controller.kube import KubeClient
from recluster.controller.runtime import run_operator
from recluster.controller.settings import Settings
from recluster.emulator import (
    ApiError,
    AuditRecord,
    EmulatedCluster,
    FieldSelector,
    LabelSelector,
)

ROOT = Path(__file__).resolve().parents[1]
CRDS = ROOT / "crds"
GROUP, VERSION, PLURAL = "recluster.io", "v1alpha1", "clustertriggers"
NAMESPACE = "default"
LABEL_TRIGGER = "recluster.io/trigger"
ANNOTATION_SCHEDULED_AT = "recluster.io/scheduled-at"
CONFIG = {"collection_ids": ["col_bench"], "config": {"algorithm": "kmeans", "n_clusters": 3}}
GOAL_LATENCY_S = 1.0
GOAL_RSS_MB = 300.0

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


def trigger_manifest(name: str, interval: int, start_immediately: bool) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterTrigger",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "trigger_type": "interval",
            "schedule_config": {
                "interval_seconds": interval,
                "start_immediately": start_immediately,
            },
            "execution_config": CONFIG,
        },
    }


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


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
    """utime + stime of a process (and its reaped children: none here)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def self_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def count_requests(cluster: EmulatedCluster) -> collections.Counter[str]:
    """Count the HTTP requests the emulator answers (all are the operator's here), by kind.

    The audit log keeps a bounded list; this counts every record as it is appended.
    """
    counts: collections.Counter[str] = collections.Counter()
    audit = cluster.audit
    append = audit.append

    def counting(record: AuditRecord) -> None:
        resource = record.resource + (f"/{record.subresource}" if record.subresource else "")
        counts[f"{record.verb} {resource or record.path} {record.code}"] += 1
        append(record)

    audit.append = counting  # type: ignore[method-assign]
    return counts


def request_summary(counts: collections.Counter[str], triggers: int) -> dict[str, Any]:
    total = sum(counts.values())
    return {
        "total": total,
        "per_trigger": round(total / max(triggers, 1), 1),
        "conflicts_409": sum(v for k, v in counts.items() if k.endswith(" 409")),
        "by_kind": dict(counts.most_common()),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
        "loadavg_start": os.getloadavg(),
    }


# -- watching Jobs appear in the emulator's store ----------------------------------------


@dataclass
class SeenJob:
    name: str
    trigger: str
    perf: float
    """perf_counter() at the store commit that created the Job."""
    wall: float
    """time.time() at the same moment."""
    body: dict[str, Any]


@dataclass
class JobRecorder:
    """Records every Job the instant the emulator commits it (no polling).

    A watcher subscribed on the store's own watch fan-out, whose ``offer`` (called
    synchronously inside the commit) is replaced by a recorder. ``on_added`` is called
    soon after (never inside the commit: it may write to the store).
    """

    cluster: EmulatedCluster
    on_added: Callable[[SeenJob], None] | None = None
    jobs: dict[str, SeenJob] = field(default_factory=dict)
    by_trigger: dict[str, list[SeenJob]] = field(default_factory=dict)
    waiters: dict[str, asyncio.Event] = field(default_factory=dict)

    def __post_init__(self) -> None:
        store = self.cluster.store
        defn = self.cluster.definition("batch", "v1", "jobs")
        self.watcher = store.watch(
            defn,
            NAMESPACE,
            labels=LabelSelector(),
            fields=FieldSelector(),
            since=str(store.resource_version),
        )
        self.watcher.offer = self._offer  # type: ignore[method-assign]
        self.loop = asyncio.get_running_loop()

    def close(self) -> None:
        self.cluster.store.unwatch(self.watcher)

    def _offer(self, event_type: str, old: Any, new: Any) -> None:
        if event_type != "ADDED":
            return
        perf, wall = time.perf_counter(), time.time()
        meta = new["metadata"]
        if meta.get("namespace") != NAMESPACE or meta["name"] in self.jobs:
            return
        trigger = str((meta.get("labels") or {}).get(LABEL_TRIGGER, ""))
        seen = SeenJob(meta["name"], trigger, perf, wall, new)
        self.jobs[seen.name] = seen
        self.by_trigger.setdefault(trigger, []).append(seen)
        if trigger in self.waiters:
            self.waiters[trigger].set()
        if self.on_added is not None:
            self.loop.call_soon(self.on_added, seen)

    async def first_job(self, trigger: str, timeout: float) -> SeenJob:
        event = self.waiters.setdefault(trigger, asyncio.Event())
        if trigger not in self.by_trigger:
            await asyncio.wait_for(event.wait(), timeout)
        return self.by_trigger[trigger][0]


# -- the operator in this process ----------------------------------------------------------


@contextlib.asynccontextmanager
async def operator_in_process(cluster: EmulatedCluster) -> AsyncIterator[None]:
    """The real operator (kopf + daemons) with production pacing and the real clock."""
    settings = Settings(image="recluster:bench", store_uri="/data/store")
    client = KubeClient(kopf.ConnectionInfo(server=cluster.url, insecure=True))
    stop, ready = asyncio.Event(), asyncio.Event()
    logging.getLogger("kopf").setLevel(logging.WARNING)
    task = asyncio.create_task(run_operator(settings, client, stop_flag=stop, ready_flag=ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        yield
    finally:
        # kopf's shutdown chatter (daemons cancelled, streams left) is not a finding
        logging.getLogger("kopf").setLevel(logging.ERROR)
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 60)
        await client.close()


# -- part 1: apply -> Job created ----------------------------------------------------------


async def bench_apply(n: int, timeout: float) -> dict[str, Any]:
    async with EmulatedCluster(crds=[CRDS]) as cluster:
        recorder = JobRecorder(cluster)
        requests = count_requests(cluster)
        async with operator_in_process(cluster):
            await asyncio.sleep(0.5)  # the operator's watches are established
            sequential: list[float] = []
            for i in range(n):
                name = f"seq-{i:04d}"
                started = time.perf_counter()
                cluster.create(GROUP, VERSION, PLURAL, trigger_manifest(name, 3600, True))
                job = await recorder.first_job(name, timeout)
                sequential.append(job.perf - started)
            await asyncio.sleep(1.0)
            names = [f"burst-{i:04d}" for i in range(n)]
            started_at: dict[str, float] = {}
            for name in names:
                started_at[name] = time.perf_counter()
                cluster.create(GROUP, VERSION, PLURAL, trigger_manifest(name, 3600, True))
            burst: list[float] = []
            for name in names:
                job = await recorder.first_job(name, timeout)
                burst.append(job.perf - started_at[name])
        recorder.close()
        errors = [repr(e) for e in cluster.internal_errors]
    return {
        "triggers": n,
        "sequential_s": summary(sequential),
        "burst_s": summary(burst),
        "burst_all_done_s": max(burst),
        "requests": request_summary(requests, 2 * n),
        "emulator_errors": errors,
    }


# -- part 2: fire lag ------------------------------------------------------------------------


def play_job_controller(cluster: EmulatedCluster, seconds: float) -> Callable[[SeenJob], None]:
    """Each new Job succeeds after `seconds`: a terminated pod with a summary, Job status."""
    loop = asyncio.get_running_loop()

    def finish(seen: SeenJob) -> None:
        job = seen.body
        at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        labels = job["spec"]["template"]["metadata"]["labels"]
        summary = {"num_clusters": 3, "num_documents": 1000, "execution_time_ms": 900}
        try:
            cluster.create(
                "", "v1", "pods",
                {
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {
                        "name": f"{seen.name}-pod", "namespace": NAMESPACE, "labels": labels,
                    },
                    "spec": {"containers": [{"name": "recluster", "image": "recluster:bench"}]},
                },
            )  # fmt: skip
            terminated = {"exitCode": 0, "finishedAt": at, "message": json.dumps(summary)}
            cluster.patch_status(
                "", "v1", "pods", f"{seen.name}-pod",
                {"containerStatuses": [{"name": "recluster", "state": {"terminated": terminated}}]},
                namespace=NAMESPACE,
            )  # fmt: skip
            cluster.patch_status(
                "batch", "v1", "jobs", seen.name,
                {
                    "succeeded": 1, "completionTime": at,
                    "conditions": [{"type": "Complete", "status": "True",
                                    "lastTransitionTime": at}],
                },
                namespace=NAMESPACE,
            )  # fmt: skip
        except ApiError as exc:  # e.g. the trigger was deleted meanwhile
            log.warning("job controller: %s: %s", seen.name, exc)

    def on_added(seen: SeenJob) -> None:
        loop.call_later(seconds, finish, seen)

    return on_added


async def bench_lag(
    n: int, interval: int, spread: int, window: float, job_seconds: float
) -> dict[str, Any]:
    async with EmulatedCluster(crds=[CRDS]) as cluster:
        recorder = JobRecorder(cluster)
        recorder.on_added = play_job_controller(cluster, job_seconds)
        requests = count_requests(cluster)
        intervals: dict[str, int] = {}
        async with operator_in_process(cluster):
            await asyncio.sleep(0.5)
            for i in range(n):
                name = f"lag-{i:04d}"
                intervals[name] = interval + i % max(spread, 1)
                cluster.create(
                    GROUP, VERSION, PLURAL, trigger_manifest(name, intervals[name], False)
                )
            started = time.time()
            await asyncio.sleep(window)
            ended = time.time()
            statuses = {
                str(t["metadata"]["name"]): dict(t.get("status") or {})
                for t in cluster.objects(GROUP, VERSION, PLURAL, NAMESPACE)
            }
        recorder.close()
        errors = [repr(e) for e in cluster.internal_errors]

    precise: list[float] = []
    k8s: list[float] = []
    missed = overdue = 0
    for name, every in intervals.items():
        fired = [s for s in recorder.by_trigger.get(name, []) if s.wall <= ended]
        slots = []
        for seen in fired:
            meta = seen.body["metadata"]
            scheduled = parse_time(meta["annotations"][ANNOTATION_SCHEDULED_AT]).timestamp()
            slots.append(scheduled)
            precise.append(seen.wall - scheduled)
            k8s.append(parse_time(meta["creationTimestamp"]).timestamp() - scheduled)
        if slots:  # slots on the grid between the first and the last one that never fired
            missed += round((max(slots) - min(slots)) / every) + 1 - len(set(slots))
        pending = statuses.get(name, {}).get("next_scheduled_at")
        if pending is None or parse_time(pending).timestamp() < ended - GOAL_LATENCY_S:
            overdue += 1  # due more than a second before the end and still not fired
    return {
        "triggers": n,
        "intervals_s": sorted(set(intervals.values())),
        "window_s": round(ended - started, 2),
        "job_seconds": job_seconds,
        "fires": len(precise),
        "missed_slots": missed,
        "overdue_at_end": overdue,
        "precise_lag_s": summary(precise),
        "k8s_lag_s": summary(k8s),
        "requests": request_summary(requests, n),
        "emulator_errors": errors,
    }


# -- part 3: operator RSS, in its own process ----------------------------------------------


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            status: int = response.status
            return status
    except OSError:
        return 0


async def bench_rss(
    n: int, interval: int, settle: float, timeout: float, profile: Path | None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
        async with EmulatedCluster(crds=[CRDS]) as cluster:
            requests = count_requests(cluster)
            kubeconfig = cluster.write_kubeconfig(Path(tmp) / "kubeconfig")
            health = f"http://127.0.0.1:{free_port()}/healthz"
            env = {
                **os.environ,
                "KUBECONFIG": str(kubeconfig),
                "RECLUSTER_IMAGE": "recluster:bench",
                "RECLUSTER_STORE_URI": "/data/store",
                "PYTHONUNBUFFERED": "1",
            }
            command = [sys.executable]
            if profile is not None:
                command += ["-m", "cProfile", "-o", str(profile.with_suffix(f".{n}.prof"))]
            command += ["-m", "recluster", "operator", "--liveness", health]
            log_path = Path(tmp) / "operator.log"
            with open(log_path, "wb") as log_file:
                proc = subprocess.Popen(command, env=env, stdout=log_file, stderr=log_file)
            try:
                result = await _measure_rss(cluster, proc, health, n, interval, settle, timeout)
                result["requests"] = request_summary(requests, n)
                return result
            except BaseException:
                sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
                raise
            finally:
                proc.send_signal(signal.SIGINT)
                try:
                    await asyncio.to_thread(proc.wait, 60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


async def _measure_rss(
    cluster: EmulatedCluster,
    proc: subprocess.Popen[bytes],
    health: str,
    n: int,
    interval: int,
    settle: float,
    timeout: float,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while await asyncio.to_thread(_get, health) != 200:
        if proc.poll() is not None or loop.time() > deadline:
            raise RuntimeError("the operator did not become ready")
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    idle = proc_status(proc.pid)
    cpu_idle = proc_cpu_seconds(proc.pid)
    bench_cpu0 = self_cpu_seconds()

    started = time.perf_counter()
    for i in range(n):
        cluster.create(GROUP, VERSION, PLURAL, trigger_manifest(f"idle-{i:05d}", interval, False))
        if i % 100 == 99:
            await asyncio.sleep(0)  # keep serving the operator meanwhile
    created = time.perf_counter() - started

    def reconciled() -> int:
        return sum(
            1
            for t in cluster.objects(GROUP, VERSION, PLURAL, NAMESPACE)
            if (t.get("status") or {}).get("observedGeneration") == t["metadata"]["generation"]
        )

    progress: list[tuple[float, int, int]] = []
    done = 0
    while done < n:
        if proc.poll() is not None:
            raise RuntimeError(f"the operator exited with {proc.returncode}")
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"only {done}/{n} triggers reconciled after {timeout}s")
        await asyncio.sleep(0.5)
        done = reconciled()
        progress.append(
            (round(time.perf_counter() - started, 1), done, proc_status(proc.pid)["VmRSS"])
        )
    all_reconciled = time.perf_counter() - started
    cpu_reconcile = proc_cpu_seconds(proc.pid) - cpu_idle
    at_done = proc_status(proc.pid)
    await asyncio.sleep(settle)
    after = proc_status(proc.pid)
    mb = 2**20
    return {
        "triggers": n,
        "interval_s": interval,
        "create_s": round(created, 2),
        "all_reconciled_s": round(all_reconciled, 2),
        "operator_cpu_reconcile_s": round(cpu_reconcile, 2),
        "emulator_cpu_s": round(self_cpu_seconds() - bench_cpu0, 2),
        "rss_idle_0_mb": round(idle["VmRSS"] / mb, 1),
        "rss_at_done_mb": round(at_done["VmRSS"] / mb, 1),
        "rss_settled_mb": round(after["VmRSS"] / mb, 1),
        "hwm_mb": round(after["VmHWM"] / mb, 1),
        "settle_s": settle,
        "per_trigger_kb": round((after["VmRSS"] - idle["VmRSS"]) / n / 1024, 1),
        "progress": progress[:: max(1, len(progress) // 20)],
        "emulator_errors": [repr(e) for e in cluster.internal_errors],
    }


# -- report ---------------------------------------------------------------------------------


def verdict(value: float, goal: float) -> str:
    return "ok" if value < goal else "MISSED"


def requests_row(requests: dict[str, Any], what: str) -> tuple[str, str, str, str]:
    return (
        what,
        f"{requests['total']} ({requests['per_trigger']}/trigger, "
        f"{requests['conflicts_409']} answered 409)",
        "",
        "",
    )


def print_report(results: dict[str, Any]) -> None:
    rows: list[tuple[str, str, str, str]] = []
    if "apply" in results:
        a = results["apply"]
        for mode in ("sequential", "burst"):
            s = a[f"{mode}_s"]
            rows.append(
                (
                    f"apply -> Job created, {mode} ({a['triggers']} triggers)",
                    f"p50 {s['p50'] * 1000:.0f} ms  p99 {s['p99'] * 1000:.0f} ms  "
                    f"max {s['max'] * 1000:.0f} ms",
                    "p99 < 1 s",
                    verdict(s["p99"], GOAL_LATENCY_S),
                )
            )
        rows.append(requests_row(a["requests"], "apply: operator API requests"))
    if "lag" in results:
        g = results["lag"]
        p, k = g["precise_lag_s"], g["k8s_lag_s"]
        what = f"fire lag, precise ({g['triggers']} triggers, {g['fires']} fires)"
        rows.append(
            (
                what,
                f"p50 {p['p50'] * 1000:.0f} ms  p99 {p['p99'] * 1000:.0f} ms  "
                f"max {p['max'] * 1000:.0f} ms",
                "p99 < 1 s",
                verdict(p["p99"], GOAL_LATENCY_S),
            )
        )
        rows.append(
            (
                "fire lag, creationTimestamp - scheduled-at",
                f"p50 {k['p50']:.0f} s  p99 {k['p99']:.0f} s  max {k['max']:.0f} s",
                "",
                "",
            )
        )
        rows.append(
            (
                "missed slots / overdue at end",
                f"{g['missed_slots']} / {g['overdue_at_end']}",
                "0 / 0",
                "ok" if g["missed_slots"] == g["overdue_at_end"] == 0 else "MISSED",
            )
        )
        rows.append(requests_row(g["requests"], "lag: operator API requests"))
    for r in results.get("rss", []):
        rows.append(
            (
                f"operator RSS, {r['triggers']} idle triggers",
                f"{r['rss_settled_mb']:.0f} MB (HWM {r['hwm_mb']:.0f}, empty "
                f"{r['rss_idle_0_mb']:.0f}, {r['per_trigger_kb']:.0f} kB/trigger)",
                "< 300 MB" if r["triggers"] >= 10_000 else "",
                verdict(r["rss_settled_mb"], GOAL_RSS_MB) if r["triggers"] >= 10_000 else "",
            )
        )
        rows.append(
            (
                f"reconcile all {r['triggers']}",
                f"{r['all_reconciled_s']:.1f} s (operator CPU {r['operator_cpu_reconcile_s']:.1f}"
                f" s, emulator CPU {r['emulator_cpu_s']:.1f} s)",
                "",
                "",
            )
        )
        rows.append(requests_row(r["requests"], f"rss {r['triggers']}: operator API requests"))
    widths = [
        max(len(row[i]) for row in [("measure", "figure", "goal", ""), *rows]) for i in range(4)
    ]
    header = ("measure", "figure", "goal", "")
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
    parser.add_argument("--parts", default="apply,lag,rss", help="comma list: apply,lag,rss")
    parser.add_argument("--triggers", type=int, default=100, help="apply: triggers per run")
    parser.add_argument("--lag-triggers", type=int, default=100)
    parser.add_argument("--lag-interval", type=int, default=3, help="shortest interval (s)")
    parser.add_argument(
        "--lag-spread", type=int, default=3, help="intervals are interval .. interval+spread-1"
    )
    parser.add_argument("--lag-window", type=float, default=30.0, help="real seconds")
    parser.add_argument("--job-seconds", type=float, default=1.0, help="each Job's run time")
    parser.add_argument("--rss-sizes", default="1000,10000", help="comma list of trigger counts")
    parser.add_argument("--rss-interval", type=int, default=86_400, help="idle triggers' interval")
    parser.add_argument("--rss-settle", type=float, default=10.0, help="s idle before reading RSS")
    parser.add_argument("--timeout", type=float, default=900.0, help="per wait (s)")
    parser.add_argument("--profile-operator", type=Path, help="cProfile the rss operator here")
    parser.add_argument("--json", type=Path, help="write all figures as JSON here")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    results: dict[str, Any] = {"machine": machine(), "args": {**vars(args)}}
    if "apply" in parts:
        print(f"apply: {args.triggers} triggers ...", flush=True)
        results["apply"] = await bench_apply(args.triggers, args.timeout)
    if "lag" in parts:
        print(f"lag: {args.lag_triggers} triggers for {args.lag_window:.0f} s ...", flush=True)
        results["lag"] = await bench_lag(
            args.lag_triggers, args.lag_interval, args.lag_spread, args.lag_window,
            args.job_seconds,
        )  # fmt: skip
    if "rss" in parts:
        results["rss"] = []
        for size in (int(s) for s in args.rss_sizes.split(",") if s.strip()):
            print(f"rss: {size} triggers ...", flush=True)
            results["rss"].append(
                await bench_rss(
                    size, args.rss_interval, args.rss_settle, args.timeout, args.profile_operator
                )
            )
    results["loadavg_end"] = os.getloadavg()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    results = asyncio.run(run(args))
    print()
    print_report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
