"""Pure parts of the gateway: keys, merge patches, names, sorting.

The response builder (recluster.api.rest.trigger_response) is tested in tests/api/test_rest.py.
"""

from __future__ import annotations

import base64
import typing
from datetime import UTC, datetime
from typing import Any

import pytest
from gateway_support import CONFIG, SEED_REQUEST_FIELDS, SEED_RESPONSE_FIELDS

from recluster.api.rest import HistoryStatus, TriggerResponse, trigger_response
from recluster.api.trigger import (
    ClusterTrigger,
    ClusterTriggerStatus,
    HistoryEntry,
    TriggerRequest,
)
from recluster.gateway.keys import (
    InvalidKeySecret,
    hash_key,
    make_api_key_secret,
    parse_key_secret,
)
from recluster.gateway.kubeapi import merge_patch
from recluster.gateway.service import generate_name_prefix, sort_responses


def stored(status: dict[str, Any] | None = None, generation: int = 1) -> ClusterTrigger:
    return ClusterTrigger.model_validate(
        {
            "apiVersion": "recluster.io/v1alpha1",
            "kind": "ClusterTrigger",
            "metadata": {
                "name": "nightly",
                "namespace": "team-a",
                "uid": "0000-1111",
                "generation": generation,
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "annotations": {"recluster.io/created-by": "alice"},
            },
            "spec": {
                "trigger_type": "interval",
                "schedule_config": {"interval_seconds": 60, "start_immediately": False},
                "execution_config": CONFIG,
                "status": "paused",
            },
            **({"status": status} if status is not None else {}),
        }
    )


def test_response_model_is_the_seed_response_built_from_the_models() -> None:
    assert set(TriggerResponse.model_fields) == SEED_RESPONSE_FIELDS
    # Request fields and status fields keep the models' own types (one model, many faces).
    request, status = TriggerRequest.model_fields, ClusterTriggerStatus.model_fields
    for name, info in TriggerResponse.model_fields.items():
        if name in SEED_REQUEST_FIELDS and name not in ("status", "execution_config"):
            assert info.annotation == request[name].annotation, name
        elif name in status and name not in ("status", "namespace_id", "internal_id", "updated_at"):
            assert info.annotation == status[name].annotation, name
    entry_status = HistoryEntry.model_fields["status"].annotation
    assert typing.get_args(HistoryStatus) == typing.get_args(entry_status)


def test_api_key_secret_round_trip() -> None:
    key, secret = make_api_key_secret("alice", ["team-a", "team-b"], name="k")
    parsed = parse_key_secret(secret)
    assert parsed.owner == "alice"
    assert parsed.namespaces == {"team-a", "team-b"}
    assert parsed.digest.hex() == hash_key(key)
    assert parsed.allows("team-a") and not parsed.allows("team-c")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"namespaces": "team-a", "owner": "x"}, "data.key-sha256 is missing"),
        ({"key-sha256": "zz", "namespaces": "team-a", "owner": "x"}, "64 hex digits"),
        ({"key-sha256": "a" * 64, "namespaces": " , ", "owner": "x"}, "names no namespace"),
        ({"key-sha256": "a" * 64, "namespaces": "Team_A", "owner": "x"}, "invalid namespace"),
        ({"key-sha256": "a" * 64, "namespaces": "team-a"}, "data.owner is missing"),
    ],
)
def test_unusable_key_secrets_name_the_field_not_the_value(
    data: dict[str, str], problem: str
) -> None:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    with pytest.raises(InvalidKeySecret, match=problem) as caught:
        parse_key_secret({"metadata": {"name": "s"}, "data": encoded})
    assert "a" * 64 not in str(caught.value)


def test_make_api_key_secret_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="namespace"):
        make_api_key_secret("alice", ["Team_A"])
    with pytest.raises(ValueError, match="at least one"):
        make_api_key_secret("alice", [])
    with pytest.raises(ValueError, match="owner"):
        make_api_key_secret("", ["team-a"])
    keys = {make_api_key_secret("alice", ["team-a"])[0] for _ in range(20)}
    assert len(keys) == 20


def test_merge_patch_turns_old_into_new() -> None:
    old = {"a": 1, "s": {"x": 1, "y": 2}, "gone": True}
    new = {"a": 1, "s": {"x": 1, "z": 3}, "added": [1]}
    assert merge_patch(old, new) == {"gone": None, "s": {"y": None, "z": 3}, "added": [1]}
    assert merge_patch(new, new) == {}


def test_generated_name_prefixes_fit_the_trigger_name_limit() -> None:
    assert generate_name_prefix({"description": "Daily clustering at 2am"}) == (
        "daily-clustering-at-2am-"
    )
    assert generate_name_prefix({"trigger_type": "cron"}) == "trigger-"
    assert generate_name_prefix({"description": "!!!"}) == "trigger-"
    long = generate_name_prefix({"description": "word " * 100})
    assert len(long) + 5 <= 52 and long.endswith("-") and "--" not in long


def test_sorting_puts_empty_values_last_both_ways() -> None:
    def response(name: str, next_at: int | None) -> TriggerResponse:
        moment = datetime(2026, 1, 1, next_at, tzinfo=UTC) if next_at is not None else None
        return trigger_response(stored(), None).model_copy(
            update={"trigger_id": name, "next_scheduled_at": moment}
        )

    items = [response("b", 3), response("a", None), response("c", 1)]
    ascending = sort_responses(items, "next_scheduled_at")
    assert [r.trigger_id for r in ascending] == ["c", "b", "a"]
    descending = sort_responses(items, "-next_scheduled_at")
    assert [r.trigger_id for r in descending] == ["b", "c", "a"]
    assert [r.trigger_id for r in sort_responses(items, "-trigger_id")] == ["c", "b", "a"]
