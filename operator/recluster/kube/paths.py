"""Resource paths and patch content types (the one home of both)."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def resource_path(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """`/apis/batch/v1/namespaces/ns/jobs/name[/status]` (the core group under `/api/v1`)."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
    if name:
        path = f"{path}/{name}"
        if subresource:
            path = f"{path}/{subresource}"
    return path
