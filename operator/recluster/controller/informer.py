"""A list-and-watch cache of one kind of object, as client-go's informers keep one.

Rules:

1. The label selector is the server's: objects outside it never reach this
   process (a cluster's unrelated Pods and Jobs cost nothing here).
2. A watch resumes from the last resourceVersion it saw (an event or a
   bookmark). A 410 Gone, or a stream that cannot resume, lists again; the
   relist announces what disappeared meanwhile as deletions, so handlers see
   every change once the cache has it.
3. Handlers run in the event loop right after the cache changed, and only
   enqueue work (they must not block or await).
4. Objects are kept slimmed (`slim`): only what the reconciler reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import aiohttp

from ..kube.client import KubeClient
from ..kube.errors import KubeError
from ..kube.paths import JSON, resource_path

log = logging.getLogger(__name__)
Key = tuple[str, str]
"""(namespace, name)."""
Handler = Callable[[str, "JSON | None", "JSON | None"], None]
"""(ADDED | MODIFIED | DELETED, old object or None, new object or None)."""
WATCH_SECONDS = 300
RETRY_SECONDS = 1.0


def key_of(obj: JSON) -> Key:
    meta = obj["metadata"]
    return (str(meta.get("namespace") or ""), str(meta["name"]))


SHARED_VALUE_CHARS = 40
"""Short string values (reasons, types, times, enum values) repeat across objects too."""


def interned(value: Any) -> Any:
    """The same JSON with keys and short strings interned: cached objects share one copy.

    json.loads makes new strings for every object; 10,000 triggers would hold
    10,000 copies of "lastTransitionTime" (measured: 6.0 kB a trigger before,
    3.7 kB with keys interned).
    """
    if isinstance(value, dict):
        return {sys.intern(k): interned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interned(v) for v in value]
    if isinstance(value, str) and len(value) <= SHARED_VALUE_CHARS:
        return sys.intern(value)
    return value


def drop_noise(obj: JSON) -> JSON:
    """The object without managedFields and kubectl's last-applied copy (often half its size),
    its keys interned."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = meta.get("annotations")
    if annotations and "kubectl.kubernetes.io/last-applied-configuration" in annotations:
        meta["annotations"] = {
            k: v for k, v in annotations.items()
            if k != "kubectl.kubernetes.io/last-applied-configuration"
        }  # fmt: skip
    slim: JSON = interned({**obj, "metadata": meta})
    return slim


class Informer:
    """Objects of one resource in some namespaces (all when none are given)."""

    def __init__(
        self,
        client: KubeClient,
        api_version: str,
        plural: str,
        *,
        namespaces: Sequence[str] = (),
        label_selector: str | None = None,
        slim: Callable[[JSON], JSON] = drop_noise,
    ) -> None:
        self.client = client
        self.api_version, self.plural = api_version, plural
        self.namespaces = list(namespaces)
        self.label_selector = label_selector
        self.slim = slim
        self.store: dict[Key, JSON] = {}
        self.handlers: list[Handler] = []
        self.synced = asyncio.Event()
        self.lists = 0
        """How many lists were made (a relist after 410 counts): for tests and metrics."""

    def get(self, key: Key) -> JSON | None:
        return self.store.get(key)

    def values(self) -> Iterable[JSON]:
        return self.store.values()

    def on_change(self, handler: Handler) -> None:
        self.handlers.append(handler)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the cache current until stop is set."""
        scopes: list[str | None] = list(self.namespaces) or [None]
        listed: set[str | None] = set()
        tasks = [asyncio.create_task(self._follow(scope, listed, len(scopes))) for scope in scopes]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _follow(self, scope: str | None, listed: set[str | None], scopes: int) -> None:
        path = resource_path(self.api_version, self.plural, scope)
        params = {"labelSelector": self.label_selector} if self.label_selector else {}
        version = ""
        while True:
            try:
                if not version:
                    version = await self._relist(path, params, scope)
                    listed.add(scope)
                    if len(listed) == scopes:
                        self.synced.set()
                async for event in self.client.watch(
                    path, {**params, "resourceVersion": version}, WATCH_SECONDS
                ):
                    kind = event.get("type")
                    obj = event.get("object") or {}
                    if kind == "ERROR":
                        code = obj.get("code")
                        log.info("%s watch: %s %s, listing again", self.plural, code,
                                 obj.get("reason"))  # fmt: skip
                        version = ""
                        break
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self._apply(str(kind), obj)
            except KubeError as exc:
                if exc.status == 410:
                    version = ""
                    continue
                log.warning("%s: %s; retrying", self.plural, exc)
                await asyncio.sleep(RETRY_SECONDS)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning("%s watch broke (%s); resuming", self.plural, exc)
                await asyncio.sleep(RETRY_SECONDS)

    async def _relist(self, path: str, params: dict[str, str], scope: str | None) -> str:
        # Slimmed page by page: 10,000 whole triggers held at once until the last page came
        # raised a restarted operator's RSS to 215 MB (HWM), where 122 MB hold them slimmed.
        fresh: dict[Key, JSON] = {}
        version = ""
        async for page in self.client.list_pages(path, params):
            for item in page.get("items") or []:
                # a list's items carry no apiVersion/kind; handlers may want them
                item.setdefault("apiVersion", self.api_version)
                fresh[key_of(item)] = self.slim(item)
            version = str((page.get("metadata") or {}).get("resourceVersion") or "")
        self.lists += 1
        for key in [k for k in self.store if (scope is None or k[0] == scope) and k not in fresh]:
            old = self.store.pop(key)
            self._notify("DELETED", old, None)
        for key, item in fresh.items():
            self._apply("MODIFIED" if key in self.store else "ADDED", item, slimmed=True)
        return version

    def _apply(self, kind: str, obj: JSON, *, slimmed: bool = False) -> None:
        key = key_of(obj)
        old = self.store.get(key)
        if kind == "DELETED":
            self.store.pop(key, None)
            self._notify(kind, old, None)
            return
        new = obj if slimmed else self.slim(obj)
        if old is not None and old.get("metadata", {}).get("resourceVersion") == new.get(
            "metadata", {}
        ).get("resourceVersion"):
            return  # a relist repeats what the watch already brought
        self.store[key] = new
        self._notify(kind, old, new)

    def _notify(self, kind: str, old: JSON | None, new: JSON | None) -> None:
        for handler in self.handlers:
            try:
                handler(kind, old, new)
            except Exception:  # a handler bug must not stop the cache
                log.exception("%s handler failed", self.plural)
