"""The object store of the emulated API: what etcd plus the generic apiserver registry do.

Everything here is synchronous and runs on the event loop's thread, so each operation
is atomic without locks: a watch subscribes and receives its initial state in one step,
and events reach every watcher in resourceVersion order.

Stored bodies are never mutated in place (every write stores a new dict), so the event
history and the watch queues can share them without copies; callers outside the store
always get deep copies.

kmock's own ``KubernetesEmulator`` keeps objects as plain merged dicts with a full
history of every version; it has no resourceVersion, generation, preconditions,
status subresource, selectors or watch resumption, and changes state before its
reactions run. The state rules below are therefore ours; kmock still provides the
HTTP handler, discovery and the resource catalogue (see :mod:`.handler`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import datetime
import json
import logging
import re
import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .crds import ResourceDefinition, definitions_from_crd
from .patching import (
    JsonPatchError,
    JsonPatchTestFailed,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from .selectors import FieldSelector, LabelSelector

logger = logging.getLogger(__name__)

Body = dict[str, Any]
ResourceKey = tuple[str, str]  # (group, plural): one storage for all served versions
ObjectKey = tuple[str | None, str]  # (namespace, name)

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
# The alphabet and length the apiserver uses for generateName suffixes.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Names that must be DNS labels (63 chars) on a real server, not just subdomains.
_LABEL_NAMED: dict[ResourceKey, int] = {("", "namespaces"): 63, ("", "services"): 63}
_MAX_NAME: dict[ResourceKey, int] = {("batch", "jobs"): 63, ("batch", "cronjobs"): 52}
# The server-side default propagation policy differs per resource (a classic trap).
_ORPHAN_BY_DEFAULT = {("batch", "jobs"), ("", "replicationcontrollers")}


class ApiError(Exception):
    """An error the API answers with a ``Status`` body."""

    def __init__(
        self, code: int, reason: str, message: str, *, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})

    def status(self) -> Body:
        body: Body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _resource_name(defn: ResourceDefinition) -> str:
    return f"{defn.plural}.{defn.group}" if defn.group else defn.plural


def _not_found(defn: ResourceDefinition, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{_resource_name(defn)} "{name}" not found',
        details={"name": name, "group": defn.group, "kind": defn.plural},
    )


def _conflict(defn: ResourceDefinition, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_resource_name(defn)} "{name}": {why}',
        details={"name": name, "group": defn.group, "kind": defn.plural},
    )


def _invalid(defn: ResourceDefinition, name: str, problems: list[str]) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'{defn.kind} "{name}" is invalid: {"; ".join(problems)}',
        details={
            "name": name,
            "group": defn.group,
            "kind": defn.kind,
            "causes": [{"reason": "FieldValueInvalid", "message": p} for p in problems],
        },
    )


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clone(body: Any) -> Any:
    """A deep copy of a JSON value (the C json codec is the fastest copier at hand)."""
    return json.loads(json.dumps(body))


def _without_rv(body: Mapping[str, Any]) -> Body:
    meta = dict(body.get("metadata") or {})
    meta.pop("resourceVersion", None)
    meta.pop("managedFields", None)
    return {**body, "metadata": meta}


def _content(body: Mapping[str, Any]) -> Body:
    """The part of an object whose changes bump ``metadata.generation``."""
    return {k: v for k, v in body.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _meta(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, dict) else {}


@dataclass
class DeleteOptions:
    """The parts of ``DeleteOptions`` the emulator honours."""

    propagation_policy: str | None = None
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None
    dry_run: bool = False

    @classmethod
    def parse(cls, body: Any, params: Mapping[str, str]) -> DeleteOptions:
        body = body if isinstance(body, Mapping) else {}
        policy = body.get("propagationPolicy") or params.get("propagationPolicy")
        if policy is None and "orphanDependents" in body:
            policy = "Orphan" if body["orphanDependents"] else "Background"
        if policy is None and "orphanDependents" in params:
            policy = "Orphan" if params["orphanDependents"] == "true" else "Background"
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise _bad_request(f"invalid propagationPolicy {policy!r}")
        pre = body.get("preconditions") or {}
        dry = body.get("dryRun") or params.get("dryRun")
        return cls(
            propagation_policy=policy,
            precondition_uid=pre.get("uid"),
            precondition_resource_version=pre.get("resourceVersion"),
            dry_run=bool(dry),
        )


@dataclass(eq=False)
class Watcher:
    """One open watch: its filters and the queue of events still to be sent."""

    defn: ResourceDefinition
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    queue: asyncio.Queue[tuple[str, Body] | None] = field(default_factory=asyncio.Queue)

    def matches(self, body: Mapping[str, Any] | None) -> bool:
        if body is None:
            return False
        meta = _meta(body)
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return self.labels.matches(meta.get("labels")) and self.fields.matches(body)

    def offer(self, event_type: str, old: Body | None, new: Body) -> None:
        """Translate an event through the selectors, as the apiserver's watch cache does."""
        was, now = self.matches(old), self.matches(new)
        if event_type == "MODIFIED":
            if was and now:
                self.queue.put_nowait(("MODIFIED", new))
            elif now:
                self.queue.put_nowait(("ADDED", new))
            elif was:
                self.queue.put_nowait(("DELETED", new))
        elif now:
            self.queue.put_nowait((event_type, new))

    def close(self) -> None:
        self.queue.put_nowait(None)


