"""The gateway's settings: where API keys live, and the limits it enforces."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

USER_AGENT = "recluster-gateway"
MAX_BODY_BYTES = 1 << 20
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


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
    # The events endpoint keeps the last written object of this many triggers (to
    # skip a GET before the next write) and each namespace's event triggers for
    # event_listeners_seconds (events come in bursts).
    event_cache_triggers: int = 256
    event_cache_namespaces: int = 256
    event_listeners_seconds: float = 1.0


def default_keys_namespace() -> str:
    """The pod's own namespace in a cluster (where the Helm chart puts the keys), else default."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"
