"""Who is calling, and may they use the namespace they name?

`authenticate_header` is the one key check (401). The request guard
(`guard.py`) runs it on the headers alone, before any of the body is read;
`require_namespace`, the dependency every namespaced endpoint takes, uses the
key the guard found, then checks the X-Namespace header's syntax (422), then
the key's binding (403). The 403 is the same for a namespace that exists and
one that does not, and it is decided before anything is read from the
cluster, so a key learns nothing about namespaces it is not bound to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .errors import ApiProblem
from .keys import MAX_KEY_LENGTH, ApiKey, KeyRing

# pydantic checks Header/Path patterns with Rust's regex, where `$` is the end of text.
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
API_KEY_STATE = "api_key"  # where the guard leaves the caller's ApiKey in the ASGI scope
UNAUTHORIZED = "missing or invalid API key (send Authorization: Bearer <key>)"
FORBIDDEN = "this API key may not use the namespace given in X-Namespace"

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="`Authorization: Bearer <key>`; a key is bound to the namespaces it may use.",
)


@dataclass(frozen=True)
class Caller:
    """An authenticated request's identity and the namespace it acts in."""

    owner: str
    namespace: str


def key_ring(request: Request) -> KeyRing:
    ring: KeyRing = request.app.state.keys
    return ring


def authenticate_header(ring: KeyRing, authorization: str | None) -> ApiKey:
    """The key of an `Authorization: Bearer <key>` header, or 401 (never saying whether
    a key exists, or why it failed); 503 while the keys are not loaded yet."""
    if not ring.loaded:
        raise ApiProblem(503, "API keys are not loaded yet; retry shortly", {"Retry-After": "1"})
    scheme, _, token = (authorization or "").partition(" ")
    bearer_token = token if scheme.lower() == "bearer" else ""
    key = ring.find(bearer_token) if 0 < len(bearer_token) <= MAX_KEY_LENGTH else None
    if key is None:
        raise ApiProblem(401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
    return key


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiKey:
    """The key the guard authenticated (`credentials` puts the scheme into the OpenAPI)."""
    key = request.scope.get("state", {}).get(API_KEY_STATE)
    if isinstance(key, ApiKey):
        return key
    return authenticate_header(key_ring(request), request.headers.get("authorization"))


NamespaceHeader = Annotated[
    str,
    Header(
        alias="X-Namespace",
        min_length=1,
        max_length=63,
        pattern=NAMESPACE_PATTERN,
        description=(
            "The Kubernetes namespace to act in (an RFC 1123 label: lowercase letters, "
            "digits and '-', at most 63 characters). The API key must be bound to it."
        ),
    ),
]


async def require_namespace(
    key: Annotated[ApiKey, Depends(authenticate)], namespace: NamespaceHeader
) -> Caller:
    """The caller, if their key may use X-Namespace; else 403 (same body for every namespace)."""
    if not key.allows(namespace):
        raise ApiProblem(403, FORBIDDEN)
    return Caller(owner=key.owner, namespace=namespace)


CallerDep = Annotated[Caller, Depends(require_namespace)]
