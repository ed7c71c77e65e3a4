"""The gateway app, in process, against the session's real control plane.

`Gateway` makes two namespaces of its own (`g.a` and `g.b`, standing for a
team-a and a team-b), API keys for alice (a), bob (b) and carol (both) in the
release namespace where the chart lets the gateway read them, and the app,
logged in with the chart's gateway ServiceAccount, with an httpx client that
calls it over ASGI. Everything runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

import audit_registry
from kube_support import GATEWAY_ACCOUNT, RELEASE_NAMESPACE, AuditEntry, LocalKube, user_of
from recluster.gateway import (
    USER_AGENT,
    GatewaySettings,
    create_app,
    serve_gateway,
)
from recluster.gateway.settings import Rate, RateLimits
from recluster.kube.client import KubeClient
from recluster.kube.errors import KubeError

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
SEEDS: dict[str, dict[str, Any]] = {
    p.stem: json.loads(p.read_text()) for p in sorted((ROOT / "tests/data/seed").glob("*.json"))
}
GROUP, VERSION = "recluster.io", "v1alpha1"
KEYS_NAMESPACE = RELEASE_NAMESPACE
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
# For tests that send one key's requests by the hundred to exercise handlers, not limits.
UNLIMITED = RateLimits(*(Rate(per_second=10_000, burst=10_000),) * 4)


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


class FaultyKubeClient(KubeClient):
    """The gateway's Kubernetes client, answering chosen calls with an error instead.

    For faults a real apiserver cannot be made to produce on demand (a 500, a
    trigger that changes between every read and write, an object stored under an
    older, laxer CRD).
    """

    faults: list[tuple[str, str, int, dict[str, Any], int]]

    def fail(
        self, method: str, path: str, status: int, body: dict[str, Any], times: int = 1_000_000
    ) -> None:
        """The next `times` calls of method on a path ending with `path` answer status."""
        self.faults.append((method.upper(), path, status, body, times))

    rewrites: list[tuple[str, str, Callable[[dict[str, Any]], dict[str, Any]]]]

    def rewrite(
        self, method: str, path: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> None:
        """Answers of method on paths ending with `path` pass through `change` first."""
        self.rewrites.append((method.upper(), path, change))

    async def request(self, method: str, path: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        for index, (verb, suffix, status, body, times) in enumerate(self.faults):
            if verb == method.upper() and path.endswith(suffix) and times > 0:
                self.faults[index] = (verb, suffix, status, body, times - 1)
                raise KubeError(status, str(body.get("reason")), str(body.get("message")))
        answer = await super().request(method, path, *args, **kwargs)
        for verb, suffix, change in self.rewrites:
            if verb == method.upper() and path.endswith(suffix):
                answer = change(answer)
        return answer


class Gateway:
    """Namespaces, keys, the gateway app and an httpx client (`async with Gateway(kube) as g`)."""

    def __init__(self, kube: LocalKube, refresh_seconds: float = 60.0, **settings: Any) -> None:
        self.kube = kube
        self.cluster = kube.cluster
        self.a = kube.namespace_name("team-a")
        self.b = kube.namespace_name("team-b")
        self.settings = GatewaySettings(
            keys_namespace=KEYS_NAMESPACE, key_refresh_seconds=refresh_seconds, **settings
        )
        self.keys: dict[str, str] = {}
        self.key_secrets: dict[str, str] = {}
        self.secrets: list[str] = []
        self.kube_client: FaultyKubeClient | None = None
        self._lifespan: Any = None
        self.audit_start = 0

    async def __aenter__(self) -> Gateway:
        for namespace in (self.a, self.b):
            await asyncio.to_thread(self.kube.new_namespace, namespace)
        self.add_key("alice", [self.a])
        self.add_key("bob", [self.b])
        self.add_key("carol", [self.a, self.b])
        self.audit_start = self.kube.audit.mark()
        info = self.kube.connection(GATEWAY_ACCOUNT)
        self.kube_client = FaultyKubeClient(info, user_agent=USER_AGENT, keep_alive=False)
        self.kube_client.faults, self.kube_client.rewrites = [], []
        self.app = create_app(self.settings, self.kube_client)
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
        assert self.kube_client is not None
        await self.kube_client.close()
        audit_registry.ran("gateway")
        await asyncio.to_thread(self._clean_up)

    def _clean_up(self) -> None:
        for name in self.secrets:
            self.kube.delete_api_key(name)
        for namespace in (self.a, self.b):
            # finalizers set by a test would keep the namespace Terminating forever
            for trigger in self.cluster.objects(GROUP, VERSION, "clustertriggers", namespace):
                if trigger["metadata"].get("finalizers"):
                    self.cluster.patch(GROUP, VERSION, "clustertriggers",
                                       trigger["metadata"]["name"],
                                       {"metadata": {"finalizers": None}}, namespace)  # fmt: skip
            self.kube.delete_namespace(namespace)

    def add_key(self, owner: str, namespaces: list[str]) -> str:
        key, secret = self.kube.add_api_key(owner, namespaces)
        self.keys[owner] = key
        self.key_secrets[owner] = secret
        self.secrets.append(secret)
        return key

    def remove_key(self, owner: str) -> None:
        self.kube.delete_api_key(self.key_secrets[owner])

    def headers(self, owner: str = "alice", namespace: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[owner]}", "X-Namespace": namespace or self.a}

    async def create(
        self, payload: dict[str, Any], owner: str = "alice", namespace: str | None = None
    ) -> dict[str, Any]:
        response = await self.http.post(
            "/v1/clusters/triggers", json=payload, headers=self.headers(owner, namespace)
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def stored(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        namespace = namespace or self.a
        obj = self.cluster.get(GROUP, VERSION, "clustertriggers", name, namespace)
        assert obj is not None, f"{namespace}/{name} does not exist"
        return obj

    def triggers(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.cluster.objects(GROUP, VERSION, "clustertriggers", namespace or self.a)

    def define(self, cluster_id: str, config: dict[str, Any], namespace: str | None = None) -> None:
        """A ClusterDefinition answering to cluster_id."""
        namespace = namespace or self.a
        self.cluster.create(
            GROUP, VERSION, "clusterdefinitions",
            {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterDefinition",
                "metadata": {"name": cluster_id.replace("_", "-"), "namespace": namespace},
                "spec": {"cluster_id": cluster_id, "execution_config": config},
            },
            namespace,
        )  # fmt: skip

    def mark(self) -> None:
        """Forget the gateway's requests so far (gateway_requests starts from here)."""
        self.audit_start = self.kube.audit.mark()

    def gateway_requests(self) -> list[AuditEntry]:
        """What the gateway asked of the apiserver since the last mark (from its audit log)."""
        self.kube.sync_audit()
        user = user_of(GATEWAY_ACCOUNT)
        return [e for e in self.kube.audit.entries(self.audit_start) if e.user == user]


def exchange(url: str, data: bytes, sock: socket.socket | None = None) -> bytes:
    """Send hand-made bytes (no client library smoothing them over) and read until the
    server closes the connection; socket.timeout if it has not within 10 s."""
    if sock is None:
        host, port = url.removeprefix("http://").split(":")
        sock = socket.create_connection((host, int(port)), timeout=10)
    with sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 30.0, what: str = "a condition"
) -> None:
    """Await check() until it is true (async checks, e.g. an HTTP call to the gateway app)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


def fields(response: httpx.Response) -> set[str]:
    """The `field`s a 422 body names."""
    assert response.status_code == 422, response.text
    return {problem["field"] for problem in response.json()["detail"]}


class ServedGateway:
    """The gateway served by uvicorn (`serve_gateway`) on a thread of its own with its
    own event loop, for synchronous clients (schemathesis, httpx).

    `run(fn)` calls `fn()` on that loop's thread.
    """

    def __init__(self, kube: LocalKube, **settings: Any) -> None:
        self.kube = kube
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
        async with Gateway(self.kube, **self.settings) as gateway:
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

    def headers(self, owner: str = "alice", namespace: str | None = None) -> dict[str, str]:
        assert self.gateway is not None
        return self.gateway.headers(owner, namespace)
