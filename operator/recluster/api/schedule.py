"""schedule_config: one object whose fields depend on trigger_type.

`SCHEDULE_FIELDS` is the single statement of the seed's rule ("cron: requires
cron_expression and timezone", ...). The pydantic validator of the spec and
the CRD's CEL rules are both generated from it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from .base import MAX_SECONDS, MIN_INTERVAL_SECONDS, Identifier, Model

TriggerType = Literal["cron", "interval", "event", "conditional"]
TRIGGER_TYPES: tuple[str, ...] = TriggerType.__args__  # type: ignore[attr-defined]

SCHEDULE_FIELDS: dict[str, tuple[str, ...]] = {
    "cron": ("cron_expression", "timezone"),
    "interval": ("interval_seconds", "start_immediately"),
    "event": ("event_type", "event_threshold", "collection_id", "cooldown_seconds"),
    "conditional": ("condition_type", "threshold", "metric", "check_interval_seconds"),
}

EventType = Literal["documents_added", "documents_updated", "documents_deleted"]
ConditionType = Literal["drift"]
Metric = Literal["cosine_drift", "document_growth", "outlier_fraction"]
MAX_EVENT_THRESHOLD = 1_000_000_000


class ScheduleConfig(Model):
    """Type-specific schedule configuration. Contents depend on trigger_type."""

    cron_expression: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = Field(
        default=None,
        description=(
            "cron: five-field cron expression (minute hour day-of-month month "
            "day-of-week) or a macro such as @daily, evaluated in `timezone`."
        ),
        examples=["0 2 * * *"],
    )
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        default=None,
        description="cron: IANA time zone the expression is evaluated in, e.g. 'UTC'.",
        examples=["UTC"],
    )
    interval_seconds: int | None = Field(
        default=None,
        ge=MIN_INTERVAL_SECONDS,
        le=MAX_SECONDS,
        description=(
            f"interval: seconds between two firings, {MIN_INTERVAL_SECONDS} to "
            f"{MAX_SECONDS} (ten years)."
        ),
    )
    start_immediately: bool | None = Field(
        default=None,
        description="interval: fire once as soon as the trigger is created.",
    )
    event_type: EventType | None = Field(
        default=None,
        description=(
            "event: which document events count: documents_added, documents_updated "
            "or documents_deleted."
        ),
    )
    event_threshold: int | None = Field(
        default=None,
        ge=1,
        le=MAX_EVENT_THRESHOLD,
        description="event: number of events that fires the trigger (at most one billion).",
    )
    collection_id: Identifier | None = Field(
        default=None, description="event: the collection whose events are counted."
    )
    cooldown_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SECONDS,
        description=(
            "event: minimum seconds between two firings; a firing due earlier waits "
            f"for the cooldown to end. At most {MAX_SECONDS} (ten years)."
        ),
    )
    condition_type: ConditionType | None = Field(
        default=None,
        description="conditional: kind of condition; 'drift' compares against the last run.",
    )
    threshold: float | None = Field(
        default=None,
        gt=0,
        description=("conditional: the trigger fires when the metric exceeds this (finite) value."),
    )
    metric: Metric | None = Field(
        default=None,
        description=(
            "conditional: what is measured against the baseline of the last successful "
            "run: cosine_drift, document_growth or outlier_fraction."
        ),
    )
    check_interval_seconds: int | None = Field(
        default=None,
        ge=MIN_INTERVAL_SECONDS,
        le=MAX_SECONDS,
        description=(
            f"conditional: seconds between two measurements, {MIN_INTERVAL_SECONDS} to "
            f"{MAX_SECONDS} (ten years)."
        ),
    )


def schedule_problems(trigger_type: str, given: set[str]) -> list[tuple[str, str]]:
    """(field, reason) for each required field missing and each field of another type."""
    wanted = SCHEDULE_FIELDS[trigger_type]
    problems = [
        (name, f"required when trigger_type is {trigger_type}")
        for name in wanted
        if name not in given
    ]
    for name in sorted(given - set(wanted)):
        owner = next(t for t, fields in SCHEDULE_FIELDS.items() if name in fields)
        problems.append((name, f"belongs to trigger_type {owner}, not {trigger_type} (remove it)"))
    return problems
