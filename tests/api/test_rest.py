"""The REST gateway's response built from a stored ClusterTrigger (api/rest.py, pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from recluster.api.clustering import ExecutionConfig
from recluster.api.rest import trigger_response
from recluster.api.trigger import ClusterTrigger

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = {"collection_ids": ["col_abc123"], "config": {"algorithm": "kmeans", "n_clusters": 3}}


def stored(
    status: dict[str, Any] | None = None,
    generation: int | None = 1,
    **metadata: Any,
) -> ClusterTrigger:
    meta: dict[str, Any] = {
        "name": "nightly",
        "namespace": "team-a",
        "uid": "0000-1111",
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "annotations": {"recluster.io/created-by": "alice"},
    }
    if generation is not None:
        meta["generation"] = generation
    meta.update(metadata)
    return ClusterTrigger.model_validate(
        {
            "apiVersion": "recluster.io/v1alpha1",
            "kind": "ClusterTrigger",
            "metadata": {k: v for k, v in meta.items() if v is not None},
            "spec": {
                "trigger_type": "interval",
                "schedule_config": {"interval_seconds": 60, "start_immediately": False},
                "execution_config": CONFIG,
                "status": "paused",
                "description": "nightly run",
            },
            **({"status": status} if status is not None else {}),
        }
    )


def test_response_before_the_operator_has_seen_the_trigger() -> None:
    response = trigger_response(stored(), ExecutionConfig.model_validate(CONFIG))
    assert response.model_dump(mode="json") == {
        "namespace_id": "team-a",
        "internal_id": "0000-1111",
        "execution_config": CONFIG,
        "trigger_type": "interval",
        "schedule_config": {"interval_seconds": 60, "start_immediately": False},
        "trigger_id": "nightly",
        "cluster_id": None,
        "status": "paused",  # the requested status
        "last_triggered_at": None,
        "last_execution_job_id": None,
        "next_scheduled_at": None,
        "execution_count": 0,
        "consecutive_failures": 0,
        "last_execution_status": None,
        "last_execution_error": None,
        "event_counter": 0,
        "last_cooldown_at": None,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "created_by": "alice",
        "description": "nightly run",
    }


def test_status_fields_are_copied_and_the_status_names_win() -> None:
    observed = {
        "status": "active",
        "observedGeneration": 1,
        "namespace_id": "ns-from-status",
        "internal_id": "uid-from-status",
        "updated_at": "2026-01-02T00:00:00Z",
        "last_triggered_at": "2026-01-01T12:00:00Z",
        "last_execution_job_id": "nightly-123",
        "next_scheduled_at": "2026-01-01T12:01:00Z",
        "execution_count": 7,
        "consecutive_failures": 2,
        "last_execution_status": "failed",
        "last_execution_error": "exit code 1",
        "event_counter": 4,
        "last_cooldown_at": "2026-01-01T11:00:00Z",
    }
    dumped = trigger_response(stored(observed), None).model_dump(mode="json")
    assert {k: dumped[k] for k in observed if k != "observedGeneration"} == {
        k: v for k, v in observed.items() if k != "observedGeneration"
    }
    assert dumped["execution_config"] is None


def test_observed_status_counts_only_for_the_current_generation() -> None:
    observed = {"status": "active", "observedGeneration": 1}
    assert trigger_response(stored(observed), None).status == "active"
    assert trigger_response(stored(observed, generation=2), None).status == "paused"
    # An object without metadata.generation (a manifest, not a stored object): observed wins.
    assert trigger_response(stored(observed, generation=None), None).status == "active"
    # A status that names no status yet: the requested one.
    assert trigger_response(stored({"observedGeneration": 1}), None).status == "paused"


def test_missing_names_are_empty_strings_not_made_up() -> None:
    meta = stored(uid=None, namespace=None).metadata.model_copy(update={"name": None})
    trigger = stored(uid=None, namespace=None).model_copy(update={"metadata": meta})
    response = trigger_response(trigger, None)
    assert (response.namespace_id, response.internal_id, response.trigger_id) == ("", "", "")
    assert trigger_response(stored(annotations=None), None).created_by is None


@pytest.mark.parametrize("created", [CREATED, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00Z"])
def test_creation_timestamp_as_datetime_or_text(created: Any) -> None:
    response = trigger_response(stored(creationTimestamp=created), None)
    assert response.created_at == response.updated_at == CREATED


@pytest.mark.parametrize("created", [None, "", 1767225600])
def test_a_trigger_without_creation_timestamp_is_refused(created: Any) -> None:
    refusal = r"^a stored ClusterTrigger has metadata\.creationTimestamp$"
    with pytest.raises(ValueError, match=refusal):
        trigger_response(stored(creationTimestamp=created), None)


def test_a_trigger_of_a_cluster_definition_shows_its_cluster_id() -> None:
    trigger = stored()
    spec = trigger.spec.model_copy(update={"cluster_id": "cluster_xyz", "execution_config": None})
    response = trigger_response(trigger.model_copy(update={"spec": spec}), None)
    assert response.cluster_id == "cluster_xyz"
