"""The trigger state machine at its edges: exact boundaries, the rarer paths, and the
words and types of the Events they post (tests/core/test_triggering.py has the main paths).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from test_triggering import T0, Sim, at, reasons, spec

from recluster.api.notifications import Webhook
from recluster.api.trigger import ClusterTriggerStatus
from recluster.core import notifications
from recluster.core.jobs import JobObservation, execution_id, job_name
from recluster.core.triggering import TriggerRef, invalid_spec

SECOND = timedelta(seconds=1)
WEBHOOKS = (
    notifications.Endpoint(
        Webhook.model_validate(
            {"url": "https://hooks.example.com/recluster", "secret_ref": {"name": "hook-key"}}
        )
    ),
)


def events(sim: Sim, **observed: object) -> list[tuple[str, str, str]]:
    return [(e.type, e.reason, e.message) for e in sim.step(**observed).events]  # type: ignore[arg-type]


# -- outcomes -------------------------------------------------------------------------------


def test_a_job_stamped_finished_before_its_creation_took_zero_ms() -> None:
    """Clock skew between the operator and the Job controller never gives a negative time."""
    sim = Sim(spec())
    sim.step()
    name = sim.step(at(10, 5)).create[0].name
    sim.finish(name, ok=True, after=-2)
    sim.step(at(10, 6))
    assert sim.status.history[0].execution_time_ms == 0  # type: ignore[index]


def test_the_failure_limit_is_announced_with_the_failure() -> None:
    sim = Sim(spec(max_consecutive_failures=1))
    sim.step()
    name = sim.step(at(10, 5)).create[0].name
    sim.finish(name, ok=False)
    assert events(sim, at=at(10, 6)) == [
        ("Warning", "Failed", f"Job {name} failed: collection 'col_abc123' not found"),
        (
            "Warning",
            "MaxConsecutiveFailures",
            "1 consecutive failures: the trigger stops firing until its spec changes",
        ),
        (
            "Warning",
            "MaxConsecutiveFailures",
            "1 consecutive failures (max_consecutive_failures=1); edit the spec to resume",
        ),
    ]


def test_a_cancelled_execution_sends_no_webhook_and_outcomes_carry_the_triggers_id() -> None:
    """Webhooks tell completed and failed runs; a Job deleted by hand is neither."""
    sim = Sim(spec())
    sim.step(webhooks=WEBHOOKS)
    first = sim.step(at(10, 5), webhooks=WEBHOOKS).create[0].name
    del sim.jobs[first]
    assert events(sim, at=at(10, 5, 59), webhooks=WEBHOOKS) == []
    assert events(sim, at=at(10, 6), webhooks=WEBHOOKS) == [
        ("Normal", "Cancelled", f"Job {first}: the Job was deleted before it finished")
    ]
    assert sim.status.notifications is None
    second = sim.step(at(10, 10), webhooks=WEBHOOKS).create[0].name
    sim.finish(second, ok=True)
    sim.step(at(10, 11), webhooks=WEBHOOKS)
    [delivery] = sim.status.notifications or []
    completed = "cluster.execution.completed"
    assert delivery.event_id == notifications.event_id("uid-1", second, completed)


def test_reconcile_leaves_the_status_it_was_given_as_it_was() -> None:
    """The shell compares the new status with the old one to decide whether to write."""
    sim = Sim(spec())
    sim.step()
    name = sim.step(at(10, 5)).create[0].name
    sim.finish(name, ok=True)
    given = sim.status
    kept = given.model_copy(deep=True)
    sim.step(at(10, 6))
    assert given == kept
    assert sim.status.history[0].status == "succeeded"  # type: ignore[index]
    assert sim.status.updated_at == at(10, 6)


def test_an_outcome_behind_a_newer_entry_is_still_recorded() -> None:
    """Newer entries (a skip, a Job deleted by hand) do not hide an older Job's outcome."""
    sim = Sim(spec())
    sim.step()
    first = sim.step(at(10, 5)).create[0].name
    assert reasons(sim.step(at(10, 10))) == ["SkippedConcurrent"]
    sim.finish(first, ok=True, after=0)
    sim.jobs[first] = replace(sim.jobs[first], terminated_seen=False)  # its pod not yet seen
    sim.annotation = "now"
    second = sim.step(at(10, 10, 1)).create[0].name
    del sim.jobs[second]
    decision = sim.step(at(10, 10, 11))  # the pod's grace is over, the deleted Job's is not
    assert reasons(decision) == ["Succeeded"]
    assert [(e.job_id, e.status) for e in sim.status.history or []] == [
        (second, "running"),
        (None, "skipped"),
        (first, "succeeded"),
    ]


