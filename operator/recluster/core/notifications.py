"""Completion webhooks: what to send, when to retry, how it is signed. Pure, clock passed in.

The shell is controller/notifier.py (HTTP through a narrow port, a bounded pool
of async workers) with controller/reconciler.py (which folds attempt results
into the trigger's status through `apply_attempts`). Invariants:

1. An outcome is recorded once: `record_outcome` runs when the state machine
   records an execution's outcome, in the same status write, so a restart
   never records it again; a (event id, url) already present is never added twice.
2. A delivery is Pending until a 2xx answer (Delivered) or the retry policy gives
   up (Failed); only Pending deliveries are ever sent (`due`), so a Delivered one
   persisted in status is never sent again, across restarts too. Between a 2xx and
   the status write an operator crash may send it once more: the event id (stable
   per execution and event type, `event_id`) is what receivers deduplicate on.
3. Retries back off exponentially with a deterministic jitter (`backoff`), bounded by
   attempts and by age (`RetryPolicy`).
4. Nothing here holds a secret: `signature` takes the key and returns only the MAC;
   errors kept in status are short, sanitised reasons (`short_error`), never bodies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from ..api.notifications import (
    MAX_DELIVERIES,
    MAX_ERROR_LENGTH,
    Delivery,
    EventType,
    RunRecord,
    Webhook,
)
from ..api.trigger import HistoryEntry

COMPLETED: EventType = "cluster.execution.completed"
FAILED: EventType = "cluster.execution.failed"
SIGNATURE_HEADER = "X-Recluster-Signature"
TIMESTAMP_HEADER = "X-Recluster-Timestamp"
EVENT_ID_HEADER = "X-Recluster-Event-Id"
EVENT_TYPE_HEADER = "X-Recluster-Event"
SIGNATURE_TOLERANCE_SECONDS = 300
"""How old a timestamp receivers should accept (docs/notifications.md), against replays."""
FINISHED_KEPT = 10
"""Delivered and Failed records kept in status besides every pending one."""
REOFFER = timedelta(seconds=5)
"""How often a due delivery is offered to the notifier again while it is in flight or
its queue was full; the notifier wakes the trigger as soon as an attempt ends."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: base * 2^(attempt-1), at most max_delay, jittered to 50-100 %."""

    max_attempts: int = 8
    base_delay: timedelta = timedelta(seconds=10)
    max_delay: timedelta = timedelta(minutes=10)
    max_age: timedelta = timedelta(hours=6)


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class Endpoint:
    """A webhook as a delivery needs it: the trigger's own or the install's."""

    webhook: Webhook
    source: Literal["trigger", "install"] = "trigger"


@dataclass(frozen=True)
class AttemptResult:
    """What one HTTP attempt gave: a 2xx answer (ok) or the reason it failed."""

    event_id: str
    url: str
    ok: bool
    error: str | None = None


def event_id(trigger_uid: str, execution: str, event_type: str) -> str:
    """Stable per trigger, execution and event type: the receivers' deduplication key."""
    digest = hashlib.sha256(f"{trigger_uid}/{execution}/{event_type}".encode()).hexdigest()
    return f"evt_{digest[:24]}"


def endpoints(
    spec_webhooks: Iterable[Webhook], install_webhooks: Iterable[Webhook]
) -> tuple[Endpoint, ...]:
    """The trigger's webhooks, then the install's."""
    return (
        *(Endpoint(w, "trigger") for w in spec_webhooks),
        *(Endpoint(w, "install") for w in install_webhooks),
    )


def record_outcome(
    deliveries: Sequence[Delivery],
    targets: Sequence[Endpoint],
    trigger_uid: str,
    run: RunRecord,
    now: datetime,
) -> list[Delivery]:
    """Deliveries with one Pending delivery per endpoint that subscribes to this outcome."""
    kind = COMPLETED if run.outcome == "succeeded" else FAILED
    ident = event_id(trigger_uid, run.execution_id, kind)
    present = {(d.event_id, d.url) for d in deliveries}
    added = [
        Delivery(
            event_id=ident,
            event_type=kind,
            url=target.webhook.url,
            source=target.source,
            state="Pending",
            created_at=now,
            next_attempt_at=now,
            run=run,
        )
        for target in targets
        if kind in target.webhook.events and (ident, target.webhook.url) not in present
    ]
    return [*added, *deliveries]


