"""The REST gateway: the seed's Cluster Trigger API, served over ClusterTrigger resources.

See docs/gateway.md. `create_app` builds the FastAPI app, `serve_gateway` runs it.
"""

from .app import create_app
from .auth import Caller, require_namespace
from .keys import ApiKey, KeyRing, hash_key, make_api_key_secret
from .server import serve_gateway
from .settings import USER_AGENT, GatewaySettings, default_keys_namespace, limits_from_env

__all__ = [
    "USER_AGENT",
    "ApiKey",
    "Caller",
    "GatewaySettings",
    "KeyRing",
    "create_app",
    "default_keys_namespace",
    "hash_key",
    "limits_from_env",
    "make_api_key_secret",
    "require_namespace",
    "serve_gateway",
]
