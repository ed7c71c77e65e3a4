"""Pushed document events acknowledged per second, durably, on a real local control plane.

As in a cluster: the control plane (etcd, kube-apiserver, controller-manager and
scheduler, the upstream binaries: recluster.localkube), the gateway in a process
of its own (`recluster gateway`, logged in with the token of a ServiceAccount
bound to cluster-admin; --identity admin: a client certificate in system:masters),
and this load generator. 100 event triggers listen on 100 collections; every
acknowledged event has been written to its trigger's status before the answer.
Reports single-event requests and batched requests (a list of events per
request), checks at the end that the triggers' counters add up to exactly what
was acknowledged, and counts the gateway's API requests in the apiserver's audit
log and the CPU seconds each process spent.

    .venv/bin/python benchmarks/bench_events.py --triggers 100 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from bench_operator import (
    IDENTITY_NAMESPACE,
    LocalCluster,
    component_usage,
    free_port,
    loadavg,
    proc_cpu_seconds,
    request_summary,
    self_cpu_seconds,
)

from recluster.gateway.keys import make_api_key_secret
from recluster.kube.errors import KubeError
from recluster.kube.paths import resource_path

PY = sys.executable
NAMESPACE = "default"
TRIGGERS = resource_path("recluster.io/v1alpha1", "clustertriggers", NAMESPACE)


def trigger(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "recluster.io/v1alpha1",
        "kind": "ClusterTrigger",
        "metadata": {"name": f"events-{i}", "namespace": NAMESPACE},
        "spec": {
            "trigger_type": "event",
            "schedule_config": {
                "event_type": "documents_added",
                "event_threshold": 10**9,
                "collection_id": f"col_{i}",
                "cooldown_seconds": 0,
            },
            "cluster_id": "unused",
        },
    }


async def load(
    url: str, key: str, triggers: int, seconds: float, concurrency: int, batch: int, tag: str
) -> tuple[int, int, float]:
    headers = {"Authorization": f"Bearer {key}", "X-Namespace": NAMESPACE}
    acknowledged = requests = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)

    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:

        async def worker(w: int) -> None:
            nonlocal acknowledged, requests
            n = 0
            while time.monotonic() < deadline:
                events = [
                    {
                        "event_type": "documents_added",
                        "collection_id": f"col_{(w + n + j) % triggers}",
                        "count": 1,
                        "idempotency_key": f"{tag}-{w}-{n}-{j}",
                    }
                    for j in range(batch)
                ]
                n += 1
                body: Any = events if batch > 1 else events[0]
                async with session.post(f"{url}/v1/events", json=body) as response:
                    if response.status != 200:
                        raise RuntimeError(f"{response.status}: {await response.text()}")
                    await response.read()
                acknowledged += batch
                requests += 1

        started = time.monotonic()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.monotonic() - started
    return acknowledged, requests, elapsed


def wait_ready(url: str, gateway: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(300):
        if gateway.poll() is not None:
            raise RuntimeError(f"the gateway exited:\n{log.read_text(errors='replace')[-4000:]}")
        out = subprocess.run(
            ["curl", "-sf", f"{url}/readyz"], capture_output=True, timeout=5, check=False
        )
        if out.returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("the gateway did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--triggers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch", type=int, default=50, help="events per batched request")
    parser.add_argument("--identity", choices=("serviceaccount", "admin"),
                        default="serviceaccount", help="the gateway's credentials")  # fmt: skip
    parser.add_argument("--keep", type=Path, help="keep the control plane's dir (logs) here")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-events-"))
    results: dict[str, Any] = {"loadavg_start": loadavg(), "args": {**vars(args)}}
    port = free_port()
    try:
        with LocalCluster(work, identity=args.identity, account="gateway") as cluster:
            api = cluster.admin
            if args.identity == "admin":
                api.request("POST", resource_path("v1", "namespaces"),
                            {"metadata": {"name": IDENTITY_NAMESPACE}})  # fmt: skip
            key, secret = make_api_key_secret("bench", [NAMESPACE], name="bench-key")
            api.request("POST", resource_path("v1", "secrets", IDENTITY_NAMESPACE), secret)
            for i in range(args.triggers):
                api.request("POST", TRIGGERS, trigger(i))
            env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
            log = work / "gateway.log"
            with log.open("wb") as out:
                gateway = subprocess.Popen(
                    [PY, "-m", "recluster", "gateway", "--host", "127.0.0.1", "--port",
                     str(port), "--namespace-of-keys", IDENTITY_NAMESPACE],
                    stdout=out, stderr=subprocess.STDOUT, env=env,
                )  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            try:
                wait_ready(url, gateway, log)
                mark = cluster.audit_mark()
                runs: dict[str, Any] = {}
                modes = (("single events", 1), (f"batches of {args.batch}", args.batch))
                for label, batch in modes:
                    before = cluster.components()
                    gateway_cpu, bench_cpu = proc_cpu_seconds(gateway.pid), self_cpu_seconds()
                    run = load(url, key, args.triggers, args.seconds, args.concurrency, batch,
                               label[:6])  # fmt: skip
                    acked, requests, elapsed = asyncio.run(run)
                    runs[label] = {
                        "events": acked,
                        "requests": requests,
                        "seconds": round(elapsed, 2),
                        "events_per_s": round(acked / elapsed, 1),
                        "requests_per_s": round(requests / elapsed, 1),
                        "cpu_s": {
                            "gateway": round(proc_cpu_seconds(gateway.pid) - gateway_cpu, 2),
                            "load generator": round(self_cpu_seconds() - bench_cpu, 2),
                            **{
                                name: u["cpu_s"]
                                for name, u in component_usage(before, cluster.components()).items()
                            },
                        },
                        "loadavg_end": loadavg(),
                    }
                entries = cluster.audit(mark)
            finally:
                gateway.send_signal(signal.SIGTERM)
                try:
                    gateway.wait(20)
                except subprocess.TimeoutExpired:
                    gateway.kill()
                    gateway.wait()
            items = api.request("GET", TRIGGERS).get("items") or []
            total = sum((t.get("status") or {}).get("event_counter", 0) for t in items)
            acknowledged = sum(r["events"] for r in runs.values())
            results.update(
                runs=runs,
                counted=total,
                acknowledged=acknowledged,
                gateway_requests=request_summary(entries, cluster.user, acknowledged),
                components_rss_mb={n: u["rss_mb"] for n, u in cluster.components().items()},
            )
    except KubeError as exc:
        sys.exit(f"the control plane refused a request: {exc}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    print(f"{args.triggers} event triggers, {args.concurrency} concurrent clients, "
          f"{os.cpu_count()} cores (control plane, gateway and load share them)")  # fmt: skip
    print(f"{'requests':<22}{'events/s':>10}{'requests/s':>12}{'events':>9}   CPU s")
    for label, r in results["runs"].items():
        cpu = ", ".join(f"{k} {v}" for k, v in r["cpu_s"].items())
        print(f"{label:<22}{r['events_per_s']:>10.0f}{r['requests_per_s']:>12.0f}"
              f"{r['events']:>9}   {cpu}")  # fmt: skip
    exact = "exact" if results["counted"] == results["acknowledged"] else "MISMATCH"
    print(f"counted on the triggers: {results['counted']} of {results['acknowledged']} "
          f"acknowledged ({exact})")  # fmt: skip
    g = results["gateway_requests"]
    print(f"gateway API requests: {g['total']} ({g['conflicts_409']} answered 409, "
          f"{g['throttled_429']} 429): {json.dumps(g['by_kind'])}")  # fmt: skip
    print(f"load average {results['loadavg_start'][0]:.2f} at start, {loadavg()[0]:.2f} at end")
    print(json.dumps({k: v["events_per_s"] for k, v in results["runs"].items()}))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
