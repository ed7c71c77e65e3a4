"""The informer's rules, against a scripted API: resume, relist after 410, deletions announced."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from recluster.controller.informer import Informer

pytestmark = pytest.mark.asyncio


def pod(name: str, version: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(version),
                         "managedFields": [{"manager": "x"}]}}  # fmt: skip


class ScriptedApi:
    """Lists and watch streams, in the order the test gives them."""

    def __init__(self, lists: list[list[dict[str, Any]]], streams: list[list[dict[str, Any]]]):
        self.lists, self.streams = lists, streams
        self.list_params: list[Mapping[str, str]] = []
        self.watch_params: list[Mapping[str, str]] = []
        self.idle = asyncio.Event()
        self.log: list[str] = []

    async def list_pages(
        self, path: str, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """One item a page; the last page carries the list's resourceVersion."""
        self.list_params.append(dict(params or {}))
        items = self.lists.pop(0)
        version = max([int(i["metadata"]["resourceVersion"]) for i in items] or [1])
        for item in items[:-1]:
            self.log.append(f"page {item['metadata']['name']}")
            yield {"metadata": {"continue": "more"}, "items": [item]}
        self.log.append("last page")
        yield {"metadata": {"resourceVersion": str(version)}, "items": items[-1:]}

    async def watch(
        self, path: str, params: Mapping[str, str], timeout_seconds: int = 300
    ) -> AsyncIterator[dict[str, Any]]:
        self.watch_params.append(dict(params))
        if not self.streams:
            self.idle.set()
            await asyncio.Event().wait()
        for event in self.streams.pop(0):
            yield event


async def test_relist_after_410_announces_what_went_and_resumes_from_there() -> None:
    api = ScriptedApi(
        lists=[[pod("a", 1), pod("b", 2)], [pod("b", 7), pod("c", 8)]],
        streams=[
            [{"type": "MODIFIED", "object": pod("a", 3)},
             {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "5"}}},
             {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}],
        ],
    )  # fmt: skip
    informer = Informer(api, "v1", "pods", label_selector="recluster.io/execution")  # type: ignore[arg-type]
    seen: list[tuple[str, str]] = []
    informer.on_change(lambda kind, old, new: seen.append((kind, (new or old)["metadata"]["name"])))  # type: ignore[index]
    stop = asyncio.Event()
    task = asyncio.create_task(informer.run(stop))
    await asyncio.wait_for(api.idle.wait(), 5)
    stop.set()
    await task
    assert seen == [
        ("ADDED", "a"), ("ADDED", "b"),  # first list
        ("MODIFIED", "a"),  # watch
        ("DELETED", "a"), ("MODIFIED", "b"), ("ADDED", "c"),  # relist after 410
    ]  # fmt: skip
    assert set(informer.store) == {("ns", "b"), ("ns", "c")}
    assert informer.lists == 2 and informer.synced.is_set()
    # the selector is the server's, on every list and watch; watches resume where they were
    assert all(p["labelSelector"] == "recluster.io/execution" for p in api.list_params)
    assert [p["resourceVersion"] for p in api.watch_params] == ["2", "8"]
    assert "managedFields" not in informer.store[("ns", "b")]["metadata"]


async def test_a_list_is_slimmed_page_by_page_not_held_whole() -> None:
    api = ScriptedApi(lists=[[pod("a", 1), pod("b", 2), pod("c", 3)]], streams=[])

    def slim(obj: dict[str, Any]) -> dict[str, Any]:
        api.log.append(f"slim {obj['metadata']['name']}")
        return {"metadata": obj["metadata"]}

    informer = Informer(api, "v1", "pods", slim=slim)  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(informer.run(stop))
    await asyncio.wait_for(api.idle.wait(), 5)
    stop.set()
    await task
    assert api.log == ["page a", "slim a", "page b", "slim b", "last page", "slim c"]
    assert set(informer.store) == {("ns", "a"), ("ns", "b"), ("ns", "c")}
