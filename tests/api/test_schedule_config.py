"""schedule_config (api/schedule.py): which fields each trigger_type needs and refuses."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from recluster.api.schedule import schedule_problems
from recluster.api.trigger import TriggerRequest


def test_a_complete_schedule_has_no_problems() -> None:
    assert schedule_problems("cron", {"cron_expression", "timezone"}) == []


def test_missing_fields_in_table_order_then_foreign_fields_sorted() -> None:
    given = {"timezone", "threshold", "event_type"}
    assert schedule_problems("cron", given) == [
        ("cron_expression", "required when trigger_type is cron"),
        ("event_type", "belongs to trigger_type event, not cron (remove it)"),
        ("threshold", "belongs to trigger_type conditional, not cron (remove it)"),
    ]


def test_the_request_reports_them_under_schedule_config() -> None:
    body = {
        "trigger_type": "interval",
        "schedule_config": {"interval_seconds": 60, "timezone": "UTC"},
        "cluster_id": "c",
    }
    with pytest.raises(ValidationError) as caught:
        TriggerRequest.model_validate(body)
    assert [(e["loc"], e["msg"]) for e in caught.value.errors()] == [
        (("schedule_config", "start_immediately"), "required when trigger_type is interval"),
        (
            ("schedule_config", "timezone"),
            "belongs to trigger_type cron, not interval (remove it)",
        ),
    ]
