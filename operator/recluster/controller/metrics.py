"""Prometheus metrics of the operator, derived from the core's decisions.

Names follow Prometheus conventions (`_total` counters, `_seconds` units);
label values are bounded: namespace and trigger names, trigger types,
statuses and results, never ids or error texts.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..api.trigger import ClusterTriggerSpec, ClusterTriggerStatus, HistoryEntry
from ..core.triggering import Decision, TriggerRef

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, float("inf"))
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, float("inf"))


class _TriggerCensus(Collector):
    """`recluster_triggers`: how many triggers there are, by namespace, type and status."""

    def __init__(self) -> None:
        self.triggers: dict[tuple[str, str], tuple[str, str]] = {}
        self.lock = threading.Lock()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "recluster_triggers",
            "ClusterTriggers seen by this operator, by namespace, type and observed status.",
            labels=["namespace", "type", "status"],
        )
        counts: dict[tuple[str, str, str], int] = {}
        with self.lock:
            for (namespace, _), (kind, status) in self.triggers.items():
                key = (namespace, kind, status)
                counts[key] = counts.get(key, 0) + 1
        for labels, value in sorted(counts.items()):
            family.add_metric(list(labels), value)
        yield family


class _ReconcileCounts(Collector):
    """`recluster_reconciles_total`: reconciles of each trigger that ran to the end.

    Plain ints in a dict: a prometheus_client Counter child per trigger costs about
    630 bytes (6 MB at 10,000 triggers, every one of which is reconciled), an entry here
    about 100.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()

    def inc(self, namespace: str, name: str) -> None:
        with self.lock:
            self.counts[(namespace, name)] = self.counts.get((namespace, name), 0) + 1

    def forget(self, namespace: str, name: str) -> None:
        with self.lock:
            self.counts.pop((namespace, name), None)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "recluster_reconciles",
            "Reconciles of each trigger that ran to the end (decision applied, Events posted).",
            labels=["namespace", "trigger"],
        )
        with self.lock:
            counts = list(self.counts.items())
        for (namespace, name), value in counts:
            family.add_metric([namespace, name], value)
        yield family


class Metrics:
    """One registry per operator instance (tests run several in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.executions = Counter(
            "recluster_executions_total",
            "Finished or skipped executions, by result.",
            ["namespace", "trigger", "result"],
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "recluster_job_duration_seconds",
            "Duration of finished clustering Jobs.",
            ["namespace", "trigger_type"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.fire_lag = Histogram(
            "recluster_fire_lag_seconds",
            "Delay between a scheduled firing's due time and the moment it fired.",
            ["trigger_type"],
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.events = Counter(
            "recluster_events_counted_total",
            "Document events counted by event triggers (polled source).",
            ["namespace", "trigger"],
            registry=self.registry,
        )
        self.drift = Gauge(
            "recluster_drift_measurement",
            "The last measured metric of each conditional trigger.",
            ["namespace", "trigger", "metric"],
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "recluster_reconcile_errors_total",
            "Reconciles that failed and were retried.",
            ["namespace", "trigger"],
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "recluster_webhook_deliveries_total",
            "Completion webhook deliveries that ended: Delivered (a 2xx) or Failed (gave up).",
            ["namespace", "trigger", "state"],
            registry=self.registry,
        )
        self.webhook_failed_attempts = Counter(
            "recluster_webhook_failed_attempts_total",
            "Completion webhook attempts that got no 2xx answer (each is retried or given up).",
            ["namespace", "trigger"],
            registry=self.registry,
        )
        self.reconciles = _ReconcileCounts()
        self.registry.register(self.reconciles)
        self.census = _TriggerCensus()
        self.registry.register(self.census)

    def serve(self, port: int, address: str = "0.0.0.0") -> int:
        """Serve /metrics on a thread; returns the bound port (port 0 picks one)."""
        server, _ = start_http_server(port, addr=address, registry=self.registry)
        self._server = server
        return int(server.server_port)

    def close(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.shutdown()
            server.server_close()

    def forget(self, namespace: str, name: str) -> None:
        """A deleted trigger: its census entry and its per-trigger series go (100,000 triggers
        come and go; their reconcile counters alone would hold 6 MB per 10,000)."""
        with self.census.lock:
            self.census.triggers.pop((namespace, name), None)
        self.reconciles.forget(namespace, name)
        for counter in (self.reconcile_errors, self.events):
            with contextlib.suppress(KeyError):
                counter.remove(namespace, name)

    def observe(
        self,
        ref: TriggerRef,
        spec: ClusterTriggerSpec | None,
        before: ClusterTriggerStatus,
        decision: Decision,
        now: datetime,
    ) -> None:
        """Record what a decision changed (called once per applied decision)."""
        after = decision.status
        kind = spec.trigger_type if spec else "unknown"
        with self.census.lock:
            self.census.triggers[(ref.namespace, ref.name)] = (kind, after.status or "unknown")
        known = {(e.job_id, e.triggered_at): e.status for e in before.history or []}
        for entry in after.history or []:
            old = known.get((entry.job_id, entry.triggered_at))
            if entry.status == old or entry.status == "running":
                continue
            self.executions.labels(ref.namespace, ref.name, entry.status).inc()
            duration = _duration(entry)
            if entry.status in ("succeeded", "failed") and duration is not None:
                self.job_duration.labels(ref.namespace, kind).observe(duration)
        for request in decision.create:
            if request.scheduled_at is not None:
                lag = (now - request.scheduled_at).total_seconds()
                self.fire_lag.labels(kind).observe(max(0.0, lag))
        polled = after.event_counter - before.event_counter
        if kind == "event" and polled > 0 and after.observed_document_count is not None:
            self.events.labels(ref.namespace, ref.name).inc(polled)
        self._observe_deliveries(ref, before, after)
        if spec is not None and after.last_drift_measurement is not None:
            metric = str(spec.schedule_config.metric)
            self.drift.labels(ref.namespace, ref.name, metric).set(after.last_drift_measurement)

    def _observe_deliveries(
        self, ref: TriggerRef, before: ClusterTriggerStatus, after: ClusterTriggerStatus
    ) -> None:
        known = {(d.event_id, d.url): d for d in before.notifications or []}
        for delivery in after.notifications or []:
            old = known.get((delivery.event_id, delivery.url))
            made = delivery.attempts - (old.attempts if old else 0)
            ended = delivery.state != "Pending" and (old is None or old.state == "Pending")
            failed = made - (1 if ended and delivery.state == "Delivered" else 0)
            if failed > 0:
                self.webhook_failed_attempts.labels(ref.namespace, ref.name).inc(failed)
            if ended:
                self.webhook_deliveries.labels(ref.namespace, ref.name, delivery.state).inc()


def _duration(entry: HistoryEntry) -> float | None:
    if entry.execution_time_ms is not None:
        return entry.execution_time_ms / 1000
    if entry.finished_at is not None:
        return (entry.finished_at - entry.triggered_at).total_seconds()
    return None
