"""Document events: counting pushed events exactly once, and deltas of polled counts.

Pure. Pushed events are recorded on the trigger's status by whoever receives
them (the gateway), with resourceVersion-checked writes; the idempotency key
of each counted event is remembered in `status.recent_event_keys` (bounded,
oldest dropped first), so a retried delivery is not counted twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..api.trigger import MAX_EVENT_KEYS, ClusterTriggerSpec, ClusterTriggerStatus


@dataclass(frozen=True)
class PushedEvent:
    """One delivery from an ingestion pipeline."""

    event_type: str
    collection_id: str
    count: int
    key: str


def listens_to(spec: ClusterTriggerSpec, event_type: str, collection_id: str) -> bool:
    """Whether an event trigger counts this kind of event on this collection."""
    sc = spec.schedule_config
    return (
        spec.trigger_type == "event"
        and sc.event_type == event_type
        and sc.collection_id == collection_id
    )


@dataclass(frozen=True)
class Counted:
    status: ClusterTriggerStatus
    counted: int
    duplicates: int


def apply_pushed(
    spec: ClusterTriggerSpec,
    status: ClusterTriggerStatus,
    events: Sequence[PushedEvent],
    max_keys: int = MAX_EVENT_KEYS,
) -> Counted:
    """Add the events not seen before to event_counter (a disabled trigger counts nothing).

    Keys are remembered even when the trigger does not count, so that a retry
    after re-enabling does not count an event the trigger already refused.
    """
    st = status.model_copy(deep=True)
    keys = list(st.recent_event_keys or [])
    seen = set(keys)
    counted = duplicates = 0
    for event in events:
        if event.key in seen:
            duplicates += 1
            continue
        seen.add(event.key)
        keys.append(event.key)
        if spec.status != "disabled":
            counted += event.count
    st.event_counter += counted
    st.recent_event_keys = keys[-max_keys:]
    return Counted(st, counted, duplicates)


def polled_events(event_type: str, previous: int | None, current: int) -> int:
    """Events a change of the document count stands for (pull source).

    A count only tells additions from deletions; updates need the push source.
    """
    if previous is None:
        return 0  # the first poll is the reference, not news
    delta = current - previous
    if event_type == "documents_added":
        return max(0, delta)
    if event_type == "documents_deleted":
        return max(0, -delta)
    return 0
