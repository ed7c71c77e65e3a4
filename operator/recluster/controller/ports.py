"""The reconciler's effects, behind narrow ports: the Kubernetes API and the collection store.

Like the CronJob controller's `jobControlInterface`: every write the
reconciler makes goes through `ClusterPort`, every store call through
`StorePort`; `fakes.py` holds the in-memory implementations the unit tests
use, this module the real ones.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import aiohttp

from ..api.trigger import GROUP_VERSION
from ..core.rayjobs import RAY_API_VERSION, RAYJOB_RESOURCE
from ..kube.client import KubeClient
from ..kube.paths import JSON, MERGE_PATCH, resource_path

if TYPE_CHECKING:  # numpy and the stores load only where a trigger needs the store
    from ..core.drift import Measurement
    from ..store.base import CollectionStore

T = TypeVar("T")
EVENT_SOURCE = "recluster-operator"
DEFAULT_STORE_WORKERS = 4


class ClusterPort(Protocol):
    """Every Kubernetes write of the reconciler (reads come from the caches)."""

    async def create_job(self, job: Mapping[str, Any]) -> bool:
        """Create the Job; False when one of that name exists (it is adopted)."""

    async def delete_job(self, namespace: str, name: str, uid: str | None) -> None:
        """Delete the Job and its pods (background); a gone or replaced one is fine."""

    async def create_rayjob(self, rayjob: Mapping[str, Any]) -> bool:
        """Create the RayJob (runtime ray); False when one of that name exists (adopted)."""

    async def delete_rayjob(self, namespace: str, name: str, uid: str | None) -> None:
        """Delete the RayJob (KubeRay deletes its RayCluster); a gone one is fine."""

    async def write_status(
        self, namespace: str, name: str, patch: Mapping[str, Any], resource_version: str
    ) -> JSON:
        """Merge-patch the trigger's status if it is still at resource_version (else 409)."""

    async def read_trigger(self, namespace: str, name: str) -> JSON | None:
        """The trigger as the API has it now (after a conflict)."""

    async def remove_finalizers(
        self, namespace: str, name: str, keep: Sequence[str], resource_version: str
    ) -> JSON:
        """Set metadata.finalizers to `keep` if the object is still at resource_version."""

    async def post_event(
        self, trigger: Mapping[str, Any], type_: str, reason: str, message: str, at: datetime
    ) -> None:
        """A core/v1 Event about the trigger."""


class StorePort(Protocol):
    """The store calls of event and conditional triggers."""

    async def count(self, namespace: str, collection: str) -> int:
        """Documents in a collection."""

    async def measure(
        self, namespace: str, collections: Sequence[str], metric: str, seed: int
    ) -> Measurement | None:
        """The metric against the last run's baseline; None when there is no baseline."""

    async def run_summary(self, namespace: str, run_id: str) -> dict[str, Any] | None:
        """The summary a committed run wrote (a RayJob's outcome); None if there is none."""

    async def prepare_namespace(self, namespace: str) -> None:
        """Before a Job of `namespace` mounts its directory of a store on a volume: the
        directory exists, made by the operator's user, which is the Jobs' (the kubelet
        would make a missing sub-path as root, unwritable to the Jobs' non-root user)."""


class SecretPort(Protocol):
    """Reads one key of a Secret (webhook signing keys); nothing else of Secrets."""

    async def read_key(self, namespace: str, name: str, key: str) -> bytes:
        """The key's value; SecretUnavailable (its message says why, never the value)."""


class WebhookPort(Protocol):
    """One HTTP POST of a webhook delivery."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        """The answer's status code; DeliveryError with a short reason when there is none."""


class SecretUnavailable(Exception):
    """The signing key cannot be read; the message is a short reason for status."""


class DeliveryError(Exception):
    """No HTTP answer (timeout, connection refused, TLS); the message is a short reason."""


