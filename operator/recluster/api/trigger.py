"""ClusterTrigger: the seed's request as spec, the seed's response fields as status."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from .base import (
    MAX_DESCRIPTION_LENGTH,
    MAX_HISTORY,
    MAX_ID_LENGTH,
    MAX_MESSAGE_LENGTH,
    MAX_SECONDS,
    Identifier,
    Loc,
    Model,
    reject,
)
from .clustering import ExecutionConfig
from .jobtemplate import JobTemplate
from .notifications import MAX_DELIVERIES, Delivery, Notifications
from .schedule import ScheduleConfig, TriggerType, schedule_problems

TriggerStatus = Literal["active", "paused", "disabled", "failed"]
MAX_EVENT_KEYS = 1000
"""Idempotency keys a trigger remembers; a request carries at most this many events, so
that a retried request is always recognised whole."""
MAX_EVENT_KEY_LENGTH = 64
IdempotencyKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_EVENT_KEY_LENGTH, pattern=r"^[!-~]+$"),
]
"""A key as a client may send it: printable ASCII without spaces, so that the keys a
status keeps take at most MAX_EVENT_KEYS * MAX_EVENT_KEY_LENGTH bytes (about 64 KB)."""
# What a stored status may hold: 128 characters, the request limit before 0.2, so
# that objects written then still parse; the gateway only adds IdempotencyKeys.
EventKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Description = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION_LENGTH)]
Message = Annotated[str, StringConstraints(max_length=MAX_MESSAGE_LENGTH)]
ShortText = Annotated[str, StringConstraints(max_length=MAX_ID_LENGTH)]


class TriggerRequest(Model):
    """Request to create a new cluster trigger (the seed's body, field for field).

    Creates an automated trigger that executes clustering based on schedules,
    events, or conditions.
    """

    trigger_type: TriggerType = Field(
        description=(
            "REQUIRED. Type of trigger to create. Determines which schedule_config fields "
            "are required. Options: 'cron', 'interval', 'event', 'conditional'."
        )
    )
    schedule_config: ScheduleConfig = Field(
        description=(
            "REQUIRED. Type-specific schedule configuration. Contents depend on trigger_type. "
            "cron: cron_expression, timezone; interval: interval_seconds, start_immediately; "
            "event: event_type, event_threshold, collection_id, cooldown_seconds; "
            "conditional: condition_type, threshold, metric, check_interval_seconds."
        )
    )
    cluster_id: Identifier | None = Field(
        default=None,
        description=(
            "OPTIONAL. Reference to existing cluster definition. If provided, execution_config "
            "is inherited from the cluster. Either cluster_id OR execution_config must be "
            "provided."
        ),
        examples=["cluster_abc123"],
    )
    execution_config: ExecutionConfig | None = Field(
        default=None,
        description=(
            "OPTIONAL. Clustering configuration for this trigger. Specifies collections and "
            "algorithm to use when trigger fires. Required if cluster_id is not provided."
        ),
    )
    description: Description | None = Field(
        default=None,
        description=(
            "OPTIONAL. Human-readable description of what this trigger does. Helpful for "
            "identifying triggers in dashboards."
        ),
        examples=["Daily clustering at 2am UTC"],
    )
    status: TriggerStatus = Field(
        default="active",
        description=(
            "OPTIONAL. Initial status of trigger. Defaults to 'active' (enabled). Can be set to "
            "'paused' to create disabled trigger."
        ),
    )

    @model_validator(mode="after")
    def _seed_rules(self) -> TriggerRequest:
        problems: list[tuple[Loc, str]] = []
        if self.cluster_id is None and self.execution_config is None:
            problems.append(
                (("execution_config",), "one of cluster_id or execution_config is required")
            )
        if self.cluster_id is not None and self.execution_config is not None:
            problems.append(
                (
                    ("cluster_id",),
                    "cluster_id and execution_config are mutually exclusive: "
                    "give one (a cluster_id inherits its execution_config)",
                )
            )
        sc = self.schedule_config
        given = {name for name in sc.model_fields_set if getattr(sc, name) is not None}
        for name, reason in schedule_problems(self.trigger_type, given):
            problems.append((("schedule_config", name), reason))
        reject(type(self).__name__, problems)
        return self


class ClusterTriggerSpec(TriggerRequest):
    """Desired state of a ClusterTrigger: the seed's request plus Kubernetes-side options."""

    concurrency_policy: Literal["Forbid", "Replace"] = Field(
        default="Forbid",
        description=(
            "What a firing does while the previous Job still runs: Forbid skips the firing "
            "(recorded as SkippedConcurrent), Replace deletes the running Job and starts anew."
        ),
    )
    starting_deadline_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SECONDS,
        description=(
            "A firing missed (e.g. during operator downtime) still runs if it is at most this "
            "many seconds late; unset means no deadline. Missed firings run at most once."
        ),
    )
    max_consecutive_failures: int = Field(
        default=5,
        ge=1,
        le=1000,
        description=(
            "After this many failed executions in a row the status becomes 'failed' and "
            "nothing fires until the spec changes."
        ),
    )
    successful_jobs_history_limit: int = Field(
        default=3, ge=0, le=100, description="Finished successful Jobs to keep."
    )
    failed_jobs_history_limit: int = Field(
        default=1, ge=0, le=100, description="Finished failed Jobs to keep."
    )
    job_template: JobTemplate | None = Field(
        default=None, description="Shape of the Job each firing creates."
    )
    notifications: Notifications | None = Field(
        default=None,
        description=(
            "Webhooks told of each execution's outcome (cluster.execution.completed, "
            "cluster.execution.failed), signed, retried and deduplicated (docs/notifications.md)."
        ),
    )


