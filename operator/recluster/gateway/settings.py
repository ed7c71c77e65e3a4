"""The gateway's settings: where API keys live, and the limits it enforces.

Every limit is one field here, documented in docs/gateway.md (the "Limits" table).
Rate limits and connection limits hold per gateway process: n replicas admit n
times as much.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

USER_AGENT = "recluster-gateway"
MAX_BODY_BYTES = 1 << 20
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
LIMITS_ENV = "RECLUSTER_GATEWAY_LIMITS"
"""A JSON object of limits (GatewaySettings' tunable fields), set by the chart's gateway.limits."""


@dataclass(frozen=True)
class Rate:
    """A token bucket: `burst` requests at once, refilled at `per_second`."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError(f"a rate needs per_second > 0 and burst >= 1, not {self}")

    def describe(self) -> str:
        """`10 per minute, bursts of 10`, for the 429's detail."""
        per_minute = self.per_second * 60
        if per_minute < 60 and per_minute == int(per_minute):
            return f"{int(per_minute)} per minute, bursts of {self.burst}"
        return f"{self.per_second:g} per second, bursts of {self.burst}"


@dataclass(frozen=True)
class RateLimits:
    """Per API key, one bucket per kind of request (docs/gateway.md, "Rate limits").

    `events` is high because ingestion pipelines push single events hundreds of
    times a second (docs/benchmarks.md measures ~700 requests/s per process);
    `execute` is low because each execution starts a Job.
    """

    read: Rate = Rate(per_second=100, burst=200)
    write: Rate = Rate(per_second=20, burst=50)
    execute: Rate = Rate(per_second=10 / 60, burst=10)
    events: Rate = Rate(per_second=1000, burst=1000)


@dataclass(frozen=True)
class GatewaySettings:
    """Configuration of one gateway process.

    `keys_namespace` is the one namespace whose labelled Secrets hold the API
    keys (the gateway's own: tenants never get access to it).
    """

    keys_namespace: str
    key_refresh_seconds: float = 5.0
    max_body_bytes: int = MAX_BODY_BYTES
    # A PATCH re-reads and retries on a resourceVersion conflict this many times
    # before answering 409; concurrent writers each win one round, so this bounds
    # how many clients may change one trigger at the same instant without a 409.
    update_attempts: int = 25
    retry_delay_seconds: float = 0.005
    create_attempts: int = 3
    # Slow clients: a request's headers must arrive within header_timeout of the
    # connection (or of the previous response), its body within body_timeout of
    # its headers; a 1 MiB body then needs 35 KB/s.
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    # Open connections, idle ones included. Each may hold a body of up to
    # max_body_bytes in memory: 128 MiB at most, inside the chart's 384Mi limit.
    max_connections: int = 128
    # ClusterTriggers one namespace may hold before the gateway refuses to create more.
    max_triggers_per_namespace: int = 1000
    rate_limits: RateLimits = field(default_factory=RateLimits)
    # The events endpoint keeps the last written object of this many triggers (to
    # skip a GET before the next write) and each namespace's event triggers for
    # event_listeners_seconds (events come in bursts).
    event_cache_triggers: int = 256
    event_cache_namespaces: int = 256
    event_listeners_seconds: float = 1.0
    # Where runs' results are (a store URI, docs/store.md); None: the run endpoints answer 503.
    store_uri: str | None = None
    # A run's file is read whole into memory before it is sent: larger ones are refused
    # (members.parquet of ~5M documents), to stay inside the chart's 384Mi limit.
    max_artifact_bytes: int = 64 << 20


def default_keys_namespace() -> str:
    """The pod's own namespace in a cluster (where the Helm chart puts the keys), else default."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


TUNABLE_LIMITS = (
    "max_body_bytes", "header_timeout_seconds", "body_timeout_seconds", "max_connections",
    "max_triggers_per_namespace", "event_cache_triggers", "event_cache_namespaces",
    "event_listeners_seconds", "key_refresh_seconds",
)  # fmt: skip
"""The GatewaySettings fields an install may set (the "Limits" table of docs/gateway.md);
the rest are tuning of retries, not limits."""


def with_limits(
    settings: GatewaySettings, limits: Mapping[str, Any], source: str
) -> GatewaySettings:
    """`settings` with the limits of a JSON object ({"max_connections": 256, "rate_limits":
    {"execute": {"per_second": 1, "burst": 5}}}); a wrong name or value raises ValueError
    naming `source`, the limit and the reason (the process then refuses to start)."""
    changes: dict[str, Any] = {}
    for name, value in limits.items():
        if name == "rate_limits":
            changes[name] = _rate_limits(settings.rate_limits, value, f"{source}.rate_limits")
            continue
        if name not in TUNABLE_LIMITS:
            known = ", ".join((*TUNABLE_LIMITS, "rate_limits"))
            raise ValueError(f"{source}: unknown limit {name!r} (known: {known})")
        changes[name] = _positive(value, f"{source}.{name}", whole=isinstance(
            getattr(settings, name), int))  # fmt: skip
    return replace(settings, **changes)


def limits_from_env(settings: GatewaySettings, env: Mapping[str, str]) -> GatewaySettings:
    """`settings` with the limits of RECLUSTER_GATEWAY_LIMITS, when it is set."""
    text = env.get(LIMITS_ENV, "").strip()
    if not text:
        return settings
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{LIMITS_ENV} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{LIMITS_ENV} must be a JSON object of limits")
    return with_limits(settings, value, LIMITS_ENV)


def _rate_limits(current: RateLimits, value: Any, source: str) -> RateLimits:
    if not isinstance(value, dict):
        raise ValueError(f"{source} must be an object of rates (read, write, execute, events)")
    kinds = [f.name for f in fields(RateLimits)]
    rates: dict[str, Rate] = {}
    for kind, rate in value.items():
        if kind not in kinds:
            raise ValueError(f"{source}: unknown kind {kind!r} (known: {', '.join(kinds)})")
        if not isinstance(rate, dict) or set(rate) - {"per_second", "burst"}:
            raise ValueError(f"{source}.{kind} must be an object of per_second and burst")
        old: Rate = getattr(current, kind)
        rates[kind] = Rate(
            per_second=_positive(rate.get("per_second", old.per_second),
                                 f"{source}.{kind}.per_second", whole=False),
            burst=int(_positive(rate.get("burst", old.burst), f"{source}.{kind}.burst",
                                whole=True)),
        )  # fmt: skip
    return replace(current, **rates)


def _positive(value: Any, name: str, *, whole: bool) -> Any:
    """A finite number above zero (a whole one where the setting counts things)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number, not {value!r}")
    if whole and value != int(value):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be greater than 0, not {value!r}")
    return int(value) if whole else float(value)