class KubeSecrets:
    """SecretPort on the real API: a GET of the one Secret (the operator may not list them)."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    async def read_key(self, namespace: str, name: str, key: str) -> bytes:
        from ..kube.errors import KubeError

        try:
            secret = await self.client.request(
                "GET", resource_path("v1", "secrets", namespace, name)
            )
        except KubeError as exc:
            if exc.status == 404:
                raise SecretUnavailable(f"Secret {namespace}/{name} not found") from None
            if exc.status == 403:
                raise SecretUnavailable(
                    f"the operator may not read Secret {namespace}/{name}"
                ) from None
            raise SecretUnavailable(
                f"cannot read Secret {namespace}/{name}: HTTP {exc.status}"
            ) from None
        value = (secret.get("data") or {}).get(key)
        if not value:
            raise SecretUnavailable(f"Secret {namespace}/{name} has no key {key!r}")
        return base64.b64decode(value)


class HttpWebhooks:
    """WebhookPort over aiohttp: one session, redirects not followed, answers not read."""

    def __init__(self, user_agent: str = "recluster-operator") -> None:
        self.user_agent = user_agent
        self.session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        if self.session is None:
            self.session = aiohttp.ClientSession(headers={"User-Agent": self.user_agent})
        try:
            async with self.session.post(
                url, data=body, headers=dict(headers), allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:  # fmt: skip
                return response.status
        except TimeoutError:
            raise DeliveryError(f"no answer within {timeout:g}s (timeout)") from None
        except aiohttp.ClientConnectorCertificateError:
            raise DeliveryError("cannot connect: TLS certificate not trusted") from None
        except aiohttp.ClientConnectorError as exc:
            raise DeliveryError(f"cannot connect: {_connect_reason(exc.os_error)}") from None
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"HTTP error: {type(exc).__name__}") from None

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


def _connect_reason(error: OSError) -> str:
    """A short reason for a failed connection (without addresses or library text)."""
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return "host name not resolved"
    if isinstance(error, ssl.SSLError):
        return f"TLS error ({error.reason or 'handshake failed'})"
    return error.strerror or type(error).__name__


class KubeCluster:
    """ClusterPort on the real API."""

    def __init__(self, client: KubeClient, instance: str = "") -> None:
        self.client = client
        self.instance = instance

    async def create_job(self, job: Mapping[str, Any]) -> bool:
        return await self.client.create(job)

    async def delete_job(self, namespace: str, name: str, uid: str | None) -> None:
        await self.client.delete("batch/v1", "jobs", namespace, name, uid=uid)

    async def create_rayjob(self, rayjob: Mapping[str, Any]) -> bool:
        return await self.client.create(rayjob)

    async def delete_rayjob(self, namespace: str, name: str, uid: str | None) -> None:
        await self.client.delete(RAY_API_VERSION, RAYJOB_RESOURCE, namespace, name, uid=uid)

    async def write_status(
        self, namespace: str, name: str, patch: Mapping[str, Any], resource_version: str
    ) -> JSON:
        return await self.client.patch_status(
            GROUP_VERSION, "clustertriggers", namespace, name, patch, resource_version
        )

    async def read_trigger(self, namespace: str, name: str) -> JSON | None:
        path = resource_path(GROUP_VERSION, "clustertriggers", namespace, name)
        from ..kube.errors import KubeError

        try:
            return await self.client.request("GET", path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def remove_finalizers(
        self, namespace: str, name: str, keep: Sequence[str], resource_version: str
    ) -> JSON:
        path = resource_path(GROUP_VERSION, "clustertriggers", namespace, name)
        body = {"metadata": {"finalizers": list(keep) or None,
                             "resourceVersion": resource_version}}  # fmt: skip
        return await self.client.request("PATCH", path, body, content_type=MERGE_PATCH)

    async def post_event(
        self, trigger: Mapping[str, Any], type_: str, reason: str, message: str, at: datetime
    ) -> None:
        meta = trigger["metadata"]
        stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": GROUP_VERSION, "kind": "ClusterTrigger", "name": meta["name"],
                "namespace": meta["namespace"], "uid": meta["uid"],
            },
            "type": type_, "reason": reason, "message": message[:1024],
            "source": {"component": EVENT_SOURCE},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "reportingComponent": "recluster.io/operator", "reportingInstance": self.instance,
        }  # fmt: skip
        await self.client.request("POST", resource_path("v1", "events", meta["namespace"]), body)


def pin_blas_to_one_thread() -> Any:
    """Set BLAS to one thread for the whole process; returns what `unpin_blas_threads` undoes.

    numpy is loaded first: threadpoolctl can only limit a BLAS that is loaded.
    threadpoolctl lets one thread at a time set an OpenBLAS limit (others are
    silently ignored), so control is taken and released around the call: the
    limit must hold whichever thread made the store.
    """
    import numpy  # noqa: F401
    from threadpoolctl import (  # type: ignore[import-untyped]
        OpenBLASController,
        threadpool_limits,
    )

    OpenBLASController.clear_controlling_thread(force=True)
    limits = threadpool_limits(limits=1, user_api="blas")
    OpenBLASController.clear_controlling_thread(force=True)
    return limits


def unpin_blas_threads(limits: Any) -> None:
    """Give the process back the BLAS threads `pin_blas_to_one_thread` took, from any thread."""
    from threadpoolctl import OpenBLASController

    OpenBLASController.clear_controlling_thread(force=True)
    limits.restore_original_limits()
    OpenBLASController.clear_controlling_thread(force=True)


class ThreadedStore:
    """StorePort on a real store: blocking calls in a bounded pool of threads.

    Each thread opens its own store (connections are not shared between
    threads), so at most `workers` store calls run at once, whichever
    triggers they are for: a slow drift measurement holds one thread, not
    every event poll.

    Rule: while the pool exists, BLAS runs on one thread in this process.
    Drift measurements multiply rows by centroids (numpy, OpenBLAS) on
    several pool threads at once, and OpenBLAS's threaded server deadlocks
    under concurrent callers: a caller spins in ``exec_blas`` forever on a
    worker that never answers (``make test``'s dev-system test hung so in
    sessions 5 and 6, the store thread after 180-600 s of CPU;
    ``benchmarks/bench_blas_threads.py`` stalled in 1 of 3 runs of 120 s at
    OpenBLAS's defaults, never with one BLAS thread). With one thread per
    call OpenBLAS never enters its server; the products are a sample × K,
    small enough for one core. The limit is set when the store is made,
    before the pool has a thread (`pin_blas_to_one_thread`), since changing
    it under a running call is itself a race; `close` restores it once the
    threads are gone. This loads numpy when the operator starts instead of
    at its first drift check.
    """

    def __init__(
        self,
        uri: str,
        workers: int = DEFAULT_STORE_WORKERS,
        opener: Callable[[str], CollectionStore] | None = None,
    ) -> None:
        self.uri = uri
        self.opener = opener
        self.blas_limits = (
            pin_blas_to_one_thread()
        )  # before any pool thread exists: the class's rule
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="store")
        self.local = threading.local()
        self.opened: list[CollectionStore] = []
        self.lock = threading.Lock()

    def _store(self) -> CollectionStore:
        store: CollectionStore | None = getattr(self.local, "store", None)
        if store is None:
            if self.opener is None:
                from ..store.factory import open_store

                self.opener = open_store
            store = self.opener(self.uri)
            self.local.store = store
            with self.lock:
                self.opened.append(store)
        return store

    async def _run(self, fn: Callable[[CollectionStore], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, lambda: fn(self._store()))

    async def count(self, namespace: str, collection: str) -> int:
        return await self._run(lambda s: s.count(namespace, collection))

    async def measure(
        self, namespace: str, collections: Sequence[str], metric: str, seed: int
    ) -> Measurement | None:
        from ..drift_check import check

        return await self._run(lambda s: check(s, namespace, list(collections), metric, seed))

    async def run_summary(self, namespace: str, run_id: str) -> dict[str, Any] | None:
        from ..store.errors import RunNotFound

        def read(store: CollectionStore) -> dict[str, Any] | None:
            try:
                return store.run_summary(namespace, run_id)
            except RunNotFound:
                return None

        return await self._run(read)

    async def prepare_namespace(self, namespace: str) -> None:
        from ..store.factory import local_path
        from ..store.types import check_id

        root = local_path(self.uri)
        if root is None:
            return
        directory = os.path.join(root, check_id("namespace", namespace))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.pool, lambda: os.makedirs(directory, exist_ok=True))

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        with self.lock:
            for store in self.opened:
                store.close()
            self.opened.clear()
            if self.blas_limits is not None:  # no pool thread is left to be in a BLAS call
                unpin_blas_threads(self.blas_limits)
                self.blas_limits = None
