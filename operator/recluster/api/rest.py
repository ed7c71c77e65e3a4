"""The REST gateway's faces of the models: the seed's response, updates, pages.

The request body of `POST /v1/clusters/triggers` is `TriggerRequest` itself.
Every type here is borrowed from the models the CRDs are generated from
(`ScheduleConfig`, `ExecutionConfig`, `TriggerType`, ...), so the REST API,
the CRDs and `recluster validate` cannot drift apart; `TriggerResponse` only
chooses which of them the seed's response shows, and under which names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, field_serializer

from .base import Identifier, Model
from .clustering import ExecutionConfig
from .schedule import ScheduleConfig, TriggerType
from .trigger import (
    ClusterTrigger,
    ClusterTriggerStatus,
    Description,
    HistoryEntry,
    Message,
    ShortText,
    TriggerStatus,
)

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_OFFSET = 1_000_000

HistoryStatus = Literal["running", "succeeded", "failed", "skipped", "cancelled"]
SortKey = Literal[
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
    "trigger_id",
    "-trigger_id",
    "next_scheduled_at",
    "-next_scheduled_at",
    "last_triggered_at",
    "-last_triggered_at",
    "execution_count",
    "-execution_count",
]


class TriggerResponse(Model):
    """Model for cluster trigger (the seed's response, field for field)."""

    namespace_id: ShortText = Field(description="Namespace ID (the Kubernetes namespace).")
    internal_id: ShortText = Field(
        description="Organization internal ID (the ClusterTrigger's metadata.uid)."
    )
    execution_config: ExecutionConfig | None = Field(
        description=(
            "Configuration for cluster execution. With cluster_id, the ClusterDefinition's "
            "execution_config as of this read; null when cluster_id names no valid "
            "ClusterDefinition (the trigger does not fire then)."
        )
    )
    trigger_type: TriggerType = Field(description="Type of trigger.")
    schedule_config: ScheduleConfig = Field(description="Type-specific schedule configuration.")
    trigger_id: ShortText = Field(description="Unique trigger ID (the ClusterTrigger's name).")
    cluster_id: Identifier | None = Field(
        default=None, description="Optional link to cluster definition."
    )
    status: TriggerStatus = Field(
        default="active",
        description=(
            "Current status: as observed by the operator, or the requested one while the "
            "operator has not yet seen the latest change."
        ),
    )
    last_triggered_at: datetime | None = Field(default=None, description="Last time trigger fired.")
    last_execution_job_id: ShortText | None = Field(
        default=None, description="Job ID of last execution."
    )
    next_scheduled_at: datetime | None = Field(
        default=None, description="Next scheduled execution time."
    )
    execution_count: int = Field(default=0, description="Total executions.")
    consecutive_failures: int = Field(default=0, description="Consecutive execution failures.")
    last_execution_status: ShortText | None = Field(
        default=None, description="Status of last execution."
    )
    last_execution_error: Message | None = Field(
        default=None, description="Error from last execution."
    )
    event_counter: int = Field(default=0, description="Current event count since last trigger.")
    last_cooldown_at: datetime | None = Field(
        default=None, description="Last time cooldown was applied."
    )
    created_at: datetime = Field(description="Creation timestamp.")
    updated_at: datetime = Field(description="Last update timestamp.")
    created_by: ShortText | None = Field(default=None, description="User who created trigger.")
    description: Description | None = Field(default=None, description="Trigger description.")

    # No return annotation on purpose: pydantic then publishes the field's own schema
    # (an `Any` annotation would publish `{}`).
    @field_serializer("schedule_config", "execution_config", mode="wrap")
    def _compact(self, value: Any, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        """Nested configs as the seed shows them: only the fields that are set."""
        return _without_nulls(handler(value))


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


# Response fields copied from the status under the same name (the seed's counters and times).
STATUS_FIELDS: tuple[str, ...] = (
    "last_triggered_at",
    "last_execution_job_id",
    "next_scheduled_at",
    "execution_count",
    "consecutive_failures",
    "last_execution_status",
    "last_execution_error",
    "event_counter",
    "last_cooldown_at",
)
CREATED_BY_ANNOTATION = "recluster.io/created-by"


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def trigger_response(
    trigger: ClusterTrigger, execution_config: ExecutionConfig | None
) -> TriggerResponse:
    """The seed's response for a ClusterTrigger (pure: the caller resolves cluster_id).

    `execution_config` is the trigger's own or, with cluster_id, its
    ClusterDefinition's, resolved at read time like the operator does at each firing.
    """
    meta = trigger.metadata
    extra = meta.model_extra or {}
    status = trigger.status or ClusterTriggerStatus()
    spec = trigger.spec
    created = _timestamp(extra.get("creationTimestamp"))
    if created is None:
        raise ValueError("a stored ClusterTrigger has metadata.creationTimestamp")
    annotations = meta.annotations or {}
    # The observed status is stale while the operator has not seen the latest spec
    # (a pause just written): then the requested status is the better answer.
    generation = extra.get("generation")
    current = generation is None or status.observedGeneration == generation
    observed = status.status if current else None
    return TriggerResponse(
        namespace_id=status.namespace_id or meta.namespace or "",
        internal_id=status.internal_id or str(extra.get("uid") or ""),
        execution_config=execution_config,
        trigger_type=spec.trigger_type,
        schedule_config=spec.schedule_config,
        trigger_id=meta.name or "",
        cluster_id=spec.cluster_id,
        status=observed or spec.status,
        created_at=created,
        updated_at=status.updated_at or created,
        created_by=annotations.get(CREATED_BY_ANNOTATION),
        description=spec.description,
        **{name: getattr(status, name) for name in STATUS_FIELDS},
    )


class TriggerUpdateRequest(Model):
    """The fields of a trigger a client may change (PATCH); anything else is refused.

    `schedule_config` replaces the whole schedule (it must suit the trigger's
    type); `description: null` removes the description.
    """

    schedule_config: ScheduleConfig | None = Field(
        default=None, description="New schedule; must suit the trigger's trigger_type."
    )
    description: Description | None = Field(
        default=None, description="New description; null removes it."
    )
    status: TriggerStatus | None = Field(
        default=None, description="New desired status: active, paused, disabled or failed."
    )


class TriggerListResponse(Model):
    """One page of triggers."""

    results: list[TriggerResponse] = Field(
        max_length=MAX_PAGE_SIZE, description="The triggers of this page."
    )
    total: int = Field(description="Number of triggers matching the filters, on all pages.")
    offset: int = Field(description="Index of the first result in the whole, sorted list.")
    limit: int = Field(description="Page size asked for.")


class ExecutionListResponse(Model):
    """One page of a trigger's execution history, newest first."""

    results: list[HistoryEntry] = Field(
        max_length=MAX_PAGE_SIZE, description="The executions of this page."
    )
    total: int = Field(description="Number of executions matching the filter.")
    offset: int = Field(description="Index of the first result.")
    limit: int = Field(description="Page size asked for.")


class ExecuteResponse(Model):
    """A manual execution was requested; the operator fires once for `execution_request`."""

    trigger_id: ShortText = Field(description="The trigger asked to execute.")
    execution_request: ShortText = Field(
        description=(
            "The new value of the recluster.io/execute-now annotation; the trigger's "
            "status.last_manual_execution equals it once the operator has acted."
        )
    )
    status: Literal["accepted"] = Field(
        default="accepted", description="The request is recorded; the Job starts shortly."
    )
