"""The trigger state machine, driven with an injected clock and simulated Jobs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from recluster.api.clustering import ExecutionConfig
from recluster.api.trigger import ClusterTriggerSpec, ClusterTriggerStatus, HistoryEntry
from recluster.core.jobs import JobObservation, execution_id, job_name
from recluster.core.triggering import (
    Decision,
    Observation,
    TriggerRef,
    creation_refused,
    describe_schedule,
    invalid_spec,
    reconcile,
)

T0 = datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC)
CONFIG = {"collection_ids": ["col_abc123"], "config": {"algorithm": "kmeans", "n_clusters": 3}}


def spec(trigger_type: str = "cron", **extra: Any) -> ClusterTriggerSpec:
    schedules: dict[str, dict[str, Any]] = {
        "cron": {"cron_expression": "*/5 * * * *", "timezone": "UTC"},
        "interval": {"interval_seconds": 60, "start_immediately": False},
        "event": {
            "event_type": "documents_added",
            "event_threshold": 100,
            "collection_id": "col_abc123",
            "cooldown_seconds": 300,
        },
        "conditional": {
            "condition_type": "drift",
            "threshold": 0.3,
            "metric": "cosine_drift",
            "check_interval_seconds": 600,
        },
    }
    schedule = {**schedules[trigger_type], **extra.pop("schedule", {})}
    return ClusterTriggerSpec.model_validate(
        {
            "trigger_type": trigger_type,
            "schedule_config": schedule,
            "execution_config": CONFIG,
            **extra,
        }
    )


class Sim:
    """Plays the shell and the Job controller around the pure core."""

    def __init__(self, trigger_spec: ClusterTriggerSpec, now: datetime = T0) -> None:
        self.spec = trigger_spec
        self.ref = TriggerRef("nightly", "default", "uid-1", 1, now)
        self.status = ClusterTriggerStatus()
        self.jobs: dict[str, JobObservation] = {}
        self.now = now
        self.annotation: str | None = None
        self.decisions: list[Decision] = []

    def step(self, at: datetime | None = None, **observed: Any) -> Decision:
        if at is not None:
            self.now = at
        observation = Observation(
            jobs=tuple(self.jobs.values()),
            execution_config=ExecutionConfig.model_validate(CONFIG),
            manual_request=self.annotation,
            **observed,
        )
        decision = reconcile(self.ref, self.spec, self.status, observation, self.now)
        self.status = decision.status
        for request in decision.create:
            self.jobs[request.name] = JobObservation(
                request.name,
                request.execution,
                "running",
                created_at=self.now,
                scheduled_at=request.scheduled_at,
            )
        for deletion in decision.delete:
            self.jobs.pop(deletion.name, None)
        self.decisions.append(decision)
        return decision

    def finish(self, name: str, ok: bool, after: float = 5.0, **summary: Any) -> None:
        job = self.jobs[name]
        self.jobs[name] = replace(
            job,
            phase="succeeded" if ok else "failed",
            finished_at=self.now + timedelta(seconds=after),
            summary=summary or None,
            error=None if ok else "collection 'col_abc123' not found",
        )

    def edit(self, new_spec: ClusterTriggerSpec) -> None:
        self.spec = new_spec
        self.ref = replace(self.ref, generation=self.ref.generation + 1)


def reasons(decision: Decision) -> list[str]:
    return [e.reason for e in decision.events]


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, 28, hour, minute, second, tzinfo=UTC)


def test_new_cron_trigger_waits_for_its_first_slot() -> None:
    sim = Sim(spec())
    decision = sim.step()
    assert decision.create == []
    st = sim.status
    assert st.next_scheduled_at == at(10, 5)
    assert st.status == "active" and st.schedule == "*/5 * * * * (UTC)"
    assert st.namespace_id == "default" and st.internal_id == "uid-1"
    assert st.observedGeneration == 1 and st.updated_at == T0
    ready = st.conditions[0]  # type: ignore[index]
    assert (ready.type, ready.status, ready.reason) == ("Ready", "True", "Active")
    assert decision.requeue_after == pytest.approx(270.0)


def test_a_due_slot_creates_one_deterministic_job() -> None:
    sim = Sim(spec())
    sim.step()
    decision = sim.step(at(10, 5, 1))
    expected = job_name("nightly", execution_id("uid-1", "scheduled/2026-11-28T10:05:00Z"))
    assert [r.name for r in decision.create] == [expected]
    request = decision.create[0]
    assert request.scheduled_at == at(10, 5) and request.reason == "schedule"
    assert request.execution == execution_id("uid-1", "scheduled/2026-11-28T10:05:00Z")
    assert request.execution_config.collection_ids == ["col_abc123"]
    st = sim.status
    assert st.execution_count == 1 and st.last_triggered_at == at(10, 5, 1)
    assert st.last_execution_job_id == expected and st.last_execution_status == "running"
    assert st.next_scheduled_at == at(10, 10)
    assert st.history and st.history[0].status == "running"
    assert reasons(decision) == ["Triggered"]
    again = sim.step(at(10, 5, 2))
    assert again.create == [] and again.events == []  # idempotent


def test_success_and_failure_are_counted() -> None:
    sim = Sim(spec())
    sim.step()
    first = sim.step(at(10, 5)).create[0].name
    sim.finish(first, ok=False)
    failed = sim.step(at(10, 6))
    assert reasons(failed) == ["Failed"]
    st = sim.status
    assert st.consecutive_failures == 1 and st.last_execution_status == "failed"
    assert st.last_execution_error == "collection 'col_abc123' not found"
    second = sim.step(at(10, 10)).create[0].name
    assert sim.status.last_execution_error is None
    sim.finish(second, ok=True, execution_time_ms=1234, num_clusters=3, num_documents=500)
    ok = sim.step(at(10, 11))
    assert reasons(ok) == ["Succeeded"]
    st = sim.status
    assert st.consecutive_failures == 0 and st.execution_count == 2
    assert st.last_execution_status == "succeeded"
    assert st.history == [
        HistoryEntry(job_id=second, triggered_at=at(10, 10), scheduled_at=at(10, 10),
                     finished_at=at(10, 10, 5), status="succeeded", reason="schedule",
                     execution_time_ms=1234, num_clusters=3, num_documents=500),
        # no execution_time_ms in the summary: from the Job's creation to its end
        HistoryEntry(job_id=first, triggered_at=at(10, 5), scheduled_at=at(10, 5),
                     finished_at=at(10, 5, 5), status="failed", reason="schedule",
                     execution_time_ms=5000, error="collection 'col_abc123' not found"),
    ]  # fmt: skip
    assert [e.message for e in failed.events] == [
        f"Job {first} failed: collection 'col_abc123' not found"
    ]
    assert [(e.type, e.message) for e in ok.events] == [
        ("Normal", f"Job {second} succeeded: 3 clusters over 500 documents in 1234 ms")
    ]


def test_max_consecutive_failures_stops_until_the_spec_changes() -> None:
    sim = Sim(spec(max_consecutive_failures=2))
    sim.step()
    for minute in (5, 10):
        name = sim.step(at(10, minute)).create[0].name
        sim.finish(name, ok=False)
    decision = sim.step(at(10, 11))
    assert sim.status.status == "failed" and sim.status.next_scheduled_at is None
    assert "MaxConsecutiveFailures" in reasons(decision)
    ready = sim.status.conditions[0]  # type: ignore[index]
    assert (ready.status, ready.reason) == ("False", "MaxConsecutiveFailures")
    assert sim.step(at(10, 15)).create == []
    assert sim.step(at(11, 0)).create == []
    sim.edit(spec(max_consecutive_failures=2, schedule={"cron_expression": "*/10 * * * *"}))
    recovered = sim.step(at(11, 1))
    assert recovered.create == [], "a spec edit must not cause a spurious run"
    assert [(e.type, e.message) for e in recovered.events if e.reason == "Recovered"] == [
        ("Normal", "the spec changed: firing resumes")
    ]
    st = sim.status
    assert st.status == "active" and st.consecutive_failures == 0
    assert st.next_scheduled_at == at(11, 10)
    assert len(sim.step(at(11, 10)).create) == 1


def test_restart_adopts_the_job_of_the_same_firing() -> None:
    sim = Sim(spec())
    sim.step()
    before = sim.status.model_copy(deep=True)
    created = sim.step(at(10, 5, 1)).create[0]
    # the operator died before its status patch landed: status is the old one
    sim.status = before
    decision = sim.step(at(10, 5, 3))
    assert decision.create == [], "never a second Job for one firing"
    assert sim.status.last_execution_job_id == created.name
    assert sim.status.execution_count == 1
    assert "adopted existing Job" in decision.events[0].message


def test_adopted_job_that_already_finished_is_recorded() -> None:
    sim = Sim(spec())
    sim.step()
    before = sim.status.model_copy(deep=True)
    created = sim.step(at(10, 5, 1)).create[0]
    sim.status = before
    sim.finish(created.name, ok=True, num_clusters=3, num_documents=10)
    decision = sim.step(at(10, 7))
    assert reasons(decision) == ["Triggered", "Succeeded"]
    assert sim.status.last_execution_status == "succeeded"
    assert sim.status.history[0].num_clusters == 3  # type: ignore[index]


def test_downtime_across_three_slots_catches_up_once() -> None:
    sim = Sim(spec())
    sim.step()
    decision = sim.step(at(10, 15, 20))  # slots 10:05, 10:10, 10:15 passed
    assert len(decision.create) == 1
    request = decision.create[0]
    assert request.scheduled_at == at(10, 15) and request.reason == "catch_up"
    assert "MissedSchedule" in reasons(decision)
    assert "missed 3 firings" in decision.events[0].message
    assert sim.status.next_scheduled_at == at(10, 20)
    assert sim.status.execution_count == 1


def test_missed_slots_beyond_the_starting_deadline_do_not_run() -> None:
    sim = Sim(spec(starting_deadline_seconds=10))
    sim.step()
    decision = sim.step(at(10, 15, 20))
    assert decision.create == []
    assert reasons(decision) == ["MissedSchedule"]
    assert "beyond starting_deadline_seconds=10" in decision.events[0].message
    assert sim.status.next_scheduled_at == at(10, 20)
    inside = sim.step(at(10, 20, 5))
    assert len(inside.create) == 1 and inside.create[0].scheduled_at == at(10, 20)


def test_forbid_skips_and_records_while_a_job_runs() -> None:
    sim = Sim(spec())
    sim.step()
    running = sim.step(at(10, 5)).create[0].name
    decision = sim.step(at(10, 10))
    assert decision.create == [] and reasons(decision) == ["SkippedConcurrent"]
    st = sim.status
    assert st.execution_count == 1 and st.next_scheduled_at == at(10, 15)
    assert st.history[0] == HistoryEntry(  # type: ignore[index]
        job_id=None, triggered_at=at(10, 10), scheduled_at=at(10, 10), finished_at=at(10, 10),
        status="skipped", reason="schedule",
        error=f"Job {running} was still running (concurrency_policy Forbid)",
    )  # fmt: skip
    assert decision.events[0].message == (
        f"skipped a schedule firing: Job {running} is still running"
    )
    assert sim.jobs[running].phase == "running"


def test_replace_deletes_the_running_job_and_starts_anew() -> None:
    sim = Sim(spec(concurrency_policy="Replace"))
    sim.step()
    old = sim.step(at(10, 5)).create[0].name
    decision = sim.step(at(10, 10))
    assert [(d.name, d.reason) for d in decision.delete] == [(old, "replaced by a newer firing")]
    [new] = decision.create
    assert sim.status.history == [
        HistoryEntry(job_id=new.name, triggered_at=at(10, 10), scheduled_at=at(10, 10),
                     status="running", reason="schedule"),
        HistoryEntry(job_id=old, triggered_at=at(10, 5), scheduled_at=at(10, 5),
                     finished_at=at(10, 10), status="cancelled", reason="schedule",
                     error="replaced by a newer firing"),
    ]  # fmt: skip
    assert sim.status.consecutive_failures == 0 and sim.status.execution_count == 2
    assert [(e.reason, e.message) for e in decision.events] == [
        ("Cancelled", f"Job {old}: replaced by a newer firing"),
        ("Triggered", f"schedule firing: created Job {new.name}"),
    ]


def test_pause_shows_next_and_resume_does_not_replay() -> None:
    sim = Sim(spec(status="paused"))
    decision = sim.step()
    assert sim.status.status == "paused" and sim.status.next_scheduled_at == at(10, 5)
    ready = sim.status.conditions[0]  # type: ignore[index]
    assert (ready.type, ready.status, ready.reason) == ("Ready", "True", "Paused")
    assert decision.create == []
    for minute in (5, 10, 20, 30):
        assert sim.step(at(10, minute, 1)).create == []
    assert sim.status.next_scheduled_at == at(10, 35)
    sim.edit(spec(status="active"))
    assert sim.step(at(10, 31)).create == [], "the paused period is not replayed"
    assert len(sim.step(at(10, 35)).create) == 1


def test_disabled_shows_no_next_and_never_fires() -> None:
    sim = Sim(spec(status="disabled"))
    sim.step()
    assert sim.status.status == "disabled" and sim.status.next_scheduled_at is None
    assert sim.step(at(11, 0)).create == []
    ready = sim.status.conditions[0]  # type: ignore[index]
    assert (ready.type, ready.status, ready.reason) == ("Ready", "True", "Disabled")
    assert ready.message == "spec.status is disabled: nothing fires or counts"


def test_manual_execution_fires_once_per_annotation_value() -> None:
    sim = Sim(spec())
    sim.step()
    sim.annotation = "2026-11-28T10:01:00Z"
    decision = sim.step(at(10, 1))
    assert len(decision.create) == 1 and decision.create[0].reason == "manual"
    assert decision.create[0].scheduled_at is None
    assert sim.status.last_manual_execution == sim.annotation
    assert sim.step(at(10, 2)).create == []
    sim.finish(decision.create[0].name, ok=True)
    sim.annotation = "again"
    assert len(sim.step(at(10, 3)).create) == 1


def test_manual_execution_works_when_paused_not_when_disabled() -> None:
    sim = Sim(spec(status="paused"))
    sim.step()
    sim.annotation = "1"
    assert len(sim.step(at(10, 1)).create) == 1
    sim = Sim(spec(status="disabled"))
    sim.step()
    sim.annotation = "1"
    decision = sim.step(at(10, 1))
    assert decision.create == [] and reasons(decision) == ["ManualExecutionRefused"]
    assert (decision.events[0].type, decision.events[0].message) == (
        "Warning", "trigger is disabled",
    )  # fmt: skip
    assert sim.status.last_manual_execution == "1"
    assert sim.step(at(10, 2)).events == [], "the same value is refused once"


def test_a_failed_spec_status_never_fires_and_says_so() -> None:
    """status 'failed' written by a user (or kept by a tool) holds the trigger."""
    sim = Sim(spec(status="failed"))
    decision = sim.step()
    st = sim.status
    assert st.status == "failed" and st.next_scheduled_at is None and decision.create == []
    ready = st.conditions[0]  # type: ignore[index]
    assert (ready.status, ready.reason, ready.message) == (
        "False", "Failed", "spec.status is failed: nothing fires",
    )  # fmt: skip
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", "Failed")]
    assert sim.step(at(11, 0)).create == []
    # editing the spec does not recover a status the user set to failed
    sim.edit(spec(status="failed", description="still failed"))
    assert "Recovered" not in reasons(sim.step(at(11, 1)))


def test_a_paused_trigger_at_its_failure_limit_is_failed_too() -> None:
    sim = Sim(spec(max_consecutive_failures=1, status="paused"))
    sim.step()
    sim.annotation = "run-it"  # manual runs work while paused
    sim.finish(sim.step(at(10, 1)).create[0].name, ok=False)
    sim.step(at(10, 2))
    assert sim.status.status == "failed" and sim.status.consecutive_failures == 1
    ready = sim.status.conditions[0]  # type: ignore[index]
    assert ready.reason == "MaxConsecutiveFailures"


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        ({"cron_expression": "61 * * * *"}, "invalid cron expression"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ],
)
def test_invalid_schedule_never_fires_and_says_why(schedule: dict[str, str], words: str) -> None:
    sim = Sim(spec(schedule=schedule))
    decision = sim.step()
    ready = sim.status.conditions[0]  # type: ignore[index]
    assert (ready.status, ready.reason) == ("False", "InvalidSchedule")
    assert words in (ready.message or "")
    assert reasons(decision) == ["InvalidSchedule"]
    assert sim.status.next_scheduled_at is None
    assert sim.step(at(12, 0)).create == []
    assert sim.step(at(12, 1)).events == []  # said once, not on every reconcile


def test_missing_cluster_definition_never_fires() -> None:
    sim = Sim(spec())
    problem = ("ClusterDefinitionNotFound", "no ClusterDefinition with cluster_id 'c1'")
    decision = sim.step(config_problem=problem)
    assert sim.status.conditions[0].reason == "ClusterDefinitionNotFound"  # type: ignore[index]
    assert reasons(decision) == ["ClusterDefinitionNotFound"]
    assert sim.step(at(10, 5), config_problem=problem).create == []
    assert sim.status.next_scheduled_at == at(10, 10)


def test_interval_start_immediately_fires_at_creation() -> None:
    sim = Sim(spec("interval", schedule={"start_immediately": True}))
    decision = sim.step()
    assert len(decision.create) == 1 and decision.create[0].scheduled_at == T0
    assert sim.status.next_scheduled_at == T0 + timedelta(seconds=60)
    sim.finish(decision.create[0].name, ok=True)
    assert len(sim.step(T0 + timedelta(seconds=60)).create) == 1


def test_interval_keeps_its_cadence() -> None:
    sim = Sim(spec("interval"))
    sim.step()
    assert sim.status.next_scheduled_at == T0 + timedelta(seconds=60)
    sim.step(T0 + timedelta(seconds=61))
    assert sim.status.next_scheduled_at == T0 + timedelta(seconds=120)


def test_finished_jobs_are_pruned_by_the_history_limits() -> None:
    sim = Sim(spec(successful_jobs_history_limit=2, failed_jobs_history_limit=1))
    sim.step()
    names = []
    for i, minute in enumerate((5, 10, 15, 20, 25)):
        name = sim.step(at(10, minute)).create[0].name
        names.append(name)
        sim.finish(name, ok=i != 1 and i != 2)
    sim.step(at(10, 26))
    deleted = [d.name for decision in sim.decisions for d in decision.delete]
    assert sorted(deleted) == sorted([names[0], names[1]])
    assert set(sim.jobs) == {names[2], names[3], names[4]}
    assert all("history limit" in d.reason for dd in sim.decisions for d in dd.delete)


def test_a_job_deleted_by_hand_is_recorded_after_a_grace_period() -> None:
    sim = Sim(spec())
    sim.step()
    name = sim.step(at(10, 5)).create[0].name
    del sim.jobs[name]
    assert sim.step(at(10, 5, 30)).events == []
    decision = sim.step(at(10, 6, 1))
    assert reasons(decision) == ["Cancelled"]
    assert sim.status.history[0].status == "cancelled"  # type: ignore[index]


def test_event_threshold_fires_and_resets() -> None:
    sim = Sim(spec("event"))
    sim.step(document_count=1000)
    assert sim.status.event_counter == 0, "the first poll is the reference"
    assert sim.status.observed_document_count == 1000
    sim.step(at(10, 1), document_count=1060)
    assert sim.status.event_counter == 60 and sim.status.next_scheduled_at is None
    decision = sim.step(at(10, 2), document_count=1100)
    assert len(decision.create) == 1 and decision.create[0].reason == "event"
    assert sim.status.event_counter == 0


def test_event_cooldown_defers_then_releases() -> None:
    sim = Sim(spec("event"))
    sim.step(document_count=0)
    first = sim.step(document_count=100).create[0].name
    sim.finish(first, ok=True)
    decision = sim.step(at(10, 2), document_count=250)
    assert decision.create == [] and reasons(decision)[-1] == "CooldownDeferred"
    cooldown_end = T0 + timedelta(seconds=300)
    assert sim.status.last_cooldown_at == at(10, 2)
    assert sim.status.next_scheduled_at == cooldown_end
    assert sim.step(at(10, 3), document_count=260).create == []
    assert sim.status.event_counter == 160
    released = sim.step(cooldown_end)
    assert len(released.create) == 1 and sim.status.event_counter == 0


def test_event_counting_when_paused_and_disabled() -> None:
    paused = Sim(spec("event", status="paused"))
    paused.step(document_count=0)
    assert paused.step(document_count=500).create == []
    assert paused.status.event_counter == 500
    disabled = Sim(spec("event", status="disabled"))
    disabled.step(document_count=0)
    disabled.step(document_count=500)
    assert disabled.status.event_counter == 0
    assert disabled.status.observed_document_count == 500, "re-enabling does not count the past"
    # failed keeps counting (the edit that recovers it fires on what came meanwhile)
    failed = Sim(spec("event", status="failed"))
    failed.step(document_count=0)
    decision = failed.step(document_count=500)
    assert failed.status.event_counter == 500 and decision.create == []


def test_deletions_count_for_documents_deleted() -> None:
    sim = Sim(spec("event", schedule={"event_type": "documents_deleted", "event_threshold": 10}))
    sim.step(document_count=100)
    sim.step(document_count=120)
    assert sim.status.event_counter == 0
    assert len(sim.step(document_count=105).create) == 1


def test_conditional_measures_each_interval_and_fires_above_threshold() -> None:
    sim = Sim(spec("conditional"))
    first = sim.step()
    assert first.measure and first.create == []
    below = sim.step(measurement=0.1)
    assert not below.measure and below.create == []
    assert sim.status.last_drift_measurement == 0.1
    assert sim.status.next_scheduled_at == T0 + timedelta(seconds=600)
    assert not sim.step(at(10, 5)).measure
    due = sim.step(T0 + timedelta(seconds=600))
    assert due.measure
    above = sim.step(measurement=0.45)
    assert len(above.create) == 1 and above.create[0].reason == "condition"
    assert "cosine_drift = 0.45 > 0.3" in above.events[0].message


def test_conditional_without_a_baseline_fires_and_says_so() -> None:
    sim = Sim(spec("conditional"))
    assert sim.step().measure
    decision = sim.step(baseline_missing=True)
    assert len(decision.create) == 1 and decision.create[0].reason == "condition"
    assert "no baseline yet" in decision.events[0].message
    assert sim.status.last_drift_measurement is None
    assert sim.status.last_condition_check_at == T0


def test_describe_schedule() -> None:
    assert describe_schedule(spec("interval", schedule={"interval_seconds": 21600})) == "every 6h"
    assert describe_schedule(spec("interval", schedule={"interval_seconds": 90})) == "every 1m30s"
    assert describe_schedule(spec("interval", schedule={"interval_seconds": 86400})) == "every 1d"
    day_and_more = spec("interval", schedule={"interval_seconds": 90061})
    assert describe_schedule(day_and_more) == "every 1d1h1m1s"
    assert describe_schedule(spec("event")) == "100 documents_added, cooldown 5m"
    no_cooldown = spec("event", schedule={"cooldown_seconds": 0})
    assert describe_schedule(no_cooldown) == "100 documents_added"
    assert describe_schedule(spec("conditional")) == "cosine_drift > 0.3 every 10m"


def test_invalid_spec_is_reported_once_and_never_fires() -> None:
    ref = TriggerRef("t", "default", "uid-1", 3, T0)
    decision = invalid_spec(ref, ClusterTriggerStatus(), "spec.trigger_type: Field required", T0)
    ready = decision.status.conditions[0]  # type: ignore[index]
    assert (ready.status, ready.reason) == ("False", "InvalidSpec")
    assert [e.reason for e in decision.events] == ["InvalidSpec"]
    assert decision.create == [] and decision.status.observedGeneration == 3
    again = invalid_spec(ref, decision.status, "spec.trigger_type: Field required", T0)
    assert again.events == [] and again.status == decision.status


def test_a_refused_job_holds_the_status_with_the_apiservers_words() -> None:
    ref = TriggerRef("t", "default", "uid-1", 2, T0)
    before = ClusterTriggerStatus(execution_count=4, next_scheduled_at=T0)
    decision = creation_refused(ref, before, "t-abc", "exceeded quota: jobs=10", T0)
    st = decision.status
    assert decision.create == [] and st.execution_count == 4 and st.next_scheduled_at == T0
    ready = st.conditions[0]  # type: ignore[index]
    assert (ready.type, ready.status, ready.reason) == ("Ready", "False", "FailedCreate")
    assert ready.message == "Job t-abc was refused: exceeded quota: jobs=10"
    assert (ready.lastTransitionTime, ready.observedGeneration) == (T0, 2)
    assert (st.namespace_id, st.internal_id, st.observedGeneration) == ("default", "uid-1", 2)
    assert st.updated_at == T0 and before.conditions is None, "the input is not changed"
    assert [(e.type, e.reason, e.message) for e in decision.events] == [
        ("Warning", "FailedCreate", "Job t-abc was refused: exceeded quota: jobs=10")
    ]
    later = T0 + timedelta(seconds=30)
    again = creation_refused(ref, st, "t-abc", "exceeded quota: jobs=10", later)
    assert again.events == [] and again.status == st, "one Event for one refusal"


def test_start_immediately_waits_for_a_missing_definition() -> None:
    sim = Sim(spec("interval", schedule={"start_immediately": True}))
    problem = ("ClusterDefinitionNotFound", "no ClusterDefinition with cluster_id 'c1'")
    assert sim.step(config_problem=problem).create == []
    assert sim.step(at(10, 0, 40), config_problem=problem).create == []
    decision = sim.step(at(10, 0, 50))
    assert len(decision.create) == 1 and decision.create[0].scheduled_at == T0


def test_outcome_waits_briefly_for_the_pods_termination_message() -> None:
    sim = Sim(spec())
    sim.step()
    name = sim.step(at(10, 5)).create[0].name
    sim.finish(name, ok=True, after=0)
    sim.jobs[name] = replace(sim.jobs[name], terminated_seen=False, summary=None)
    waiting = sim.step(at(10, 5, 3))
    assert waiting.events == [] and sim.status.last_execution_status == "running"
    assert waiting.requeue_after == pytest.approx(7.0)
    sim.jobs[name] = replace(sim.jobs[name], terminated_seen=True, summary={"num_clusters": 4})
    assert reasons(sim.step(at(10, 5, 4))) == ["Succeeded"]
    assert sim.status.history[0].num_clusters == 4  # type: ignore[index]


def test_outcome_is_recorded_without_a_pod_after_the_grace() -> None:
    sim = Sim(spec())
    sim.step()
    name = sim.step(at(10, 5)).create[0].name
    sim.finish(name, ok=False, after=0)
    sim.jobs[name] = replace(sim.jobs[name], terminated_seen=False)
    assert sim.step(at(10, 5, 9)).events == []
    assert reasons(sim.step(at(10, 5, 10))) == ["Failed"]


def test_ready_moves_its_transition_time_only_when_its_status_changes() -> None:
    """metav1.Condition: a new reason with the same status keeps lastTransitionTime."""
    sim = Sim(spec())
    sim.step(at(10, 1))
    first = sim.status.conditions[0]  # type: ignore[index]
    assert (first.status, first.reason, first.lastTransitionTime) == ("True", "Active", at(10, 1))
    sim.edit(spec(status="paused"))
    sim.step(at(10, 2))
    paused = sim.status.conditions[0]  # type: ignore[index]
    assert (paused.status, paused.reason) == ("True", "Paused")
    assert paused.lastTransitionTime == at(10, 1), "Active -> Paused is no transition of Ready"
    assert paused.observedGeneration == sim.ref.generation == 2
    sim.edit(spec(schedule={"timezone": "Mars/Base"}))
    sim.step(at(10, 3))
    broken = sim.status.conditions[0]  # type: ignore[index]
    assert (broken.status, broken.reason, broken.lastTransitionTime) == (
        "False", "InvalidSchedule", at(10, 3),
    )  # fmt: skip
