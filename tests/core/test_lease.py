"""Leader election decisions over a Lease."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from recluster.core.lease import LeaseTiming, released, step

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TIMING = LeaseTiming(duration=15, renew=5, retry=2)


def lease(holder: str | None, renewed: datetime, duration: int = 15) -> dict:
    return {
        "spec": {
            "holderIdentity": holder,
            "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "leaseDurationSeconds": duration,
            "acquireTime": "2026-11-28T11:00:00.000000Z",
            "leaseTransitions": 3,
        }
    }


def test_no_lease_is_created_and_led() -> None:
    decision = step(None, "a", NOW, TIMING)
    assert decision.action == "create" and decision.leading
    assert decision.spec is not None and decision.spec["holderIdentity"] == "a"
    assert decision.spec["leaseDurationSeconds"] == 15


def test_a_live_lease_of_another_means_wait() -> None:
    decision = step(lease("b", NOW - timedelta(seconds=14)), "a", NOW, TIMING)
    assert decision.action == "wait" and not decision.leading


def test_an_expired_lease_is_taken_over() -> None:
    decision = step(lease("b", NOW - timedelta(seconds=15)), "a", NOW, TIMING)
    assert decision.action == "update" and decision.leading
    assert decision.spec is not None
    assert decision.spec["holderIdentity"] == "a" and decision.spec["leaseTransitions"] == 4


def test_the_holder_renews_without_a_transition() -> None:
    decision = step(lease("a", NOW - timedelta(seconds=5)), "a", NOW, TIMING)
    assert decision.action == "update" and decision.leading
    assert decision.spec is not None
    assert decision.spec["leaseTransitions"] == 3
    assert decision.spec["acquireTime"] == "2026-11-28T11:00:00.000000Z"


def test_a_released_lease_is_free_at_once() -> None:
    spec = lease("b", NOW)["spec"]
    decision = step({"spec": released(spec)}, "a", NOW, TIMING)
    assert decision.leading
