"""The request guard: key check, per-key rate limit and audit line, before any body is read.

ASGI middleware, outermost of the app's own. FastAPI reads and parses a body
before it runs a route's dependencies, so a key check there comes after up to
1 MiB of anyone's body was buffered and parsed. Here it comes first, from the
headers alone; the body-size limit (limits.py) and the route only ever see
requests of a known key that is within its rate.

A refusal of a request whose body was not read carries `Connection: close`:
the body is not wanted, and the connection cannot be reused before it is read.

Each mutating request of a known key gets one audit line on the
`recluster.gateway.audit` logger, naming the key's Secret and owner (never
the key), the namespace asked for, the request and its status.
"""

from __future__ import annotations

import logging
import math

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..api.base import namespace_problem
from .auth import API_KEY_STATE, authenticate_header
from .errors import ApiProblem, send_problem
from .keys import KeyRing
from .ratelimit import RateLimiter
from .settings import RateLimits

audit = logging.getLogger("recluster.gateway.audit")

# Served without a key: probes and the API's own documentation (all GET, no body).
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TRIGGERS_PREFIX = "/v1/clusters/triggers/"


def request_kind(method: str, path: str) -> str:
    """Which rate bucket a request spends from: read, write, execute or events."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return "read"
    if method == "POST" and path == "/v1/events":
        return "events"
    if method == "POST" and path.startswith(TRIGGERS_PREFIX) and path.endswith("/execute"):
        return "execute"
    return "write"


def limiter_for(limits: RateLimits) -> RateLimiter:
    return RateLimiter(
        {
            "read": limits.read,
            "write": limits.write,
            "execute": limits.execute,
            "events": limits.events,
        }
    )


def _has_body(headers: dict[bytes, bytes]) -> bool:
    return headers.get(b"content-length", b"0") not in (b"0", b"") or (
        b"transfer-encoding" in headers
    )


class RequestGuard:
    """ASGI middleware: 503/401 without a usable key, 429 over the key's rate, then the app."""

    def __init__(self, app: ASGIApp, keys: KeyRing, limits: RateLimits) -> None:
        self.app, self.keys, self.limits = app, keys, limits
        self.limiter = limiter_for(limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        close = {"Connection": "close"} if _has_body(headers) else {}
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        try:
            key = authenticate_header(self.keys, authorization)
        except ApiProblem as problem:
            await send_problem(send, problem.status, problem.detail, {**problem.headers, **close})
            return
        method, path = scope["method"], scope["path"]
        kind = request_kind(method, path)
        wait = self.limiter.take(key.secret, kind)
        if wait > 0:
            rate = getattr(self.limits, kind)
            detail = (
                f"too many {kind} requests for this API key (at most {rate.describe()}); "
                f"retry in {math.ceil(wait)} s"
            )
            await send_problem(send, 429, detail, {"Retry-After": str(math.ceil(wait)), **close})
            return
        scope.setdefault("state", {})[API_KEY_STATE] = key
        if method not in MUTATING:
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app fails before answering

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            namespace = headers.get(b"x-namespace", b"").decode("latin-1")
            audit.info(
                "%s %s -> %d by key %s (owner %s) in namespace %s",
                method,
                # raw_path: percent-encoded as sent, so no newline can reach the log
                scope.get("raw_path", path.encode()).decode("latin-1"),
                status,
                key.secret,
                key.owner,
                "-" if namespace_problem(namespace) else namespace,
            )
