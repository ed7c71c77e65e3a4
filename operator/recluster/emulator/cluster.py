"""Running the emulated API: an HTTP server on localhost plus in-process accessors.

``EmulatedCluster`` is what tests and ``recluster dev`` use. Over HTTP it is a
Kubernetes API for kopf, kubectl or any client (no TLS; tokens are accepted, recorded
in the audit log, and never checked). In process, tests read and write objects directly
to play the controllers that do not exist here (e.g. the Job controller). The in-process
methods must be called on the thread of the event loop that serves the API.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp.web
import yaml

from .audit import AuditLog
from .crds import ResourceDefinition, definitions_from_crd, load_crd_documents
from .handler import EmulatorHandler
from .store import ApiError, Body, DeleteOptions, Store

T = TypeVar("T")


class EmulatedCluster:
    """An in-process Kubernetes API emulator served over HTTP on 127.0.0.1.

    Use as ``async with EmulatedCluster(crds=[...]) as cluster:``; ``cluster.url`` is
    the server and ``cluster.write_kubeconfig(path)`` writes a kubeconfig for it.
    """

    def __init__(
        self,
        *,
        crds: Iterable[str | Path] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        garbage_collection: bool = True,
        strict_namespaces: bool = True,
        bookmark_interval: float = 5.0,
        event_history: int = 10_000,
        shutdown_timeout: float = 1.0,
        tokens: Mapping[str, str] | None = None,
    ) -> None:
        self.store = Store(
            garbage_collection=garbage_collection,
            strict_namespaces=strict_namespaces,
            event_history=event_history,
        )
        self.handler = EmulatorHandler(
            store=self.store, bookmark_interval=bookmark_interval, tokens=dict(tokens or {})
        )
        self._host = host
        self._port = port
        self._shutdown_timeout = shutdown_timeout
        self._runner: aiohttp.web.ServerRunner | None = None
        self.register_crds(*crds)

    # -- Lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("The emulated cluster is already running.")
        await self.handler.__aenter__()
        server = aiohttp.web.Server(self.handler, handler_cancellation=True)
        runner = aiohttp.web.ServerRunner(server, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        site = aiohttp.web.SockSite(runner, sock)
        await site.start()
        self._port = sock.getsockname()[1]
        self._runner = runner

    async def stop(self) -> None:
        """End all watch streams first, so the server has no long request to wait for."""
        if self._runner is None:
            return
        self.store.close_watches()
        await asyncio.sleep(0)
        runner, self._runner = self._runner, None
        await runner.cleanup()
        await self.handler.__aexit__(None, None, None)

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        if self._runner is None:
            raise RuntimeError("The emulated cluster is not running.")
        return f"http://{self._host}:{self._port}"

    # -- Configuration -------------------------------------------------------------------

    def register(self, defn: ResourceDefinition) -> None:
        """Serve one more resource (discovery included)."""
        self.handler.register(defn)

    def register_crds(self, *paths: str | Path) -> list[ResourceDefinition]:
        """Install the CRDs of the files or directories given, as ``kubectl apply`` would.

        The CRD objects are stored (kopf and kubectl list them) and their resources served.
        """
        return self.install_crds(load_crd_documents(paths))

    def install_crds(self, documents: Iterable[Mapping[str, Any]]) -> list[ResourceDefinition]:
        """Install CRD objects given as dicts (e.g. generated from the models)."""
        crd_defn = self.definition("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        definitions: list[ResourceDefinition] = []
        for doc in documents:
            name = str((doc.get("metadata") or {}).get("name"))
            if self.get(crd_defn.group, crd_defn.version, crd_defn.plural, name) is None:
                self.store.create(crd_defn, None, doc)  # registers through the store's hook
            definitions.extend(definitions_from_crd(doc))
        return definitions

    def add_token(self, token: str, user: str) -> None:
        """Name the user a bearer token stands for in the audit log."""
        self.handler.tokens[token] = user

    def write_kubeconfig(
        self,
        path: str | Path,
        *,
        token: str | None = None,
        user: str = "emulator-admin",
        namespace: str = "default",
        context: str = "recluster-emulator",
    ) -> Path:
        """A kubeconfig for this server (no TLS); kopf finds it via ``KUBECONFIG``."""
        if token is not None:
            self.add_token(token, user)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": user, "user": {"token": token} if token else {}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": context, "user": user, "namespace": namespace},
                }
            ],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    # -- Observation ---------------------------------------------------------------------

    @property
    def audit(self) -> AuditLog:
        return self.handler.audit

    @property
    def internal_errors(self) -> list[Exception]:
        """Exceptions inside the emulator itself (answered as 500); tests assert none."""
        return [*self.handler.internal_errors, *self.store.internal_errors]

    @property
    def resource_version(self) -> int:
        return self.store.resource_version

    async def wait_for(
        self, condition: Callable[[], T], timeout: float = 5.0, *, what: str = "a condition"
    ) -> T:
        """Re-check ``condition`` after every write (and every 0.1 s) until it is truthy."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = condition()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"Timed out after {timeout}s waiting for {what}.")
            await self.store.wait_for_change(min(remaining, 0.1))

    # -- In-process object access (to play controllers in tests) -------------------------

    def definition(self, group: str, version: str, plural: str) -> ResourceDefinition:
        return self.store.definition(group, version, plural)

    def objects(
        self, group: str, version: str, plural: str, namespace: str | None = None
    ) -> list[Body]:
        return self.store.objects(self.definition(group, version, plural), namespace)

    def get(
        self, group: str, version: str, plural: str, name: str, namespace: str | None = None
    ) -> Body | None:
        """The object, or ``None`` if it does not exist."""
        try:
            return self.store.get(self.definition(group, version, plural), namespace, name)
        except ApiError as e:
            if e.code == 404:
                return None
            raise

    def create(
        self,
        group: str,
        version: str,
        plural: str,
        body: Mapping[str, Any],
        namespace: str | None = None,
    ) -> Body:
        defn = self.definition(group, version, plural)
        if namespace is None and defn.namespaced:
            namespace = str((body.get("metadata") or {}).get("namespace") or "default")
        return self.store.create(defn, namespace, dict(body))

    def apply(self, body: Mapping[str, Any], namespace: str | None = None) -> Body:
        """Create the manifest's object, or merge its fields (not status) into the existing one."""
        defn = self.store.definition_for_kind(str(body.get("apiVersion")), str(body.get("kind")))
        meta = body.get("metadata") or {}
        if defn.namespaced:
            namespace = namespace or str(meta.get("namespace") or "default")
        existing = self.get(defn.group, defn.version, defn.plural, str(meta.get("name")), namespace)
        if existing is None or not meta.get("name"):
            return self.store.create(defn, namespace, dict(body))
        # Like a single-owner ``kubectl apply``: the manifest's content replaces the
        # object's (fields it drops go away), labels and annotations are merged.
        desired: Body = {k: v for k, v in existing.items() if k in ("metadata", "status")}
        desired.update({k: v for k, v in body.items() if k not in ("metadata", "status")})
        for what in ("labels", "annotations"):
            if meta.get(what):
                desired["metadata"][what] = {**existing["metadata"].get(what, {}), **meta[what]}
        return self.store.replace(defn, namespace, str(meta["name"]), desired)

    def patch(
        self,
        group: str,
        version: str,
        plural: str,
        name: str,
        patch: Mapping[str, Any],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> Body:
        """A merge patch, with the same rules as over HTTP."""
        return self.store.patch(
            self.definition(group, version, plural),
            namespace,
            name,
            dict(patch),
            content_type="application/merge-patch+json",
            subresource=subresource,
        )

    def patch_status(
        self,
        group: str,
        version: str,
        plural: str,
        name: str,
        status: Mapping[str, Any],
        namespace: str | None = None,
    ) -> Body:
        """Merge ``status`` into the object's status, as a controller does via ``/status``."""
        defn = self.definition(group, version, plural)
        subresource = "status" if "status" in defn.subresources else None
        return self.store.patch(
            defn,
            namespace,
            name,
            {"status": dict(status)},
            content_type="application/merge-patch+json",
            subresource=subresource,
        )

    def delete(
        self,
        group: str,
        version: str,
        plural: str,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
    ) -> Body:
        """Delete (or mark for deletion, if finalizers are present); returns the object."""
        defn = self.definition(group, version, plural)
        return self.store.delete(defn, namespace, name, DeleteOptions(propagation_policy))[0]

    def ensure_namespace(self, name: str) -> None:
        self.store.ensure_namespace(name)
