"""The one error type of every Kubernetes call, synchronous or not."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class KubeError(Exception):
    """The API answered an error: `status` (HTTP), `reason` and `message` from its Status."""

    def __init__(
        self, status: int, reason: str, message: str, body: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message
        self.body = dict(body or {})

    @classmethod
    def from_response(cls, status: int, fallback_reason: str, text: str | bytes) -> KubeError:
        """From an error response's body (a Status object, or anything else)."""
        try:
            body = json.loads(text) if text else {}
        except (ValueError, TypeError):
            body = {}
        body = body if isinstance(body, dict) else {}
        raw = text.decode(errors="replace") if isinstance(text, bytes) else str(text or "")
        return cls(
            status,
            str(body.get("reason") or fallback_reason or ""),
            str(body.get("message") or raw[:500]),
            body,
        )
