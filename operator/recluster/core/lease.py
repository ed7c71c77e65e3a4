"""Leader election over a coordination.k8s.io Lease, as client-go does it. Pure.

Several operator replicas run; the one holding the Lease acts, the others
wait. The holder renews the Lease every `renew` seconds; a Lease not renewed
for `duration` seconds is free, so after a crash a standby takes over within
duration + retry seconds, and after a graceful stop (the holder releases the
Lease) within `retry` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal


@dataclass(frozen=True)
class LeaseTiming:
    duration: float = 15.0
    renew: float = 5.0
    retry: float = 2.0


@dataclass(frozen=True)
class LeaseStep:
    """What to do now: write `spec` (create or update) and lead, or wait."""

    action: Literal["create", "update", "wait"]
    spec: dict[str, Any] | None
    leading: bool


def _micro(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value))  # reads the "Z" of RFC 3339 since 3.11


def holder_spec(
    identity: str, now: datetime, timing: LeaseTiming, previous: dict[str, Any] | None
) -> dict[str, Any]:
    previous = previous or {}
    taking_over = previous.get("holderIdentity") != identity
    transitions = int(previous.get("leaseTransitions") or 0) + (1 if taking_over else 0)
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": max(1, round(timing.duration)),
        "acquireTime": _micro(now) if taking_over else previous.get("acquireTime", _micro(now)),
        "renewTime": _micro(now),
        "leaseTransitions": transitions,
    }


def step(
    lease: dict[str, Any] | None, identity: str, now: datetime, timing: LeaseTiming
) -> LeaseStep:
    """Decide, from the Lease as read, whether this replica may lead."""
    if lease is None:
        return LeaseStep("create", holder_spec(identity, now, timing, None), True)
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity")
    renewed = _parse(spec.get("renewTime"))
    duration = timedelta(seconds=float(spec.get("leaseDurationSeconds") or timing.duration))
    expired = holder in (None, "") or renewed is None or now >= renewed + duration
    if holder == identity or expired:
        return LeaseStep("update", holder_spec(identity, now, timing, spec), True)
    return LeaseStep("wait", None, False)


def released(spec: dict[str, Any]) -> dict[str, Any]:
    """The Lease spec a holder writes when it stops: free at once for the others."""
    return {**spec, "holderIdentity": None, "leaseDurationSeconds": 1}
