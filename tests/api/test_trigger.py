"""ClusterTrigger (api/trigger.py): the seed's request as spec, plus Kubernetes-side fields."""

from __future__ import annotations

from recluster.api.trigger import spec_field_names


def test_the_fields_only_the_kubernetes_side_has() -> None:
    assert spec_field_names() == {
        "concurrency_policy",
        "starting_deadline_seconds",
        "max_consecutive_failures",
        "successful_jobs_history_limit",
        "failed_jobs_history_limit",
        "job_template",
        "notifications",
    }
