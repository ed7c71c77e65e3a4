"""Helpers for the emulator tests: a tiny async HTTP client and a sync scenario runner.

pytest-asyncio is not installed, so every scenario is an ``async def`` run by
``asyncio.run`` inside a plain test, with a fresh emulated cluster per scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from recluster.emulator import EmulatedCluster

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
CTR = "/apis/recluster.io/v1alpha1/namespaces/default/clustertriggers"
JOBS = "/apis/batch/v1/namespaces/default/jobs"


class Api:
    """A minimal Kubernetes client over aiohttp: (status, json) for every call."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self.session.request(
            method, path, data=data, headers=headers, params=params
        ) as response:
            text = await response.text()
            return response.status, json.loads(text) if text.startswith(("{", "[")) else text

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        return await self.request("GET", path, params=params or None)

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        return await self.request("POST", path, body)

    async def put(self, path: str, body: Any) -> tuple[int, Any]:
        return await self.request("PUT", path, body)

    async def merge(self, path: str, body: Any) -> tuple[int, Any]:
        return await self.request("PATCH", path, body, content_type="application/merge-patch+json")

    async def json_patch(self, path: str, ops: list[dict[str, Any]]) -> tuple[int, Any]:
        return await self.request("PATCH", path, ops, content_type="application/json-patch+json")

    async def delete(self, path: str, body: Any = None, **params: str) -> tuple[int, Any]:
        return await self.request("DELETE", path, body, params=params or None)

    async def watch(self, path: str, **params: str) -> AsyncGenerator[dict[str, Any]]:
        """Events of one watch request until the server ends it."""
        async with self.session.get(path, params={"watch": "true", **params}) as response:
            assert response.status == 200, await response.text()
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)


async def collect(stream: AsyncGenerator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The first ``count`` events of a watch stream, then the client disconnects."""
    events: list[dict[str, Any]] = []
    async with contextlib.aclosing(stream):
        async for event in stream:
            events.append(event)
            if len(events) >= count:
                break
    return events


def trigger(name: str | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name} if name else {"generateName": "ctr-"}
    return {
        "apiVersion": "recluster.io/v1alpha1",
        "kind": "ClusterTrigger",
        "metadata": meta,
        "spec": spec or {"trigger_type": "interval"},
    }


Scenario = Callable[[EmulatedCluster, Api], Awaitable[None]]


def run_emulated(scenario: Scenario, **options: Any) -> None:
    """Run ``scenario(cluster, api)`` against a fresh emulated cluster with our CRDs."""

    async def main() -> None:
        async with EmulatedCluster(crds=[CRDS], **options) as cluster:
            # Connection: close keeps the shutdown instant (no idle keep-alive sockets).
            async with aiohttp.ClientSession(
                cluster.url, headers={"Connection": "close", "User-Agent": "emulator-tests"}
            ) as session:
                await scenario(cluster, Api(session))
            assert cluster.internal_errors == []

    asyncio.run(asyncio.wait_for(main(), timeout=30))
