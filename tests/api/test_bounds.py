"""Bounds of the models: every integer a client sets, finite floats, minimum intervals.

Issue 12 (Low): 10**12 seconds made the operator's reconcile raise OverflowError
forever, the gateway passed integers above int64 and `threshold: Infinity`, and
intervals went down to one second.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from test_crds import nodes

from recluster.api.base import MAX_SECONDS, MIN_INTERVAL_SECONDS
from recluster.api.clustering import ExecutionConfig
from recluster.api.crd import model_schema
from recluster.api.definition import ClusterDefinitionSpec
from recluster.api.rest import TriggerUpdateRequest
from recluster.api.schedule import ScheduleConfig
from recluster.api.trigger import ClusterTriggerSpec, ClusterTriggerStatus, TriggerRequest
from recluster.core.triggering import Observation, TriggerRef, reconcile
from recluster.gateway.events import DocumentEvent

NOW = datetime(2026, 11, 28, tzinfo=UTC)
SEEDS = Path(__file__).resolve().parents[1] / "data" / "seed"
# The seed's examples of the three kinds with seconds in their schedules.
SCHEDULES: dict[str, dict[str, Any]] = {
    kind: json.loads((SEEDS / f"{kind}.json").read_text())["schedule_config"]
    for kind in ("interval", "event", "conditional")
}
CONFIG = json.loads((SEEDS / "cron.json").read_text())["execution_config"]
# What a client writes: the gateway's request bodies and the CRDs' specs (kubectl).
CLIENT_MODELS: list[type[BaseModel]] = [
    TriggerRequest,
    TriggerUpdateRequest,
    DocumentEvent,
    ClusterTriggerSpec,
    ClusterDefinitionSpec,
]


@pytest.mark.parametrize("model", CLIENT_MODELS, ids=lambda m: m.__name__)
def test_every_integer_a_client_sets_has_both_bounds(model: type[BaseModel]) -> None:
    found = [(p, n) for p, n in nodes(model_schema(model)) if n.get("type") == "integer"]
    assert found, "no integers: the walk is broken"
    for path, node in found:
        assert "minimum" in node and "maximum" in node, f"{model.__name__}{path}: {node}"
        assert node["maximum"] < 2**63, f"{model.__name__}{path} exceeds int64"


def schedule(kind: str, **change: Any) -> dict[str, Any]:
    return {**SCHEDULES[kind], **change}


def refusal(kind: str, **change: Any) -> tuple[str, str]:
    """(field, message) of the one problem a schedule change causes."""
    with pytest.raises(ValidationError) as caught:
        ScheduleConfig.model_validate(schedule(kind, **change))
    [error] = caught.value.errors()
    return ".".join(str(p) for p in error["loc"]), error["msg"]


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("interval", "interval_seconds"),
        ("conditional", "check_interval_seconds"),
        ("event", "cooldown_seconds"),
    ],
)
def test_seconds_have_an_upper_bound_of_ten_years(kind: str, field: str) -> None:
    assert refusal(kind, **{field: 10**12}) == (
        field,
        f"Input should be less than or equal to {MAX_SECONDS}",
    )
    assert refusal(kind, **{field: 2**63}) == (
        field,
        f"Input should be less than or equal to {MAX_SECONDS}",
    )
    ScheduleConfig.model_validate(schedule(kind, **{field: MAX_SECONDS}))
    with pytest.raises(ValidationError, match="starting_deadline_seconds"):
        ClusterTriggerSpec.model_validate(
            {
                "trigger_type": kind,
                "schedule_config": SCHEDULES[kind],
                "execution_config": CONFIG,
                "starting_deadline_seconds": MAX_SECONDS + 1,
            }
        )


def reconciled(kind: str, field: str, seconds: int) -> datetime | None:
    """The next instant the operator plans for a trigger that last fired just now."""
    # model_construct: the value the models now refuse, as an older CRD let it be stored
    sc = ScheduleConfig.model_construct(**schedule(kind, **{field: seconds}))
    spec = ClusterTriggerSpec.model_validate(
        {"trigger_type": kind, "schedule_config": SCHEDULES[kind], "execution_config": CONFIG}
    ).model_copy(update={"schedule_config": sc})
    status = ClusterTriggerStatus(last_triggered_at=NOW, event_counter=1000)  # an event firing due
    ref = TriggerRef("t", "default", "uid", 1, NOW)
    observed = Observation(
        jobs=(), execution_config=ExecutionConfig.model_validate(CONFIG), manual_request=None
    )
    return reconcile(ref, spec, status, observed, NOW).status.next_scheduled_at


@pytest.mark.parametrize(
    ("kind", "field"), [("interval", "interval_seconds"), ("event", "cooldown_seconds")]
)
def test_the_bound_is_what_the_operator_can_schedule(kind: str, field: str) -> None:
    with pytest.raises(OverflowError):  # why there is a bound
        reconciled(kind, field, 10**12)
    assert reconciled(kind, field, MAX_SECONDS) == datetime(2036, 11, 25, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "field"),
    [("interval", "interval_seconds"), ("conditional", "check_interval_seconds")],
)
def test_intervals_have_a_minimum(kind: str, field: str) -> None:
    for seconds in (1, MIN_INTERVAL_SECONDS - 1):
        assert refusal(kind, **{field: seconds}) == (
            field,
            f"Input should be greater than or equal to {MIN_INTERVAL_SECONDS}",
        )
    ScheduleConfig.model_validate(schedule(kind, **{field: MIN_INTERVAL_SECONDS}))


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_floats_must_be_finite(value: float) -> None:
    assert refusal("conditional", threshold=value) == (
        "threshold",
        "Input should be a finite number",
    )
    config = {"algorithm": "dbscan", "eps": value}
    with pytest.raises(ValidationError, match="finite number"):
        ExecutionConfig.model_validate({**CONFIG, "config": config})


def test_idempotency_keys_are_short_printable_ascii() -> None:
    event = {"event_type": "documents_added", "collection_id": "col_abc123"}
    DocumentEvent.model_validate({**event, "idempotency_key": "k" * 64})
    for key, words in (
        ("k" * 65, "at most 64 characters"),
        ("two words", "should match pattern"),
        ("é" * 10, "should match pattern"),
        ("key\n", "should match pattern"),
    ):
        with pytest.raises(ValidationError, match=words):
            DocumentEvent.model_validate({**event, "idempotency_key": key})
