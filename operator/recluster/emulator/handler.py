"""The HTTP side of the emulated API: kmock's Kubernetes scaffold plus our object endpoints.

kmock (``KubernetesScaffold``) provides what it does well and we keep using it for:
API discovery (``/api``, ``/apis``, ``/apis/<group>/<version>``, ``/version``) from its
resource catalogue (``resources.load_bundled()`` plus our CRDs), the request log, and
the DSL for fault injection in tests (``handler['patch', ...] << 500`` wins over the
built-in behaviour). The object endpoints are served here instead of by kmock's
``KubernetesEmulator`` because that one cannot be bent into an apiserver: its URL parser
fails on ``/api/v1/namespaces`` and misreads ``/api/v1/namespaces/<name>``, it has no PUT,
create answers 200, watches cannot resume or filter, and it mutates state before any
reaction can intervene. See :mod:`.store` for the state rules.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import importlib.resources
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import attrs
import kmock

from .audit import AuditLog, AuditRecord
from .crds import ResourceDefinition
from .selectors import FieldRequirement, FieldSelector, LabelSelector, SelectorError
from .store import ApiError, Body, DeleteOptions, Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiPath:
    """A resource URL split into its parts (``None`` where absent)."""

    group: str
    version: str
    plural: str
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    legacy_watch: bool = False


def parse_api_path(path: str) -> ApiPath | None:
    """Parse a resource URL; ``None`` for anything else (discovery, /version, /healthz)."""
    parts = [part for part in path.split("/") if part]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    legacy_watch = bool(rest) and rest[0] == "watch"
    rest = rest[1:] if legacy_watch else rest
    if not rest:
        return None
    namespace: str | None = None
    # /api/v1/namespaces/<name>/status is the namespace's own subresource, not a resource.
    own_subresource = group == "" and len(rest) == 3 and rest[2] in ("status", "finalize")
    if rest[0] == "namespaces" and len(rest) >= 3 and not own_subresource:
        namespace, rest = rest[1], rest[2:]
    return ApiPath(
        group=group,
        version=version,
        plural=rest[0],
        namespace=namespace,
        name=rest[1] if len(rest) > 1 else None,
        subresource="/".join(rest[2:]) or None,
        legacy_watch=legacy_watch,
    )


def _verb(method: str, target: ApiPath, params: Mapping[str, str]) -> str:
    """The RBAC verb of a request, as the apiserver's request-info resolver names it."""
    if method in ("GET", "HEAD"):
        if target.legacy_watch or params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if target.name else "list"
    return {
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if target.name else "deletecollection",
    }.get(method, method.lower())


def _user(headers: Mapping[str, str], tokens: Mapping[str, str]) -> str:
    auth = headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        token = auth.removeprefix("Bearer ").strip()
        return tokens.get(token, f"token:{token[:8]}")
    if auth.startswith("Basic "):
        with contextlib.suppress(ValueError):
            return base64.b64decode(auth.removeprefix("Basic ")).decode().split(":", 1)[0]
    return "system:anonymous"


