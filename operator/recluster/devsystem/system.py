"""`recluster dev`: emulated API + operator + local Job executor + sample data, one process.

Everything a cluster would do runs here for real, except that Jobs run as
local processes: the operator is the production code, talking HTTP to the
emulated API, and `recluster run-job` is what a Job pod would run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf

from ..api.crd import all_crds
from ..controller.kube import KubeClient
from ..controller.runtime import run_operator
from ..controller.settings import Settings
from ..emulator.cluster import EmulatedCluster
from ..gateway.app import create_app
from ..gateway.keys import make_api_key_secret
from ..gateway.server import serve_gateway
from ..gateway.settings import GatewaySettings
from ..manifests import load_documents
from ..store.factory import open_store
from .executor import LocalJobExecutor
from .feeder import DocumentFeeder, FeedPace
from .sample import ensure_sample
from .table import render

log = logging.getLogger(__name__)
NAMESPACE = "default"


EVENT_COLLECTION = "col_products"


def shorten(body: dict[str, Any]) -> dict[str, Any]:
    """The example with schedules short enough to see results within a minute.

    The event and cron examples are moved to another collection than the
    conditional one: their runs would otherwise refresh the baseline the drift
    example measures against, and drift would not accumulate.
    """
    if body.get("kind") != "ClusterTrigger":
        return body
    spec = body["spec"]
    schedule = spec["schedule_config"]
    kind = spec["trigger_type"]
    if kind == "cron":
        schedule["cron_expression"] = "*/2 * * * *"
        if "execution_config" in spec:
            spec["execution_config"]["collection_ids"] = [EVENT_COLLECTION]
    elif kind == "interval":
        schedule.update(interval_seconds=30, start_immediately=True)
    elif kind == "event":
        schedule.update(
            event_threshold=min(schedule["event_threshold"], 50),
            cooldown_seconds=30,
            collection_id=EVENT_COLLECTION,
        )
        if "execution_config" in spec:
            spec["execution_config"]["collection_ids"] = [EVENT_COLLECTION]
    elif kind == "conditional":
        schedule["check_interval_seconds"] = 15
    return body


def collections_of(bodies: list[dict[str, Any]]) -> list[str]:
    found: set[str] = set()
    for body in bodies:
        spec = body.get("spec") or {}
        found.update((spec.get("execution_config") or {}).get("collection_ids") or [])
        if cid := (spec.get("schedule_config") or {}).get("collection_id"):
            found.add(cid)
    return sorted(found)


class OperatorThread:
    """The operator in a thread of its own, with its own event loop, as in a separate process.

    kopf owns the loop it runs in: it cancels tasks it did not start when it
    stops, and handles signals in the main thread. Here the main loop serves
    the emulated API, the gateway and the table, and decides about signals.
    """

    def __init__(self, url: str, settings: Settings) -> None:
        self.url, self.settings = url, settings
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._main, name="operator", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        async def body() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            ready = asyncio.Event()
            client = KubeClient(
                kopf.ConnectionInfo(server=self.url, insecure=True), keep_alive=False
            )
            waiter = asyncio.create_task(self._signal_ready(ready))
            try:
                await run_operator(self.settings, client, stop_flag=self._stop, ready_flag=ready)
            finally:
                waiter.cancel()
                await client.close()

        asyncio.run(body())

    async def _signal_ready(self, ready: asyncio.Event) -> None:
        await ready.wait()
        self.ready.set()

    async def wait_ready(self, timeout: float) -> None:
        if not await asyncio.to_thread(self.ready.wait, timeout):
            raise TimeoutError("the operator did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def join(self, timeout: float) -> None:
        await asyncio.to_thread(self.thread.join, timeout)


class DevSystem:
    """The pieces of `recluster dev`, started and stopped together."""

    def __init__(
        self,
        workdir: Path,
        examples: Path,
        port: int = 0,
        gateway_port: int | None = 8080,
        feed: FeedPace | None = None,
    ) -> None:
        self.workdir = workdir.resolve()
        self.examples = examples
        self.port = port
        self.gateway_port = gateway_port
        self.gateway_url: str | None = None
        self.feed = feed or FeedPace()
        self.api_key_file = self.workdir / "api-key"
        self.store_uri = str(self.workdir / "store")
        self.kubeconfig = self.workdir / "kubeconfig"
        self.cluster = EmulatedCluster(port=port)
        self.cluster.install_crds(all_crds().values())

    def bodies(self) -> list[dict[str, Any]]:
        documents = load_documents([self.examples])
        return [
            shorten(dict(d.body))
            for d in documents
            if d.kind in ("ClusterTrigger", "ClusterDefinition")
        ]

    def load_samples(self, bodies: list[dict[str, Any]]) -> dict[str, int]:
        store = open_store(self.store_uri)
        try:
            return {cid: ensure_sample(store, NAMESPACE, cid) for cid in collections_of(bodies)}
        finally:
            store.close()

    async def run(
        self,
        stop: asyncio.Event,
        show: Callable[[str], None] | None = None,
        refresh: float = 2.0,
    ) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        bodies = self.bodies()
        counts = self.load_samples(bodies)
        os.environ["RECLUSTER_STORE_URI"] = self.store_uri
        async with self.cluster:
            self.cluster.write_kubeconfig(self.kubeconfig)
            print(f"emulated Kubernetes API at {self.cluster.url}", flush=True)
            print(f"kubeconfig: {self.kubeconfig}", flush=True)
            print(f"store: {self.store_uri} ({counts})", flush=True)
            settings = Settings(
                image="recluster:dev",
                store_uri=self.store_uri,
                max_sleep=5.0,
                event_poll_seconds=2.0,
            )
            operator = OperatorThread(self.cluster.url, settings)
            executor = LocalJobExecutor(self.cluster, workdir=self.workdir)
            executing = asyncio.create_task(executor.run(stop))
            feed_store = open_store(self.store_uri)
            feeder = DocumentFeeder(feed_store, NAMESPACE, sorted(counts), self.feed)
            feeding = asyncio.create_task(feeder.run(stop))
            serving = None
            if self.gateway_port is not None:
                serving = await self.start_gateway(stop)
            try:
                await operator.wait_ready(30)
                for body in sorted(bodies, key=lambda b: b["kind"] != "ClusterDefinition"):
                    self.cluster.apply(body, namespace=NAMESPACE)
                while not stop.is_set():
                    if show is not None:
                        triggers = self.cluster.objects(
                            "recluster.io", "v1alpha1", "clustertriggers", NAMESPACE
                        )
                        show(render(triggers))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), refresh)
            finally:
                stop.set()
                operator.stop()
                await executing
                await feeding
                feed_store.close()
                if serving is not None:
                    await serving
                await operator.join(30)

    async def start_gateway(self, stop: asyncio.Event) -> asyncio.Task[None]:
        """The REST gateway on localhost, with a dev API key bound to `default`."""
        key, secret = make_api_key_secret("dev", [NAMESPACE], name="recluster-dev-api-key")
        self.cluster.create("", "v1", "secrets", secret, namespace=NAMESPACE)
        self.api_key_file.write_text(key + "\n")
        self.api_key_file.chmod(0o600)
        client = KubeClient(
            kopf.ConnectionInfo(server=self.cluster.url, insecure=True),
            "recluster-gateway",
            keep_alive=False,
        )
        app = create_app(GatewaySettings(keys_namespace=NAMESPACE), client)
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def serve() -> None:
            try:
                await serve_gateway(
                    app, "127.0.0.1", self.gateway_port or 0, stop,
                    on_ready=ready.set_result, log_level="warning", access_log=False,
                )  # fmt: skip
            finally:
                await client.close()

        task = asyncio.create_task(serve())
        port = await asyncio.wait_for(ready, 30)
        self.gateway_url = f"http://127.0.0.1:{port}"
        print(f"REST gateway: {self.gateway_url} (API key in {self.api_key_file})", flush=True)
        return task

    def cluster_triggers(self) -> list[dict[str, Any]]:
        return [
            dict(t)
            for t in self.cluster.objects("recluster.io", "v1alpha1", "clustertriggers", NAMESPACE)
        ]


async def _stop_when_orphaned(stop: asyncio.Event) -> None:
    """Stop when the parent goes away (`timeout make dev` signals make, not us)."""
    parent = os.getppid()
    while not stop.is_set():
        await asyncio.sleep(1)
        if os.getppid() != parent:
            stop.set()


def run_dev(
    workdir: Path,
    examples: Path,
    duration: float | None,
    port: int = 0,
    gateway_port: int | None = 8080,
) -> int:
    """Run until Ctrl-C (or `duration` seconds); print the trigger table as it changes."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    system = DevSystem(workdir, examples, port, gateway_port)
    interactive = sys.stdout.isatty()
    started = time.monotonic()

    def show(table: str) -> None:
        elapsed = int(time.monotonic() - started)
        header = f"recluster dev: {elapsed}s (Ctrl-C to stop); kubeconfig {system.kubeconfig}"
        if interactive:
            sys.stdout.write("\x1b[2J\x1b[H")
        print(f"{header}\n{table}\n", flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if duration is not None:
            loop.call_later(duration, stop.set)
        orphaned = asyncio.create_task(_stop_when_orphaned(stop))
        await system.run(stop, show)
        orphaned.cancel()

    asyncio.run(main())
    print("stopped; results are in", system.store_uri)
    return 0
