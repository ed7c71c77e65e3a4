"""The operator's per-trigger reconcile count: exposed as a counter, gone with its trigger."""

from __future__ import annotations

from prometheus_client import generate_latest

from recluster.controller.metrics import Metrics


def test_reconciles_are_counted_per_trigger_and_forgotten_with_it() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.reconciles.inc("team-a", "nightly")
    metrics.reconciles.inc("team-b", "nightly")

    def value(namespace: str) -> float | None:
        labels = {"namespace": namespace, "trigger": "nightly"}
        return metrics.registry.get_sample_value("recluster_reconciles_total", labels)

    assert (value("team-a"), value("team-b")) == (3, 1)
    text = generate_latest(metrics.registry).decode()
    assert "# TYPE recluster_reconciles_total counter" in text
    assert 'recluster_reconciles_total{namespace="team-a",trigger="nightly"} 3.0' in text
    metrics.forget("team-a", "nightly")
    assert (value("team-a"), value("team-b")) == (None, 1)
