"""`recluster dev`: a real local control plane, the operator, the gateway and sample data.

Everything runs for real: etcd, kube-apiserver, controller-manager and
scheduler (recluster.localkube, built on first use), the node agent running
each Job's pod as a local `recluster run-job` process, the operator (the
production code, in a thread of its own) and the REST gateway. Only the
kubelet and container images are replaced (docs/localkube.md says how).
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

from ..api.trigger import GROUP_VERSION
from ..controller.runtime import run_operator
from ..controller.settings import Settings
from ..gateway.app import create_app
from ..gateway.keys import make_api_key_secret
from ..gateway.server import serve_gateway
from ..gateway.settings import GatewaySettings
from ..kube.client import KubeClient
from ..kube.credentials import Credentials
from ..kube.errors import KubeError
from ..kube.paths import MERGE_PATCH, resource_path
from ..kube.sync import KubeApi
from ..localkube.controlplane import ControlPlane
from ..localkube.nodeagent import AgentConfig, NodeAgent
from ..localkube.pki import ADMIN
from ..localkube.podman import PodmanRuntime
from ..localkube.runtime import PodRuntime, ProcessRuntime
from ..localkube.setup import install_crds
from ..manifests import load_documents
from ..report.locate import NoReport, pick_run
from ..store.artifacts import MAP_PNG
from ..store.factory import open_store
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


PLURALS = {"ClusterTrigger": "clustertriggers", "ClusterDefinition": "clusterdefinitions"}
NODE = "dev-node"
IMAGE = "recluster:dev"
CONTAINER_IMAGE = "localhost/recluster:dev"
"""What `make image` builds, for the container runtime (podman's local store)."""
RUNTIMES = ("process", "container")
CONTAINER_USER = 10001
"""The image's user (Dockerfile USER): Jobs in containers write the store as this user."""
JOB_STORE_PATH = "/var/lib/recluster/store"
"""Where the chart mounts a Parquet store (values.yaml store.parquet.path)."""
"""Any tag of the Recluster image runs as a local process on the node agent."""


def admin_credentials(plane: ControlPlane) -> Credentials:
    """The admin kubeconfig's credentials (the operator and gateway of `recluster dev`)."""
    return Credentials.from_kubeconfig(plane.admin_kubeconfig)


class OperatorThread:
    """The operator in a thread of its own, with its own event loop, as in a separate process.

    As in production, the operator has an event loop to itself: its timers
    and watches never wait behind the gateway or the table, which the main
    loop serves, deciding about signals too.
    """

    def __init__(self, credentials: Credentials, settings: Settings) -> None:
        self.credentials, self.settings = credentials, settings
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._main, name="operator", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        async def body() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            ready = asyncio.Event()
            client = KubeClient(self.credentials, keep_alive=False)
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
    """The pieces of `recluster dev`: `start_cluster()`, `run()`, then `stop_cluster()`.

    The cluster starts and stops on the calling thread (the main thread: its
    processes then die with this one, see localkube/processes.py); `run()` is
    the asynchronous rest.
    """

    def __init__(
        self,
        workdir: Path,
        examples: Path,
        gateway_port: int | None = 8080,
        feed: FeedPace | None = None,
        *,
        keep: bool = True,
        progress: Callable[[str], None] | None = None,
        runtime: str = "process",
    ) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime: {runtime!r} is not one of {', '.join(RUNTIMES)}")
        self.runtime = runtime
        self.image = CONTAINER_IMAGE if runtime == "container" else IMAGE
        self.workdir = workdir.resolve()
        self.examples = examples
        self.gateway_port = gateway_port
        self.gateway_url: str | None = None
        self.feed = feed or FeedPace()
        self.api_key_file = self.workdir / "api-key"
        self.store_uri = str(self.workdir / "store")
        self.kubeconfig = self.workdir / "kubeconfig"
        self.say = progress or (lambda line: print(line, flush=True))
        self.plane = ControlPlane(self.workdir / "control-plane", keep=keep, progress=self.say)
        self.agent: NodeAgent | None = None
        self.api: KubeApi | None = None

    # -- the cluster -------------------------------------------------------------------

    def start_cluster(self) -> None:
        """Start the control plane and the node agent (PodmanUnavailable, ImageUnavailable:
        container mode without podman or without the image, before anything starts)."""
        if self.runtime == "container":
            PodmanRuntime(NODE).image_user(self.image)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.plane.start()
        try:
            self.plane.kubeconfig(self.kubeconfig, ADMIN, namespace=NAMESPACE)
            self.api = KubeApi.from_kubeconfig(self.kubeconfig, "recluster-dev")
            node_api = KubeApi.from_kubeconfig(self.plane.node_kubeconfig(NODE), "node-agent")
            config = AgentConfig(
                NODE, self.workdir / "node", apiserver_port=self.plane.ports["apiserver"]
            )
            runtime: PodRuntime = (
                PodmanRuntime(NODE, owner=str(config.workdir))
                if self.runtime == "container"
                else ProcessRuntime()
            )
            self.agent = NodeAgent(node_api, runtime, config).start()
            install_crds(self.api)
        except BaseException:
            self.stop_cluster()
            raise

    def stop_cluster(self) -> None:
        if self.agent is not None:
            self.agent.stop()
        if self.api is not None:
            self.api.close()
        self.plane.stop()

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

    def apply(self, body: dict[str, Any]) -> None:
        """Create the object, or merge it into the one a previous run left."""
        assert self.api is not None
        plural = PLURALS[str(body["kind"])]
        collection = resource_path(GROUP_VERSION, plural, NAMESPACE)
        try:
            self.api.request("POST", collection, body)
        except KubeError as exc:
            if exc.status != 409:
                raise
            path = resource_path(GROUP_VERSION, plural, NAMESPACE, body["metadata"]["name"])
            self.api.request("PATCH", path, body, content_type=MERGE_PATCH)

    def cluster_triggers(self) -> list[dict[str, Any]]:
        assert self.api is not None
        path = resource_path(GROUP_VERSION, "clustertriggers", NAMESPACE)
        return list(self.api.request("GET", path).get("items") or [])

    # -- everything else ---------------------------------------------------------------

    async def run(
        self,
        stop: asyncio.Event,
        show: Callable[[str], None] | None = None,
        refresh: float = 2.0,
    ) -> None:
        bodies = self.bodies()
        counts = await asyncio.to_thread(self.load_samples, bodies)
        self.say(f"kubeconfig: {self.kubeconfig}")
        self.say(f"  kubectl --kubeconfig {self.kubeconfig} get clustertriggers")
        self.say(f"store: {self.store_uri} ({counts})")
        if self.runtime == "container":
            await asyncio.to_thread(share_with_containers, Path(self.store_uri))
        settings = Settings(
            image=self.image,
            store_uri=self.store_uri,
            # Jobs mount the store where the chart puts it: the host directory, by hostPath
            job_store_uri=JOB_STORE_PATH,
            job_volumes=[{"name": "store",
                          "hostPath": {"path": self.store_uri, "type": "Directory"}}],
            job_volume_mounts=[{"name": "store", "mountPath": JOB_STORE_PATH}],
            # each Job sees only its namespace's directory of it (docs/security.md)
            job_store_volume="store",
            max_sleep=5.0,
            event_poll_seconds=2.0,
        )  # fmt: skip
        operator = OperatorThread(admin_credentials(self.plane), settings)
        feed_store = open_store(self.store_uri)
        feeder = DocumentFeeder(feed_store, NAMESPACE, sorted(counts), self.feed)
        feeding = asyncio.create_task(feeder.run(stop))
        serving = None
        try:
            if self.gateway_port is not None:
                serving = await self.start_gateway(stop)
            await operator.wait_ready(60)
            for body in sorted(bodies, key=lambda b: b["kind"] != "ClusterDefinition"):
                await asyncio.to_thread(self.apply, body)
            while not stop.is_set():
                if show is not None:
                    triggers = await asyncio.to_thread(self.cluster_triggers)
                    show(render(triggers, maps=self.latest_maps(triggers)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), refresh)
        finally:
            stop.set()
            operator.stop()
            await feeding
            feed_store.close()
            if serving is not None:
                await serving
            await operator.join(30)

    def latest_maps(self, triggers: list[dict[str, Any]]) -> dict[str, str]:
        """Trigger name -> file URI of its newest succeeded run's map, where one exists."""
        maps = {}
        for trigger in triggers:
            try:
                run = pick_run(trigger)
            except NoReport:
                continue
            path = Path(self.store_uri) / NAMESPACE / "runs" / run / "artifacts" / MAP_PNG
            if path.is_file():
                maps[str(trigger["metadata"]["name"])] = path.resolve().as_uri()
        return maps

    async def start_gateway(self, stop: asyncio.Event) -> asyncio.Task[None]:
        """The REST gateway on localhost, with a dev API key bound to `default`."""
        assert self.api is not None
        key, secret = make_api_key_secret("dev", [NAMESPACE], name="recluster-dev-api-key")
        path = resource_path("v1", "secrets", NAMESPACE, "recluster-dev-api-key")
        await asyncio.to_thread(self._replace, path, secret)
        self.api_key_file.write_text(key + "\n")
        self.api_key_file.chmod(0o600)
        client = KubeClient(admin_credentials(self.plane), "recluster-gateway", keep_alive=False)
        settings = GatewaySettings(keys_namespace=NAMESPACE, store_uri=self.store_uri)
        app = create_app(settings, client)
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
        self.say(f"REST gateway: {self.gateway_url} (API key in {self.api_key_file})")
        return task

    def _replace(self, path: str, body: dict[str, Any]) -> None:
        """A fresh key each run: the old Secret goes, the new one is created."""
        assert self.api is not None
        with contextlib.suppress(KubeError):
            self.api.request("DELETE", path)
        self.api.request("POST", path.rsplit("/", 1)[0], body)


async def _stop_when_orphaned(stop: asyncio.Event) -> None:
    """Stop when the parent goes away (`timeout make dev` signals make, not us)."""
    parent = os.getppid()
    while not stop.is_set():
        await asyncio.sleep(1)
        if os.getppid() != parent:
            stop.set()


def share_with_containers(store: Path) -> None:
    """The store, owned by the image's user: Jobs in containers write their results there.

    This process (root) still writes it; the image's user (10001) could not
    write a directory of root's (a hostPath volume keeps the host's owners).
    """
    for path in (store, *store.rglob("*")):
        os.chown(path, CONTAINER_USER, CONTAINER_USER, follow_symlinks=False)


def run_dev(
    workdir: Path,
    examples: Path,
    duration: float | None,
    gateway_port: int | None = 8080,
    runtime: str = "process",
) -> int:
    """Run until Ctrl-C (or `duration` seconds); print the trigger table as it changes."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    system = DevSystem(workdir, examples, gateway_port, runtime=runtime)
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

    # the cluster's processes belong to the main thread (they die with it, even on kill -9)
    system.start_cluster()
    try:
        asyncio.run(main())
    finally:
        system.stop_cluster()
    print("stopped; results are in", system.store_uri)
    return 0
