"""Starting the operator: in a process of its own, or embedded (tests, `recluster dev`)."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Collection

import kopf

from ..kube.client import KubeClient
from .leader import LeaderElection, lead_while_elected
from .metrics import Metrics
from .operator import build_registry
from .settings import Settings


async def run_operator(
    settings: Settings,
    client: KubeClient,
    *,
    namespaces: Collection[str] = (),
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    liveness_endpoint: str | None = None,
    peering_name: str | None = None,
    metrics: Metrics | None = None,
    election: LeaderElection | None = None,
    on_signal: Callable[[], None] | None = None,
) -> None:
    """Run until stop_flag is set. Without namespaces, all namespaces are watched.

    Without peering_name the operator runs standalone (one replica). Metrics are
    served on settings.metrics_port when it is set and no Metrics are given.
    """
    served = None
    if metrics is None:
        metrics = served = Metrics()
        if settings.metrics_port is not None:
            served.serve(settings.metrics_port)
    try:
        if election is None:
            await _run_kopf(
                build_registry(settings, client, metrics),
                namespaces, stop_flag, ready_flag, liveness_endpoint, peering_name, on_signal,
            )  # fmt: skip
        else:
            stop = stop_flag or asyncio.Event()

            async def term(term_stop: asyncio.Event) -> None:
                # a fresh registry per term: kopf keeps per-run state in it
                await _run_kopf(
                    build_registry(settings, client, metrics),
                    namespaces, term_stop, ready_flag, None, None, on_signal,
                )  # fmt: skip

            await lead_while_elected(client, election, stop, term)
    finally:
        if served is not None:
            served.close()


async def _run_kopf(
    registry: kopf.OperatorRegistry,
    namespaces: Collection[str],
    stop_flag: asyncio.Event | None,
    ready_flag: asyncio.Event | None,
    liveness_endpoint: str | None,
    peering_name: str | None,
    on_signal: Callable[[], None] | None = None,
) -> None:
    """Run kopf; with on_signal, SIGINT/SIGTERM call it instead of kopf's own handler.

    kopf installs its own handlers in the main thread, which stop only kopf (and
    later kill the thread); the process's owner must decide what a signal stops.
    """
    ready = ready_flag or asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=registry,
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            standalone=peering_name is None,
            peering_name=peering_name,
            stop_flag=stop_flag,
            ready_flag=ready,
            liveness_endpoint=liveness_endpoint,
        )
    )
    if on_signal is not None and threading.current_thread() is threading.main_thread():
        waiter = asyncio.ensure_future(ready.wait())
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
    await task
