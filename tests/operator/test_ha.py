"""Two operator replicas with a Lease: one acts, the other takes over, no firing twice or lost."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import UTC, datetime, timedelta

import pytest
from harness import IMAGE, Clock, trigger

import audit_registry
from kube_support import OPERATOR_ACCOUNT, RELEASE_NAMESPACE, LocalKube
from recluster.controller.leader import LeaderElection
from recluster.controller.metrics import Metrics
from recluster.controller.runtime import run_operator
from recluster.controller.settings import Settings
from recluster.core.lease import LeaseTiming
from recluster.kube.client import KubeClient

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]
TIMING = LeaseTiming(duration=1.0, renew=0.2, retry=0.1)


class Replica:
    """One operator process: its own thread and event loop."""

    def __init__(
        self,
        kube: LocalKube,
        lease: str,
        clock: Clock,
        identity: str,
        waits_frozen: bool = False,
    ) -> None:
        self.identity = identity
        self.info = kube.connection(OPERATOR_ACCOUNT)
        # the chart lets the operator hold Leases in its own (release) namespace only
        self.election = LeaderElection(RELEASE_NAMESPACE, lease, identity, TIMING)
        if waits_frozen:  # its Lease clock stands still until it leads
            frozen = datetime.now(UTC)
            self.election.clock = lambda: datetime.now(UTC) if self.election.leading else frozen
        self.settings = Settings(image=IMAGE, max_sleep=0.05, retry_delay=0.05, clock=clock)
        self.metrics = Metrics()
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
            client = KubeClient(self.info, f"recluster-operator/{self.identity}", keep_alive=False)
            try:
                await run_operator(
                    self.settings, client, stop_flag=self.stop, election=self.election,
                    metrics=self.metrics,
                )  # fmt: skip
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

    def reconciles(self, namespace: str, name: str) -> float:
        labels = {"namespace": namespace, "trigger": name}
        return self.metrics.registry.get_sample_value("recluster_reconciles_total", labels) or 0


def lease_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def until(check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if result := check():
            return result
        await asyncio.sleep(0.02)
    raise TimeoutError("condition not met")


def at(minute: int) -> datetime:
    return datetime(2026, 11, 28, 10, minute, tzinfo=UTC)


async def test_one_leader_acts_and_the_standby_takes_over(kube: LocalKube) -> None:
    clock = Clock(datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC))
    cluster = kube.cluster
    namespace = kube.new_namespace(kube.namespace_name("ha"))
    lease = kube.namespace_name("recluster-operator")
    audit_start = kube.audit.mark()
    if True:

        def jobs() -> list[dict]:
            return cluster.objects("batch", "v1", "jobs", namespace)

        def status() -> dict:
            body = cluster.get("recluster.io", "v1alpha1", "clustertriggers", "t", namespace)
            return dict((body or {}).get("status") or {})

        async def complete_all() -> None:
            """Every Job's pod ends well (the scripted container of the node agent)."""
            for job in jobs():
                if not (job.get("status") or {}).get("succeeded"):
                    prefix = f"{job['metadata']['name']}-"
                    launch = await asyncio.to_thread(
                        kube.scripted.wait_started,
                        lambda c, p=prefix: c.namespace == namespace and c.pod.startswith(p),
                    )
                    kube.scripted.finish(launch, 0, "{}")
            # the Job controller marks them Complete; a slot that finds one still
            # running is skipped (Forbid), as on any cluster
            await until(lambda: all((j.get("status") or {}).get("succeeded") for j in jobs()))

        def creators() -> set[str]:
            return {
                r.user_agent.split(" ")[0]
                for r in kube.audit.entries(audit_start)
                if r.resource == "jobs" and r.verb == "create" and r.namespace == namespace
            }

        def lease_spec() -> dict:
            body = cluster.get("coordination.k8s.io", "v1", "leases", lease, RELEASE_NAMESPACE)
            return dict((body or {}).get("spec") or {})

        def lease_reads(identity: str) -> int:
            kube.sync_audit()
            agent = f"recluster-operator/{identity}"
            return sum(
                1 for r in kube.audit.entries(audit_start)
                if r.resource == "leases" and r.name == lease and r.user_agent.startswith(agent)
            )  # fmt: skip

        a = Replica(kube, lease, clock, "a")
        await until(lambda: a.election.leading)
        # b's Lease clock stands still while it waits: a's Lease never looks expired to
        # it, so only a's release can let it in (no timing in the takeover below)
        b = Replica(kube, lease, clock, "b", waits_frozen=True)
        await until(lambda: lease_reads("b") >= 3)  # b tried, and was refused, three times
        assert a.election.leading and not b.election.leading

        cluster.apply(trigger("t"), namespace)
        await until(lambda: status().get("next_scheduled_at") == "2026-11-28T10:05:00Z")
        clock.set(at(5))
        await until(lambda: len(jobs()) == 1)
        assert creators() == {"recluster-operator/a"}
        await complete_all()

        await a.shutdown()  # graceful: releases the Lease
        await until(lambda: b.election.leading)
        assert lease_spec()["holderIdentity"] == "b"

        clock.set(at(10))
        await until(lambda: len(jobs()) == 2)
        seen = b.reconciles(namespace, "t")  # two more whole reconciles: no second Job
        await until(lambda: b.reconciles(namespace, "t") >= seen + 2)
        assert len(jobs()) == 2
        assert creators() == {"recluster-operator/a", "recluster-operator/b"}
        await complete_all()

        await b.crash()  # killed: the Lease stays until it expires
        left = lease_spec()
        assert left["holderIdentity"] == "b"
        c = Replica(kube, lease, clock, "c")
        await until(lambda: c.election.leading)
        taken = lease_spec()
        assert taken["holderIdentity"] == "c"
        # c took it only once b's last renewal had expired (the times the replicas wrote)
        expiry = lease_time(left["renewTime"]) + timedelta(seconds=left["leaseDurationSeconds"])
        assert lease_time(taken["acquireTime"]) >= expiry, (left, taken)

        clock.set(at(15))
        await until(lambda: len(jobs()) == 3)
        seen = c.reconciles(namespace, "t")
        await until(lambda: c.reconciles(namespace, "t") >= seen + 2)
        scheduled = sorted(
            j["metadata"]["annotations"]["recluster.io/scheduled-at"] for j in jobs()
        )
        assert scheduled == [
            "2026-11-28T10:05:00Z", "2026-11-28T10:10:00Z", "2026-11-28T10:15:00Z",
        ]  # fmt: skip
        assert status()["execution_count"] == 3
        await c.shutdown()
        audit_registry.ran("operator")
        kube.delete_namespace(namespace)
