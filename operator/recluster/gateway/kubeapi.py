"""The Kubernetes calls the gateway makes, over the operator's `KubeClient`.

Least privilege: clustertriggers get/list/create/patch/delete,
clusterdefinitions list, and secrets list in the gateway's own namespace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api.trigger import GROUP_VERSION
from ..core.definitions import definition_ids
from ..kube.client import KubeClient
from ..kube.paths import JSON, MERGE_PATCH, resource_path

TRIGGERS = "clustertriggers"
DEFINITIONS = "clusterdefinitions"
LIST_PAGE = 500


class TriggerApi:
    """ClusterTrigger and ClusterDefinition access for one request's namespace."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    async def create(self, namespace: str, manifest: Mapping[str, Any]) -> JSON:
        path = resource_path(GROUP_VERSION, TRIGGERS, namespace)
        return await self.client.request("POST", path, dict(manifest))

    async def get(self, namespace: str, name: str) -> JSON:
        return await self.client.request(
            "GET", resource_path(GROUP_VERSION, TRIGGERS, namespace, name)
        )

    async def patch(self, namespace: str, name: str, patch: Mapping[str, Any]) -> JSON:
        path = resource_path(GROUP_VERSION, TRIGGERS, namespace, name)
        return await self.client.request("PATCH", path, dict(patch), content_type=MERGE_PATCH)

    async def delete(self, namespace: str, name: str) -> None:
        await self.client.request(
            "DELETE",
            resource_path(GROUP_VERSION, TRIGGERS, namespace, name),
            {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
        )

    async def _list(self, plural: str, namespace: str) -> list[JSON]:
        path = resource_path(GROUP_VERSION, plural, namespace)
        items: list[JSON] = []
        params = {"limit": str(LIST_PAGE)}
        while True:
            page = await self.client.request("GET", path, params=params)
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            params = {"limit": str(LIST_PAGE), "continue": str(token)}

    async def list_triggers(self, namespace: str) -> list[JSON]:
        return await self._list(TRIGGERS, namespace)

    async def count_triggers(self, namespace: str) -> int:
        """How many ClusterTriggers the namespace holds, from a list of one item.

        The apiserver says how many items a chunked list has left
        (`remainingItemCount`); where it does not, the pages are counted.
        """
        path = resource_path(GROUP_VERSION, TRIGGERS, namespace)
        page = await self.client.request("GET", path, params={"limit": "1"})
        meta = page.get("metadata") or {}
        remaining = meta.get("remainingItemCount")
        if meta.get("continue") and remaining is None:
            return len(await self.list_triggers(namespace))
        return len(page.get("items") or []) + int(remaining or 0)

    async def definitions(self, namespace: str) -> dict[str, list[dict[str, Any]]]:
        """ClusterDefinitions by the id triggers name them with, as resolve_execution takes them."""
        by_id: dict[str, list[dict[str, Any]]] = {}
        for item in await self._list(DEFINITIONS, namespace):
            name = str((item.get("metadata") or {}).get("name", ""))
            raw = item.get("spec")
            spec: dict[str, Any] = raw if isinstance(raw, dict) else {}
            by_id.setdefault(definition_ids(name, spec), []).append({"name": name, "spec": spec})
        return by_id


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch turning `old` into `new` (removed keys become null)."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(before, Mapping) and isinstance(value, Mapping):
            inner = merge_patch(before, value)
            if inner:
                patch[key] = inner
        elif key not in old or before != value:
            patch[key] = value
    return patch
