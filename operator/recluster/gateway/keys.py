"""API keys: stored hashed in labelled Secrets, loaded and kept fresh by re-listing.

Keys are high-entropy random tokens (`sk_` + 256 random bits), so a plain
SHA-256 is the standard way to store them: a slow password hash (bcrypt,
argon2) only protects low-entropy secrets people choose, and would cost every
request tens of milliseconds. Only the hash is ever read; the key itself is
shown once, by `make_api_key_secret`, and never logged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..api.base import namespace_problem
from ..kube.client import KubeClient
from ..kube.errors import KubeError
from ..kube.paths import resource_path

log = logging.getLogger("recluster.gateway.keys")

LABEL_API_KEY = "recluster.io/api-key"
FIELD_HASH = "key-sha256"
FIELD_NAMESPACES = "namespaces"
FIELD_OWNER = "owner"
KEY_PREFIX = "sk_"
MAX_OWNER_LENGTH = 253
MAX_KEY_LENGTH = 512
_HEX64 = re.compile(r"[0-9a-f]{64}")  # used with fullmatch: `$` admits a final newline


def hash_key(key: str) -> str:
    """Hex SHA-256 of a key, as stored in a Secret's `key-sha256`."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One usable key: who owns it and which namespaces it may use (never the key itself)."""

    secret: str
    digest: bytes
    owner: str
    namespaces: frozenset[str]

    def allows(self, namespace: str) -> bool:
        return namespace in self.namespaces


class InvalidKeySecret(ValueError):
    """A labelled Secret is not a usable key; the message names the field, not its value."""


def _field(data: Mapping[str, Any], name: str) -> str:
    raw = data.get(name)
    if not isinstance(raw, str) or not raw:
        raise InvalidKeySecret(f"data.{name} is missing")
    try:
        return base64.b64decode(raw, validate=True).decode().strip()
    except (ValueError, UnicodeDecodeError):
        raise InvalidKeySecret(f"data.{name} is not base64-encoded UTF-8") from None


def parse_key_secret(secret: Mapping[str, Any]) -> ApiKey:
    """The ApiKey a Secret describes, or InvalidKeySecret saying which field is wrong."""
    name = str((secret.get("metadata") or {}).get("name", ""))
    data = secret.get("data") or {}
    digest = _field(data, FIELD_HASH).lower()
    if not _HEX64.fullmatch(digest):
        raise InvalidKeySecret(f"data.{FIELD_HASH} is not 64 hex digits")
    owner = _field(data, FIELD_OWNER)
    if len(owner) > MAX_OWNER_LENGTH:
        raise InvalidKeySecret(f"data.{FIELD_OWNER} is longer than {MAX_OWNER_LENGTH} characters")
    namespaces = frozenset(
        n.strip() for n in _field(data, FIELD_NAMESPACES).split(",") if n.strip()
    )
    if not namespaces:
        raise InvalidKeySecret(f"data.{FIELD_NAMESPACES} names no namespace")
    for namespace in namespaces:
        if namespace_problem(namespace):
            raise InvalidKeySecret(f"data.{FIELD_NAMESPACES} holds an invalid namespace name")
    return ApiKey(name, bytes.fromhex(digest), owner, namespaces)


def make_api_key_secret(
    owner: str, namespaces: list[str] | tuple[str, ...], *, name: str | None = None
) -> tuple[str, dict[str, Any]]:
    """A new random key and the Secret manifest that stores its hash (apply it in the
    gateway's namespace). The key is returned once; nothing can recover it later."""
    if not owner or len(owner) > MAX_OWNER_LENGTH:
        raise ValueError(f"owner must have 1 to {MAX_OWNER_LENGTH} characters")
    for namespace in namespaces:
        if reason := namespace_problem(namespace):
            raise ValueError(reason)
    if not namespaces:
        raise ValueError("a key needs at least one namespace")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    slug = re.sub(r"[^a-z0-9]+", "-", owner.lower()).strip("-")[:40].strip("-") or "key"

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name or f"api-key-{slug}-{secrets.token_hex(3)}",
            "labels": {LABEL_API_KEY: "true"},
        },
        "type": "Opaque",
        "data": {
            FIELD_HASH: b64(hash_key(key)),
            FIELD_NAMESPACES: b64(",".join(namespaces)),
            FIELD_OWNER: b64(owner),
        },
    }
    return key, manifest


class KeyRing:
    """The current keys of one namespace, re-listed every few seconds.

    A re-list (not a watch) keeps this simple and self-healing: a revoked key
    stops working within `refresh_seconds`, and an API outage keeps the last
    good set instead of locking everyone out.
    """

    def __init__(self, client: KubeClient, namespace: str, refresh_seconds: float = 5.0) -> None:
        self.client, self.namespace, self.refresh_seconds = client, namespace, refresh_seconds
        self._keys: tuple[ApiKey, ...] = ()
        self.loaded = False
        self._task: asyncio.Task[None] | None = None
        self._invalid: set[str] = set()

    async def refresh(self) -> None:
        """List the labelled Secrets once; invalid ones are skipped (logged by name only)."""
        path = resource_path("v1", "secrets", self.namespace)
        listing = await self.client.request(
            "GET", path, params={"labelSelector": f"{LABEL_API_KEY}=true"}
        )
        keys, invalid = [], set()
        for secret in listing.get("items") or []:
            try:
                keys.append(parse_key_secret(secret))
            except InvalidKeySecret as exc:
                name = str((secret.get("metadata") or {}).get("name", "?"))
                invalid.add(name)
                if name not in self._invalid:
                    log.warning(
                        "Secret %s/%s is not a usable API key: %s", self.namespace, name, exc
                    )
        self._keys, self._invalid, self.loaded = tuple(keys), invalid, True

    def find(self, key: str) -> ApiKey | None:
        """The key's entry, comparing hashes in constant time (no early exit on a match)."""
        digest = hashlib.sha256(key.encode()).digest()
        found = None
        for candidate in self._keys:
            if hmac.compare_digest(candidate.digest, digest):
                found = candidate
        return found

    async def start(self) -> None:
        """Load once (a failure is logged and retried), then refresh in the background."""
        await self._refresh_logged()
        self._task = asyncio.create_task(self._run(), name="recluster-gateway-keys")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except (TimeoutError, KubeError, OSError) as exc:
            log.error("cannot list API key Secrets in namespace %s: %s", self.namespace, exc)
        except Exception:  # keep serving with the last good keys, whatever went wrong
            log.exception("cannot list API key Secrets in namespace %s", self.namespace)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            await self._refresh_logged()
