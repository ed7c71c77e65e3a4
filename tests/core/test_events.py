"""Pushed events count once per idempotency key; polled counts become events."""

from __future__ import annotations

from recluster.api.trigger import ClusterTriggerSpec, ClusterTriggerStatus
from recluster.core.events import PushedEvent, apply_pushed, listens_to, polled_events


def spec(status: str = "active") -> ClusterTriggerSpec:
    return ClusterTriggerSpec.model_validate(
        {
            "trigger_type": "event",
            "schedule_config": {
                "event_type": "documents_added",
                "event_threshold": 100,
                "collection_id": "col_abc123",
                "cooldown_seconds": 0,
            },
            "cluster_id": "c1",
            "status": status,
        }
    )


def event(key: str, count: int = 25) -> PushedEvent:
    return PushedEvent("documents_added", "col_abc123", count, key)


def test_retried_deliveries_count_once() -> None:
    first = apply_pushed(spec(), ClusterTriggerStatus(), [event("a"), event("b")])
    assert (first.counted, first.duplicates, first.status.event_counter) == (50, 0, 50)
    retry = apply_pushed(spec(), first.status, [event("a"), event("c", 5), event("c", 5)])
    assert (retry.counted, retry.duplicates, retry.status.event_counter) == (5, 2, 55)
    assert retry.status.recent_event_keys == ["a", "b", "c"]


def test_keys_are_bounded_oldest_first() -> None:
    status = ClusterTriggerStatus()
    for i in range(12):
        status = apply_pushed(spec(), status, [event(f"k{i}", 1)], max_keys=5).status
    assert status.recent_event_keys == ["k7", "k8", "k9", "k10", "k11"]
    assert status.event_counter == 12


def test_disabled_counts_nothing_but_remembers_keys() -> None:
    result = apply_pushed(spec("disabled"), ClusterTriggerStatus(), [event("a")])
    assert result.counted == 0 and result.status.event_counter == 0
    assert result.status.recent_event_keys == ["a"]
    paused = apply_pushed(spec("paused"), ClusterTriggerStatus(), [event("a")])
    assert paused.status.event_counter == 25


def test_which_triggers_listen() -> None:
    assert listens_to(spec(), "documents_added", "col_abc123")
    assert not listens_to(spec(), "documents_deleted", "col_abc123")
    assert not listens_to(spec(), "documents_added", "col_other")


def test_polled_deltas() -> None:
    assert polled_events("documents_added", None, 500) == 0
    assert polled_events("documents_added", 500, 530) == 30
    assert polled_events("documents_added", 500, 480) == 0
    assert polled_events("documents_deleted", 500, 480) == 20
    assert polled_events("documents_updated", 500, 530) == 0


def test_the_status_given_is_left_as_it_was() -> None:
    """A pure function: the caller may change the status it gets back, never the one it gave."""
    given = ClusterTriggerStatus.model_validate(
        {"conditions": [{"type": "Ready", "status": "True"}], "recent_event_keys": ["a"]}
    )
    before = given.model_dump()
    result = apply_pushed(spec(), given, [event("b")])
    assert result.status.conditions is not None
    result.status.conditions[0].status = "False"  # the gateway goes on to edit what it got
    result.status.conditions.append(result.status.conditions[0])
    assert given.model_dump() == before
