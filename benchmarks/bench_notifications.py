"""Completion webhooks: the reconcile path does not wait for receivers; delivery throughput.

In one process, no control plane: the real TriggerReconciler with the in-memory
Kubernetes port (controller/fakes.py), the real Notifier with its real HTTP port
(aiohttp, 4 workers, HMAC-signed bodies) and a local aiohttp receiver on an
ephemeral port. N cron triggers fire once, their Jobs complete, then one reconcile
per trigger records the outcome (the status write that makes the delivery
Pending) and hands the delivery to the notifier. Measured, in the same run:

- the time of that recording reconcile per trigger, without webhooks (baseline),
  with a receiver that answers at once, and with one that never answers
  (each attempt then waits its 30 s timeout in a worker): the ratios to the
  baseline say whether a receiver can slow the operator down;
- deliveries per second to the answering receiver (until all N arrived, signed
  and acknowledged in status by a reconcile).

    .venv/bin/python benchmarks/bench_notifications.py --triggers 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from recluster.controller.caches import Caches
from recluster.controller.fakes import FakeCluster, FakeSecrets, FakeStore
from recluster.controller.metrics import Metrics
from recluster.controller.notifier import Notifier
from recluster.controller.ports import HttpWebhooks
from recluster.controller.reconciler import TriggerReconciler
from recluster.controller.settings import Settings

NS = "bench"
CONFIG = {"collection_ids": ["col_abc123"], "config": {"algorithm": "kmeans", "n_clusters": 3}}
DONE = {"succeeded": 1, "completionTime": "2026-11-28T10:05:10Z",
        "conditions": [{"type": "Complete", "status": "True"}]}  # fmt: skip


class Receiver:
    def __init__(self, hang: bool) -> None:
        self.hang, self.count, self.release = hang, 0, asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.count += 1
        if self.hang:
            await self.release.wait()
        return web.Response(status=204)


async def serve(receiver: Receiver) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/hook"


def manifest(name: str, url: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "trigger_type": "cron",
        "schedule_config": {"cron_expression": "*/5 * * * *", "timezone": "UTC"},
        "execution_config": CONFIG,
    }
    if url is not None:
        spec["notifications"] = {"webhooks": [{"url": url, "secret_ref": {"name": "k"},
                                               "timeout_seconds": 30}]}  # fmt: skip
    return {"apiVersion": "recluster.io/v1alpha1", "kind": "ClusterTrigger",
            "metadata": {"name": name, "namespace": NS,
                         "creationTimestamp": "2026-11-28T10:00:00Z"},
            "spec": spec}  # fmt: skip


async def scenario(triggers: int, mode: str) -> dict[str, float]:
    """mode: none (no webhook), fast (answers), hanging (never answers)."""
    receiver = Receiver(hang=mode == "hanging")
    runner, url = await serve(receiver)
    now = [datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC)]
    caches = Caches()
    cluster = FakeCluster(caches)
    settings = Settings(image="recluster:bench", store_uri="/data", clock=lambda: now[0])
    woken: list[tuple[str, str]] = []
    http = HttpWebhooks()
    notifier = Notifier(http, FakeSecrets({(NS, "k"): {"secret": b"bench-key"}}),
                        settings.clock, woken.append)  # fmt: skip
    reconciler = TriggerReconciler(settings, cluster, FakeStore(), caches, Metrics(), notifier)
    stop = asyncio.Event()
    workers = asyncio.create_task(notifier.run(stop))
    keys = [(NS, f"t{i:05d}") for i in range(triggers)]
    for _, name in keys:
        cluster.put_trigger(manifest(name, None if mode == "none" else url))
        await reconciler.reconcile((NS, name))
    now[0] = datetime(2026, 11, 28, 10, 5, 1, tzinfo=UTC)
    for key in keys:
        await reconciler.reconcile(key)  # fires: one Job each
    for job in list(caches.jobs.values()):
        job["status"] = DONE  # the Job controller, at once
    now[0] = datetime(2026, 11, 28, 10, 5, 20, tzinfo=UTC)
    started = time.perf_counter()
    recording = await timed(reconciler, keys)  # records outcomes, submits the deliveries
    delivered_s = float("nan")
    deadline = time.monotonic() + 120
    if mode == "fast":
        while len(woken) < triggers:  # every attempt reported back
            await wait(deadline, f"{len(woken)} of {triggers} deliveries reported")
        for key in keys:  # the statuses say Delivered
            await reconciler.reconcile(key)
        delivered_s = time.perf_counter() - started
        states = [caches.triggers[k]["status"]["notifications"][0]["state"] for k in keys]
        assert states == ["Delivered"] * triggers, states[:3]
    elif mode == "hanging":
        while receiver.count < notifier.workers:  # every worker holds a request
            await wait(deadline, "the workers to be held")
    now[0] = datetime(2026, 11, 28, 10, 10, 1, tzinfo=UTC)
    firing = await timed(reconciler, keys)  # the next slot: one Job each
    assert len(caches.jobs) == 2 * triggers
    held = receiver.count if mode == "hanging" else 0
    receiver.release.set()
    stop.set()
    await workers
    await http.close()
    await runner.cleanup()
    return {
        "record_ms": statistics.median(recording) * 1000,
        "fire_ms": statistics.median(firing) * 1000,
        "fire_p99_ms": p99(firing) * 1000,
        "delivered_s": delivered_s,
        "held": held,
    }


async def timed(reconciler: TriggerReconciler, keys: list[tuple[str, str]]) -> list[float]:
    times = []
    for key in keys:
        t0 = time.perf_counter()
        await reconciler.reconcile(key)
        times.append(time.perf_counter() - t0)
    return times


def p99(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[max(0, int(len(ordered) * 0.99) - 1)]


async def wait(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise TimeoutError(what)
    await asyncio.sleep(0.001)


async def main(triggers: int) -> None:
    results = {mode: await scenario(triggers, mode) for mode in ("none", "fast", "hanging")}
    base = results["none"]
    print(f"{triggers} triggers, load {os.getloadavg()[0]:.1f}")
    print("receiver  recording reconcile  next-slot reconcile (Job created)  vs none")
    print("          median               median      p99")
    for mode, r in results.items():
        print(
            f"{mode:<9} {r['record_ms']:>7.2f} ms           {r['fire_ms']:>7.2f} ms "
            f"{r['fire_p99_ms']:>7.2f} ms     {r['fire_ms'] / base['fire_ms']:.2f}x"
        )
    fast = results["fast"]
    print(
        f"fast: {triggers} signed deliveries received and recorded Delivered in "
        f"{fast['delivered_s']:.2f} s ({triggers / fast['delivered_s']:.0f}/s)"
    )
    print(
        f"hanging: {results['hanging']['held']} requests held open (every delivery "
        "worker) while the next slot's Jobs were created"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--triggers", type=int, default=200)
    asyncio.run(main(parser.parse_args().triggers))
