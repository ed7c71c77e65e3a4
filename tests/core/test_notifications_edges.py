"""Completion webhooks at their edges: exact bodies, boundaries of retries, signatures, status."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta

from test_notifications import OTHER, T0, URL, hook, pending, run

from recluster.api.notifications import MAX_DELIVERIES, MAX_ERROR_LENGTH, Delivery
from recluster.api.trigger import HistoryEntry
from recluster.core import notifications as n
from recluster.core.notifications import AttemptResult, Endpoint, RetryPolicy

TRIGGER = {"name": "nightly", "namespace": "team-a", "uid": "uid-1"}


def ceil_second(moment: datetime) -> datetime:
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


def fail(deliveries: list[Delivery], now: datetime, policy: RetryPolicy = n.DEFAULT_POLICY,
         error: str | None = "HTTP 500") -> list[Delivery]:  # fmt: skip
    results = [AttemptResult(d.event_id, d.url, False, error) for d in deliveries]
    return n.apply_attempts(deliveries, results, now, policy)


# -- what is recorded -----------------------------------------------------------------------


def test_a_recorded_outcome_is_due_at_once_with_no_attempt_yet() -> None:
    [d] = pending(URL)
    assert (d.created_at, d.next_attempt_at, d.attempts, d.last_attempt_at) == (T0, T0, 0, None)
    assert (d.last_error, d.delivered_at, d.run) == (None, None, run())


def test_endpoints_are_the_triggers_then_the_installs() -> None:
    mine, theirs = hook(URL), hook(OTHER)
    assert n.endpoints([mine], [theirs]) == (Endpoint(mine, "trigger"), Endpoint(theirs, "install"))


def test_a_delivery_to_the_installs_webhook_says_so_in_status() -> None:
    targets = n.endpoints([], [hook(OTHER)])
    [d] = n.record_outcome([], targets, "uid-1", run(), T0)
    assert (d.url, d.source) == (OTHER, "install")


def test_the_run_record_tells_the_history_entry_and_the_summarys_numbers() -> None:
    entry = HistoryEntry(
        job_id="nightly-0a1b2c3d4e",
        triggered_at=T0,
        scheduled_at=T0 - timedelta(seconds=30),
        finished_at=T0 + timedelta(minutes=1),
        status="failed",
        reason="catch_up",
        execution_time_ms=60000,
        error="line one\nline two\x07",
        num_clusters=4,
        num_documents=800,
    )
    record = n.run_record(entry, "failed", {"noise_fraction": 0, "quality_score": "0.5"})
    assert record == run("failed").model_copy(
        update={
            "reason": "catch_up",
            "scheduled_at": T0 - timedelta(seconds=30),
            "finished_at": T0 + timedelta(minutes=1),
            "error": "line one line two?",
            "execution_time_ms": 60000,
            "num_clusters": 4,
            "num_documents": 800,
            "noise_fraction": 0.0,  # an int in the summary is a number
            "quality_score": None,  # a string is not
        }
    )
    assert isinstance(record.noise_fraction, float)
    ok = n.run_record(
        entry.model_copy(update={"error": None}), "succeeded", {"quality_score": 0.25}
    )
    assert (ok.outcome, ok.error, ok.quality_score, ok.noise_fraction) == (
        "succeeded", None, 0.25, None,
    )  # fmt: skip


# -- the body and its signature -------------------------------------------------------------


def test_the_body_is_compact_json_with_sorted_keys() -> None:
    delivery = pending(URL)[0].model_copy(
        update={"run": run().model_copy(update={"scheduled_at": T0, "noise_fraction": 0.1})}
    )
    body = n.payload(delivery, TRIGGER, {"run": "s3://b/r/"})
    data = json.loads(body)
    assert body == json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    assert body.startswith(b'{"artifacts":{"run":"s3://b/r/"},"counts":{')
    assert data["created_at"] == "2026-11-28T10:00:30Z"
    assert data["execution"]["scheduled_at"] == "2026-11-28T10:00:30Z"
    assert data["counts"]["noise_fraction"] == 0.1


def test_a_signature_is_the_hmac_of_timestamp_dot_body() -> None:
    body = b'{"id":"evt_1"}'
    mac = hmac.new(b"key", b"1764324030." + body, hashlib.sha256).hexdigest()
    assert n.signature(b"key", 1764324030, body) == f"sha256={mac}"


def test_the_headers_of_an_attempt() -> None:
    delivery = pending(URL, outcome="failed")[0]
    body = n.payload(delivery, TRIGGER, {})
    stamp = int(T0.timestamp())
    assert n.headers(delivery, b"key", body, T0) == {
        "Content-Type": "application/json",
        "X-Recluster-Event-Id": delivery.event_id,
        "X-Recluster-Event": "cluster.execution.failed",
        "X-Recluster-Timestamp": str(stamp),
        "X-Recluster-Signature": n.signature(b"key", stamp, body),
    }


def test_verify_accepts_up_to_the_tolerance_either_way_and_only_digits() -> None:
    body = b"{}"
    stamp = int(T0.timestamp())
    mac = n.signature(b"key", stamp, body)
    tolerance = timedelta(seconds=300)
    assert n.verify(b"key", str(stamp), body, mac, T0 + tolerance)
    assert n.verify(b"key", str(stamp), body, mac, T0 - tolerance)
    assert not n.verify(b"key", str(stamp), body, mac, T0 - tolerance - timedelta(seconds=1))
    assert n.verify(b"key", str(stamp), body, mac, T0, tolerance=0)
    assert not n.verify(b"key", str(stamp), body, mac, T0 + timedelta(seconds=1), tolerance=0)
    assert not n.verify(b"key", f"-{stamp}", body, mac, T0)
    assert not n.verify(b"key", f"{stamp}.0", body, mac, T0)


# -- retries --------------------------------------------------------------------------------


def test_retries_wait_the_jittered_backoff_rounded_up_to_a_whole_second() -> None:
    deliveries = pending(URL)
    now = T0 + timedelta(microseconds=250)
    for attempt in range(1, 4):
        [d] = deliveries = fail(deliveries, now)
        wait = n.backoff(n.DEFAULT_POLICY, attempt, f"{d.event_id}/{URL}/{attempt}")
        assert d.next_attempt_at == ceil_second(now + wait)
        assert (d.attempts, d.last_attempt_at) == (attempt, now)
        now = d.next_attempt_at
    # a retry landing on a whole second is not pushed a second later
    [d] = fail(pending(URL), T0, RetryPolicy(base_delay=timedelta(0)))
    assert d.next_attempt_at == T0


def test_backoff_doubles_from_the_base_delay_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay=timedelta(seconds=8), max_delay=timedelta(seconds=100))
    for attempts, nominal in ((0, 8), (1, 8), (2, 16), (3, 32), (4, 64), (5, 100), (60, 100)):
        wait = n.backoff(policy, attempts, "key")
        assert timedelta(seconds=nominal) / 2 <= wait <= timedelta(seconds=nominal), attempts
    fractions = {n.backoff(policy, 1, f"key-{i}") / timedelta(seconds=8) for i in range(50)}
    assert min(fractions) < 0.6 and max(fractions) > 0.9  # spread over 50-100 %


def test_a_failure_without_a_reason_says_failed() -> None:
    [d] = fail(pending(URL), T0, error=None)
    assert d.last_error == "failed"


def test_giving_up_ends_the_delivery() -> None:
    policy = RetryPolicy(max_attempts=1)
    [d] = fail(pending(URL), T0, policy)
    assert (d.state, d.next_attempt_at, d.attempts, d.last_attempt_at) == ("Failed", None, 1, T0)
    assert d.last_error == "gave up after 1 attempts: HTTP 500"
    assert n.due([d], T0 + timedelta(days=1)) == [] and n.next_attempt([d], T0) is None
    # a late result for a finished delivery changes nothing
    assert n.apply_attempts([d], [AttemptResult(d.event_id, URL, True)], T0) == [d]


def test_max_age_counts_from_the_outcome_and_names_hours() -> None:
    policy = RetryPolicy(max_attempts=100, max_age=timedelta(hours=2))
    [first] = pending(URL)
    retry_at = ceil_second(T0 + n.backoff(policy, 1, f"{first.event_id}/{URL}/1"))
    # a retry landing exactly on the age limit is still made
    on_limit = first.model_copy(update={"created_at": retry_at - policy.max_age})
    [d] = fail([on_limit], T0, policy)
    assert d.state == "Pending" and d.next_attempt_at == retry_at
    past = on_limit.model_copy(update={"created_at": on_limit.created_at - timedelta(seconds=1)})
    [late] = fail([past], T0, policy)
    assert late.state == "Failed" and late.next_attempt_at is None
    assert late.last_error == "gave up after 1 attempts over 2h: HTTP 500"


def test_a_success_after_failures_clears_the_error_and_the_retry() -> None:
    [d] = fail(pending(URL), T0)
    later = T0 + timedelta(minutes=1)
    [done] = n.apply_attempts([d], [AttemptResult(d.event_id, URL, True)], later)
    assert (done.state, done.attempts, done.delivered_at, done.last_attempt_at) == (
        "Delivered", 2, later, later,
    )  # fmt: skip
    assert (done.next_attempt_at, done.last_error) == (None, None)


def test_a_result_applies_only_to_its_own_event_and_url() -> None:
    deliveries = pending(URL, OTHER)
    other = deliveries[1]
    after = n.apply_attempts(deliveries, [AttemptResult(other.event_id, OTHER, True)], T0)
    assert [(d.url, d.state) for d in after] == [(URL, "Pending"), (OTHER, "Delivered")]


# -- when to look again, what is kept -------------------------------------------------------


def test_due_deliveries_come_oldest_first() -> None:
    older = pending(URL)[0]
    newer = n.record_outcome([], [Endpoint(hook())], "uid-1", run(execution="j-2"),
                             T0 + timedelta(minutes=1))[0]  # fmt: skip
    later = T0 + timedelta(minutes=2)
    assert n.due([newer, older], later) == [older, newer]
    waiting = older.model_copy(update={"next_attempt_at": None})
    assert n.due([waiting], T0) == [waiting]


def test_next_attempt_is_the_earliest_retry_or_a_reoffer_of_what_is_due() -> None:
    [d] = pending(URL)
    assert n.next_attempt([d], T0) == T0 + timedelta(seconds=5)  # due now: offered again
    assert n.next_attempt([d], T0 - timedelta(seconds=1)) == T0
    soon = d.model_copy(update={"next_attempt_at": T0 + timedelta(seconds=30)})
    later = d.model_copy(update={"next_attempt_at": T0 + timedelta(seconds=90)})
    assert n.next_attempt([later, soon], T0) == T0 + timedelta(seconds=30)
    fresh = d.model_copy(update={"next_attempt_at": None, "created_at": T0 + timedelta(1)})
    assert n.next_attempt([fresh], T0) == T0 + timedelta(1)


def test_abandon_matches_the_endpoints_source_too() -> None:
    [mine] = pending(URL)
    left = n.abandon([mine], [Endpoint(hook(URL), "install")], T0)
    assert [(d.state, d.next_attempt_at) for d in left] == [("Failed", None)]
    done = mine.model_copy(update={"state": "Delivered", "next_attempt_at": None})
    assert n.abandon([done], [], T0) == [done]


def test_prune_keeps_ten_finished_and_at_most_the_status_limit() -> None:
    deliveries = []
    for i in range(MAX_DELIVERIES + 15):
        [d] = n.record_outcome([], [Endpoint(hook())], "uid-1", run(execution=f"j-{i}"),
                               T0 + timedelta(minutes=i))  # fmt: skip
        deliveries.append(d.model_copy(update={"state": "Delivered" if i < 15 else "Pending"}))
    kept = n.prune(deliveries[:14])
    assert [d.run.execution_id for d in kept] == [f"j-{i}" for i in range(13, 3, -1)]
    capped = n.prune(deliveries)
    assert len(capped) == MAX_DELIVERIES
    assert {d.state for d in capped} == {"Pending"}


def test_short_errors_keep_a_line_of_exactly_the_limit() -> None:
    exact = "x" * MAX_ERROR_LENGTH
    assert n.short_error(exact) == exact
    longer = n.short_error(exact + "y")
    assert len(longer) == MAX_ERROR_LENGTH and longer == "x" * (MAX_ERROR_LENGTH - 3) + "..."
    assert n.short_error("a\tb\x00 c") == "a b? c"


def test_pending_deliveries_do_not_count_among_the_finished_kept() -> None:
    deliveries = []
    for i, state in enumerate(("Delivered", "Failed", "Pending")):
        [d] = n.record_outcome([], [Endpoint(hook())], "uid-1", run(execution=f"j-{i}"),
                               T0 + timedelta(minutes=i))  # fmt: skip
        deliveries.append(d.model_copy(update={"state": state}))
    kept = n.prune(deliveries, kept=2)
    assert [(d.run.execution_id, d.state) for d in kept] == [
        ("j-2", "Pending"), ("j-1", "Failed"), ("j-0", "Delivered"),
    ]  # fmt: skip
