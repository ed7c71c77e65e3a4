"""The kubectl plugin's pure parts: upcoming fire times of a stored trigger, the history table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from recluster.api.trigger import ClusterTrigger, HistoryEntry
from recluster.plugin import HISTORY_COLUMNS, history_rows, table, upcoming

NOW = datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC)
CONFIG = {"collection_ids": ["c1"], "config": {"algorithm": "kmeans", "n_clusters": 3}}


def stored(trigger_type: str, schedule: dict[str, Any], **status: Any) -> ClusterTrigger:
    return ClusterTrigger.model_validate(
        {
            "metadata": {
                "name": "t",
                "namespace": "ns",
                "creationTimestamp": "2026-11-28T09:00:00Z",
            },
            "spec": {
                "trigger_type": trigger_type,
                "schedule_config": schedule,
                "execution_config": CONFIG,
            },
            "status": status or None,
        }
    )


def test_cron_fires_from_the_expression_in_its_zone() -> None:
    trigger = stored("cron", {"cron_expression": "0 2 * * *", "timezone": "Europe/Paris"})
    fires, note = upcoming(trigger, NOW, 2)
    assert note == ""
    assert fires == [datetime(2026, 11, 29, 1, tzinfo=UTC), datetime(2026, 11, 30, 1, tzinfo=UTC)]


def test_interval_fires_on_the_operators_grid() -> None:
    schedule = {"interval_seconds": 3600, "start_immediately": False}
    reconciled = stored("interval", schedule, next_scheduled_at="2026-11-28T10:20:00Z")
    assert upcoming(reconciled, NOW, 2)[0] == [
        datetime(2026, 11, 28, 10, 20, tzinfo=UTC),
        datetime(2026, 11, 28, 11, 20, tzinfo=UTC),
    ]
    # before the operator's first reconcile: counted from creation (09:00 + 1 h)
    assert upcoming(stored("interval", schedule), NOW, 1)[0] == [
        datetime(2026, 11, 28, 10, tzinfo=UTC)
    ]


def test_what_does_not_fire_on_a_clock_says_why() -> None:
    event = stored(
        "event",
        {
            "event_type": "documents_added",
            "event_threshold": 100,
            "collection_id": "c1",
            "cooldown_seconds": 60,
        },
        event_counter=42,
    )
    assert upcoming(event, NOW, 3) == ([], "fires on events: 42/100 documents_added counted")
    drift = stored(
        "conditional",
        {
            "condition_type": "drift",
            "threshold": 0.3,
            "metric": "cosine_drift",
            "check_interval_seconds": 600,
        },
        next_scheduled_at="2026-11-28T10:10:00Z",
    )
    assert upcoming(drift, NOW, 3) == (
        [],
        "fires when cosine_drift > 0.3; next check 2026-11-28T10:10:00Z",
    )
    failed = stored("cron", {"cron_expression": "0 2 * * *", "timezone": "UTC"}, status="failed")
    assert upcoming(failed, NOW, 3) == ([], "failed: nothing fires")


def test_the_history_table_lines_up_like_kubectls() -> None:
    entries = [
        HistoryEntry(
            job_id="t-1",
            triggered_at=NOW,
            status="failed",
            reason="schedule",
            execution_time_ms=61234,
            error="collection 'x'\\nnot found",
        ),
        HistoryEntry(job_id=None, triggered_at=NOW, status="skipped", reason="schedule"),
    ]
    lines = table(HISTORY_COLUMNS, list(history_rows(entries))).splitlines()
    assert lines[0].split() == list(HISTORY_COLUMNS)
    assert lines[1].split()[:5] == ["t-1", "schedule", "failed", "2026-11-28T10:00:30Z", "61.2s"]
    assert lines[2].split()[:3] == ["-", "schedule", "skipped"]
    assert all(line == line.rstrip() for line in lines)
    assert lines[0].index("STATUS") == lines[1].index("failed")