def _json(body: Any, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.Response(
        body=json.dumps(body).encode(), status=status, content_type="application/json"
    )


@attrs.define(kw_only=True)
class EmulatorHandler(kmock.KubernetesScaffold):
    """A kmock handler that serves Kubernetes objects like an apiserver does."""

    store: Store = attrs.field(factory=Store)
    audit: AuditLog = attrs.field(factory=AuditLog)
    tokens: dict[str, str] = attrs.field(factory=dict)
    bookmark_interval: float = 5.0
    request_history: int = 10_000
    internal_errors: list[Exception] = attrs.field(factory=list, init=False)
    _builtin_payloads: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.fallback["get /healthz"] << b"ok"
        self.fallback["get /readyz"] << b"ok"
        self.fallback["get /livez"] << b"ok"
        self._builtin_payloads = len(self._payloads)
        self.store.on_crd_change = self._crd_changed
        # = resources.load_bundled(), minus its deprecated importlib call (a warning per start).
        bundled = importlib.resources.files("kmock._internal") / "resources.json.gz"
        self.resources.load_data(gzip.decompress(bundled.read_bytes()))
        for res in list(self.resources):
            info = self.resources[res]
            if not isinstance(res, kmock.resource) or not info.kind:
                continue
            if res.group is None or res.version is None or res.plural is None:
                continue
            self.store.register(
                ResourceDefinition(
                    group=res.group,
                    version=res.version,
                    plural=res.plural,
                    kind=info.kind,
                    namespaced=bool(info.namespaced),
                    singular=info.singular or "",
                    subresources=frozenset(info.subresources),
                    shortnames=frozenset(info.shortnames),
                    categories=frozenset(info.categories),
                    verbs=frozenset(info.verbs),
                    custom=False,
                )
            )
        self.store.ensure_default_namespaces()

    async def _serve_version(self, request: kmock.Request) -> kmock.Payload:
        """kmock's resource list, with the core group's ``groupVersion`` fixed to ``v1``."""
        payload = await super()._serve_version(request)
        if isinstance(payload, dict) and str(payload.get("groupVersion", "")).startswith("/"):
            payload["groupVersion"] = payload["groupVersion"][1:]
        return payload

    # -- Resource registry (kept in sync between kmock's discovery and our store) ---------

    def register(self, defn: ResourceDefinition) -> None:
        self.resources[kmock.resource(defn.group, defn.version, defn.plural)] = kmock.ResourceInfo(
            namespaced=defn.namespaced,
            kind=defn.kind,
            singular=defn.singular or defn.kind.lower(),
            verbs=set(defn.verbs),
            shortnames=set(defn.shortnames),
            categories=set(defn.categories),
            subresources=set(defn.subresources),
        )
        self.store.register(defn)

    def unregister(self, defn: ResourceDefinition) -> None:
        key = kmock.resource(defn.group, defn.version, defn.plural)
        if key in self.resources:
            del self.resources[key]
        self.store.unregister(defn)

    def _crd_changed(self, definitions: list[ResourceDefinition], created: bool) -> None:
        for defn in definitions:
            (self.register if created else self.unregister)(defn)

    # -- Request entry point --------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        target = parse_api_path(raw_request.path)
        headers = raw_request.headers
        user = _user(headers, self.tokens)
        user_agent = headers.get("User-Agent", "")
        if target is None:
            plain = await super().__call__(raw_request)
            self.audit.append(
                AuditRecord(
                    verb=raw_request.method.lower(),
                    api_group="",
                    resource="",
                    subresource="",
                    namespace=None,
                    name=None,
                    user=user,
                    user_agent=user_agent,
                    code=plain.status,
                    path=raw_request.path,
                )
            )
            return plain

        params = dict(raw_request.query)
        verb = _verb(raw_request.method, target, params)

        def record(code: int) -> None:
            self.audit.append(
                AuditRecord(
                    verb=verb,
                    api_group=target.group,
                    resource=target.plural,
                    subresource=target.subresource or "",
                    namespace=target.namespace,
                    name=target.name,
                    user=user,
                    user_agent=user_agent,
                    code=code,
                )
            )

        body = await raw_request.read()
        text = body.decode("utf-8", errors="replace")
        data: Any = None
        response: aiohttp.web.StreamResponse
        try:
            if body:
                try:
                    data = json.loads(text)
                except ValueError:
                    raise ApiError(400, "BadRequest", "the request body is not JSON") from None
            request = kmock.Request(
                id=len(self._requests),
                method=raw_request.method,
                url=raw_request.url,
                params=params,
                headers=dict(headers),
                body=body,
                text=text,
                data=data,
                action=_ACTIONS.get(verb),
                resource=kmock.resource(target.group, target.version, target.plural),
                namespace=target.namespace,
                name=target.name,
                subresource=target.subresource,
                raw_request=raw_request,
            )
            self._requests.append(request)
            if len(self._requests) > 2 * self.request_history:
                del self._requests[: -self.request_history]
            if len(self._payloads) > self._builtin_payloads:
                with contextlib.suppress(kmock.KubernetesEndpointNotFoundError):
                    # Test-defined reactions first; kmock's catch-all 404 means "none matched".
                    response = await super()._handle(request)
                    record(response.status)
                    return response
            if verb == "watch":
                return await self._watch(raw_request, target, params, record)
            response = self._serve(raw_request.method, verb, target, params, data, headers)
        except ApiError as e:
            response = _json(e.status(), e.code)
        except Exception as e:
            logger.exception("The emulated API failed: %s %s", raw_request.method, raw_request.path)
            self.internal_errors.append(e)
            response = _json(ApiError(500, "InternalError", repr(e)).status(), 500)
        record(response.status)
        return response

    def _serve(
        self,
        method: str,
        verb: str,
        target: ApiPath,
        params: Mapping[str, str],
        data: Any,
        headers: Mapping[str, str],
    ) -> aiohttp.web.Response:
        store = self.store
        defn = store.definition(target.group, target.version, target.plural)
        if target.namespace is not None and not defn.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if target.subresource not in (None, *(s for s in defn.subresources if s == "status")):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if defn.namespaced and target.name is not None and target.namespace is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        dry_run = bool(params.get("dryRun"))
        name = target.name
        namespace = target.namespace
        if verb == "list":
            limit = params.get("limit")
            return _json(
                store.list_objects(
                    defn,
                    namespace,
                    labels=self._labels(params),
                    fields=self._fields(params, defn, None),
                    limit=int(limit) if limit and limit.isdigit() else None,
                    continue_token=params.get("continue"),
                )
            )
        if verb == "create" and name is None and target.subresource is None:
            return _json(store.create(defn, namespace, data, dry_run=dry_run), 201)
        if verb == "deletecollection":
            return _json(
                store.delete_collection(
                    defn,
                    namespace,
                    labels=self._labels(params),
                    fields=self._fields(params, defn, None),
                    options=DeleteOptions.parse(data, params),
                )
            )
        if name is None:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")
        if verb == "get":
            return _json(store.get(defn, namespace, name))
        if verb == "update":
            return _json(
                store.replace(
                    defn, namespace, name, data, subresource=target.subresource, dry_run=dry_run
                )
            )
        if verb == "patch":
            return _json(
                store.patch(
                    defn,
                    namespace,
                    name,
                    data,
                    content_type=headers.get("Content-Type", ""),
                    subresource=target.subresource,
                    dry_run=dry_run,
                )
            )
        if verb == "delete" and target.subresource is None:
            obj, gone = store.delete(defn, namespace, name, DeleteOptions.parse(data, params))
            if gone and not defn.custom:
                meta = obj.get("metadata") or {}
                return _json(
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": {
                            "name": name,
                            "group": defn.group,
                            "kind": defn.plural,
                            "uid": meta.get("uid"),
                        },
                    }
                )
            return _json(obj)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")

    @staticmethod
    def _labels(params: Mapping[str, str]) -> LabelSelector:
        try:
            return LabelSelector.parse(params.get("labelSelector"))
        except SelectorError as e:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {e}") from None

    @staticmethod
    def _fields(
        params: Mapping[str, str], defn: ResourceDefinition, name: str | None
    ) -> FieldSelector:
        try:
            fields = FieldSelector.parse(
                params.get("fieldSelector"), group=defn.group, plural=defn.plural
            )
        except SelectorError as e:
            raise ApiError(400, "BadRequest", str(e)) from None
        if name is not None:
            by_name = FieldRequirement("metadata.name", name, negated=False)
            fields = FieldSelector((*fields.requirements, by_name))
        return fields

    async def _watch(
        self,
        raw_request: aiohttp.web.BaseRequest,
        target: ApiPath,
        params: Mapping[str, str],
        record: Callable[[int], None],
    ) -> aiohttp.web.StreamResponse:
        """Stream watch events as JSON lines until timeoutSeconds, disconnect or shutdown."""
        defn = self.store.definition(target.group, target.version, target.plural)
        if target.namespace is not None and not defn.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        bookmarks = params.get("allowWatchBookmarks") == "true"
        send_initial = params.get("sendInitialEvents") == "true"
        if send_initial and not bookmarks:
            raise ApiError(422, "Invalid", "sendInitialEvents requires allowWatchBookmarks=true")
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        response = aiohttp.web.StreamResponse(status=200)
        response.content_type = "application/json"
        response.enable_chunked_encoding()
        try:
            watcher = self.store.watch(
                defn,
                target.namespace,
                labels=self._labels(params),
                fields=self._fields(params, defn, target.name),
                since=params.get("resourceVersion"),
                send_initial_events=send_initial,
            )
        except ApiError as e:
            if e.code != 410:
                raise
            # A real server reports an expired resourceVersion inside a 200 stream.
            await response.prepare(raw_request)
            record(200)
            await response.write(self._event_line(defn, "ERROR", e.status()))
            await response.write_eof()
            return response

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        try:
            await response.prepare(raw_request)
            record(200)
            while True:
                wait = self.bookmark_interval if bookmarks else None
                if deadline is not None:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    wait = remaining if wait is None else min(wait, remaining)
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), wait)
                except TimeoutError:
                    if bookmarks and (deadline is None or loop.time() < deadline):
                        rv = str(self.store.resource_version)
                        mark = {"metadata": {"resourceVersion": rv}}
                        await response.write(self._event_line(defn, "BOOKMARK", mark))
                    continue
                if item is None:
                    break
                chunk: list[tuple[str, Body] | None] = [item]
                while not watcher.queue.empty():  # send what is queued in one write
                    chunk.append(watcher.queue.get_nowait())
                closing = chunk[-1] is None
                lines = [self._event_line(defn, *event) for event in chunk if event is not None]
                await response.write(b"".join(lines))
                if closing:
                    break
        except (ConnectionError, aiohttp.ClientConnectionError):
            pass  # the client went away
        finally:
            self.store.unwatch(watcher)
        with contextlib.suppress(ConnectionError, aiohttp.ClientConnectionError, RuntimeError):
            await response.write_eof()
        return response

    @staticmethod
    def _event_line(defn: ResourceDefinition, event_type: str, body: Body) -> bytes:
        obj = {**body, "apiVersion": defn.api_version, "kind": body.get("kind", defn.kind)}
        return json.dumps({"type": event_type, "object": obj}).encode() + b"\n"


_ACTIONS = {
    "get": kmock.action.FETCH,
    "list": kmock.action.LIST,
    "watch": kmock.action.WATCH,
    "create": kmock.action.CREATE,
    "update": kmock.action.UPDATE,
    "patch": kmock.action.UPDATE,
    "delete": kmock.action.DELETE,
    "deletecollection": kmock.action.DELETE,
}
