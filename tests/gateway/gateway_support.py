"""The gateway app, in process, against the emulated Kubernetes API.

`Gateway` starts an emulated cluster with our CRDs, three namespaces
(`team-a`, `team-b` and the keys' `recluster-system`), API keys for alice
(team-a), bob (team-b) and carol (both), and the app with an httpx client
that calls it over ASGI. Everything runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import kopf

import audit_registry
from recluster.controller.kube import KubeClient
from recluster.emulator.cluster import EmulatedCluster
from recluster.gateway import (
    USER_AGENT,
    GatewaySettings,
    create_app,
    make_api_key_secret,
    serve_gateway,
)

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
SEEDS: dict[str, dict[str, Any]] = {
    p.stem: json.loads(p.read_text()) for p in sorted((ROOT / "tests/data/seed").glob("*.json"))
}
GROUP, VERSION = "recluster.io", "v1alpha1"
KEYS_NAMESPACE = "recluster-system"
SEED_RESPONSE_FIELDS = {
    "namespace_id", "internal_id", "execution_config", "trigger_type", "schedule_config",
    "trigger_id", "cluster_id", "status", "last_triggered_at", "last_execution_job_id",
    "next_scheduled_at", "execution_count", "consecutive_failures", "last_execution_status",
    "last_execution_error", "event_counter", "last_cooldown_at", "created_at", "updated_at",
    "created_by", "description",
}  # fmt: skip
SEED_REQUEST_FIELDS = {
    "trigger_type", "schedule_config", "cluster_id", "execution_config", "description", "status",
}  # fmt: skip
CONFIG = {"collection_ids": ["col_abc123"], "config": {"algorithm": "kmeans", "n_clusters": 3}}


def body(description: str = "Nightly", trigger_type: str = "cron", **extra: Any) -> dict[str, Any]:
    """A valid request body of the given type."""
    schedules: dict[str, dict[str, Any]] = {
        "cron": {"cron_expression": "0 2 * * *", "timezone": "UTC"},
        "interval": {"interval_seconds": 3600, "start_immediately": False},
        "event": {
            "event_type": "documents_added",
            "event_threshold": 10,
            "collection_id": "col_abc123",
            "cooldown_seconds": 0,
        },
        "conditional": {
            "condition_type": "drift",
            "threshold": 0.3,
            "metric": "cosine_drift",
            "check_interval_seconds": 60,
        },
    }
    result: dict[str, Any] = {
        "trigger_type": trigger_type,
        "schedule_config": schedules[trigger_type],
        "description": description,
        **extra,
    }
    if "cluster_id" not in result:
        result.setdefault("execution_config", CONFIG)
    return result


class Gateway:
    """Emulated cluster + gateway app + an httpx client for it (`async with Gateway() as g`)."""

    def __init__(self, refresh_seconds: float = 60.0, **settings: Any) -> None:
        self.cluster = EmulatedCluster(crds=[ROOT / "crds"])
        self.settings = GatewaySettings(
            keys_namespace=KEYS_NAMESPACE, key_refresh_seconds=refresh_seconds, **settings
        )
        self.keys: dict[str, str] = {}
        self.kube: KubeClient | None = None
        self._lifespan: Any = None

    async def __aenter__(self) -> Gateway:
        await self.cluster.start()
        for namespace in ("team-a", "team-b", KEYS_NAMESPACE):
            self.cluster.ensure_namespace(namespace)
        self.add_key("alice", ["team-a"])
        self.add_key("bob", ["team-b"])
        self.add_key("carol", ["team-a", "team-b"])
        info = kopf.ConnectionInfo(server=self.cluster.url, insecure=True)
        self.kube = KubeClient(info, user_agent=USER_AGENT, keep_alive=False)
        self.app = create_app(self.settings, self.kube)
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://gateway"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.http.aclose()
        await self._lifespan.__aexit__(exc_type, exc, tb)
        assert self.kube is not None
        await self.kube.close()
        audit_registry.record(self.cluster)
        await self.cluster.stop()
        assert not self.cluster.internal_errors, self.cluster.internal_errors

    def add_key(self, owner: str, namespaces: list[str]) -> str:
        key, secret = make_api_key_secret(owner, namespaces, name=f"api-key-{owner}")
        self.cluster.create("", "v1", "secrets", secret, namespace=KEYS_NAMESPACE)
        self.keys[owner] = key
        return key

    def headers(self, owner: str = "alice", namespace: str = "team-a") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[owner]}", "X-Namespace": namespace}

    async def create(
        self, payload: dict[str, Any], owner: str = "alice", namespace: str = "team-a"
    ) -> dict[str, Any]:
        response = await self.http.post(
            "/v1/clusters/triggers", json=payload, headers=self.headers(owner, namespace)
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def stored(self, name: str, namespace: str = "team-a") -> dict[str, Any]:
        obj = self.cluster.get(GROUP, VERSION, "clustertriggers", name, namespace)
        assert obj is not None, f"{namespace}/{name} does not exist"
        return dict(obj)

    def define(self, cluster_id: str, config: dict[str, Any], namespace: str = "team-a") -> None:
        """A ClusterDefinition answering to cluster_id."""
        self.cluster.create(
            GROUP, VERSION, "clusterdefinitions",
            {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterDefinition",
                "metadata": {"name": cluster_id.replace("_", "-"), "namespace": namespace},
                "spec": {"cluster_id": cluster_id, "execution_config": config},
            },
            namespace=namespace,
        )  # fmt: skip

    def gateway_requests(self) -> list[Any]:
        return self.cluster.audit.records(user_agent=USER_AGENT)


def fields(response: httpx.Response) -> set[str]:
    """The `field`s a 422 body names."""
    assert response.status_code == 422, response.text
    return {problem["field"] for problem in response.json()["detail"]}


class ServedGateway:
    """The emulator and the gateway served by uvicorn (`serve_gateway`) on a thread of
    their own with its own event loop, for synchronous clients (schemathesis, httpx).

    `run(fn)` calls `fn()` on that loop's thread (the emulator's in-process methods
    must be called there).
    """

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.url = ""
        self.gateway: Gateway | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="served-gateway", daemon=True)

    def __enter__(self) -> ServedGateway:
        self._thread.start()
        if not self._ready.wait(20):
            raise TimeoutError("the served gateway did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)
        assert not self._thread.is_alive(), "the served gateway did not stop"
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with Gateway(**self.settings) as gateway:
            self.gateway = gateway

            def ready(port: int) -> None:
                self.url = f"http://127.0.0.1:{port}"
                self._ready.set()

            await serve_gateway(
                gateway.app, "127.0.0.1", 0, self._stop, on_ready=ready, log_level="warning"
            )

    def run(self, fn: Callable[[], T]) -> T:
        assert self._loop is not None

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(10)

    def headers(self, owner: str = "alice", namespace: str = "team-a") -> dict[str, str]:
        assert self.gateway is not None
        return self.gateway.headers(owner, namespace)
