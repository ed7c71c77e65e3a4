"""Asynchronous Kubernetes API calls on JSON (aiohttp), for the operator and the gateway.

Credentials come from credentials.py; a 401 re-reads them once and retries
(rotated service-account tokens, expired exec-plugin credentials). Watches
are JSON-line streams of events, resumable by resourceVersion.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from .credentials import Credentials
from .errors import KubeError
from .paths import JSON, MERGE_PATCH, resource_path

DELETE_BACKGROUND = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
LIST_PAGE = 500
"""Items a list asks for at a time (client-go's pager default)."""
PLURALS = {
    "Job": "jobs", "ClusterTrigger": "clustertriggers", "Pod": "pods", "Event": "events",
    "RayJob": "rayjobs",
}  # fmt: skip


class KubeClient:
    """One authenticated aiohttp session: request, create, patch_status, delete, list, watch."""

    def __init__(
        self,
        credentials: Credentials,
        user_agent: str = "recluster-operator",
        *,
        keep_alive: bool = True,
        timeout: float = 30.0,
    ) -> None:
        self.credentials = credentials
        self.user_agent = user_agent
        self.keep_alive = keep_alive
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._generation = -1

    @classmethod
    def from_environment(cls, user_agent: str = "recluster-operator") -> KubeClient:
        """In a pod its service account, else the kubeconfig ($KUBECONFIG)."""
        return cls(Credentials.from_environment(), user_agent)

    @property
    def server(self) -> str:
        return self.credentials.server

    def _current_session(self) -> aiohttp.ClientSession:
        # a reload may bring a new client certificate: the TLS context goes with the session
        if self._session is None or self._generation != self.credentials.generation:
            if self._session is not None:
                old = self._session
                self._session = None
                _close_later(old)
            # keep_alive=False lets an embedded server (tests, dev) stop without waiting for us
            connector = aiohttp.TCPConnector(
                ssl=self.credentials.ssl_context(), force_close=not self.keep_alive
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": self.user_agent}
            )
            self._generation = self.credentials.generation
        return self._session

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if authorization := self.credentials.authorization():
            headers["Authorization"] = authorization
        return headers

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        """The JSON answer; KubeError for an error status. A 401 re-reads the credentials once."""
        for attempt in (1, 2):
            session = self._current_session()
            async with session.request(
                method,
                self.server + path,
                data=None if body is None else json.dumps(body),
                params=params,
                headers=self._headers(content_type if body is not None else None),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                text = await response.read()
                if response.status == 401 and attempt == 1:
                    self.credentials.reload()
                    continue
                if response.status >= 400:
                    raise KubeError.from_response(response.status, response.reason or "", text)
                data = json.loads(text) if text else {}
                return data if isinstance(data, dict) else {}
        raise AssertionError("unreachable")  # pragma: no cover

    async def create(self, obj: Mapping[str, Any]) -> bool:
        """Create obj; False when one of that name exists already (the Job is adopted)."""
        meta = obj["metadata"]
        path = resource_path(obj["apiVersion"], PLURALS[obj["kind"]], meta.get("namespace"))
        try:
            await self.request("POST", path, dict(obj))
        except KubeError as exc:
            if exc.status != 409:
                raise
            return False
        return True

    async def patch_status(
        self,
        api_version: str,
        plural: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        resource_version: str | None = None,
    ) -> JSON:
        """Merge-patch the status; with resource_version, 409 if the object changed since."""
        path = resource_path(api_version, plural, namespace, name, "status")
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        return await self.request("PATCH", path, body, content_type=MERGE_PATCH)

    async def delete(
        self,
        api_version: str,
        plural: str,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
    ) -> None:
        """Delete with background propagation (a Job's pods go with it); gone is fine.

        With `uid`, only that object: a newer one of the same name is left alone.
        """
        body: dict[str, Any] = dict(DELETE_BACKGROUND)
        if uid is not None:
            body["preconditions"] = {"uid": uid}
        try:
            await self.request("DELETE", resource_path(api_version, plural, namespace, name), body)
        except KubeError as exc:
            if exc.status not in (404, 409):
                raise

    async def list(self, path: str, params: Mapping[str, str] | None = None) -> JSON:
        """A whole list (every page), with the list's resourceVersion in `metadata`."""
        items: list[Any] = []
        last: JSON = {}
        async for page in self.list_pages(path, params):
            items += page.get("items") or []
            last = page
        last["items"] = items
        return last

    async def list_pages(
        self, path: str, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[JSON]:
        """A list page by page (LIST_PAGE items each, as client-go's pager asks), so that a
        caller can keep less of each item than the server sends; the last page carries the
        list's resourceVersion."""
        query = {**(params or {}), "limit": str(LIST_PAGE)}
        while True:
            page = await self.request("GET", path, params=query)
            yield page
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return
            query = {**query, "continue": str(token)}

    async def watch(
        self, path: str, params: Mapping[str, str], timeout_seconds: int = 300
    ) -> AsyncIterator[JSON]:
        """Watch events (type, object) from the resourceVersion in params, until the server ends.

        An ERROR event (e.g. 410 Gone) is yielded as it comes: the caller lists again.
        """
        query = {**params, "watch": "true", "allowWatchBookmarks": "true",
                 "timeoutSeconds": str(timeout_seconds)}  # fmt: skip
        for attempt in (1, 2):
            session = self._current_session()
            async with session.get(
                self.server + path,
                params=query,
                headers=self._headers(None),
                timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30),
            ) as response:
                if response.status == 401 and attempt == 1:
                    self.credentials.reload()
                    continue
                if response.status >= 400:
                    text = await response.read()
                    raise KubeError.from_response(response.status, response.reason or "", text)
                async for line in response.content:
                    if line.strip():
                        event = json.loads(line)
                        if isinstance(event, dict):
                            yield event
                return


def _close_later(session: aiohttp.ClientSession) -> None:
    import asyncio

    task = asyncio.get_running_loop().create_task(session.close())
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


_CLOSING: set[Any] = set()
