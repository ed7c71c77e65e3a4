"""The Argo CD health check of ClusterTrigger (charts/recluster/files/argocd/health.lua).

Run by a real Lua 5.1 interpreter (lupa, from PyPI): Argo CD runs health
checks with gopher-lua, a Lua 5.1, giving the script the object as the global
`obj` and no os/io libraries. The script runs here in an environment of the
base functions only, so a use of anything else fails.

Two sources of statuses: a table of samples with the shapes the operator
writes (each validated against the API model, so the table cannot drift from
the real status), and statuses written by the pure core itself for the
states it can be driven to in one step.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from chart_support import CHART, ROOT
from lupa import lua51

from recluster.api.clustering import ExecutionConfig
from recluster.api.trigger import ClusterTriggerSpec, ClusterTriggerStatus
from recluster.core.triggering import (
    Decision,
    Observation,
    TriggerRef,
    creation_refused,
    invalid_spec,
    reconcile,
)

SCRIPT = CHART / "files" / "argocd" / "health.lua"
ARGOCD_KEY = "resource.customizations.health.recluster.io_ClusterTrigger"
GENERATION = 2

_LUA = lua51.LuaRuntime(unpack_returned_tuples=True)
_RUN = _LUA.eval(
    """
    function(source, obj)
      local chunk = assert(loadstring(source, "=health.lua"))
      setfenv(chunk, {obj = obj, ipairs = ipairs, pairs = pairs, tostring = tostring,
                      tonumber = tonumber, type = type, string = string, table = table,
                      math = math})
      local hs = chunk()
      return hs.status, hs.message
    end
    """
)


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) as Argo CD would show them for this object."""
    status, message = _RUN(SCRIPT.read_text(), _LUA.table_from(obj, recursive=True))
    return str(status), str(message)


def ready(status: str, reason: str, message: str | None = None) -> dict[str, Any]:
    condition = {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "lastTransitionTime": "2026-11-29T02:00:05Z",
        "observedGeneration": GENERATION,
    }
    if message is not None:
        condition["message"] = message
    return condition


def trigger(status: dict[str, Any] | None, generation: int = GENERATION) -> dict[str, Any]:
    """A ClusterTrigger as the apiserver returns it; `status` as the operator writes it."""
    obj: dict[str, Any] = {
        "apiVersion": "recluster.io/v1alpha1",
        "kind": "ClusterTrigger",
        "metadata": {"name": "daily-2am", "namespace": "team-a", "generation": generation},
        "spec": {
            "trigger_type": "cron",
            "schedule_config": {"cron_expression": "0 2 * * *", "timezone": "Europe/Berlin"},
            "cluster_id": "products",
        },
    }
    if status is not None:
        obj["status"] = status
    return obj


def observed(condition: dict[str, Any], state: str = "active", **fields: Any) -> dict[str, Any]:
    """A status the operator wrote for the current generation."""
    return {
        "status": state,
        "namespace_id": "team-a",
        "internal_id": "0d6f1c9e-3b1e-4a53-9a55-6f1f6f0c2b11",
        "execution_count": 4,
        "consecutive_failures": 0,
        "last_triggered_at": "2026-11-29T01:00:00Z",
        "last_execution_job_id": "daily-2am-3f2a9c1b7e",
        "last_execution_status": "succeeded",
        "event_counter": 0,
        "updated_at": "2026-11-29T02:00:05Z",
        "schedule": "cron 0 2 * * * (Europe/Berlin)",
        "observedGeneration": GENERATION,
        "conditions": [condition],
        "history": [
            {
                "job_id": "daily-2am-3f2a9c1b7e",
                "triggered_at": "2026-11-29T01:00:00Z",
                "scheduled_at": "2026-11-29T01:00:00Z",
                "finished_at": "2026-11-29T01:00:42Z",
                "status": "succeeded",
                "reason": "schedule",
                "execution_time_ms": 41873,
                "num_clusters": 12,
                "num_documents": 48210,
            }
        ],
        **fields,
    }


NEXT = "next at 2026-11-30T01:00:00Z"
FAILED_CREATE = (
    'Job daily-2am-9b1c2d3e4f was refused: jobs.batch "daily-2am-9b1c2d3e4f" is forbidden:'
    " exceeded quota: compute, requested: requests.memory=1Gi, used: requests.memory=8Gi,"
    " limited: requests.memory=8Gi"
)
EXHAUSTED = "3 consecutive failures (max_consecutive_failures=3); edit the spec to resume"

