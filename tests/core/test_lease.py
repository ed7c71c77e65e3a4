"""Leader election decisions over a Lease."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

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
    assert decision.spec["acquireTime"] == "2026-11-28T12:00:00.000000Z", "acquired now"


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


def test_the_specs_written_are_exact() -> None:
    """What `kubectl get lease -o yaml` shows: microsecond times, transitions counted."""
    now = datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)
    created = step(None, "a", now, TIMING)
    assert created.spec == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-11-28T12:00:00.123456Z",
        "renewTime": "2026-11-28T12:00:00.123456Z",
        "leaseTransitions": 1,  # client-go writes 0 on create; noted in docs/testing.md
    }
    renewed = step({"spec": created.spec}, "a", now + timedelta(seconds=5), TIMING)
    assert renewed.spec == {**created.spec, "renewTime": "2026-11-28T12:00:05.123456Z"}
    # a holder's spec without acquireTime (another client wrote it): acquired now
    bare = {"holderIdentity": "a", "renewTime": "2026-11-28T12:00:00.000000Z"}
    assert step({"spec": bare}, "a", now, TIMING).spec == {
        **created.spec, "leaseTransitions": 0,
    }  # fmt: skip
    # a sub-second duration still writes a whole second (the field is an integer)
    short = step(None, "a", now, LeaseTiming(duration=0.4, renew=0.1, retry=0.1))
    assert short.spec is not None and short.spec["leaseDurationSeconds"] == 1
    waiting = step(lease("b", NOW), "a", NOW, TIMING)
    assert (waiting.action, waiting.spec, waiting.leading) == ("wait", None, False)


def test_the_lease_duration_written_by_the_holder_decides_expiry() -> None:
    # b wrote 60 s: after 30 s it still holds, whatever this replica's own duration
    assert step(lease("b", NOW - timedelta(seconds=30), duration=60), "a", NOW, TIMING).action == (
        "wait"
    )
    # no duration written: this replica's own
    spec = {"holderIdentity": "b", "renewTime": (NOW - timedelta(seconds=14)).isoformat()}
    assert step({"spec": spec}, "a", NOW, TIMING).action == "wait"
    spec["renewTime"] = "2026-11-28T11:59:45.000000Z"  # 15 s ago, in the Z form
    assert step({"spec": spec}, "a", NOW, TIMING).action == "update"
    # an empty holder is free, a missing renewTime too
    assert step({"spec": {"holderIdentity": "", "renewTime": NOW.isoformat()}}, "a", NOW,
                TIMING).leading  # fmt: skip
    assert step({"spec": {"holderIdentity": "b"}}, "a", NOW, TIMING).leading


def test_released_frees_the_lease_for_one_second_and_keeps_the_rest() -> None:
    spec = lease("b", NOW)["spec"]
    assert released(spec) == {**spec, "holderIdentity": None, "leaseDurationSeconds": 1}


@pytest.fixture
def local_zone_ahead_of_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's local time zone at UTC+5:30 for the test (POSIX TZ, no tz database)."""
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_zone_ahead_of_utc")
def test_times_are_written_in_utc_whatever_the_local_zone() -> None:
    in_kolkata = NOW.astimezone()  # 17:30 local: the same instant, another offset
    assert in_kolkata.utcoffset() == timedelta(hours=5, minutes=30)
    for now in (NOW, in_kolkata):
        spec = step(None, "a", now, TIMING).spec
        assert spec is not None
        assert (spec["acquireTime"], spec["renewTime"]) == ("2026-11-28T12:00:00.000000Z",) * 2
