"""Completion webhooks: where a trigger's outcomes are sent, and what status says of it.

Rules (each enforced both by the pydantic validators here and, from the same
tables, by the CRD's CEL rules in cel.py):

- a webhook URL is http:// or https:// with a host, and carries no credentials
  (`user:password@`): receivers authenticate the operator by the HMAC signature
  made with `secret_ref`, never by a secret in the URL, which status and Events show;
- every list and string is bounded (the apiserver's CEL cost budget, small status).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from .base import MAX_ID_LENGTH, Model

EventType = Literal["cluster.execution.completed", "cluster.execution.failed"]
EVENT_TYPES: tuple[EventType, ...] = ("cluster.execution.completed", "cluster.execution.failed")
MAX_WEBHOOKS = 4
"""Per trigger, and per install: each outcome is one delivery per endpoint."""
MAX_URL_LENGTH = 2048
MAX_DELIVERIES = 50
"""Delivery records status.notifications may hold (core.notifications keeps fewer)."""
MAX_TIMEOUT_SECONDS = 30
MAX_ERROR_LENGTH = 256
"""A failed attempt's reason in status: one short line, never a response body."""

URL_RULES: tuple[tuple[str, bool, str], ...] = (
    (r"^https?://", True, "must start with http:// or https://"),
    (
        r"^https?://[^/?#]*@",
        False,
        "must not carry credentials (user:password@): the receiver checks the "
        "X-Recluster-Signature made with secret_ref instead",
    ),
    (r"^https?://[^/?#@\s]+([/?#]\S*)?$", True, "must name a host and contain no spaces"),
)
"""(regular expression, must match, reason): RE2 and Python `re` read them alike."""

SecretName = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    ),
]
SecretKey = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
]


class SecretKeyRef(Model):
    """A key of a Secret in the trigger's namespace (the install's: the operator's)."""

    name: SecretName = Field(description="Name of the Secret.")
    key: SecretKey = Field(default="secret", description="Key in the Secret (default 'secret').")


class Webhook(Model):
    """An HTTP(S) endpoint told of each execution's outcome, signed with an HMAC-SHA256 key."""

    url: Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_LENGTH)] = Field(
        description=(
            "http:// or https:// URL the event is POSTed to; no credentials in it (the "
            "signature authenticates the sender)."
        ),
        examples=["https://hooks.example.com/recluster"],
    )
    events: list[EventType] = Field(
        default_factory=lambda: list(EVENT_TYPES),
        min_length=1,
        max_length=len(EVENT_TYPES),
        description="Which outcomes to send; default both.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    secret_ref: SecretKeyRef = Field(
        description=(
            "The HMAC-SHA256 signing key: a Secret's key in the trigger's namespace. "
            "It is read at each delivery and never shown in status, Events or logs."
        )
    )
    timeout_seconds: int = Field(
        default=10,
        ge=1,
        le=MAX_TIMEOUT_SECONDS,
        description="How long one delivery attempt may take before it counts as failed.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        reason = url_problem(value)
        if reason is not None:
            raise ValueError(reason)
        return value


class Notifications(Model):
    """Who is told when an execution completes or fails."""

    webhooks: list[Webhook] = Field(
        default_factory=list,
        max_length=MAX_WEBHOOKS,
        description="Endpoints of cluster.execution.completed / cluster.execution.failed.",
    )


def url_problem(url: str) -> str | None:
    """Why `url` may not be a webhook URL (the first rule it breaks), or None."""
    for pattern, must_match, reason in URL_RULES:
        if bool(re.search(pattern, url)) != must_match:
            return reason
    return None


ErrorText = Annotated[str, StringConstraints(max_length=MAX_ERROR_LENGTH)]
ShortId = Annotated[str, StringConstraints(max_length=MAX_ID_LENGTH)]


class RunRecord(Model):
    """What an event tells of one finished execution (kept while its delivery is due)."""

    execution_id: ShortId = Field(description="The execution's Job name (also the store's run id).")
    reason: ShortId | None = Field(default=None, description="What made the trigger fire.")
    outcome: Literal["succeeded", "failed"]
    triggered_at: datetime
    scheduled_at: datetime | None = None
    finished_at: datetime
    error: ErrorText | None = Field(default=None, description="Why it failed (one line).")
    execution_time_ms: int | None = None
    num_clusters: int | None = None
    num_documents: int | None = None
    noise_fraction: float | None = None
    quality_score: float | None = None


class Delivery(Model):
    """The delivery of one event to one endpoint, as status.notifications shows it."""

    event_id: ShortId = Field(
        description="Stable per execution and event type; sent as X-Recluster-Event-Id."
    )
    event_type: EventType
    url: Annotated[str, StringConstraints(max_length=MAX_URL_LENGTH)]
    source: Literal["trigger", "install"] = Field(
        default="trigger", description="Whose webhook: the trigger's spec or the install's."
    )
    state: Literal["Pending", "Delivered", "Failed"] = Field(
        description="Pending (retrying), Delivered (a 2xx answer), Failed (gave up)."
    )
    attempts: int = Field(default=0, ge=0)
    created_at: datetime = Field(description="When the outcome was recorded.")
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    last_error: ErrorText | None = Field(
        default=None, description="Why the last attempt failed (status code or network error)."
    )
    run: RunRecord