# name -> (the object, Argo CD's health status, its message)
SAMPLES: dict[str, tuple[dict[str, Any], str, str]] = {
    "just applied: no status yet": (
        trigger(None),
        "Progressing",
        "Waiting for the operator to reconcile the trigger",
    ),
    "status without observedGeneration": (
        trigger({"execution_count": 0}),
        "Progressing",
        "Waiting for the operator to reconcile the trigger",
    ),
    "spec edited, status of the previous generation": (
        trigger(observed(ready("True", "Active", NEXT), observedGeneration=1)),
        "Progressing",
        "Waiting for the operator to reconcile generation 2",
    ),
    "no Ready condition": (
        trigger(observed(ready("True", "Active", NEXT), conditions=[])),
        "Progressing",
        "Waiting for the Ready condition",
    ),
    "Ready Unknown": (
        trigger(observed(ready("Unknown", "Reconciling", "reading the trigger"))),
        "Progressing",
        "Waiting for the Ready condition",
    ),
    "active cron": (
        trigger(observed(ready("True", "Active", NEXT), next_scheduled_at="2026-11-30T01:00:00Z")),
        "Healthy",
        NEXT,
    ),
    "active event trigger": (
        trigger(observed(ready("True", "Active", "40/100 documents_added counted"))),
        "Healthy",
        "40/100 documents_added counted",
    ),
    "one failed run, below max_consecutive_failures": (
        trigger(
            observed(
                ready("True", "Active", NEXT),
                consecutive_failures=1,
                last_execution_status="failed",
                last_execution_error="OOMKilled: the clustering container ran out of memory",
            )
        ),
        "Healthy",
        NEXT,
    ),
    "paused": (
        trigger(
            observed(ready("True", "Paused", "spec.status is paused: nothing fires"), "paused")
        ),
        "Suspended",
        "spec.status is paused: nothing fires",
    ),
    "disabled": (
        trigger(
            observed(
                ready("True", "Disabled", "spec.status is disabled: nothing fires or counts"),
                "disabled",
            )
        ),
        "Suspended",
        "spec.status is disabled: nothing fires or counts",
    ),
    "InvalidSpec": (
        trigger(observed(ready("False", "InvalidSpec", "schedule_config: field required"))),
        "Degraded",
        "schedule_config: field required",
    ),
    "InvalidSchedule": (
        trigger(observed(ready("False", "InvalidSchedule", "unknown time zone 'Mars/Olympus'"))),
        "Degraded",
        "unknown time zone 'Mars/Olympus'",
    ),
    "paused, and its schedule can never fire": (
        trigger(observed(ready("False", "InvalidSchedule", "minute 61 is out of range"), "paused")),
        "Degraded",
        "minute 61 is out of range",
    ),
    "ClusterDefinitionNotFound": (
        trigger(
            observed(
                ready(
                    "False",
                    "ClusterDefinitionNotFound",
                    "no ClusterDefinition in this namespace has cluster_id 'products'",
                )
            )
        ),
        "Degraded",
        "no ClusterDefinition in this namespace has cluster_id 'products'",
    ),
    "ClusterDefinitionAmbiguous": (
        trigger(
            observed(
                ready(
                    "False",
                    "ClusterDefinitionAmbiguous",
                    "several ClusterDefinitions have cluster_id 'products': a, b",
                )
            )
        ),
        "Degraded",
        "several ClusterDefinitions have cluster_id 'products': a, b",
    ),
    "FailedCreate": (
        trigger(observed(ready("False", "FailedCreate", FAILED_CREATE))),
        "Degraded",
        FAILED_CREATE,
    ),
    "MaxConsecutiveFailures": (
        trigger(
            observed(
                ready("False", "MaxConsecutiveFailures", EXHAUSTED),
                "failed",
                consecutive_failures=3,
                last_execution_status="failed",
            )
        ),
        "Degraded",
        EXHAUSTED,
    ),
    "Failed (spec.status failed)": (
        trigger(
            observed(ready("False", "Failed", "spec.status is failed: nothing fires"), "failed")
        ),
        "Degraded",
        "spec.status is failed: nothing fires",
    ),
    "Ready False without a message": (
        trigger(observed(ready("False", "FailedCreate"))),
        "Degraded",
        "FailedCreate",
    ),
}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_health_of_sample_statuses(name: str) -> None:
    obj, status, message = SAMPLES[name]
    assert health(obj) == (status, message)


@pytest.mark.parametrize("name", [name for name, (obj, *_) in SAMPLES.items() if "status" in obj])
def test_the_samples_have_the_shape_the_operator_writes(name: str) -> None:
    status = SAMPLES[name][0]["status"]
    assert set(status) <= set(ClusterTriggerStatus.model_fields), "a field the model lacks"
    ClusterTriggerStatus.model_validate(status)  # conditions and history refuse unknown fields


