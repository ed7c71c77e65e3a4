"""Leader election: only the replica holding the Lease runs the operator.

The decisions are the pure `core.lease.step`; this loop reads and writes the
Lease (resourceVersion-checked, so two replicas never both win one round),
starts the operator when it leads, renews, and stops the operator as soon as
leadership cannot be confirmed. A graceful stop releases the Lease so a
standby takes over within one retry period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from ..core.lease import LeaseTiming, released, step
from ..kube.client import KubeClient
from ..kube.errors import KubeError
from ..kube.paths import resource_path

log = logging.getLogger(__name__)
LEASE_API = "coordination.k8s.io/v1"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class LeaderElection:
    namespace: str
    name: str
    identity: str
    timing: LeaseTiming = field(default_factory=LeaseTiming)
    clock: Callable[[], datetime] = _now
    leading: bool = False
    terms: int = 0


async def _read(client: KubeClient, election: LeaderElection) -> dict[str, Any] | None:
    path = resource_path(LEASE_API, "leases", election.namespace, election.name)
    try:
        return await client.request("GET", path)
    except KubeError as exc:
        if exc.status == 404:
            return None
        raise


async def _try_lead(client: KubeClient, election: LeaderElection) -> bool:
    """One round of the election; True when this replica holds the Lease afterwards."""
    lease = await _read(client, election)
    decision = step(lease, election.identity, election.clock(), election.timing)
    if decision.action == "wait":
        return False
    collection = resource_path(LEASE_API, "leases", election.namespace)
    try:
        if decision.action == "create":
            body = {
                "apiVersion": LEASE_API,
                "kind": "Lease",
                "metadata": {"name": election.name, "namespace": election.namespace},
                "spec": decision.spec,
            }
            await client.request("POST", collection, body)
        else:
            assert lease is not None
            body = {**lease, "spec": decision.spec}
            await client.request("PUT", f"{collection}/{election.name}", body)
    except KubeError as exc:
        if exc.status == 409:  # another replica wrote first: it won this round
            return False
        raise
    return True


async def _release(client: KubeClient, election: LeaderElection) -> None:
    lease = await _read(client, election)
    if lease is None or (lease.get("spec") or {}).get("holderIdentity") != election.identity:
        return
    path = resource_path(LEASE_API, "leases", election.namespace, election.name)
    with contextlib.suppress(KubeError):
        await client.request("PUT", path, {**lease, "spec": released(lease["spec"])})


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def lead_while_elected(
    client: KubeClient,
    election: LeaderElection,
    stop: asyncio.Event,
    run_leader: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
) -> None:
    """Run `run_leader(its_stop_flag)` during each term of leadership, until `stop`."""
    timing = election.timing
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            won = await _try_lead(client, election)
        except (KubeError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("leader election failed, retrying: %r", exc)
            won = False
        if not won:
            await _sleep(stop, timing.retry)
            continue
        election.leading, election.terms = True, election.terms + 1
        log.info("%s leads (term %d)", election.identity, election.terms)
        leader_stop = asyncio.Event()
        task = asyncio.create_task(run_leader(leader_stop))
        renewed = loop.time()
        try:
            while not stop.is_set() and not task.done():
                await _sleep(stop, timing.renew)
                if stop.is_set() or task.done():
                    break
                try:
                    if not await _try_lead(client, election):
                        log.warning("%s lost the Lease", election.identity)
                        break
                    renewed = loop.time()
                except (KubeError, aiohttp.ClientError, TimeoutError) as exc:
                    if loop.time() - renewed > timing.duration - timing.retry:
                        log.warning("cannot renew the Lease in time, stepping down: %r", exc)
                        break
        finally:
            leader_stop.set()
            election.leading = False
            await task
            if stop.is_set():
                with contextlib.suppress(KubeError, aiohttp.ClientError, TimeoutError):
                    await _release(client, election)
