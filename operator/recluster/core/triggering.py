"""The trigger state machine: spec + status + what was observed + now -> new status + actions.

Pure and clock-injected. The shell (controller/reconciler.py) calls
`reconcile` whenever anything about a trigger may have changed (the object,
one of its Jobs, a timer) and applies the result: patch the status, create or
delete Jobs, post Events.
Calling it again with the same inputs decides nothing new, which is what
makes restarts safe.

One reconcile, in order:
1. record the outcome of Jobs that finished (counters, history, Events);
2. work out the observed status (disabled, failed, invalid, paused, active);
3. fire at most once: a manual request, a due schedule slot, a reached
   event threshold, or a measured condition, subject to concurrency_policy;
4. compute next_scheduled_at, conditions, and the Jobs to prune.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from ..api.base import MAX_HISTORY
from ..api.clustering import ExecutionConfig
from ..api.notifications import Delivery
from ..api.trigger import (
    ClusterTriggerSpec,
    ClusterTriggerStatus,
    Condition,
    HistoryEntry,
)
from . import notifications
from .events import polled_events
from .jobs import FireReason, JobObservation, JobRequest, WorkloadKind, execution_id, job_name
from .schedule import (
    ScheduleError,
    cron_fires_between,
    latest_cron_fire,
    latest_interval_fire,
    next_cron_fire,
    next_interval_fire,
    validate_cron_expression,
    validate_timezone,
)

HISTORY_KEPT = 20
"""Executions kept in status.history (the CRD allows up to MAX_HISTORY)."""
VANISHED_GRACE = timedelta(seconds=60)
"""A running Job missing from observations for this long is recorded as lost."""
OUTCOME_GRACE = timedelta(seconds=10)
"""How long a finished Job's outcome waits for its pod's termination message
(pods and Jobs are watched separately; either may be seen first)."""
MAX_MISSED_COUNTED = 100

assert HISTORY_KEPT <= MAX_HISTORY


@dataclass(frozen=True)
class TriggerRef:
    """Identity of the trigger object."""

    name: str
    namespace: str
    uid: str
    generation: int
    created_at: datetime


@dataclass(frozen=True)
class Observation:
    """What the shell read before calling the core."""

    jobs: Sequence[JobObservation] = ()
    execution_config: ExecutionConfig | None = None
    """The resolved config: the inline one, or the referenced ClusterDefinition's."""
    config_problem: tuple[str, str] | None = None
    """(reason, message) when the config cannot be resolved, e.g. ClusterDefinitionNotFound."""
    manual_request: str | None = None
    """Value of the recluster.io/execute-now annotation."""
    document_count: int | None = None
    """event (pull source): the watched collection's document count, polled at `now`."""
    measurement: float | None = None
    """conditional: a fresh measurement of the metric, taken at `now`."""
    measurement_note: str | None = None
    """conditional: what the measurement means, for the ConditionMet Event."""
    baseline_missing: bool = False
    """conditional: measured at `now`, but no successful run left a baseline yet."""
    webhooks: tuple[notifications.Endpoint, ...] = ()
    """Where outcomes are sent: the spec's webhooks and the install's."""
    delivery_results: tuple[notifications.AttemptResult, ...] = ()
    """Webhook attempts made since the last status write (the notifier's)."""


@dataclass(frozen=True)
class DeleteJob:
    name: str
    reason: str
    kind: WorkloadKind = "Job"


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass
class Decision:
    """The new status and what to do; `requeue_after` is when to call again at the latest."""

    status: ClusterTriggerStatus
    create: list[JobRequest] = field(default_factory=list)
    delete: list[DeleteJob] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    measure: bool = False
    """conditional: the shell should measure the metric and call again."""
    deliver: list[Delivery] = field(default_factory=list)
    """Webhook deliveries due now (the shell hands them to its notifier)."""


def describe_schedule(spec: ClusterTriggerSpec) -> str:
    """A short human summary of when a trigger fires (status.schedule, kubectl get)."""
    sc = spec.schedule_config
    if spec.trigger_type == "cron":
        return f"{sc.cron_expression} ({sc.timezone})"
    if spec.trigger_type == "interval":
        return f"every {_duration(sc.interval_seconds or 0)}"
    if spec.trigger_type == "event":
        cooldown = f", cooldown {_duration(sc.cooldown_seconds)}" if sc.cooldown_seconds else ""
        return f"{sc.event_threshold} {sc.event_type}{cooldown}"
    return f"{sc.metric} > {sc.threshold:g} every {_duration(sc.check_interval_seconds or 0)}"


