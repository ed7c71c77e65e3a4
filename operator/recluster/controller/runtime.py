"""Starting the operator: in a process of its own, or embedded (tests, `recluster dev`)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import kopf

from .kube import KubeClient
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
) -> None:
    """Run until stop_flag is set. Without namespaces, all namespaces are watched.

    Without peering_name the operator runs standalone (one replica).
    """
    registry = build_registry(settings, client)
    await kopf.operator(
        registry=registry,
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        standalone=peering_name is None,
        peering_name=peering_name,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        liveness_endpoint=liveness_endpoint,
    )