class Condition(Model):
    """A standard Kubernetes condition (metav1.Condition)."""

    type: Annotated[str, StringConstraints(max_length=316)]
    status: Literal["True", "False", "Unknown"]
    reason: Annotated[str, StringConstraints(max_length=1024)] | None = None
    message: Message | None = None
    lastTransitionTime: datetime | None = None
    observedGeneration: int | None = None


class HistoryEntry(Model):
    """One execution, as the original API's execution history reports it."""

    job_id: ShortText | None = Field(
        default=None, description="Name of the Job; empty for a skipped firing."
    )
    triggered_at: datetime
    scheduled_at: datetime | None = Field(
        default=None, description="When the firing was due (cron/interval)."
    )
    finished_at: datetime | None = None
    status: Literal["running", "succeeded", "failed", "skipped", "cancelled"] = Field(
        description=(
            "running, succeeded, failed; skipped (Forbid while another ran) or cancelled "
            "(deleted by Replace, or by hand)."
        )
    )
    reason: Literal["schedule", "event", "condition", "manual", "catch_up"] | None = Field(
        default=None, description="What made the trigger fire."
    )
    execution_time_ms: int | None = None
    error: Message | None = None
    num_clusters: int | None = None
    num_documents: int | None = None


class ClusterTriggerStatus(Model):
    """Observed state: the seed's response fields, plus Kubernetes conditions and history."""

    model_config = ConfigDict(extra="ignore")

    status: TriggerStatus | None = Field(default=None, description="Current status.")
    namespace_id: ShortText | None = Field(default=None, description="Namespace ID.")
    internal_id: ShortText | None = Field(
        default=None, description="Organization internal ID (the object's uid)."
    )
    execution_count: int = Field(default=0, description="Total executions.")
    consecutive_failures: int = Field(default=0, description="Consecutive execution failures.")
    last_triggered_at: datetime | None = Field(default=None, description="Last time trigger fired.")
    last_execution_job_id: ShortText | None = Field(
        default=None, description="Job ID of last execution."
    )
    next_scheduled_at: datetime | None = Field(
        default=None, description="Next scheduled execution time."
    )
    last_execution_status: ShortText | None = Field(
        default=None, description="Status of last execution."
    )
    last_execution_error: Message | None = Field(
        default=None, description="Error from last execution."
    )
    event_counter: int = Field(default=0, description="Current event count since last trigger.")
    observed_document_count: int | None = Field(
        default=None,
        description="event: the collection's document count at the last poll (pull source).",
    )
    recent_event_keys: list[EventKey] | None = Field(
        default=None,
        max_length=MAX_EVENT_KEYS,
        description=(
            "event: idempotency keys of the most recent pushed events, oldest first; a retried "
            "delivery with one of them is not counted again."
        ),
    )
    last_cooldown_at: datetime | None = Field(
        default=None, description="Last time cooldown was applied."
    )
    updated_at: datetime | None = Field(default=None, description="Last update timestamp.")
    last_condition_check_at: datetime | None = Field(
        default=None, description="conditional: last time the metric was measured."
    )
    last_drift_measurement: float | None = Field(
        default=None, description="conditional: the last measured value of the metric."
    )
    schedule: ShortText | None = Field(
        default=None, description="Human summary of when the trigger fires (for kubectl get)."
    )
    last_manual_execution: ShortText | None = Field(
        default=None,
        description="The last value of the recluster.io/execute-now annotation acted upon.",
    )
    observedGeneration: int | None = Field(
        default=None, description="The metadata.generation this status reflects."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=16,
        description="Ready condition with its reason.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    history: list[HistoryEntry] | None = Field(
        default=None,
        max_length=MAX_HISTORY,
        description="The most recent executions, newest first.",
    )
    notifications: list[Delivery] | None = Field(
        default=None,
        max_length=MAX_DELIVERIES,
        description=(
            "Webhook deliveries: every pending one and the most recent finished ones, "
            "newest first (event id, attempts, last error, delivered_at)."
        ),
    )


class ObjectMeta(Model):
    """The parts of metav1.ObjectMeta that manifests carry."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    generateName: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


API_GROUP = "recluster.io"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"


class ClusterTrigger(Model):
    """A ClusterTrigger object as applied with kubectl."""

    apiVersion: Literal["recluster.io/v1alpha1"] = "recluster.io/v1alpha1"
    kind: Literal["ClusterTrigger"] = "ClusterTrigger"
    metadata: ObjectMeta
    spec: ClusterTriggerSpec
    status: ClusterTriggerStatus | None = None


def spec_field_names() -> set[str]:
    """Names of spec fields that exist only on the Kubernetes side (not in the seed)."""
    return set(ClusterTriggerSpec.model_fields) - set(TriggerRequest.model_fields)