@dataclass
class _Event:
    resource_version: int
    key: ResourceKey
    type: str
    old: Body | None
    new: Body


class Store:
    """All objects of the emulated cluster, with the apiserver's rules for changing them."""

    def __init__(
        self,
        *,
        garbage_collection: bool = True,
        strict_namespaces: bool = True,
        event_history: int = 10_000,
        on_crd_change: Callable[[list[ResourceDefinition], bool], None] | None = None,
    ) -> None:
        self.garbage_collection = garbage_collection
        self.strict_namespaces = strict_namespaces
        self.on_crd_change = on_crd_change
        self._definitions: dict[tuple[str, str, str], ResourceDefinition] = {}
        self._storage: dict[ResourceKey, ResourceDefinition] = {}
        self._objects: dict[ResourceKey, dict[ObjectKey, Body]] = collections.defaultdict(dict)
        self._watchers: dict[ResourceKey, set[Watcher]] = collections.defaultdict(set)
        self._events: collections.deque[_Event] = collections.deque()
        self._event_history = event_history
        self._history_floor = 0  # events with resourceVersion <= floor are forgotten
        self._resource_version = 0
        self._terminating: set[str] = set()
        self._gc_scheduled = False
        # Indexes for the garbage collector, kept by _commit(): it must not scan everything.
        self._uids: dict[str, tuple[ResourceKey, ObjectKey]] = {}
        self._owned: dict[tuple[ResourceKey, ObjectKey], tuple[str, ...]] = {}
        self._foreground: set[tuple[ResourceKey, ObjectKey]] = set()
        self._change_waiters: set[asyncio.Future[None]] = set()
        self.internal_errors: list[Exception] = []  # failures of background passes (GC)

    # -- Registry ------------------------------------------------------------------------

    def register(self, defn: ResourceDefinition) -> None:
        self._definitions[defn.group, defn.version, defn.plural] = defn
        self._storage.setdefault((defn.group, defn.plural), defn)

    def unregister(self, defn: ResourceDefinition) -> None:
        self._definitions.pop((defn.group, defn.version, defn.plural), None)
        if not any(g == defn.group and p == defn.plural for g, _, p in self._definitions):
            self._storage.pop((defn.group, defn.plural), None)

    def definition(self, group: str, version: str, plural: str) -> ResourceDefinition:
        try:
            return self._definitions[group, version, plural]
        except KeyError:
            raise ApiError(
                404, "NotFound", "the server could not find the requested resource"
            ) from None

    def definitions(self) -> list[ResourceDefinition]:
        return list(self._definitions.values())

    def definition_for_kind(self, api_version: str, kind: str) -> ResourceDefinition:
        for defn in self._definitions.values():
            if defn.api_version == api_version and defn.kind == kind:
                return defn
        raise ApiError(404, "NotFound", f"no resource for {api_version} {kind}")

    @property
    def resource_version(self) -> int:
        return self._resource_version

    def ensure_default_namespaces(self) -> None:
        ns = self.definition("", "v1", "namespaces")
        for name in DEFAULT_NAMESPACES:
            if (None, name) not in self._objects["", "namespaces"]:
                self.create(ns, None, {"metadata": {"name": name}})

    # -- Reads ---------------------------------------------------------------------------

    def _present(self, defn: ResourceDefinition, body: Body) -> Body:
        result: Body = clone(body)
        result.pop("apiVersion", None)
        return {"apiVersion": defn.api_version, "kind": result.pop("kind", defn.kind), **result}

    def _key(self, defn: ResourceDefinition, namespace: str | None, name: str) -> ObjectKey:
        return (namespace if defn.namespaced else None, name)

    def _require(self, defn: ResourceDefinition, namespace: str | None, name: str) -> Body:
        body = self._objects[defn.group, defn.plural].get(self._key(defn, namespace, name))
        if body is None:
            raise _not_found(defn, name)
        return body

    def get(self, defn: ResourceDefinition, namespace: str | None, name: str) -> Body:
        return self._present(defn, self._require(defn, namespace, name))

    def _select(
        self,
        defn: ResourceDefinition,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
    ) -> Iterator[tuple[ObjectKey, Body]]:
        objects = self._objects[defn.group, defn.plural]
        for key in sorted(objects, key=lambda k: (k[0] or "", k[1])):
            body = objects[key]
            if defn.namespaced and namespace is not None and key[0] != namespace:
                continue
            if labels.matches(_meta(body).get("labels")) and fields.matches(body):
                yield key, body

    def list_objects(
        self,
        defn: ResourceDefinition,
        namespace: str | None,
        *,
        labels: LabelSelector | None = None,
        fields: FieldSelector | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> Body:
        """A ``<Kind>List``; ``limit``/``continue`` page through a stable order."""
        list_rv = self._resource_version
        after: tuple[str, str] | None = None
        if continue_token:
            try:
                state = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                list_rv, after = int(state["rv"]), (str(state["ns"]), str(state["name"]))
            except (ValueError, KeyError, TypeError, binascii.Error):
                raise _bad_request("invalid continue token") from None
        items: list[Body] = []
        remaining = 0
        last: ObjectKey | None = None
        for key, body in self._select(
            defn, namespace, labels or LabelSelector(), fields or FieldSelector()
        ):
            if after is not None and (key[0] or "", key[1]) <= after:
                continue
            if limit and len(items) >= limit:
                remaining += 1
                continue
            items.append(self._present(defn, body))
            last = key
        metadata: Body = {"resourceVersion": str(list_rv)}
        if remaining and last is not None:
            token = {"rv": list_rv, "ns": last[0] or "", "name": last[1]}
            metadata["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            metadata["remainingItemCount"] = remaining
        return {
            "apiVersion": defn.api_version,
            "kind": f"{defn.kind}List",
            "metadata": metadata,
            "items": items,
        }

    def objects(self, defn: ResourceDefinition, namespace: str | None = None) -> list[Body]:
        return [
            self._present(defn, body)
            for _, body in self._select(defn, namespace, LabelSelector(), FieldSelector())
        ]

    # -- Watches -------------------------------------------------------------------------

    def watch(
        self,
        defn: ResourceDefinition,
        namespace: str | None,
        *,
        labels: LabelSelector,
        fields: FieldSelector,
        since: str | None,
        send_initial_events: bool = False,
    ) -> Watcher:
        """Subscribe; the queue starts with what the client has not seen yet.

        No ``resourceVersion`` (or ``"0"``): synthetic ADDED events for the current state.
        A resourceVersion: the events after it, or 410 Expired when they are forgotten.
        """
        watcher = Watcher(defn, namespace if defn.namespaced else None, labels, fields)
        if since in (None, "", "0") or send_initial_events:
            for _, body in self._select(defn, watcher.namespace, labels, fields):
                watcher.queue.put_nowait(("ADDED", body))
            if send_initial_events:
                bookmark = {
                    "metadata": {
                        "resourceVersion": str(self._resource_version),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    }
                }
                watcher.queue.put_nowait(("BOOKMARK", bookmark))
        else:
            try:
                start = int(str(since))
            except ValueError:
                raise _bad_request(f"invalid resourceVersion {since!r}") from None
            if start < self._history_floor:
                raise ApiError(
                    410,
                    "Expired",
                    f"too old resource version: {start} ({self._history_floor + 1})",
                )
            key = (defn.group, defn.plural)
            for event in self._events:
                if event.resource_version > start and event.key == key:
                    watcher.offer(event.type, event.old, event.new)
        self._watchers[defn.group, defn.plural].add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers[watcher.defn.group, watcher.defn.plural].discard(watcher)

    def close_watches(self) -> None:
        """End every open watch stream (used on shutdown)."""
        for watchers in self._watchers.values():
            for watcher in list(watchers):
                watcher.close()
            watchers.clear()

    @property
    def watch_count(self) -> int:
        return sum(len(watchers) for watchers in self._watchers.values())

    # -- Change notification for in-process waiters --------------------------------------

    async def wait_for_change(self, timeout: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._change_waiters.add(future)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            self._change_waiters.discard(future)

    # -- Writes --------------------------------------------------------------------------

    def _commit(
        self, key: ResourceKey, okey: ObjectKey, event_type: str, old: Body | None, new: Body
    ) -> Body:
        self._resource_version += 1
        new["metadata"]["resourceVersion"] = str(self._resource_version)
        objects = self._objects[key]
        meta = new["metadata"]
        uid = str(meta.get("uid"))
        if event_type == "DELETED":
            objects.pop(okey, None)
            self._uids.pop(uid, None)
            self._owned.pop((key, okey), None)
            self._foreground.discard((key, okey))
        else:
            objects[okey] = new
            self._uids[uid] = (key, okey)
            refs = tuple(str(r.get("uid")) for r in meta.get("ownerReferences") or [])
            if refs:
                self._owned[key, okey] = refs
            else:
                self._owned.pop((key, okey), None)
            if "foregroundDeletion" in (meta.get("finalizers") or []):
                self._foreground.add((key, okey))
            else:
                self._foreground.discard((key, okey))
        event = _Event(self._resource_version, key, event_type, old, new)
        self._events.append(event)
        while len(self._events) > self._event_history:
            self._history_floor = self._events.popleft().resource_version
        for watcher in self._watchers.get(key, ()):
            watcher.offer(event_type, old, new)
        for future in self._change_waiters:
            if not future.done():
                future.set_result(None)
        return new

    def _validate_metadata(self, defn: ResourceDefinition, body: Body) -> None:
        meta = _meta(body)
        name = str(meta.get("name") or "")
        problems: list[str] = []
        key = (defn.group, defn.plural)
        max_len = _LABEL_NAMED.get(key) or _MAX_NAME.get(key) or 253
        pattern = _DNS_LABEL if key in _LABEL_NAMED else _DNS_SUBDOMAIN
        if not name:
            problems.append("metadata.name: Required value: name or generateName is required")
        elif len(name) > max_len or not pattern.match(name):
            problems.append(
                f"metadata.name: Invalid value: {name!r}: must be a lowercase RFC 1123 "
                f"{'label' if pattern is _DNS_LABEL else 'subdomain'} of at most {max_len} "
                "characters"
            )
        for what in ("labels", "annotations"):
            mapping = meta.get(what) or {}
            if not isinstance(mapping, dict):
                problems.append(f"metadata.{what}: must be a map of strings")
                continue
            for k, v in mapping.items():
                prefix, _, short = str(k).rpartition("/")
                if (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix))) or (
                    len(short) > 63 or not _LABEL_NAME.match(short)
                ):
                    problems.append(f"metadata.{what}: Invalid value: {k!r}: invalid key")
                if not isinstance(v, str):
                    problems.append(f"metadata.{what}.{k}: must be a string")
                elif what == "labels" and (len(v) > 63 or not _LABEL_VALUE.match(v)):
                    problems.append(
                        f"metadata.labels: Invalid value: {v!r}: a valid label value must be "
                        "63 characters or less, alphanumeric, '-', '_' or '.'"
                    )
        controllers = 0
        for index, ref in enumerate(meta.get("ownerReferences") or []):
            for required in ("apiVersion", "kind", "name", "uid"):
                if not isinstance(ref, dict) or not ref.get(required):
                    problems.append(f"metadata.ownerReferences[{index}].{required}: Required value")
            if isinstance(ref, dict) and ref.get("controller"):
                controllers += 1
        if controllers > 1:
            problems.append("metadata.ownerReferences: Only one reference can have Controller")
        if problems:
            raise _invalid(defn, name, problems)

    def _check_namespace(self, namespace: str) -> None:
        if not self.strict_namespaces:
            if (None, namespace) not in self._objects["", "namespaces"]:
                self.ensure_namespace(namespace)
            return
        ns = self._objects["", "namespaces"].get((None, namespace))
        if ns is None:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                details={"name": namespace, "kind": "namespaces"},
            )
        if namespace in self._terminating:
            raise ApiError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} "
                "because it is being terminated",
            )

    def ensure_namespace(self, name: str) -> None:
        if (None, name) not in self._objects["", "namespaces"]:
            self.create(self.definition("", "v1", "namespaces"), None, {"metadata": {"name": name}})

    def create(
        self, defn: ResourceDefinition, namespace: str | None, body: Any, *, dry_run: bool = False
    ) -> Body:
        if not isinstance(body, dict):
            raise _bad_request("the request body must be a JSON object")
        new: Body = clone(body)
        if new.get("kind") not in (None, defn.kind):
            raise _bad_request(f"the kind {new.get('kind')!r} does not match {defn.kind!r}")
        new["apiVersion"], new["kind"] = defn.api_version, defn.kind
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            meta = new["metadata"] = {}
        if defn.namespaced:
            body_ns = meta.get("namespace")
            if namespace is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if body_ns not in (None, "", namespace):
                raise _bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            meta["namespace"] = namespace
            self._check_namespace(namespace)
        else:
            meta.pop("namespace", None)
        objects = self._objects[defn.group, defn.plural]
        if not meta.get("name") and meta.get("generateName"):
            base = str(meta["generateName"])[:58]
            while True:
                candidate = base + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
                if (self._key(defn, namespace, candidate)) not in objects:
                    break
            meta["name"] = candidate
        self._validate_metadata(defn, new)
        okey = self._key(defn, namespace, str(meta["name"]))
        if okey in objects:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{_resource_name(defn)} "{meta["name"]}" already exists',
                details={"name": meta["name"], "group": defn.group, "kind": defn.plural},
            )
        for server_owned in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            meta.pop(server_owned, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        if "status" in defn.subresources:
            new.pop("status", None)
        if (defn.group, defn.plural) == ("", "namespaces"):
            new.setdefault("spec", {"finalizers": ["kubernetes"]})
            new["status"] = {"phase": "Active"}
        if (defn.group, defn.plural) == ("apiextensions.k8s.io", "customresourcedefinitions"):
            defs = definitions_from_crd(new)
            names = (new.get("spec") or {}).get("names") or {}
            conditions = (("NamesAccepted", "NoConflicts"), ("Established", "InitialNamesAccepted"))
            new["status"] = {
                "acceptedNames": names,
                "conditions": [
                    {"type": t, "status": "True", "reason": r, "lastTransitionTime": now_rfc3339()}
                    for t, r in conditions
                ],
                "storedVersions": [d.version for d in defs[:1]],
            }
        if dry_run:
            return self._present(defn, new)
        self._commit((defn.group, defn.plural), okey, "ADDED", None, new)
        is_crd = (defn.group, defn.plural) == ("apiextensions.k8s.io", "customresourcedefinitions")
        if is_crd and self.on_crd_change is not None:
            self.on_crd_change(definitions_from_crd(new), True)
        return self._present(defn, new)

    def replace(
        self,
        defn: ResourceDefinition,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Body:
        """PUT: the body replaces the object (or only its status on ``/status``)."""
        old = self._require(defn, namespace, name)
        if not isinstance(body, dict):
            raise _bad_request("the request body must be a JSON object")
        if defn.custom and not _meta(body).get("resourceVersion"):
            raise _invalid(
                defn, name, ["metadata.resourceVersion: Invalid value: 0: must be specified"]
            )
        return self._update(defn, namespace, name, old, body, subresource, dry_run=dry_run)

    def patch(
        self,
        defn: ResourceDefinition,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        content_type: str,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Body:
        old = self._require(defn, namespace, name)
        ctype = content_type.split(";")[0].strip().lower()
        if ctype == MERGE_PATCH:
            if not isinstance(patch, dict):
                raise _bad_request("a merge patch must be a JSON object")
            candidate = merge_patch(old, patch)
        elif ctype == STRATEGIC_MERGE_PATCH and not defn.custom:
            if not isinstance(patch, dict):
                raise _bad_request("a strategic merge patch must be a JSON object")
            candidate = strategic_merge_patch(old, patch)
        elif ctype == JSON_PATCH:
            try:
                candidate = json_patch(old, patch)
            except JsonPatchTestFailed as e:
                raise _invalid(defn, name, [str(e)]) from e
            except JsonPatchError as e:
                raise ApiError(422, "Invalid", f"the JSON patch cannot be applied: {e}") from e
            if not isinstance(candidate, dict):
                raise _bad_request("the patched object is not a JSON object")
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {JSON_PATCH}, {MERGE_PATCH}"
                + ("" if defn.custom else f", {STRATEGIC_MERGE_PATCH}"),
            )
        # The candidate keeps the stored resourceVersion unless the patch sets one: merge
        # patches are unconditional unless they carry it, JSON patches unless they edit it.
        return self._update(defn, namespace, name, old, candidate, subresource, dry_run=dry_run)

    def _update(
        self,
        defn: ResourceDefinition,
        namespace: str | None,
        name: str,
        old: Body,
        candidate: Body,
        subresource: str | None,
        *,
        dry_run: bool = False,
    ) -> Body:
        old_meta = _meta(old)
        cand_meta = _meta(candidate)
        if not isinstance(candidate.get("metadata", {}), dict):
            raise _bad_request("metadata must be a JSON object")
        rv = cand_meta.get("resourceVersion")
        if rv not in (None, "") and str(rv) != old_meta["resourceVersion"]:
            raise _conflict(
                defn,
                name,
                "the object has been modified; please apply your changes to the latest "
                "version and try again",
            )
        if cand_meta.get("name") not in (None, "", name):
            raise _bad_request(
                f"the name of the object ({cand_meta.get('name')}) does not match the name "
                f"on the URL ({name})"
            )
        if defn.namespaced and cand_meta.get("namespace") not in (None, "", namespace):
            raise _bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )

        new: Body
        if subresource == "status":
            new = clone(old)
            if "status" in candidate:
                new["status"] = clone(candidate["status"])
            else:
                new.pop("status", None)
        else:
            new = clone(candidate)
            if "status" in defn.subresources:
                if "status" in old:
                    new["status"] = clone(old["status"])
                else:
                    new.pop("status", None)
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            meta = new["metadata"] = {}
        for owned in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if owned in old_meta:
                meta[owned] = old_meta[owned]
            else:
                meta.pop(owned, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        new["apiVersion"], new["kind"] = old.get("apiVersion"), old.get("kind")
        self._validate_metadata(defn, new)
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise _invalid(
                    defn,
                    name,
                    [
                        "metadata.finalizers: Forbidden: no new finalizers can be added if "
                        "the object is being deleted, found new finalizers "
                        + json.dumps(sorted(added))
                    ],
                )
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
        if _without_rv(new) == _without_rv(old):
            return self._present(defn, old)  # a no-op write changes nothing, not even the RV
        if _content(new) != _content(old):
            meta["generation"] = int(old_meta.get("generation") or 0) + 1
        if dry_run:
            return self._present(defn, new)
        key = (defn.group, defn.plural)
        okey = self._key(defn, namespace, name)
        self._commit(key, okey, "MODIFIED", old, new)
        released = meta.get("deletionTimestamp") and not meta.get("finalizers")
        if released and key != ("", "namespaces"):  # namespaces wait until they are empty
            return self._present(defn, self._remove(key, okey))
        if meta.get("deletionTimestamp") or meta.get("ownerReferences") != old_meta.get(
            "ownerReferences"
        ):
            self._after_change()
        return self._present(defn, new)

    # -- Deletion, finalizers, garbage collection ----------------------------------------

    def _remove(self, key: ResourceKey, okey: ObjectKey) -> Body:
        old = self._objects[key][okey]
        final: Body = clone(old)
        self._commit(key, okey, "DELETED", old, final)
        if key == ("", "namespaces"):
            self._terminating.discard(okey[1])
        if key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            defs = definitions_from_crd(final)
            for defn in defs[:1]:
                for obj_key in list(self._objects[defn.group, defn.plural]):
                    self._remove((defn.group, defn.plural), obj_key)
            if self.on_crd_change is not None:
                self.on_crd_change(defs, False)
        self._after_change()
        return final

    def delete(
        self,
        defn: ResourceDefinition,
        namespace: str | None,
        name: str,
        options: DeleteOptions | None = None,
    ) -> tuple[Body, bool]:
        """Delete or mark for deletion; returns the object and whether it is gone."""
        options = options or DeleteOptions()
        old = self._require(defn, namespace, name)
        meta = _meta(old)
        if options.precondition_uid and options.precondition_uid != meta.get("uid"):
            raise _conflict(defn, name, "Precondition failed: UID in precondition does not match")
        if (
            options.precondition_resource_version
            and options.precondition_resource_version != meta.get("resourceVersion")
        ):
            raise _conflict(
                defn, name, "Precondition failed: ResourceVersion in precondition does not match"
            )
        if options.dry_run:
            return self._present(defn, old), False
        if meta.get("deletionTimestamp"):
            return self._present(defn, old), False
        key = (defn.group, defn.plural)
        if key == ("", "namespaces") and name in DEFAULT_NAMESPACES[:3]:
            raise ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
            )
        okey = self._key(defn, namespace, name)
        policy = options.propagation_policy
        if policy is None:
            policy = "Orphan" if key in _ORPHAN_BY_DEFAULT else "Background"
        if self.garbage_collection and policy == "Orphan":
            self._orphan_dependents(str(meta.get("uid")))

        finalizers = list(meta.get("finalizers") or [])
        if (
            self.garbage_collection
            and policy == "Foreground"
            and self._has_dependents(str(meta.get("uid")))
        ):
            finalizers.append("foregroundDeletion")
        if finalizers or key == ("", "namespaces"):
            new = clone(old)
            new_meta = new["metadata"]
            new_meta["deletionTimestamp"] = now_rfc3339()
            new_meta["deletionGracePeriodSeconds"] = 0
            new_meta["generation"] = int(meta.get("generation") or 0) + 1
            if finalizers:
                new_meta["finalizers"] = finalizers
            if key == ("", "namespaces"):
                new["status"] = {"phase": "Terminating"}
                self._terminating.add(name)
            self._commit(key, okey, "MODIFIED", old, new)
            if key == ("", "namespaces"):
                self._empty_namespace(name)
            self._after_change()
            return self._present(defn, new), False
        return self._present(defn, self._remove(key, okey)), True

    def delete_collection(
        self,
        defn: ResourceDefinition,
        namespace: str | None,
        *,
        labels: LabelSelector,
        fields: FieldSelector,
        options: DeleteOptions,
    ) -> Body:
        items: list[Body] = []
        for okey, _ in list(self._select(defn, namespace, labels, fields)):
            items.append(self.delete(defn, okey[0], okey[1], options)[0])
        return {
            "apiVersion": defn.api_version,
            "kind": f"{defn.kind}List",
            "metadata": {"resourceVersion": str(self._resource_version)},
            "items": items,
        }

    def _all_objects(self) -> Iterator[tuple[ResourceKey, ObjectKey, Body]]:
        for key, objects in list(self._objects.items()):
            for okey, body in list(objects.items()):
                yield key, okey, body

    def _has_dependents(self, uid: str) -> bool:
        return any(uid in refs for refs in self._owned.values())

    def _orphan_dependents(self, uid: str) -> None:
        for (key, okey), owners in list(self._owned.items()):
            if uid in owners:
                body = self._objects[key][okey]
                refs = _meta(body).get("ownerReferences") or []
                new = clone(body)
                new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                if not new["metadata"]["ownerReferences"]:
                    del new["metadata"]["ownerReferences"]
                self._commit(key, okey, "MODIFIED", body, new)

    def _empty_namespace(self, namespace: str) -> None:
        """What the namespace controller does: delete everything inside, then the namespace."""
        for key, okey, _ in self._all_objects():
            if okey[0] == namespace and key in self._storage:
                defn = self._storage[key]
                if defn.namespaced and okey in self._objects[key]:
                    self.delete(defn, namespace, okey[1], DeleteOptions("Background"))

    def _after_change(self) -> None:
        for namespace in list(self._terminating):
            if not any(
                okey[0] == namespace
                for key, objects in self._objects.items()
                if key in self._storage and self._storage[key].namespaced
                for okey in objects
            ):
                ns_key = (None, namespace)
                ns = self._objects["", "namespaces"].get(ns_key)
                if ns is not None and not _meta(ns).get("finalizers"):
                    self._remove(("", "namespaces"), ns_key)
        if self.garbage_collection and not self._gc_scheduled:
            self._gc_scheduled = True
            try:
                asyncio.get_running_loop().call_soon(self.collect_garbage)
            except RuntimeError:  # no loop: collect right away
                self.collect_garbage()

    def collect_garbage(self) -> None:
        """One pass of the garbage collector over ownerReferences (background policy)."""
        self._gc_scheduled = False
        try:
            self._collect_garbage()
        except Exception as e:  # nobody awaits this pass: keep the failure for the tests
            logger.exception("The emulator's garbage collector failed.")
            self.internal_errors.append(e)

    def _collect_garbage(self) -> None:
        def owner_alive(uid: str) -> bool:
            where = self._uids.get(uid)
            return where is not None and where not in self._foreground

        for (key, okey), owners in list(self._owned.items()):
            body = self._objects[key].get(okey)
            if body is None or _meta(body).get("deletionTimestamp") or key not in self._storage:
                continue
            if not any(owner_alive(uid) for uid in owners):
                self.delete(self._storage[key], okey[0], okey[1], DeleteOptions("Background"))
        referenced = {uid for owners in self._owned.values() for uid in owners}
        for key, okey in list(self._foreground):
            body = self._objects[key].get(okey)
            meta = _meta(body) if body is not None else {}
            finalizers = meta.get("finalizers") or []
            if body is not None and str(meta.get("uid")) not in referenced:
                new = clone(body)
                new["metadata"]["finalizers"] = [f for f in finalizers if f != "foregroundDeletion"]
                self._update(self._storage[key], okey[0], okey[1], body, new, None)