# --- statuses the core itself writes ---------------------------------------------------

NOW = datetime(2026, 11, 29, 2, 0, 5, tzinfo=UTC)
REF = TriggerRef("daily-2am", "team-a", "uid-1", GENERATION, NOW)
CONFIG_BODY = {"collection_ids": ["col_abc123"], "config": {"algorithm": "kmeans", "n_clusters": 3}}
CONFIG = ExecutionConfig.model_validate(CONFIG_BODY)


def _spec(schedule_config: dict[str, Any] | None = None, **fields: Any) -> ClusterTriggerSpec:
    schedule = {"cron_expression": "0 2 * * *", "timezone": "UTC", **(schedule_config or {})}
    body = {
        "trigger_type": "cron",
        "schedule_config": schedule,
        "execution_config": CONFIG_BODY,
        **fields,
    }
    return ClusterTriggerSpec.model_validate(body)


def _written(decision: Decision) -> dict[str, Any]:
    """The trigger with the status as the reconciler patches it."""
    return trigger(decision.status.model_dump(mode="json", exclude_none=True))


def _reconciled(spec: ClusterTriggerSpec, **observation: Any) -> dict[str, Any]:
    seen = Observation(execution_config=CONFIG, **observation)
    return _written(reconcile(REF, spec, ClusterTriggerStatus(), seen, NOW))


@pytest.mark.parametrize(
    ("obj", "status", "message"),
    [
        (_reconciled(_spec()), "Healthy", r"next at 2026-11-30T02:00:00Z"),
        (_reconciled(_spec(status="paused")), "Suspended", r"spec.status is paused"),
        (_reconciled(_spec(status="disabled")), "Suspended", r"spec.status is disabled"),
        (_reconciled(_spec(status="failed")), "Degraded", r"spec.status is failed"),
        (
            _reconciled(
                _spec(schedule_config={"cron_expression": "0 0 30 2 *", "timezone": "UTC"})
            ),
            "Degraded",
            r"can never fire",
        ),
        (
            _reconciled(
                _spec(status="paused", schedule_config={"cron_expression": "61 * * * *"}),
            ),
            "Degraded",
            r"minute 61 is out of range",
        ),
        (
            _reconciled(
                _spec(),
                config_problem=("ClusterDefinitionNotFound", "no ClusterDefinition has it"),
            ),
            "Degraded",
            r"no ClusterDefinition has it",
        ),
        (
            _written(creation_refused(REF, ClusterTriggerStatus(), "daily-2am-1", "quota", NOW)),
            "Degraded",
            r"Job daily-2am-1 was refused: quota",
        ),
        (
            _written(invalid_spec(REF, ClusterTriggerStatus(), "no schedule_config", NOW)),
            "Degraded",
            r"no schedule_config",
        ),
    ],
    ids=[
        "active",
        "paused",
        "disabled",
        "failed",
        "invalid-schedule",
        "paused-invalid-schedule",
        "definition-not-found",
        "failed-create",
        "invalid-spec",
    ],
)
def test_health_of_statuses_the_core_writes(obj: dict[str, Any], status: str, message: str) -> None:
    got_status, got_message = health(obj)
    assert got_status == status
    assert re.search(message, got_message), got_message


def test_a_status_of_an_older_generation_is_progressing() -> None:
    obj = _reconciled(_spec())
    obj["metadata"]["generation"] = GENERATION + 1
    assert health(obj) == ("Progressing", "Waiting for the operator to reconcile generation 3")


# --- the docs ship this very script -------------------------------------------------------


def test_the_argocd_cm_snippet_in_the_docs_is_the_script() -> None:
    text = (ROOT / "docs" / "argocd.md").read_text()
    blocks = [
        yaml.safe_load(block)
        for block in re.findall(r"```yaml\n(.*?)```", text, re.S)
        if ARGOCD_KEY in block
    ]
    config_maps = [b for b in blocks if b.get("kind") == "ConfigMap"]
    assert len(config_maps) == 1
    config_map = config_maps[0]
    assert config_map["metadata"] == {
        "name": "argocd-cm",
        "namespace": "argocd",
        "labels": {"app.kubernetes.io/part-of": "argocd"},
    }
    assert config_map["data"][ARGOCD_KEY] == SCRIPT.read_text()
    helm_values = [b for b in blocks if "configs" in b]
    assert [v["configs"]["cm"][ARGOCD_KEY] for v in helm_values] == [SCRIPT.read_text()]
