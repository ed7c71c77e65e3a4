"""In-memory ports for the reconciler's unit tests: no server, every call recorded.

`FakeCluster` plays the API and the informers at once: what the reconciler
creates or writes appears in the shared `Caches`, as a watch would bring it.
Failures are injected per method (`fail`).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..core.drift import Measurement
from ..kube.errors import KubeError
from .caches import Caches
from .informer import key_of

JSON = dict[str, Any]


@dataclass
class FakeCluster:
    """ClusterPort in memory; `calls` lists (method, name) in order."""

    caches: Caches
    calls: list[tuple[str, str]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    failures: dict[str, list[KubeError]] = field(default_factory=dict)
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    def fail(self, method: str, error: KubeError, times: int = 1) -> None:
        self.failures.setdefault(method, []).extend([error] * times)

    def _maybe_fail(self, method: str) -> None:
        pending = self.failures.get(method)
        if pending:
            raise pending.pop(0)

    def _version(self) -> str:
        return str(next(self._versions))

    def put_trigger(self, obj: JSON) -> JSON:
        obj = {**obj, "metadata": {"generation": 1, "resourceVersion": self._version(),
                                   "uid": str(uuid.uuid4()), **obj["metadata"]}}  # fmt: skip
        old = self.caches.triggers.get(key_of(obj))
        self.caches.triggers[key_of(obj)] = obj
        self.caches.trigger_changed(old, obj)
        return obj

    def put_job(self, job: JSON) -> JSON:
        job = {**job, "metadata": {"uid": str(uuid.uuid4()), "resourceVersion": self._version(),
                                   "creationTimestamp": "2026-11-28T10:00:00Z",
                                   **job["metadata"]}}  # fmt: skip
        old = self.caches.jobs.get(key_of(job))
        self.caches.jobs[key_of(job)] = job
        self.caches.job_changed(old, job)
        return job

    async def create_job(self, job: Mapping[str, Any]) -> bool:
        self.calls.append(("create_job", str(job["metadata"]["name"])))
        self._maybe_fail("create_job")
        if key_of(dict(job)) in self.caches.jobs:
            return False
        self.put_job(dict(job))
        return True

    async def delete_job(self, namespace: str, name: str, uid: str | None) -> None:
        self.calls.append(("delete_job", name))
        self._maybe_fail("delete_job")
        old = self.caches.jobs.pop((namespace, name), None)
        if old is not None:
            self.caches.job_changed(old, None)

    async def write_status(
        self, namespace: str, name: str, patch: Mapping[str, Any], resource_version: str
    ) -> JSON:
        self.calls.append(("write_status", name))
        self._maybe_fail("write_status")
        current = self.caches.triggers[(namespace, name)]
        if current["metadata"]["resourceVersion"] != resource_version:
            raise KubeError(409, "Conflict", "the object has been modified")
        status = {k: v for k, v in {**(current.get("status") or {}), **patch}.items()
                  if v is not None}  # fmt: skip
        written = {**current, "metadata": {**current["metadata"],
                                           "resourceVersion": self._version()},
                   "status": status}  # fmt: skip
        self.caches.triggers[(namespace, name)] = written
        return written

    async def read_trigger(self, namespace: str, name: str) -> JSON | None:
        self.calls.append(("read_trigger", name))
        return self.caches.triggers.get((namespace, name))

    async def remove_finalizers(
        self, namespace: str, name: str, keep: Sequence[str], resource_version: str
    ) -> JSON:
        self.calls.append(("remove_finalizers", name))
        current = self.caches.triggers[(namespace, name)]
        meta = {**current["metadata"], "finalizers": list(keep),
                "resourceVersion": self._version()}  # fmt: skip
        written = {**current, "metadata": meta}
        self.caches.triggers[(namespace, name)] = written
        return written

    async def post_event(
        self, trigger: Mapping[str, Any], type_: str, reason: str, message: str, at: datetime
    ) -> None:
        self.events.append((type_, reason, message))


@dataclass
class FakeStore:
    """StorePort in memory: counts and measurements set by the test."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    measurement: Measurement | None = None
    calls: list[str] = field(default_factory=list)

    async def count(self, namespace: str, collection: str) -> int:
        self.calls.append(f"count {collection}")
        return self.counts.get((namespace, collection), 0)

    async def measure(
        self, namespace: str, collections: Sequence[str], metric: str, seed: int
    ) -> Measurement | None:
        self.calls.append(f"measure {metric}")
        return self.measurement

    async def prepare_namespace(self, namespace: str) -> None:
        self.calls.append(f"prepare {namespace}")