def _duration(seconds: int) -> str:
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            amount, seconds = divmod(seconds, size)
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def schedule_problem(spec: ClusterTriggerSpec) -> str | None:
    """Why the schedule can never fire (what admission could not check), or None."""
    sc = spec.schedule_config
    if spec.trigger_type != "cron":
        return None
    try:
        validate_cron_expression(sc.cron_expression or "")
        validate_timezone(sc.timezone or "")
    except ScheduleError as exc:
        return str(exc)
    return None


class _Run:
    """Mutable working state of one reconcile."""

    def __init__(
        self,
        ref: TriggerRef,
        spec: ClusterTriggerSpec,
        status: ClusterTriggerStatus,
        observed: Observation,
        now: datetime,
    ) -> None:
        self.ref, self.spec, self.observed, self.now = ref, spec, observed, now
        self.st = status.model_copy(deep=True)
        self.decision = Decision(status=self.st)
        self.jobs = {job.name: job for job in observed.jobs}
        self.fired = False

    # -- events ------------------------------------------------------------------------

    def event(self, kind: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.decision.events.append(Event(kind, reason, message))

    # -- outcomes ----------------------------------------------------------------------

    def record_outcomes(self) -> None:
        for entry in self.st.history or []:
            if entry.status != "running" or entry.job_id is None:
                continue
            job = self.jobs.get(entry.job_id)
            if job is None:
                if self.now - entry.triggered_at >= VANISHED_GRACE:
                    self.finish(entry, "cancelled", None, "the Job was deleted before it finished")
                continue
            if job.phase != "running" and not self.awaiting_pod(job):
                self.finish(entry, job.phase, job, job.error)

    def awaiting_pod(self, job: JobObservation) -> bool:
        finished = job.finished_at or self.now
        return not job.terminated_seen and self.now < finished + OUTCOME_GRACE

    def finish(
        self,
        entry: HistoryEntry,
        outcome: Literal["succeeded", "failed", "cancelled"],
        job: JobObservation | None,
        error: str | None,
    ) -> None:
        summary = dict(job.summary or {}) if job else {}
        entry.status = outcome
        entry.finished_at = (job.finished_at if job else None) or self.now
        entry.error = error
        if isinstance(summary.get("execution_time_ms"), int | float):
            entry.execution_time_ms = int(summary["execution_time_ms"])
        elif job and job.created_at and entry.finished_at:
            elapsed = (entry.finished_at - job.created_at).total_seconds()
            entry.execution_time_ms = max(0, int(elapsed * 1000))
        for name in ("num_clusters", "num_documents"):
            if isinstance(summary.get(name), int):
                setattr(entry, name, summary[name])
        if entry.job_id == self.st.last_execution_job_id:
            self.st.last_execution_status = outcome
            self.st.last_execution_error = error
        if outcome == "succeeded":
            self.st.consecutive_failures = 0
            self.event(
                "Normal",
                "Succeeded",
                f"Job {entry.job_id} succeeded: {entry.num_clusters} clusters over "
                f"{entry.num_documents} documents in {entry.execution_time_ms} ms",
            )
        elif outcome == "failed":
            self.st.consecutive_failures += 1
            self.event("Warning", "Failed", f"Job {entry.job_id} failed: {error}")
            if self.st.consecutive_failures == self.spec.max_consecutive_failures:
                self.event(
                    "Warning",
                    "MaxConsecutiveFailures",
                    f"{self.st.consecutive_failures} consecutive failures: the trigger stops "
                    "firing until its spec changes",
                )
        else:
            self.event("Normal", "Cancelled", f"Job {entry.job_id}: {error}")
        if outcome != "cancelled" and self.observed.webhooks and entry.job_id:
            self.st.notifications = notifications.record_outcome(
                self.st.notifications or [],
                self.observed.webhooks,
                self.ref.uid,
                notifications.run_record(entry, outcome, summary),
                self.now,
            )

    # -- firing ------------------------------------------------------------------------

    def running_jobs(self, except_execution: str) -> list[JobObservation]:
        return [
            j
            for j in self.jobs.values()
            if j.phase == "running" and j.execution != except_execution
        ]

    def fire(self, reason: FireReason, key: str, scheduled_at: datetime | None) -> bool:
        """Create (or adopt) the Job of one firing; False when concurrency skipped it."""
        config = self.observed.execution_config
        assert config is not None
        execution = execution_id(self.ref.uid, key)
        name = job_name(self.ref.name, execution)
        adopted = name in self.jobs
        running = self.running_jobs(execution)
        if running and not adopted:
            if self.spec.concurrency_policy == "Forbid":
                self.add_history(
                    HistoryEntry(
                        job_id=None,
                        triggered_at=self.now,
                        scheduled_at=scheduled_at,
                        finished_at=self.now,
                        status="skipped",
                        reason=reason,
                        error=f"Job {running[0].name} was still running (concurrency_policy "
                        "Forbid)",
                    )
                )
                self.event(
                    "Normal",
                    "SkippedConcurrent",
                    f"skipped a {reason} firing: Job {running[0].name} is still running",
                )
                return False
            for job in running:
                self.decision.delete.append(
                    DeleteJob(job.name, "replaced by a newer firing", job.kind)
                )
                for entry in self.st.history or []:
                    if entry.job_id == job.name and entry.status == "running":
                        self.finish(entry, "cancelled", None, "replaced by a newer firing")
        if not adopted:
            self.decision.create.append(JobRequest(name, execution, scheduled_at, reason, config))
        self.st.execution_count += 1
        self.st.last_triggered_at = self.now
        self.st.last_execution_job_id = name
        self.st.last_execution_status = "running"
        self.st.last_execution_error = None
        self.add_history(
            HistoryEntry(
                job_id=name,
                triggered_at=self.now,
                scheduled_at=scheduled_at,
                status="running",
                reason=reason,
            )
        )
        verb = "adopted existing" if adopted else "created"
        self.event("Normal", "Triggered", f"{reason} firing: {verb} Job {name}")
        self.fired = True
        return True

    def add_history(self, entry: HistoryEntry) -> None:
        history = [entry, *(self.st.history or [])]
        running = [e for e in history if e.status == "running"]
        kept = history[:HISTORY_KEPT]
        # a running execution is never dropped from history: its outcome is still due
        kept += [e for e in running if e not in kept]
        self.st.history = kept

    # -- schedules ---------------------------------------------------------------------

    def first_slot(self) -> datetime | None:
        """The next fire instant for a schedule that has none pending.

        A trigger the operator has never reconciled counts from its creation, as a
        CronJob counts from its creationTimestamp (so the gateway's create response
        shows the same instant, `first_fire`); a changed or resumed schedule from now.
        """
        never_fired = self.st.execution_count == 0 and self.st.last_triggered_at is None
        anchor = self.now
        if self.st.observedGeneration is None:
            anchor = min(self.ref.created_at, self.now)
        return first_fire(self.spec, anchor, self.ref.created_at, never_fired=never_fired)

    def slot_after(self, anchor: datetime) -> datetime:
        """The first slot strictly after now, on the grid of anchor (interval) or cron."""
        sc = self.spec.schedule_config
        if self.spec.trigger_type == "cron":
            return next_cron_fire(sc.cron_expression or "", sc.timezone or "", self.now)
        return next_interval_fire(anchor, sc.interval_seconds or 1, self.now)

    def missed(self, due: datetime) -> tuple[datetime, int]:
        """The latest slot in [due, now] and how many slots that range holds."""
        sc = self.spec.schedule_config
        before = due - timedelta(microseconds=1)
        if self.spec.trigger_type == "cron":
            expr, zone = sc.cron_expression or "", sc.timezone or ""
            latest = latest_cron_fire(expr, zone, before, self.now) or due
            count = len(cron_fires_between(expr, zone, before, self.now, MAX_MISSED_COUNTED))
            return latest, count
        interval = sc.interval_seconds or 1
        latest = (
            latest_interval_fire(due, interval, before, self.now, start_immediately=True) or due
        )
        return latest, int((latest - due).total_seconds() // interval) + 1

    def advance_schedule(self, may_fire: bool, keep_initial: bool = False) -> None:
        """cron/interval: keep next_scheduled_at ahead of now, firing a due slot if allowed.

        keep_initial: a start_immediately firing that cannot run yet stays pending.
        """
        due = self.st.next_scheduled_at
        if due is None:
            self.st.next_scheduled_at = due = self.first_slot()
            assert due is not None
            if due > self.now:
                return
        if due > self.now:
            return
        initial = self.st.execution_count == 0 and due <= self.ref.created_at
        if keep_initial and not may_fire and initial:
            return
        latest, count = self.missed(due)
        self.st.next_scheduled_at = self.slot_after(due)
        if not may_fire:
            return
        deadline = self.spec.starting_deadline_seconds
        late = (self.now - latest).total_seconds()
        if deadline is not None and late > deadline:
            self.event(
                "Warning",
                "MissedSchedule",
                f"missed {_count(count)} firing(s), the latest due at {_iso(latest)}: "
                f"{late:.0f}s late, beyond starting_deadline_seconds={deadline}; not run",
            )
            return
        reason: FireReason = "schedule" if count == 1 else "catch_up"
        if count > 1:
            self.event(
                "Warning",
                "MissedSchedule",
                f"missed {_count(count)} firings while not running; running the latest "
                f"(due at {_iso(latest)}) once",
            )
        self.fire(reason, f"scheduled/{_iso(latest)}", latest)

    def advance_event(self, counting: bool, may_fire: bool) -> None:
        """event: count, and fire when the threshold is reached and the cooldown allows."""
        sc = self.spec.schedule_config
        count = self.observed.document_count
        if count is not None:
            previous = self.st.observed_document_count
            if counting:
                self.st.event_counter += polled_events(sc.event_type or "", previous, count)
            self.st.observed_document_count = count
        self.st.next_scheduled_at = None
        if not may_fire or self.st.event_counter < (sc.event_threshold or 1):
            return
        cooldown = timedelta(seconds=sc.cooldown_seconds or 0)
        last = self.st.last_triggered_at
        if last is not None and self.now < last + cooldown:
            if self.st.last_cooldown_at is None or self.st.last_cooldown_at < last:
                self.st.last_cooldown_at = self.now
                self.event(
                    "Normal",
                    "CooldownDeferred",
                    f"threshold reached ({self.st.event_counter} events); firing deferred "
                    f"until the cooldown ends at {_iso(last + cooldown)}",
                )
            self.st.next_scheduled_at = last + cooldown
            return
        if self.fire("event", f"event/{self.st.execution_count}", None):
            self.st.event_counter = 0

    def advance_condition(self, may_fire: bool) -> None:
        """conditional: measure every check interval, fire when the metric exceeds threshold."""
        sc = self.spec.schedule_config
        interval = timedelta(seconds=sc.check_interval_seconds or 1)
        last = self.st.last_condition_check_at
        observed = self.observed
        measured = observed.measurement is not None or observed.baseline_missing
        if measured:
            self.st.last_condition_check_at = last = self.now
            if observed.measurement is not None:
                self.st.last_drift_measurement = observed.measurement
            exceeded = observed.baseline_missing or (observed.measurement or 0) > (
                sc.threshold or 0
            )
            if exceeded and may_fire:
                if observed.baseline_missing:
                    note = (
                        "no baseline yet (no successful run of these collections): firing to "
                        "create one, there is nothing to drift from"
                    )
                else:
                    note = f"{sc.metric} = {observed.measurement:.4g} > {sc.threshold:g}"
                if observed.measurement_note:
                    note = f"{note} ({observed.measurement_note})"
                self.event("Normal", "ConditionMet", note)
                self.fire("condition", f"condition/{self.st.execution_count}", None)
        due = self.now if last is None else last + interval
        self.st.next_scheduled_at = due
        if due <= self.now and not measured and may_fire:
            self.decision.measure = True

    # -- housekeeping ------------------------------------------------------------------

    def prune(self) -> None:
        limits = {
            "succeeded": self.spec.successful_jobs_history_limit,
            "failed": self.spec.failed_jobs_history_limit,
        }
        deleting = {d.name for d in self.decision.delete}
        for phase, limit in limits.items():
            finished = [j for j in self.jobs.values() if j.phase == phase]
            finished.sort(key=lambda j: j.finished_at or j.created_at or self.now, reverse=True)
            for job in finished[limit:]:
                if job.name not in deleting:
                    self.decision.delete.append(
                        DeleteJob(
                            job.name, f"beyond the {phase} Jobs history limit of {limit}", job.kind
                        )
                    )

    def set_ready(self, ready: bool, reason: str, message: str) -> None:
        changed = set_ready(self.st, ready, reason, message, self.ref.generation, self.now)
        if changed and not ready:
            self.event("Warning", reason, message)

    def requeue(self) -> None:
        """Seconds until something is due: the next slot, a cooldown end, a grace period."""
        moments = []
        if self.st.next_scheduled_at is not None:
            moments.append(self.st.next_scheduled_at)
        for entry in self.st.history or []:
            if entry.status == "running" and entry.job_id not in self.jobs:
                moments.append(entry.triggered_at + VANISHED_GRACE)
        for job in self.jobs.values():
            if job.phase != "running" and self.awaiting_pod(job):
                moments.append((job.finished_at or self.now) + OUTCOME_GRACE)
        retry = notifications.next_attempt(self.st.notifications or [], self.now)
        if retry is not None:
            moments.append(retry)
        if moments:
            self.decision.requeue_after = max(0.0, (min(moments) - self.now).total_seconds())


def first_fire(
    spec: ClusterTriggerSpec, after: datetime, created_at: datetime, *, never_fired: bool
) -> datetime | None:
    """The first fire instant of a cron/interval schedule counted from `after` (pure).

    cron: the first matching instant after `after`. interval: `created_at` for a
    start_immediately trigger that never fired (the creation time, not now: a
    retried first firing gets the same Job name), else `after` + interval_seconds.
    None for event and conditional triggers. The operator's first reconcile and
    the gateway's create response (`after` = the creation time) both use this.
    """
    sc = spec.schedule_config
    if spec.trigger_type == "cron":
        return next_cron_fire(sc.cron_expression or "", sc.timezone or "", after)
    if spec.trigger_type == "interval":
        if sc.start_immediately and never_fired:
            return min(created_at, after)
        return after + timedelta(seconds=sc.interval_seconds or 0)
    return None


def set_ready(
    st: ClusterTriggerStatus,
    ready: bool,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> bool:
    """Set the Ready condition (metav1.Condition rules); True when its status or reason changed.

    Ready means "reconciled and doing what the spec asks": a trigger paused or
    disabled on purpose is Ready (reason Paused, Disabled), so `kubectl wait
    --for=condition=Ready` returns and GitOps tools call it healthy. It is
    False only when something is wrong (invalid, missing definition, Jobs
    refused, too many failures). lastTransitionTime moves only when the
    status does, as the convention says; the reason and message follow the
    latest state.
    """
    status: Literal["True", "False"] = "True" if ready else "False"
    old = next((c for c in st.conditions or [] if c.type == "Ready"), None)
    changed = old is None or old.status != status or old.reason != reason
    transitioned = old is None or old.status != status or old.lastTransitionTime is None
    condition = Condition(
        type="Ready",
        status=status,
        reason=reason,
        message=message,
        lastTransitionTime=now if transitioned or old is None else old.lastTransitionTime,
        observedGeneration=generation,
    )
    others = [c for c in st.conditions or [] if c.type != "Ready"]
    st.conditions = [condition, *others]
    return changed


def _held(
    ref: TriggerRef, status: ClusterTriggerStatus, reason: str, message: str, now: datetime
) -> Decision:
    """The status as it was, with Ready=False for `reason` (and its Event once): no firing."""
    st = status.model_copy(deep=True)
    st.namespace_id, st.internal_id = ref.namespace, ref.uid
    decision = Decision(status=st)
    if set_ready(st, False, reason, message, ref.generation, now):
        decision.events.append(Event("Warning", reason, message))
    st.observedGeneration = ref.generation
    return decision


def invalid_spec(
    ref: TriggerRef, status: ClusterTriggerStatus, message: str, now: datetime
) -> Decision:
    """A spec admission should have refused (no CRD validation, an old CRD): never fire."""
    decision = _held(ref, status.model_copy(update={"next_scheduled_at": None}), "InvalidSpec",
                     message, now)  # fmt: skip
    if decision.status != status:
        decision.status.updated_at = now
    return decision


def creation_refused(
    ref: TriggerRef, status: ClusterTriggerStatus, job: str, message: str, now: datetime
) -> Decision:
    """The apiserver refused a Job a decision asked for (quota, admission, a bad quantity).

    Nothing is recorded as fired: the status the decision was made from gets
    Ready=False (reason FailedCreate, the apiserver's words) and a Warning
    Event, as the CronJob controller reports it. The shell retries with a
    backoff; the next reconcile decides the firing afresh, and its Jobs
    created, sets Ready back.
    """
    decision = _held(ref, status, "FailedCreate", f"Job {job} was refused: {message}", now)
    if decision.status != status:
        decision.status.updated_at = now
    return decision


def reconcile(
    ref: TriggerRef,
    spec: ClusterTriggerSpec,
    status: ClusterTriggerStatus,
    observed: Observation,
    now: datetime,
) -> Decision:
    """Decide what a trigger's status becomes and what to do, at `now`."""
    run = _Run(ref, spec, status, observed, now)
    st = run.st
    spec_changed = st.observedGeneration is not None and st.observedGeneration != ref.generation
    st.namespace_id, st.internal_id = ref.namespace, ref.uid

    run.record_outcomes()

    if st.status == "failed" and spec_changed and spec.status != "failed":
        st.consecutive_failures = 0
        run.event("Normal", "Recovered", "the spec changed: firing resumes")
    summary = describe_schedule(spec)
    if st.schedule != summary:
        st.schedule = summary
        st.next_scheduled_at = None  # a new schedule starts from now, without a spurious run

    exhausted = st.consecutive_failures >= spec.max_consecutive_failures
    problem = schedule_problem(spec)
    config_problem = observed.config_problem
    observed_status = spec.status
    if spec.status in ("active", "paused") and exhausted:
        observed_status = "failed"
    st.status = observed_status

    manual = observed.manual_request
    manual_new = manual is not None and manual != st.last_manual_execution

    if observed_status in ("disabled", "failed"):
        if spec.trigger_type == "event":  # failed keeps counting; disabled only tracks the count
            run.advance_event(counting=spec.status != "disabled", may_fire=False)
        st.next_scheduled_at = None
        if observed_status == "failed" and exhausted:
            run.set_ready(
                False,
                "MaxConsecutiveFailures",
                f"{st.consecutive_failures} consecutive failures (max_consecutive_failures="
                f"{spec.max_consecutive_failures}); edit the spec to resume",
            )
        elif observed_status == "failed":
            run.set_ready(False, "Failed", "spec.status is failed: nothing fires")
        else:
            run.set_ready(True, "Disabled", "spec.status is disabled: nothing fires or counts")
        if manual_new:
            run.event("Warning", "ManualExecutionRefused", f"trigger is {observed_status}")
    elif problem is not None:
        st.next_scheduled_at = None
        run.set_ready(False, "InvalidSchedule", problem)
        if manual_new:
            run.event("Warning", "ManualExecutionRefused", problem)
    elif config_problem is not None:
        run.set_ready(False, config_problem[0], config_problem[1])
        if manual_new:
            run.event("Warning", "ManualExecutionRefused", config_problem[1])
        _advance(run, may_fire=False, keep_initial=True)
    else:
        active = observed_status == "active"
        if manual_new:
            run.fire("manual", f"manual/{manual}", None)
        _advance(run, may_fire=active and not run.fired)
        if active:
            run.set_ready(True, "Active", _ready_message(run))
        else:
            run.set_ready(True, "Paused", "spec.status is paused: nothing fires")
    if manual_new:
        st.last_manual_execution = manual

    run.record_outcomes()  # an adopted Job may already have finished
    run.prune()
    _notify(run)
    run.requeue()
    st.observedGeneration = ref.generation
    if st != status:
        st.updated_at = now
    return run.decision


def _notify(run: _Run) -> None:
    """Fold in the webhook attempts made, and say which deliveries are due now."""
    deliveries = run.st.notifications
    if not deliveries:
        return
    deliveries = notifications.apply_attempts(deliveries, run.observed.delivery_results, run.now)
    deliveries = notifications.abandon(deliveries, run.observed.webhooks, run.now)
    deliveries = notifications.prune(deliveries)
    run.st.notifications = deliveries
    run.decision.deliver = notifications.due(deliveries, run.now)


def _advance(run: _Run, may_fire: bool, keep_initial: bool = False) -> None:
    """Advance an active or paused trigger's schedule (disabled and failed ones never get here)."""
    kind = run.spec.trigger_type
    if kind in ("cron", "interval"):
        run.advance_schedule(may_fire, keep_initial)
    elif kind == "event":
        run.advance_event(counting=True, may_fire=may_fire)
    else:
        run.advance_condition(may_fire)


def _ready_message(run: _Run) -> str:
    nxt = run.st.next_scheduled_at
    if run.spec.trigger_type == "event":
        sc = run.spec.schedule_config
        return f"{run.st.event_counter}/{sc.event_threshold} {sc.event_type} counted"
    return f"next at {_iso(nxt)}" if nxt else "waiting"


def _iso(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "-"


def _count(count: int) -> str:
    return f"{count}+" if count >= MAX_MISSED_COUNTED else str(count)
