"""Completion webhooks, the pure part: what is sent, when it is retried, how it is signed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from test_triggering import Sim, at, spec

from recluster.api.notifications import Delivery, RunRecord, Webhook
from recluster.api.trigger import ClusterTriggerSpec
from recluster.core import notifications as n
from recluster.core.notifications import AttemptResult, Endpoint, RetryPolicy

T0 = datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC)
URL = "https://hooks.example.com/recluster"
OTHER = "http://receiver.internal:8080/hook"


def hook(url: str = URL, **extra: Any) -> Webhook:
    return Webhook.model_validate({"url": url, "secret_ref": {"name": "hook-key"}, **extra})


def run(outcome: str = "succeeded", execution: str = "nightly-0a1b2c3d4e") -> RunRecord:
    return RunRecord(
        execution_id=execution,
        reason="schedule",
        outcome=outcome,  # type: ignore[arg-type]
        triggered_at=T0,
        finished_at=T0 + timedelta(seconds=42),
        num_clusters=5,
        num_documents=1000,
        quality_score=0.61,
        error=None if outcome == "succeeded" else "collection 'x' not found",
    )


def pending(*urls: str, outcome: str = "succeeded") -> list[Delivery]:
    targets = [Endpoint(hook(u)) for u in urls]
    return n.record_outcome([], targets, "uid-1", run(outcome), T0)


# -- the model ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://hooks.example.com/x", "must start with http:// or https://"),
        ("file:///etc/passwd", "must start with http:// or https://"),
        ("https://user:pw@hooks.example.com/x", "must not carry credentials"),
        ("https://token@hooks.example.com/x", "must not carry credentials"),
        ("https:///path-without-host", "must name a host"),
        ("https://hooks.example.com/a b", "must name a host and contain no spaces"),
    ],
)
def test_webhook_urls_are_http_without_credentials(url: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        hook(url)
    error = caught.value.errors()[0]
    assert error["loc"] == ("url",)
    assert reason in error["msg"]


def test_a_webhook_needs_its_signing_secret_and_bounded_fields() -> None:
    with pytest.raises(ValidationError) as caught:
        Webhook.model_validate({"url": URL})
    assert caught.value.errors()[0]["loc"] == ("secret_ref",)
    for bad in (
        {"timeout_seconds": 0},
        {"timeout_seconds": 31},
        {"events": []},
        {"events": ["cluster.execution.started"]},
    ):
        with pytest.raises(ValidationError):
            hook(**bad)
    made = hook()
    assert made.events == ["cluster.execution.completed", "cluster.execution.failed"]
    assert (made.secret_ref.key, made.timeout_seconds) == ("secret", 10)
    with pytest.raises(ValidationError) as caught:
        ClusterTriggerSpec.model_validate(
            {
                **spec().model_dump(exclude_none=True),
                "notifications": {"webhooks": [{"url": URL, "secret_ref": {"name": "k"}}] * 5},
            }
        )
    assert caught.value.errors()[0]["loc"] == ("notifications", "webhooks")


# -- what is sent ---------------------------------------------------------------------------


def test_an_outcome_becomes_one_pending_delivery_per_subscribed_endpoint() -> None:
    targets = [
        Endpoint(hook(URL)),
        Endpoint(hook(OTHER, events=["cluster.execution.failed"]), "install"),
    ]
    done = n.record_outcome([], targets, "uid-1", run("succeeded"), T0)
    assert [(d.url, d.event_type, d.state, d.source) for d in done] == [
        (URL, "cluster.execution.completed", "Pending", "trigger")
    ]
    failed = n.record_outcome(done, targets, "uid-1", run("failed", "nightly-ffff"), T0)
    assert [(d.url, d.event_type) for d in failed[:2]] == [
        (URL, "cluster.execution.failed"),
        (OTHER, "cluster.execution.failed"),
    ]
    assert failed[0].event_id == failed[1].event_id  # one event, sent to two endpoints
    # recording the same outcome again adds nothing
    assert n.record_outcome(failed, targets, "uid-1", run("failed", "nightly-ffff"), T0) == failed


def test_event_ids_are_stable_per_execution_and_type() -> None:
    first = n.event_id("uid-1", "job-a", n.COMPLETED)
    assert first == n.event_id("uid-1", "job-a", n.COMPLETED)
    assert first.startswith("evt_") and len(first) == 28
    others = {
        n.event_id("uid-1", "job-b", n.COMPLETED),
        n.event_id("uid-1", "job-a", n.FAILED),
        n.event_id("uid-2", "job-a", n.COMPLETED),
    }
    assert first not in others and len(others) == 3


def test_the_payload_carries_the_run_and_its_artifacts() -> None:
    delivery = pending(URL)[0]
    trigger = {"name": "nightly", "namespace": "team-a", "uid": "uid-1"}
    artifacts = {"run": "s3://bucket/store/team-a/runs/nightly-0a1b2c3d4e/"}
    body = n.payload(delivery, trigger, artifacts)
    assert body == n.payload(delivery, trigger, artifacts)  # the same bytes on each attempt
    data = json.loads(body)
    assert data["id"] == delivery.event_id
    assert data["type"] == "cluster.execution.completed"
    assert data["trigger"] == trigger
    assert data["execution"] == {
        "id": "nightly-0a1b2c3d4e",
        "reason": "schedule",
        "outcome": "succeeded",
        "triggered_at": "2026-11-28T10:00:30Z",
        "scheduled_at": None,
        "finished_at": "2026-11-28T10:01:12Z",
        "execution_time_ms": None,
        "error": None,
    }
    assert data["counts"] == {"num_clusters": 5, "num_documents": 1000, "noise_fraction": None}
    assert data["quality_score"] == 0.61
    assert data["artifacts"] == artifacts
    failed = pending(URL, outcome="failed")[0]
    assert json.loads(n.payload(failed, trigger, artifacts))["artifacts"] == {}


def test_signatures_verify_and_reject_tampering_and_old_timestamps() -> None:
    delivery = pending(URL)[0]
    body = b'{"id":"evt_1"}'
    headers = n.headers(delivery, b"s3cret", body, T0)
    stamp = headers[n.TIMESTAMP_HEADER]
    assert stamp == str(int(T0.timestamp()))
    assert headers[n.EVENT_ID_HEADER] == delivery.event_id
    assert headers[n.SIGNATURE_HEADER].startswith("sha256=")
    assert "s3cret" not in json.dumps(headers)
    assert n.verify(b"s3cret", stamp, body, headers[n.SIGNATURE_HEADER], T0)
    assert not n.verify(b"wrong", stamp, body, headers[n.SIGNATURE_HEADER], T0)
    assert not n.verify(b"s3cret", stamp, body + b" ", headers[n.SIGNATURE_HEADER], T0)
    late = T0 + timedelta(seconds=n.SIGNATURE_TOLERANCE_SECONDS + 1)
    assert not n.verify(b"s3cret", stamp, body, headers[n.SIGNATURE_HEADER], late)


# -- when it is retried ---------------------------------------------------------------------


def test_a_failed_attempt_is_retried_with_growing_jittered_delays() -> None:
    policy = RetryPolicy(max_attempts=20, max_age=timedelta(days=30))
    deliveries = pending(URL)
    assert n.due(deliveries, T0) == deliveries
    now = T0
    waits = []
    for _ in range(8):
        [d] = deliveries
        deliveries = n.apply_attempts(
            deliveries, [AttemptResult(d.event_id, URL, False, "HTTP 500")], now, policy
        )
        [d] = deliveries
        assert d.state == "Pending" and d.last_error == "HTTP 500"
        assert d.next_attempt_at is not None
        waits.append(d.next_attempt_at - now)
        assert n.due(deliveries, d.next_attempt_at - timedelta(seconds=1)) == []
        now = d.next_attempt_at
        assert n.due(deliveries, now) == deliveries
    base, cap = policy.base_delay, policy.max_delay
    for attempt, wait in enumerate(waits, start=1):
        nominal = min(base * 2 ** (attempt - 1), cap)
        assert nominal / 2 <= wait <= nominal + timedelta(seconds=1)  # whole seconds
    assert waits[-1] >= cap / 2  # capped
    assert len({w / min(base * 2**i, cap) for i, w in enumerate(waits)}) > 1  # jittered


def test_delivery_stops_at_success_and_results_apply_once() -> None:
    [d] = pending(URL)
    ok = AttemptResult(d.event_id, URL, True)
    after = n.apply_attempts([d], [ok], T0)
    assert (after[0].state, after[0].attempts, after[0].delivered_at) == ("Delivered", 1, T0)
    assert n.due(after, T0 + timedelta(days=1)) == []
    assert n.next_attempt(after, T0) is None
    # the same result again (a re-decided reconcile) changes nothing
    assert n.apply_attempts(after, [ok], T0 + timedelta(seconds=5)) == after


def test_retries_give_up_after_max_attempts_or_max_age() -> None:
    policy = RetryPolicy(max_attempts=3, max_age=timedelta(days=1))
    deliveries = pending(URL)
    now = T0
    for _ in range(3):
        deliveries = n.apply_attempts(
            deliveries,
            [AttemptResult(deliveries[0].event_id, URL, False, "timed out")],
            now,
            policy,
        )
        now = deliveries[0].next_attempt_at or now
    [d] = deliveries
    assert d.state == "Failed" and d.attempts == 3
    assert d.last_error == "gave up after 3 attempts: timed out"
    aged = RetryPolicy(max_attempts=100, max_age=timedelta(seconds=15))
    [d] = n.apply_attempts(
        pending(URL),
        [AttemptResult(d.event_id, URL, False, "HTTP 503")],
        T0 + timedelta(seconds=10),
        aged,
    )
    assert d.state == "Failed" and d.last_error.startswith("gave up after 1 attempts over 15s")


def test_errors_in_status_are_one_short_line() -> None:
    [d] = pending(URL)
    noisy = "HTTP 500: " + "<html>\n" * 200 + "\x00"
    [after] = n.apply_attempts([d], [AttemptResult(d.event_id, URL, False, noisy)], T0)
    assert after.last_error is not None
    assert len(after.last_error) <= 256 and "\n" not in after.last_error
    assert after.last_error.endswith("...")


def test_removed_webhooks_abandon_their_pending_deliveries() -> None:
    deliveries = pending(URL, OTHER)
    left = n.abandon(deliveries, [Endpoint(hook(OTHER))], T0)
    states = {d.url: (d.state, d.last_error) for d in left}
    assert states[URL] == ("Failed", "the webhook was removed before delivery")
    assert states[OTHER] == ("Pending", None)


def test_prune_keeps_every_pending_delivery_and_the_latest_finished() -> None:
    deliveries: list[Delivery] = []
    for i in range(15):
        moment = T0 + timedelta(minutes=i)
        added = n.record_outcome([], [Endpoint(hook())], "uid-1", run(execution=f"j-{i}"), moment)
        state = "Pending" if i in (0, 7) else "Delivered"
        deliveries += [added[0].model_copy(update={"state": state})]
    kept = n.prune(deliveries, kept=5)
    assert [d.run.execution_id for d in kept] == [
        "j-14",
        "j-13",
        "j-12",
        "j-11",
        "j-10",
        "j-7",
        "j-0",
    ]


# -- in the state machine -------------------------------------------------------------------


def test_the_state_machine_records_each_outcome_once_and_asks_for_delivery() -> None:
    sim = Sim(spec())
    targets = (Endpoint(hook()),)
    sim.step(webhooks=targets)
    decision = sim.step(at(10, 5, 1), webhooks=targets)
    job = decision.create[0].name
    sim.finish(job, ok=True, num_clusters=3, num_documents=900, quality_score=0.5)
    decision = sim.step(at(10, 6), webhooks=targets)
    [d] = sim.status.notifications or []
    assert (d.event_type, d.state, d.attempts, d.url) == (
        "cluster.execution.completed",
        "Pending",
        0,
        URL,
    )
    assert (d.run.execution_id, d.run.num_clusters, d.run.quality_score) == (job, 3, 0.5)
    assert decision.deliver == [d]
    # while it is in flight, the trigger looks again after REOFFER (or when woken)
    assert decision.requeue_after == pytest.approx(n.REOFFER.total_seconds())
    # the next reconcile without a result asks again (the notifier skips what it holds)
    assert sim.step(at(10, 6, 1), webhooks=targets).deliver == [d]
    # a failed attempt waits for its backoff, and the reconcile wakes up for it
    decision = sim.step(
        at(10, 6, 2),
        webhooks=targets,
        delivery_results=(AttemptResult(d.event_id, URL, False, "HTTP 500"),),
    )
    [d] = sim.status.notifications or []
    assert decision.deliver == [] and d.attempts == 1 and d.next_attempt_at is not None
    assert decision.requeue_after == pytest.approx(
        (d.next_attempt_at - at(10, 6, 2)).total_seconds()
    )
    decision = sim.step(d.next_attempt_at, webhooks=targets)
    assert decision.deliver == [d]
    decision = sim.step(
        d.next_attempt_at,
        webhooks=targets,
        delivery_results=(AttemptResult(d.event_id, URL, True),),
    )
    [d] = sim.status.notifications or []
    assert d.state == "Delivered" and d.attempts == 2 and decision.deliver == []
    # later reconciles record nothing new for that execution
    sim.step(at(10, 7), webhooks=targets)
    assert len(sim.status.notifications or []) == 1


def test_a_trigger_without_webhooks_records_no_deliveries() -> None:
    sim = Sim(spec())
    sim.step()
    job = sim.step(at(10, 5, 1)).create[0].name
    sim.finish(job, ok=False)
    sim.step(at(10, 6))
    assert sim.status.notifications is None
