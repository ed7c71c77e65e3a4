"""Starting the operator: in a process of its own, or embedded (tests, `recluster dev`)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from ..kube.client import KubeClient
from .leader import LeaderElection, lead_while_elected
from .metrics import Metrics
from .operator import Controller
from .ports import ClusterPort, StorePort
from .settings import Settings


async def run_operator(
    settings: Settings,
    client: KubeClient,
    *,
    namespaces: Collection[str] = (),
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    metrics: Metrics | None = None,
    election: LeaderElection | None = None,
    cluster: ClusterPort | None = None,
    store: StorePort | None = None,
) -> None:
    """Run until stop_flag is set. Without namespaces, all namespaces are watched.

    With an election, the controller runs only while this replica holds the
    Lease (a fresh one each term). Metrics are served on settings.metrics_port
    when it is set and no Metrics are given. `cluster` and `store` replace the
    real ports (tests).
    """
    stop = stop_flag or asyncio.Event()
    served = None
    if metrics is None:
        metrics = served = Metrics()
        if settings.metrics_port is not None:
            served.serve(settings.metrics_port)
    identity = election.identity if election is not None else ""

    def controller() -> Controller:
        return Controller(
            settings, client, namespaces=list(namespaces), metrics=metrics, cluster=cluster,
            store=store, identity=identity,
        )  # fmt: skip

    try:
        if election is None:
            await controller().run(stop, ready_flag)
        else:

            async def term(term_stop: asyncio.Event) -> None:
                await controller().run(term_stop, ready_flag)

            await lead_while_elected(client, election, stop, term)
    finally:
        if served is not None:
            served.close()
