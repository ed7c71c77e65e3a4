"""The real kopf operator machinery against the emulated API, over HTTP.

A tiny operator (create handler writes status, a 0.2 s timer, a delete handler) runs as
a task inside the test body, stopped with its stop flag (never ``task.cancel()``), and
logs in through the kubeconfig the emulator wrote. Repeated ten times: it must be
reliable, and fast enough for the operator's own tests to build on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import kopf
import pytest
from emulator_helpers import CRDS, trigger

from recluster.emulator import EmulatedCluster

GROUP, VERSION, PLURAL = "recluster.io", "v1alpha1", "clustertriggers"
FINALIZER = "recluster.io/test-finalizer"
RUNS = 10


def _operator(deleted: list[str]) -> tuple[kopf.OperatorRegistry, kopf.OperatorSettings]:
    registry = kopf.OperatorRegistry()
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="recluster.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="recluster.io")
    settings.watching.server_timeout = 30
    settings.networking.error_backoffs = [0.1, 0.2, 0.5]
    settings.posting.level = logging.INFO

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_kubeconfig(**kwargs)  # reads KUBECONFIG

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    def created(body: kopf.Body, patch: kopf.Patch, name: str, **_: Any) -> None:
        kopf.info(body, reason="Created", message=f"{name} was seen")  # an Event, generateName
        patch.status["phase"] = "created"
        patch.status["seen_name"] = name

    @kopf.timer(GROUP, VERSION, PLURAL, interval=0.2, registry=registry)
    def tick(patch: kopf.Patch, status: kopf.Status, **_: Any) -> None:
        patch.status["ticks"] = int(status.get("ticks") or 0) + 1

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
    def removed(name: str, **_: Any) -> None:
        deleted.append(name)

    return registry, settings


async def _scenario(kubeconfig: Path, namespaces: list[str] | None = None) -> dict[str, Any]:
    deleted: list[str] = []
    registry, settings = _operator(deleted)
    async with EmulatedCluster(crds=[CRDS]) as cluster:
        cluster.write_kubeconfig(kubeconfig, token="operator-token", user="recluster-operator")
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(
            kopf.operator(
                registry=registry,
                settings=settings,
                clusterwide=namespaces is None,
                namespaces=namespaces or (),
                standalone=True,
                stop_flag=stop,
                ready_flag=ready,
            )
        )
        try:
            await asyncio.wait_for(ready.wait(), 5)
            cluster.create(GROUP, VERSION, PLURAL, trigger("t1"))

            def current() -> dict[str, Any]:
                return cluster.get(GROUP, VERSION, PLURAL, "t1", "default") or {}

            await cluster.wait_for(
                lambda: current().get("status", {}).get("phase") == "created",
                what="the create handler's status",
            )
            await cluster.wait_for(
                lambda: current().get("status", {}).get("ticks", 0) >= 3, what="three timer ticks"
            )
            await cluster.wait_for(
                lambda: any(
                    e.get("reason") == "Created" and e["involvedObject"]["name"] == "t1"
                    for e in cluster.objects("", "v1", "events", "default")
                ),
                what="the Event posted by the handler",
            )
            body = current()
            assert body["status"]["seen_name"] == "t1"
            assert FINALIZER in body["metadata"]["finalizers"]
            assert body["metadata"]["generation"] == 1  # status writes never bump it

            cluster.delete(GROUP, VERSION, PLURAL, "t1", "default")
            await cluster.wait_for(lambda: not current(), what="the finalizer being removed")
            assert deleted == ["t1"]
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)
        assert cluster.internal_errors == []
        return {
            "rules": cluster.audit.rules(user="recluster-operator"),
            "events": cluster.objects("", "v1", "events", "default"),
        }


@pytest.mark.parametrize("run", range(RUNS))
def test_kopf_operator_create_timer_delete(
    run: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    started = time.monotonic()
    outcome = asyncio.run(asyncio.wait_for(_scenario(tmp_path / "kubeconfig"), 20))
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"run {run} took {elapsed:.2f}s"
    # What kopf asked of the API, in RBAC terms (the chart's RBAC test builds on this).
    assert {
        (GROUP, PLURAL, "list"),
        (GROUP, PLURAL, "watch"),
        (GROUP, PLURAL, "patch"),
        (GROUP, f"{PLURAL}/status", "patch"),
        ("", "events", "create"),
    } <= outcome["rules"]
    (event,) = [e for e in outcome["events"] if e["reason"] == "Created"]
    assert event["metadata"]["name"].startswith("kopf-event-")  # generateName honoured


def test_kopf_operator_with_namespace_patterns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Glob patterns make kopf list and watch ``/api/v1/namespaces`` and serve per namespace."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    coro = _scenario(tmp_path / "kubeconfig", namespaces=["default", "team-*"])
    outcome = asyncio.run(asyncio.wait_for(coro, 20))
    assert {("", "namespaces", "list"), ("", "namespaces", "watch")} <= outcome["rules"]