def test_a_running_execution_outlives_the_history_limit() -> None:
    sim = Sim(spec())
    sim.step()
    running = sim.step(at(10, 5)).create[0].name
    for slot in range(2, 27):  # 25 skipped firings while it runs
        minutes = 5 * slot
        sim.step(at(10 + minutes // 60, minutes % 60))
    history = sim.status.history or []
    assert len(history) == 21
    assert [e.status for e in history[:20]] == ["skipped"] * 20
    assert (history[20].job_id, history[20].status) == (running, "running")
    sim.finish(running, ok=True)
    sim.step(at(12, 11))
    assert (sim.status.history or [])[20].status == "succeeded"


def test_prune_keeps_the_latest_finished_jobs() -> None:
    """By finish time (a Job created earlier may finish later), else by creation."""
    sim = Sim(spec(successful_jobs_history_limit=1))
    early = JobObservation("early", "e1", "succeeded", created_at=at(9, 0), finished_at=at(9, 50))
    late = JobObservation("late", "e2", "succeeded", created_at=at(9, 10), finished_at=at(9, 20))
    sim.jobs = {"early": early, "late": late}
    assert [(d.name, d.reason) for d in sim.step().delete] == [
        ("late", "beyond the succeeded Jobs history limit of 1")
    ]
    older = JobObservation("older", "e3", "succeeded", created_at=at(9, 0))
    newer = JobObservation("newer", "e4", "succeeded", created_at=at(9, 5))
    sim.jobs = {"older": older, "newer": newer}
    assert [d.name for d in sim.step().delete] == ["older"]


# -- concurrency ----------------------------------------------------------------------------


def test_a_skipped_event_firing_keeps_its_count_for_the_next_one() -> None:
    sim = Sim(spec("event", schedule={"cooldown_seconds": 0}))
    sim.step(document_count=0)
    first = sim.step(at(10, 1), document_count=100).create[0].name
    skipped = sim.step(at(10, 2), document_count=250)
    assert skipped.create == [] and reasons(skipped) == ["SkippedConcurrent"]
    assert [(e.type, e.message) for e in skipped.events] == [
        ("Normal", f"skipped a event firing: Job {first} is still running")
    ]
    assert sim.status.event_counter == 150, "the events counted are not lost"
    sim.finish(first, ok=True)
    fired = sim.step(at(10, 3), document_count=250)
    assert [r.reason for r in fired.create] == ["event"] and sim.status.event_counter == 0


def test_replace_cancels_only_the_replaced_jobs_execution() -> None:
    """A Job deleted by hand, still in its grace period, keeps its own outcome."""
    sim = Sim(spec(concurrency_policy="Replace"))
    sim.step()
    gone = sim.step(at(10, 5)).create[0].name
    del sim.jobs[gone]
    sim.annotation = "one"
    replaced = sim.step(at(10, 5, 10)).create[0].name
    sim.annotation = "two"
    sim.step(at(10, 5, 20))
    assert [(e.job_id, e.status, e.error) for e in sim.status.history or []][1:] == [
        (replaced, "cancelled", "replaced by a newer firing"),
        (gone, "running", None),
    ]
    sim.step(at(10, 6, 1))
    assert (sim.status.history or [])[2].error == "the Job was deleted before it finished"


# -- schedules ------------------------------------------------------------------------------


def test_interval_downtime_runs_the_latest_missed_slot_once() -> None:
    sim = Sim(spec("interval"))
    sim.step()
    decision = sim.step(T0 + timedelta(seconds=185))  # slots at +60, +120 and +180 passed
    [request] = decision.create
    assert (request.scheduled_at, request.reason) == (T0 + timedelta(seconds=180), "catch_up")
    assert (decision.events[0].type, decision.events[0].message) == (
        "Warning",
        "missed 3 firings while not running; running the latest (due at 2026-11-28T10:03:30Z) once",
    )
    assert sim.status.next_scheduled_at == T0 + timedelta(seconds=240)


def test_a_long_outage_says_how_many_firings_it_missed_up_to_a_hundred() -> None:
    sim = Sim(spec(schedule={"cron_expression": "* * * * *"}))
    sim.step()
    decision = sim.step(at(11, 40))  # 100 slots: 10:01 to 11:40
    assert decision.events[0].message == (
        "missed 100+ firings while not running; running the latest (due at "
        "2026-11-28T11:40:00Z) once"
    )
    short = Sim(spec(schedule={"cron_expression": "* * * * *"}))
    short.step()
    assert short.step(at(11, 39)).events[0].message.startswith("missed 99 firings")


def test_interval_without_start_immediately_waits_a_whole_interval() -> None:
    sim = Sim(spec("interval"))
    assert sim.step().create == []
    ready = sim.status.conditions[0]  # type: ignore[index]
    assert ready.message == "next at 2026-11-28T10:01:30Z"


def test_a_paused_start_immediately_trigger_lets_its_creation_slot_go() -> None:
    sim = Sim(spec("interval", status="paused", schedule={"start_immediately": True}))
    assert sim.step().create == []
    assert sim.status.next_scheduled_at == T0 + timedelta(seconds=60)
    ready = sim.status.conditions[0]  # type: ignore[index]
    assert (ready.reason, ready.message) == ("Paused", "spec.status is paused: nothing fires")
    sim.edit(spec("interval", schedule={"start_immediately": True}))
    assert sim.step(T0 + SECOND).create == [], "resuming does not replay the creation slot"


def test_a_firing_exactly_at_the_starting_deadline_still_runs() -> None:
    sim = Sim(spec(starting_deadline_seconds=10))
    sim.step()
    assert [r.scheduled_at for r in sim.step(at(10, 5, 10)).create] == [at(10, 5)]


def test_missed_firings_beyond_the_deadline_are_reported_with_the_latest() -> None:
    sim = Sim(spec(starting_deadline_seconds=10))
    sim.step()
    assert events(sim, at=at(10, 15, 20)) == [
        (
            "Warning",
            "MissedSchedule",
            "missed 3 firing(s), the latest due at 2026-11-28T10:15:00Z: 20s late, beyond "
            "starting_deadline_seconds=10; not run",
        )
    ]


def test_two_missed_slots_are_reported_before_the_catch_up() -> None:
    sim = Sim(spec())
    sim.step()
    decision = sim.step(at(10, 10, 5))
    assert reasons(decision) == ["MissedSchedule", "Triggered"]
    assert decision.events[0].message == (
        "missed 2 firings while not running; running the latest (due at 2026-11-28T10:10:00Z) once"
    )


def test_the_next_reconcile_is_asked_for_when_something_falls_due() -> None:
    """The next slot, or a deleted Job's grace end; a Job whose pod still runs adds nothing."""
    sim = Sim(spec())
    sim.step()
    running = sim.step(at(10, 5)).create[0].name
    sim.jobs[running] = replace(sim.jobs[running], terminated_seen=False)  # its pod runs
    assert sim.step(at(10, 6)).requeue_after == 240.0
    assert reasons(skip := sim.step(at(10, 10))) == ["SkippedConcurrent"]
    assert skip.requeue_after == 300.0
    deleted = Sim(spec())
    deleted.step()
    gone = deleted.step(at(10, 5)).create[0].name
    del deleted.jobs[gone]
    assert deleted.step(at(10, 5, 30)).requeue_after == 30.0


def test_a_manual_request_at_a_due_slot_fires_once() -> None:
    """At most one firing per reconcile: the manual one, and the slot moves on."""
    sim = Sim(spec())
    sim.step()
    sim.annotation = "now"
    decision = sim.step(at(10, 5))
    assert [r.reason for r in decision.create] == ["manual"]
    assert sim.status.next_scheduled_at == at(10, 10) and sim.status.execution_count == 1


@pytest.mark.parametrize(
    ("observed", "words"),
    [
        ({}, "invalid cron expression '61 * * * *': minute 61 is out of range 0-59"),
        (
            {"config_problem": ("ClusterDefinitionNotFound", "no ClusterDefinition 'c1'")},
            "no ClusterDefinition 'c1'",
        ),
    ],
)
def test_a_manual_request_to_a_trigger_that_cannot_run_is_refused_with_the_reason(
    observed: dict[str, object], words: str
) -> None:
    cron = "61 * * * *" if not observed else "*/5 * * * *"
    sim = Sim(spec(schedule={"cron_expression": cron}))
    sim.step(**observed)
    sim.annotation = "please"
    assert events(sim, at=at(10, 1), **observed) == [("Warning", "ManualExecutionRefused", words)]
    assert sim.status.conditions[0].message == words  # type: ignore[index]
    assert sim.status.last_manual_execution == "please"


def test_a_new_reason_to_stay_not_ready_is_announced() -> None:
    """Ready stays False, but the reason changed: the new reason gets its Warning."""
    sim = Sim(spec(schedule={"timezone": "Mars/Base"}))
    assert reasons(sim.step()) == ["InvalidSchedule"]
    sim.edit(spec())
    problem = ("ClusterDefinitionNotFound", "no ClusterDefinition 'c1'")
    assert events(sim, at=at(10, 1), config_problem=problem) == [
        ("Warning", "ClusterDefinitionNotFound", "no ClusterDefinition 'c1'")
    ]


# -- event triggers -------------------------------------------------------------------------


def test_a_cooldown_of_zero_lets_two_firings_share_an_instant() -> None:
    sim = Sim(spec("event", schedule={"cooldown_seconds": 0}))
    sim.step(document_count=0)
    first = sim.step(document_count=100).create[0].name
    sim.finish(first, ok=True, after=0)
    assert [r.reason for r in sim.step(document_count=200).create] == ["event"]


def test_a_deferral_in_the_instant_of_a_firing_is_announced_once() -> None:
    sim = Sim(spec("event"))
    sim.step(document_count=0)
    sim.step(document_count=100)
    assert events(sim, document_count=200) == [
        (
            "Normal",
            "CooldownDeferred",
            "threshold reached (100 events); firing deferred until the cooldown ends at "
            "2026-11-28T10:05:30Z",
        )
    ]
    assert events(sim, at=T0 + SECOND, document_count=210) == []
    assert sim.status.last_cooldown_at == T0
    ready = sim.status.conditions[0]  # type: ignore[index]
    assert ready.message == "110/100 documents_added counted"


# -- conditional triggers -------------------------------------------------------------------


def test_a_measurement_must_exceed_the_threshold() -> None:
    sim = Sim(spec("conditional"))
    first = sim.step()
    assert first.measure and first.requeue_after == 0.0, "due now: called again at once"
    assert sim.step(measurement=0.3).create == [], "equal is not above"
    sim.step(T0 + timedelta(seconds=600))
    assert sim.step(measurement=0.0).create == []
    assert sim.status.last_drift_measurement == 0.0


def test_condition_met_names_the_metric_and_what_the_measurement_means() -> None:
    sim = Sim(spec("conditional"))
    sim.step()
    decision = sim.step(measurement=0.45, measurement_note="3 of 5 collections measured")
    name = job_name("nightly", execution_id("uid-1", "condition/0"))
    assert [(e.type, e.reason, e.message) for e in decision.events] == [
        ("Normal", "ConditionMet", "cosine_drift = 0.45 > 0.3 (3 of 5 collections measured)"),
        ("Normal", "Triggered", f"condition firing: created Job {name}"),
    ]
    assert [r.name for r in decision.create] == [name]


def test_a_missing_baseline_says_why_it_fires() -> None:
    sim = Sim(spec("conditional"))
    sim.step()
    decision = sim.step(baseline_missing=True)
    assert decision.events[0].message == (
        "no baseline yet (no successful run of these collections): firing to create one, "
        "there is nothing to drift from"
    )


# -- held triggers --------------------------------------------------------------------------


def test_an_invalid_spec_clears_the_next_slot_and_stamps_its_condition() -> None:
    ref = TriggerRef("t", "default", "uid-1", 3, T0)
    before = ClusterTriggerStatus(next_scheduled_at=T0 + timedelta(hours=1))
    later = T0 + timedelta(minutes=2)
    decision = invalid_spec(ref, before, "spec.trigger_type: Field required", later)
    st = decision.status
    assert st.next_scheduled_at is None and st.updated_at == later
    ready = st.conditions[0]  # type: ignore[index]
    assert (ready.message, ready.lastTransitionTime, ready.observedGeneration) == (
        "spec.trigger_type: Field required",
        later,
        3,
    )
    assert [e.message for e in decision.events] == ["spec.trigger_type: Field required"]