def run_record(
    entry: HistoryEntry, outcome: Literal["succeeded", "failed"], summary: dict[str, object]
) -> RunRecord:
    """What an event tells of a finished execution: its history entry and Job summary."""

    def number(name: str) -> float | None:
        value = summary.get(name)
        return float(value) if isinstance(value, int | float) else None

    assert entry.job_id is not None and entry.finished_at is not None
    return RunRecord(
        execution_id=entry.job_id,
        reason=entry.reason,
        outcome=outcome,
        triggered_at=entry.triggered_at,
        scheduled_at=entry.scheduled_at,
        finished_at=entry.finished_at,
        error=short_error(entry.error) if entry.error else None,
        execution_time_ms=entry.execution_time_ms,
        num_clusters=entry.num_clusters,
        num_documents=entry.num_documents,
        noise_fraction=number("noise_fraction"),
        quality_score=number("quality_score"),
    )


def backoff(policy: RetryPolicy, attempts: int, jitter_key: str) -> timedelta:
    """Delay after the `attempts`-th failed attempt: exponential, capped, 50-100 % jittered.

    The jitter is a hash of `jitter_key` (event id, url, attempt), not a random
    draw: deterministic, so the function stays pure and testable, and spread
    across events, so receivers recovering from an outage are not hit in step.
    """
    exponent = min(max(attempts - 1, 0), 30)
    delay = min(policy.base_delay * (2**exponent), policy.max_delay)
    fraction = int(hashlib.sha256(jitter_key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    jittered: timedelta = delay * (0.5 + 0.5 * fraction)
    return jittered


def apply_attempts(
    deliveries: Sequence[Delivery],
    results: Iterable[AttemptResult],
    now: datetime,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> list[Delivery]:
    """Deliveries after the given attempts; results for non-Pending deliveries are ignored.

    Applying the same results twice changes nothing more: a result is matched
    to a Pending delivery only, and the first application moves it on
    (Delivered, Failed, or a next_attempt_at in the future with attempts + 1).
    """
    by_key = {(r.event_id, r.url): r for r in results}
    out: list[Delivery] = []
    for delivery in deliveries:
        result = by_key.get((delivery.event_id, delivery.url))
        if result is None or delivery.state != "Pending":
            out.append(delivery)
            continue
        attempts = delivery.attempts + 1
        update: dict[str, Any] = {"attempts": attempts, "last_attempt_at": now}
        if result.ok:
            update.update(
                state="Delivered", delivered_at=now, next_attempt_at=None, last_error=None
            )
        else:
            update["last_error"] = short_error(result.error or "failed")
            wait = backoff(policy, attempts, f"{delivery.event_id}/{delivery.url}/{attempts}")
            retry_at = _whole_seconds(now + wait)
            if attempts >= policy.max_attempts:
                update.update(state="Failed", next_attempt_at=None)
                update["last_error"] = short_error(
                    f"gave up after {attempts} attempts: {update['last_error']}"
                )
            elif retry_at - delivery.created_at > policy.max_age:
                update.update(state="Failed", next_attempt_at=None)
                update["last_error"] = short_error(
                    f"gave up after {attempts} attempts over {_age(policy.max_age)}: "
                    f"{update['last_error']}"
                )
            else:
                update["next_attempt_at"] = retry_at
        out.append(delivery.model_copy(update=update))
    return out


def due(deliveries: Sequence[Delivery], now: datetime) -> list[Delivery]:
    """Pending deliveries whose next attempt is due at `now`, oldest first."""
    pending = [
        d
        for d in deliveries
        if d.state == "Pending" and (d.next_attempt_at is None or d.next_attempt_at <= now)
    ]
    return sorted(pending, key=lambda d: d.created_at)


def next_attempt(deliveries: Sequence[Delivery], now: datetime) -> datetime | None:
    """When to look at the deliveries again: the earliest retry, or now + REOFFER for a
    delivery due already (it is in flight, or waits for room in the notifier's queue)."""
    moments = []
    for delivery in deliveries:
        if delivery.state == "Pending":
            due_at = delivery.next_attempt_at or delivery.created_at
            moments.append(due_at if due_at > now else now + REOFFER)
    return min(moments) if moments else None


def abandon(
    deliveries: Sequence[Delivery], configured: Iterable[Endpoint], now: datetime
) -> list[Delivery]:
    """Pending deliveries whose endpoint is no longer configured become Failed, not sent."""
    present = {(e.source, e.webhook.url) for e in configured}
    return [
        d
        if d.state != "Pending" or (d.source, d.url) in present
        else d.model_copy(
            update={
                "state": "Failed",
                "next_attempt_at": None,
                "last_error": "the webhook was removed before delivery",
            }
        )
        for d in deliveries
    ]


def prune(deliveries: Sequence[Delivery], kept: int = FINISHED_KEPT) -> list[Delivery]:
    """Every Pending delivery and the `kept` most recent finished ones, newest first.

    Status holds at most MAX_DELIVERIES: beyond it the oldest Pending ones go
    too (receivers unreachable for that many outcomes lose the oldest).
    """
    ordered = sorted(deliveries, key=lambda d: d.created_at, reverse=True)
    finished = [d for d in ordered if d.state != "Pending"][:kept]
    keep = {id(d) for d in finished} | {id(d) for d in ordered if d.state == "Pending"}
    return [d for d in ordered if id(d) in keep][:MAX_DELIVERIES]


def payload(
    delivery: Delivery,
    trigger: Mapping[str, str],
    artifacts: Mapping[str, str],
) -> bytes:
    """The JSON body of a delivery: the same bytes on every attempt (docs/notifications.md).

    `trigger` holds name, namespace and uid; `artifacts` the store URIs of a
    succeeded run's outputs (empty for a failed one).
    """
    run = delivery.run
    body = {
        "id": delivery.event_id,
        "type": delivery.event_type,
        "created_at": _iso(delivery.created_at),
        "trigger": {
            "name": trigger["name"],
            "namespace": trigger["namespace"],
            "uid": trigger["uid"],
        },
        "execution": {
            "id": run.execution_id,
            "reason": run.reason,
            "outcome": run.outcome,
            "triggered_at": _iso(run.triggered_at),
            "scheduled_at": _iso(run.scheduled_at) if run.scheduled_at else None,
            "finished_at": _iso(run.finished_at),
            "execution_time_ms": run.execution_time_ms,
            "error": run.error,
        },
        "counts": {
            "num_clusters": run.num_clusters,
            "num_documents": run.num_documents,
            "noise_fraction": run.noise_fraction,
        },
        "quality_score": run.quality_score,
        "artifacts": dict(artifacts) if run.outcome == "succeeded" else {},
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`, Stripe's scheme with GitHub's prefix."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


def verify(
    secret: bytes,
    timestamp: str,
    body: bytes,
    header: str,
    now: datetime,
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver checks: the MAC (in constant time) and a recent timestamp."""
    if not timestamp.isdigit() or abs(now.timestamp() - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, int(timestamp), body), header)


def headers(delivery: Delivery, secret: bytes, body: bytes, now: datetime) -> dict[str, str]:
    """The headers of one attempt (the timestamp is the attempt's, the body the same)."""
    stamp = int(now.timestamp())
    return {
        "Content-Type": "application/json",
        EVENT_ID_HEADER: delivery.event_id,
        EVENT_TYPE_HEADER: delivery.event_type,
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: signature(secret, stamp, body),
    }


def short_error(text: str) -> str:
    """One printable line of at most MAX_ERROR_LENGTH characters."""
    line = " ".join(text.split())
    line = "".join(c if c.isprintable() else "?" for c in line)
    return line if len(line) <= MAX_ERROR_LENGTH else line[: MAX_ERROR_LENGTH - 3] + "..."


def _whole_seconds(moment: datetime) -> datetime:
    """Rounded up to a whole second: status times are whole seconds, as Kubernetes' are."""
    if moment.microsecond == 0:
        return moment
    return moment.replace(microsecond=0) + timedelta(seconds=1)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _age(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{seconds // 3600}h" if seconds % 3600 == 0 else f"{seconds}s"
