"""`POST /v1/events`: an ingestion pipeline reports document events for event triggers.

The answer comes only after the count is durably recorded on every trigger the
event concerns (their status, in the Kubernetes API), so an acknowledged event
survives an operator restart. Concurrent events for one trigger are grouped:
one worker per trigger takes everything pending, applies it with the pure
`core.events.apply_pushed`, and writes once (resourceVersion-checked, retried
on conflict with the operator's own writes). The Kubernetes API, not Python,
is the bottleneck, so fewer writes means more events per second.

What it remembers between requests is bounded: the last written object of at
most `event_cache_triggers` triggers (least recently used dropped first, and a
trigger's entry as soon as it is gone: a 404, or no longer listed), and the
event triggers of at most `event_cache_namespaces` namespaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from pydantic import Discriminator, Field, Tag, ValidationError

from ..api.base import Identifier, Model
from ..api.schedule import EventType
from ..api.trigger import (
    GROUP_VERSION,
    MAX_EVENT_KEYS,
    ClusterTriggerSpec,
    ClusterTriggerStatus,
    IdempotencyKey,
)
from ..core.events import PushedEvent, apply_pushed, listens_to
from ..kube.client import KubeClient
from ..kube.errors import KubeError
from ..kube.paths import resource_path
from .auth import CallerDep
from .errors import responses
from .lru import Lru
from .settings import GatewaySettings

log = logging.getLogger("recluster.gateway.events")
# No more than a trigger remembers keys of: a retried request is recognised whole.
MAX_EVENTS_PER_REQUEST = MAX_EVENT_KEYS
MAX_CONFLICT_RETRIES = 50
GROUPING_SECONDS = 0.002


class DocumentEvent(Model):
    """Documents added to (updated in, deleted from) a collection."""

    event_type: EventType = Field(description="documents_added, documents_updated or ...deleted.")
    collection_id: Identifier = Field(description="The collection the documents belong to.")
    count: int = Field(default=1, ge=1, le=1_000_000, description="How many documents.")
    idempotency_key: IdempotencyKey = Field(
        description=(
            "Unique per delivery: a retried delivery with the same key is counted once "
            f"(keys are remembered for the last {MAX_EVENT_KEYS} events of each trigger). "
            "1 to 64 printable ASCII characters, no spaces."
        )
    )


class TriggerCount(Model):
    trigger_id: str
    counted: int = Field(description="Documents this trigger counted from this request.")
    duplicates: int = Field(description="Events already counted before (same idempotency key).")
    event_counter: int = Field(description="The trigger's event_counter after recording.")


class EventsAccepted(Model):
    events: int = Field(description="Events in the request.")
    triggers: list[TriggerCount] = Field(
        description="The event triggers of the namespace the events concern; empty if none."
    )


@dataclass
class _Pending:
    events: list[PushedEvent]
    done: asyncio.Future[TriggerCount | None]


@dataclass
class _TriggerQueue:
    pending: list[_Pending] = field(default_factory=list)
    worker: asyncio.Task[None] | None = None


Listeners = list[tuple[str, ClusterTriggerSpec]]


class EventRecorder:
    """Groups concurrent events per trigger into few status writes."""

    def __init__(self, client: KubeClient, settings: GatewaySettings) -> None:
        self.client, self.settings = client, settings
        self.queues: dict[tuple[str, str], _TriggerQueue] = {}
        self.cache: Lru[str, tuple[float, Listeners]] = Lru(settings.event_cache_namespaces)
        # The object as our last write left it: the next write starts from it and
        # skips a GET; a 409 says someone else wrote since, and we read afresh.
        self.known: Lru[tuple[str, str], dict[str, Any]] = Lru(settings.event_cache_triggers)
        self.writes = 0
        self.listing: dict[str, asyncio.Future[Listeners]] = {}

    async def listeners(self, namespace: str) -> Listeners:
        """Event triggers of a namespace (cached briefly: events come in bursts).

        One listing at a time per namespace: requests that find the cache stale while
        it is being listed wait for that listing instead of making their own (a burst of
        200 pushes after the cache expired made 200 LISTs).
        """
        cached = self.cache.get(namespace)
        if cached and time.monotonic() - cached[0] < self.settings.event_listeners_seconds:
            return cached[1]
        listing = self.listing.get(namespace)
        if listing is None:
            listing = asyncio.ensure_future(self._list_listeners(namespace))
            self.listing[namespace] = listing
            listing.add_done_callback(lambda _: self.listing.pop(namespace, None))
        # shielded: a caller that gives up must not cancel the others' listing
        return await asyncio.shield(listing)

    async def _list_listeners(self, namespace: str) -> Listeners:
        path = resource_path(GROUP_VERSION, "clustertriggers", namespace)
        items = (await self.client.request("GET", path)).get("items") or []
        found = []
        for item in items:
            try:
                spec = ClusterTriggerSpec.model_validate(item.get("spec") or {})
            except ValidationError:
                continue
            if spec.trigger_type == "event" and not (item.get("metadata") or {}).get(
                "deletionTimestamp"
            ):
                found.append((str(item["metadata"]["name"]), spec))
        self.cache.put(namespace, (time.monotonic(), found))
        listed = {name for name, _ in found}
        for known in self.known:
            if known[0] == namespace and known[1] not in listed:
                self.known.pop(known)  # deleted (or no longer an event trigger)
        return found

    def forget(self, namespace: str, name: str) -> None:
        """The trigger is gone: drop what is cached of it and of its namespace's listing."""
        self.known.pop((namespace, name))
        self.cache.pop(namespace)

    async def record(self, namespace: str, events: list[PushedEvent]) -> list[TriggerCount]:
        """Record events on every trigger they concern; return once all writes landed.

        A trigger deleted meanwhile counts nothing and is left out of the answer.
        """
        waits: list[asyncio.Future[TriggerCount | None]] = []
        for name, spec in await self.listeners(namespace):
            mine = [e for e in events if listens_to(spec, e.event_type, e.collection_id)]
            if not mine:
                continue
            future: asyncio.Future[TriggerCount | None] = asyncio.get_running_loop().create_future()
            queue = self.queues.setdefault((namespace, name), _TriggerQueue())
            queue.pending.append(_Pending(mine, future))
            if queue.worker is None or queue.worker.done():
                queue.worker = asyncio.create_task(self._drain(namespace, name, queue))
            waits.append(future)
        return [count for count in await asyncio.gather(*waits) if count is not None]

    async def _drain(self, namespace: str, name: str, queue: _TriggerQueue) -> None:
        await asyncio.sleep(GROUPING_SECONDS)  # let concurrent deliveries join this write
        while queue.pending:
            batch, queue.pending = queue.pending, []
            try:
                results = await self._write(namespace, name, batch)
            except Exception as exc:
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(exc)
                continue
            counts: Sequence[TriggerCount | None] = (
                [None] * len(batch) if results is None else results
            )
            for item, result in zip(batch, counts, strict=True):
                if not item.done.done():
                    item.done.set_result(result)
        self.queues.pop((namespace, name), None)

    async def _write(
        self, namespace: str, name: str, batch: list[_Pending]
    ) -> list[TriggerCount] | None:
        """The counts of each pending request, or None when the trigger is gone."""
        try:
            return await self._write_status(namespace, name, batch)
        except KubeError as exc:
            if exc.status != 404:
                raise
            self.forget(namespace, name)
            return None

    async def _write_status(
        self, namespace: str, name: str, batch: list[_Pending]
    ) -> list[TriggerCount]:
        path = resource_path(GROUP_VERSION, "clustertriggers", namespace, name)
        for _ in range(MAX_CONFLICT_RETRIES):
            obj = self.known.pop((namespace, name)) or await self.client.request("GET", path)
            spec = ClusterTriggerSpec.model_validate(obj.get("spec") or {})
            status = ClusterTriggerStatus.model_validate(obj.get("status") or {})
            counts: list[tuple[int, int]] = []
            for item in batch:
                applied = apply_pushed(spec, status, item.events)
                status = applied.status
                counts.append((applied.counted, applied.duplicates))
            patch: dict[str, Any] = {
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "status": {
                    "event_counter": status.event_counter,
                    "recent_event_keys": status.recent_event_keys,
                },
            }
            try:
                written = await self.client.request(
                    "PATCH", f"{path}/status", patch, content_type="application/merge-patch+json"
                )
            except KubeError as exc:
                if exc.status == 409:  # the operator (or another gateway) wrote first
                    continue
                raise
            self.writes += 1
            if written.get("metadata", {}).get("resourceVersion"):
                self.known.put((namespace, name), written)
            return [
                TriggerCount(
                    trigger_id=name,
                    counted=counted,
                    duplicates=duplicates,
                    event_counter=status.event_counter,
                )
                for counted, duplicates in counts
            ]
        raise KubeError(409, "Conflict", f"ClusterTrigger {name} kept changing; retry the event")

    async def close(self) -> None:
        for queue in list(self.queues.values()):
            if queue.worker is not None:
                queue.worker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await queue.worker


