"""Two operator replicas with a Lease: one acts, the other takes over, no firing twice or lost."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from datetime import UTC, datetime

import kopf
import pytest
from harness import ROOT, Clock, trigger

import audit_registry
from recluster.controller.kube import KubeClient
from recluster.controller.leader import LeaderElection
from recluster.controller.runtime import run_operator
from recluster.controller.settings import Settings
from recluster.core.lease import LeaseTiming
from recluster.emulator.cluster import EmulatedCluster

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]
TIMING = LeaseTiming(duration=1.0, renew=0.2, retry=0.1)


class Replica:
    """One operator process: its own thread and event loop (kopf owns its loop's tasks)."""

    def __init__(self, cluster: EmulatedCluster, clock: Clock, identity: str) -> None:
        self.identity = identity
        self.url = cluster.url
        self.election = LeaderElection("default", "recluster-operator", identity, TIMING)
        self.settings = Settings(max_sleep=0.05, retry_delay=0.05, clock=clock)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop: asyncio.Event | None = None
        self.main: asyncio.Task[None] | None = None
        self.thread = threading.Thread(target=self._run, name=identity, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        async def body() -> None:
            self.loop = asyncio.get_running_loop()
            self.stop = asyncio.Event()
            self.main = asyncio.current_task()
            info = kopf.ConnectionInfo(server=self.url, insecure=True)
            client = KubeClient(info, f"recluster-operator/{self.identity}", keep_alive=False)
            try:
                await run_operator(
                    self.settings, client, stop_flag=self.stop, election=self.election
                )
            finally:
                await client.close()

        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(body())

    async def shutdown(self) -> None:
        """Graceful stop: the Lease is released."""
        await until(lambda: self.loop is not None and self.stop is not None)
        assert self.loop is not None and self.stop is not None
        self.loop.call_soon_threadsafe(self.stop.set)
        await asyncio.to_thread(self.thread.join, 20)
        assert not self.thread.is_alive()

    async def crash(self) -> None:
        """Gone without releasing the Lease (the process was killed)."""
        await until(lambda: self.loop is not None and self.main is not None)
        assert self.loop is not None and self.main is not None
        self.loop.call_soon_threadsafe(self.main.cancel)
        await asyncio.to_thread(self.thread.join, 20)
        assert not self.thread.is_alive()


async def until(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if result := check():
            return result
        await asyncio.sleep(0.02)
    raise TimeoutError("condition not met")


def at(minute: int) -> datetime:
    return datetime(2026, 11, 28, 10, minute, tzinfo=UTC)


async def test_one_leader_acts_and_the_standby_takes_over() -> None:
    clock = Clock(datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC))
    async with EmulatedCluster(crds=[ROOT / "crds"]) as cluster:

        def jobs() -> list[dict]:
            return [dict(j) for j in cluster.objects("batch", "v1", "jobs", "default")]

        def status() -> dict:
            body = cluster.get("recluster.io", "v1alpha1", "clustertriggers", "t", "default")
            return dict((body or {}).get("status") or {})

        def complete_all() -> None:
            done = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
            for job in jobs():
                if not (job.get("status") or {}).get("succeeded"):
                    name = job["metadata"]["name"]
                    cluster.patch_status("batch", "v1", "jobs", name, done, "default")

        def creators() -> set[str]:
            return {
                r.user_agent or ""
                for r in cluster.audit
                if r.resource == "jobs" and r.verb == "create"
            }

        a = Replica(cluster, clock, "a")
        await until(lambda: a.election.leading)
        b = Replica(cluster, clock, "b")
        await asyncio.sleep(0.5)
        assert a.election.leading and not b.election.leading

        cluster.apply(trigger("t"))
        await until(lambda: status().get("next_scheduled_at") == "2026-11-28T10:05:00Z")
        clock.set(at(5))
        await until(lambda: len(jobs()) == 1)
        assert creators() == {"recluster-operator/a"}
        complete_all()

        started = time.monotonic()
        await a.shutdown()  # graceful: releases the Lease
        await until(lambda: b.election.leading)
        graceful = time.monotonic() - started
        assert graceful < TIMING.retry + 1.0, f"takeover took {graceful:.2f}s"

        clock.set(at(10))
        await until(lambda: len(jobs()) == 2)
        await asyncio.sleep(0.3)
        assert len(jobs()) == 2
        assert creators() == {"recluster-operator/a", "recluster-operator/b"}
        complete_all()

        await b.crash()  # killed: the Lease stays until it expires
        started = time.monotonic()
        c = Replica(cluster, clock, "c")
        await until(lambda: c.election.leading, timeout=10)
        crashed = time.monotonic() - started
        assert crashed < TIMING.duration + TIMING.retry + 1.0, f"takeover took {crashed:.2f}s"

        clock.set(at(15))
        await until(lambda: len(jobs()) == 3)
        await asyncio.sleep(0.3)
        scheduled = sorted(
            j["metadata"]["annotations"]["recluster.io/scheduled-at"] for j in jobs()
        )
        assert scheduled == [
            "2026-11-28T10:05:00Z", "2026-11-28T10:10:00Z", "2026-11-28T10:15:00Z",
        ]  # fmt: skip
        assert status()["execution_count"] == 3
        await c.shutdown()
        audit_registry.record(cluster)
