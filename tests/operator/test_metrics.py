"""The operator's /metrics after a few executions, scraped over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
import pytest
from harness import Harness, trigger
from prometheus_client.parser import text_string_to_metric_families

from kube_support import LocalKube
from recluster.controller.health import serve_health
from recluster.controller.metrics import Metrics

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]


def at(minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, 28, 10, minute, second, tzinfo=UTC)


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_metrics_after_executions(kube: LocalKube) -> None:
    metrics = Metrics()
    port = metrics.serve(0, "127.0.0.1")
    try:
        async with Harness(kube, metrics=metrics) as h:
            await h.create(trigger("t"))
            await h.create(trigger("paused", status="paused"))
            h.clock.set(at(5, 1))
            [first] = await h.until(lambda: h.jobs("t"))
            await h.finish_job(
                first, ok=True, summary={"execution_time_ms": 2500, "num_clusters": 3}
            )
            await h.until(lambda: h.status("t").get("last_execution_status") == "succeeded")
            h.clock.set(at(10, 2))
            second = await h.until(lambda: len(h.jobs("t")) == 2 and h.jobs("t")[1])
            await h.finish_job(second, ok=False)
            await h.until(lambda: h.status("t").get("consecutive_failures") == 1)
            h.clock.set(at(15, 0))
            await h.until(lambda: len(h.jobs("t")) >= 2 and h.status("t")["execution_count"] == 3)
            await h.reconciled("t")  # metrics are recorded after the status write lands
            samples = await scrape(port)
            namespace = h.namespace
    finally:
        metrics.close()

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    ns = {"namespace": namespace, "trigger": "t"}
    assert value("recluster_executions_total", **ns, result="succeeded") == 1
    assert value("recluster_executions_total", **ns, result="failed") == 1
    duration = {"namespace": namespace, "trigger_type": "cron"}
    assert value("recluster_job_duration_seconds_count", **duration) == 2
    assert value("recluster_job_duration_seconds_bucket", **duration, le="5.0") >= 1
    lag = {"trigger_type": "cron"}
    assert value("recluster_fire_lag_seconds_count", **lag) == 3
    # cumulative buckets: one firing on time, one 1 s late, one 2 s late
    assert value("recluster_fire_lag_seconds_bucket", **lag, le="0.05") == 1
    assert value("recluster_fire_lag_seconds_bucket", **lag, le="1.0") == 2
    assert value("recluster_fire_lag_seconds_bucket", **lag, le="2.0") == 3
    assert value("recluster_triggers", namespace=namespace, type="cron", status="active") == 1
    assert value("recluster_triggers", namespace=namespace, type="cron", status="paused") == 1
    assert all("job_id" not in dict(labels) for _, labels in samples), "no unbounded labels"


async def test_health_endpoint_answers_on_standby_too() -> None:
    leading = False
    runner = await serve_health("http://127.0.0.1:0/healthz", lambda: leading)
    try:
        host, port = runner.addresses[0][:2]  # port 0: an ephemeral one
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{host}:{port}/healthz") as response,
        ):
            assert response.status == 200
            assert await response.json() == {"status": "ok", "leading": False}
    finally:
        await runner.cleanup()
    with pytest.raises(ValueError, match="health endpoint must look like"):
        await serve_health("tcp://nowhere", lambda: True)