router = APIRouter(tags=["events"])

# The cap is the schema's (maxItems): pydantic refuses element 1,001 before it
# validates the others, so a long list costs one error, not one per element.
EventList = Annotated[list[DocumentEvent], Field(max_length=MAX_EVENTS_PER_REQUEST)]


def _shape(value: Any) -> str:
    """Which form a body has; only that form is validated (a list is not also tried,
    and refused, as one event), and problems are located at `events[3].count`."""
    return "events" if isinstance(value, list) else "event"


EventsBody = Annotated[
    Annotated[DocumentEvent, Tag("event")] | Annotated[EventList, Tag("events")],
    Discriminator(_shape),
    Body(
        openapi_examples={
            "one": {
                "summary": "25 documents added",
                "value": {
                    "event_type": "documents_added",
                    "collection_id": "col_abc123",
                    "count": 25,
                    "idempotency_key": "ingest-2026-11-28T10:00:00Z-batch-17",
                },
            }
        }
    ),
]


@router.post(
    "/v1/events",
    response_model=EventsAccepted,
    responses=responses(400, 401, 403, 409, 413, 422, 429, 503),
    summary="Report document events",
)
async def push_events(request: Request, caller: CallerDep, body: EventsBody) -> EventsAccepted:
    """Count document events on the event triggers of the namespace that watch them.

    Answers once every concerned trigger has durably recorded the count. A list
    of events (at most 1000) is recorded as one request.
    """
    events = body if isinstance(body, list) else [body]
    recorder: EventRecorder = request.app.state.events
    pushed = [
        PushedEvent(e.event_type, e.collection_id, e.count, e.idempotency_key) for e in events
    ]
    counts = await recorder.record(caller.namespace, pushed)
    return EventsAccepted(events=len(events), triggers=counts)
