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
from .ports import DeliveryError, SecretUnavailable

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

    def put_rayjob(self, rayjob: JSON) -> JSON:
        rayjob = {**rayjob, "metadata": {"uid": str(uuid.uuid4()),
                                         "resourceVersion": self._version(),
                                         "creationTimestamp": "2026-11-28T10:00:00Z",
                                         **rayjob["metadata"]}}  # fmt: skip
        old = self.caches.rayjobs.get(key_of(rayjob))
        self.caches.rayjobs[key_of(rayjob)] = rayjob
        self.caches.rayjob_changed(old, rayjob)
        return rayjob

    async def create_rayjob(self, rayjob: Mapping[str, Any]) -> bool:
        self.calls.append(("create_rayjob", str(rayjob["metadata"]["name"])))
        self._maybe_fail("create_rayjob")
        if key_of(dict(rayjob)) in self.caches.rayjobs:
            return False
        self.put_rayjob(dict(rayjob))
        return True

    async def delete_rayjob(self, namespace: str, name: str, uid: str | None) -> None:
        self.calls.append(("delete_rayjob", name))
        self._maybe_fail("delete_rayjob")
        old = self.caches.rayjobs.pop((namespace, name), None)
        if old is not None:
            self.caches.rayjob_changed(old, None)

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
    summaries: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(namespace, run id) -> the summary a committed run wrote."""
    calls: list[str] = field(default_factory=list)

    async def count(self, namespace: str, collection: str) -> int:
        self.calls.append(f"count {collection}")
        return self.counts.get((namespace, collection), 0)

    async def measure(
        self, namespace: str, collections: Sequence[str], metric: str, seed: int
    ) -> Measurement | None:
        self.calls.append(f"measure {metric}")
        return self.measurement

    async def run_summary(self, namespace: str, run_id: str) -> dict[str, Any] | None:
        self.calls.append(f"run_summary {run_id}")
        return self.summaries.get((namespace, run_id))

    async def prepare_namespace(self, namespace: str) -> None:
        self.calls.append(f"prepare {namespace}")


@dataclass
class FakeSecrets:
    """SecretPort in memory: {(namespace, name): {key: value}}."""

    secrets: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)
    reads: list[tuple[str, str, str]] = field(default_factory=list)

    async def read_key(self, namespace: str, name: str, key: str) -> bytes:
        self.reads.append((namespace, name, key))
        data = self.secrets.get((namespace, name))
        if data is None:
            raise SecretUnavailable(f"Secret {namespace}/{name} not found")
        if key not in data:
            raise SecretUnavailable(f"Secret {namespace}/{name} has no key {key!r}")
        return data[key]


@dataclass
class FakeWebhooks:
    """WebhookPort in memory: answers with the scripted status codes (then 200), or
    raises DeliveryError for a string; `posts` records (url, body, headers)."""

    answers: list[int | str] = field(default_factory=list)
    posts: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        self.posts.append((url, body, dict(headers)))
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, str):
            raise DeliveryError(answer)
        return answer
