"""Completion webhooks from the real operator on the real control plane, to a local receiver.

The receiver is an aiohttp server on an ephemeral port of this machine, scripted
per request (an HTTP status, or holding the request open); it checks nothing
itself: the tests verify each signature as a receiver would, with `hmac`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from harness import Harness, at, trigger

from kube_support import RELEASE_NAMESPACE, LocalKube
from recluster.api.notifications import Webhook
from recluster.controller.metrics import Metrics
from recluster.kube.errors import KubeError

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]
SECRET = b"whsec-test-key-0123456789"
SUMMARY = {"num_clusters": 3, "num_documents": 500, "execution_time_ms": 1234,
           "noise_fraction": 0.02, "quality_score": 0.71}  # fmt: skip
HOLD = "hold"
"""A script entry: keep the request open until the test ends (a receiver that hangs)."""


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    """A webhook endpoint: answers each request with the next scripted entry (then 200)."""

    script: list[int | str] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(Received(dict(request.headers), await request.read()))
        answer = self.script.pop(0) if self.script else 200
        if answer == HOLD:
            await self.released.wait()
            answer = 200
        assert isinstance(answer, int)
        return web.Response(status=answer, text="<html>receiver says no</html>")


class Receivers:
    """Receivers listening on 127.0.0.1, each on an ephemeral port."""

    def __init__(self) -> None:
        self.made: list[Receiver] = []
        self.runners: list[web.AppRunner] = []

    async def serve(self, script: list[int | str] | None = None) -> Receiver:
        receiver = Receiver(list(script or []))
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        self.runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        self.made.append(receiver)
        return receiver

    async def close(self) -> None:
        for receiver in self.made:
            receiver.released.set()
        for runner in self.runners:
            await runner.cleanup()


@pytest_asyncio.fixture
async def receivers() -> AsyncIterator[Receivers]:
    made = Receivers()
    yield made
    await made.close()


def signing_secret(h: Harness, name: str = "hook-key") -> None:
    h.cluster.create(
        "", "v1", "secrets",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
         "data": {"secret": base64.b64encode(SECRET).decode()}},
        h.namespace,
    )  # fmt: skip


def with_webhook(name: str, url: str, timeout: int = 10, **spec: Any) -> dict[str, Any]:
    hook = {"url": url, "secret_ref": {"name": "hook-key"}, "timeout_seconds": timeout}
    return trigger(name, notifications={"webhooks": [hook]}, **spec)


def verify(received: Received) -> None:
    """What a receiver does: HMAC-SHA256 of "<timestamp>.<body>" with the shared key."""
    stamp = received.headers["X-Recluster-Timestamp"]
    expected = hmac.new(SECRET, f"{stamp}.".encode() + received.body, hashlib.sha256)
    given = received.headers["X-Recluster-Signature"]
    assert hmac.compare_digest(f"sha256={expected.hexdigest()}", given)


def deliveries(h: Harness, name: str) -> list[dict[str, Any]]:
    return list(h.status(name).get("notifications") or [])


async def test_completed_and_failed_executions_each_deliver_one_signed_payload(
    kube: LocalKube, receivers: Receivers
) -> None:
    receiver = await receivers.serve()
    async with Harness(kube) as h:
        signing_secret(h)
        created = await h.create(with_webhook("t", receiver.url))
        h.clock.set(at(10, 5))
        [first] = await h.until(lambda: h.jobs("t"))
        await h.finish_job(first, ok=True, summary=SUMMARY)
        await h.until(lambda: len(receiver.requests) == 1, what="the completed event")
        sent = receiver.requests[0]
        verify(sent)
        assert sent.headers["X-Recluster-Event"] == "cluster.execution.completed"
        event = sent.payload
        assert sent.headers["X-Recluster-Event-Id"] == event["id"]
        assert event["type"] == "cluster.execution.completed"
        assert event["trigger"] == {"name": "t", "namespace": h.namespace,
                                    "uid": created["metadata"]["uid"]}  # fmt: skip
        job = first["metadata"]["name"]
        execution = event["execution"]
        assert (execution["id"], execution["outcome"], execution["reason"]) == (
            job, "succeeded", "schedule")  # fmt: skip
        assert execution["scheduled_at"] == "2026-11-28T10:05:00Z"
        assert event["counts"] == {"num_clusters": 3, "num_documents": 500,
                                   "noise_fraction": 0.02}  # fmt: skip
        assert event["quality_score"] == 0.71
        assert event["artifacts"]["run"] == f"file:///data/store/{h.namespace}/runs/{job}/"
        assert event["artifacts"]["assignments"].endswith(f"/runs/{job}/assignments.parquet")
        [record] = await h.until(
            lambda: [d for d in deliveries(h, "t") if d["state"] == "Delivered"] or None
        )
        assert (record["event_id"], record["attempts"], record["url"]) == (
            event["id"], 1, receiver.url)  # fmt: skip
        assert record["delivered_at"] and "last_error" not in record

        h.clock.set(at(10, 10))
        second = await h.until(lambda: len(h.jobs("t")) == 2 and h.jobs("t")[1])
        await h.finish_job(second, ok=False, summary={"error": "collection 'col_abc123' gone"})
        await h.until(lambda: len(receiver.requests) == 2, what="the failed event")
        failed = receiver.requests[1]
        verify(failed)
        assert failed.payload["type"] == "cluster.execution.failed"
        assert failed.payload["execution"]["error"] == "collection 'col_abc123' gone"
        assert failed.payload["artifacts"] == {}
        assert failed.payload["id"] != event["id"]
        await h.until(
            lambda: [d["state"] for d in deliveries(h, "t")] == ["Delivered", "Delivered"]
        )
        h.clock.set(at(10, 12))
        await h.reconciled("t")
        assert len(receiver.requests) == 2, "each event is delivered once"
        secret_text = SECRET.decode()
        assert secret_text not in json.dumps(h.trigger("t"))
        assert all(secret_text not in json.dumps(e) for e in h.events())


async def test_a_failing_receiver_gets_the_event_again_until_it_recovers(
    kube: LocalKube, receivers: Receivers
) -> None:
    receiver = await receivers.serve([500])
    metrics = Metrics()
    async with Harness(kube, metrics=metrics) as h:
        signing_secret(h)
        await h.create(with_webhook("t", receiver.url))
        h.clock.set(at(10, 5))
        [job] = await h.until(lambda: h.jobs("t"))
        await h.finish_job(job, ok=True, summary=SUMMARY)
        [pending] = await h.until(
            lambda: [d for d in deliveries(h, "t") if d.get("attempts") == 1] or None,
            what="the first, failed attempt in status",
        )
        labels = {"namespace": h.namespace, "trigger": "t"}
        failed_attempts = "recluster_webhook_failed_attempts_total"
        # The reconcile that wrote the attempt into status counts it just after the write.
        await h.until(
            lambda: metrics.registry.get_sample_value(failed_attempts, labels) == 1,
            what="the failed attempt counted",
        )
        assert pending["state"] == "Pending" and pending["last_error"] == "HTTP 500"
        assert "receiver says no" not in json.dumps(h.status("t")), "bodies are not stored"
        retry_at = pending["next_attempt_at"]
        assert retry_at > "2026-11-28T10:05:00Z"
        assert len(receiver.requests) == 1
        h.clock.set(datetime.fromisoformat(retry_at.replace("Z", "+00:00")))
        await h.until(lambda: len(receiver.requests) == 2, what="the retry")
        [record] = await h.until(
            lambda: [d for d in deliveries(h, "t") if d["state"] == "Delivered"] or None
        )
        assert record["attempts"] == 2 and "last_error" not in record
        ended = "recluster_webhook_deliveries_total"
        await h.until(
            lambda: metrics.registry.get_sample_value(ended, {**labels, "state": "Delivered"}) == 1,
            what="the delivery counted",
        )
        assert metrics.registry.get_sample_value(failed_attempts, labels) == 1
        first, second = receiver.requests
        verify(second)
        assert first.body == second.body, "the same event, byte for byte"
        assert first.headers["X-Recluster-Event-Id"] == second.headers["X-Recluster-Event-Id"]
        await h.reconciled("t")
        assert len(receiver.requests) == 2, "delivered once"


async def test_a_hanging_receiver_blocks_no_job_creation(
    kube: LocalKube, receivers: Receivers
) -> None:
    hanging = await receivers.serve([HOLD])
    async with Harness(kube) as h:
        signing_secret(h)
        await h.create(with_webhook("slow", hanging.url, timeout=30))
        await h.create(trigger("other", schedule={"cron_expression": "7 * * * *"}))
        h.clock.set(at(10, 5))
        [job] = await h.until(lambda: h.jobs("slow"))
        await h.finish_job(job, ok=True, summary=SUMMARY)
        await h.until(lambda: hanging.requests, what="the delivery to reach the receiver")
        # while the receiver holds that request, both triggers keep firing
        h.clock.set(at(10, 7))
        await h.until(lambda: h.jobs("other"), what="the other trigger's Job")
        h.clock.set(at(10, 10))
        await h.until(lambda: len(h.jobs("slow")) == 2, what="the slow trigger's next Job")
        assert not hanging.released.is_set()
        [record] = deliveries(h, "slow")
        assert (record["state"], record["attempts"]) == ("Pending", 0), "still in flight"


async def test_a_receiver_that_times_out_is_retried(kube: LocalKube, receivers: Receivers) -> None:
    receiver = await receivers.serve([HOLD])
    async with Harness(kube) as h:
        signing_secret(h)
        await h.create(with_webhook("t", receiver.url, timeout=1))
        h.clock.set(at(10, 5))
        [job] = await h.until(lambda: h.jobs("t"))
        await h.finish_job(job, ok=True, summary=SUMMARY)
        [pending] = await h.until(
            lambda: [d for d in deliveries(h, "t") if d.get("attempts") == 1] or None,
            what="the timed-out attempt in status",
        )
        assert pending["last_error"] == "no answer within 1s (timeout)"
        h.clock.set(at(10, 9))
        await h.until(lambda: len(receiver.requests) == 2, what="the retry")
        await h.until(lambda: [d["state"] for d in deliveries(h, "t")] == ["Delivered"])


async def test_no_delivery_is_repeated_after_an_operator_restart(
    kube: LocalKube, receivers: Receivers
) -> None:
    receiver = await receivers.serve()
    async with Harness(kube) as h:
        signing_secret(h)
        await h.create(with_webhook("t", receiver.url))
        h.clock.set(at(10, 5))
        [job] = await h.until(lambda: h.jobs("t"))
        await h.finish_job(job, ok=True, summary=SUMMARY)
        await h.until(lambda: [d["state"] for d in deliveries(h, "t")] == ["Delivered"])
        await h.stop_operator()
        await h.start_operator()
        # the new operator reconciles the trigger: it fires the next slot
        h.clock.set(at(10, 10))
        await h.until(lambda: len(h.jobs("t")) == 2, what="the restarted operator's Job")
        await h.reconciled("t")
        assert len(receiver.requests) == 1
        assert [d["state"] for d in deliveries(h, "t")] == ["Delivered"]


async def test_a_pending_delivery_survives_an_operator_restart(
    kube: LocalKube, receivers: Receivers
) -> None:
    receiver = await receivers.serve([500])
    async with Harness(kube) as h:
        signing_secret(h)
        await h.create(with_webhook("t", receiver.url))
        h.clock.set(at(10, 5))
        [job] = await h.until(lambda: h.jobs("t"))
        await h.finish_job(job, ok=False)
        [pending] = await h.until(
            lambda: [d for d in deliveries(h, "t") if d.get("attempts") == 1] or None
        )
        await h.stop_operator()
        await h.start_operator()
        h.clock.set(datetime.fromisoformat(pending["next_attempt_at"].replace("Z", "+00:00")))
        await h.until(lambda: [d["state"] for d in deliveries(h, "t")] == ["Delivered"])
        await h.reconciled("t")
        assert len(receiver.requests) == 2
        assert receiver.requests[0].body == receiver.requests[1].body


async def test_the_install_webhooks_get_every_triggers_chosen_outcomes(
    kube: LocalKube, receivers: Receivers
) -> None:
    receiver = await receivers.serve()
    secret = f"install-hook-{kube.namespace_name('k')}"
    kube.cluster.create(
        "", "v1", "secrets",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret},
         "data": {"secret": base64.b64encode(SECRET).decode()}},
        RELEASE_NAMESPACE,
    )  # fmt: skip
    hook = Webhook.model_validate(
        {"url": receiver.url, "secret_ref": {"name": secret},
         "events": ["cluster.execution.failed"]}
    )  # fmt: skip
    try:
        async with Harness(kube, webhooks=[hook]) as h:
            await h.create(trigger("t"))  # no webhook of its own
            h.clock.set(at(10, 5))
            [first] = await h.until(lambda: h.jobs("t"))
            await h.finish_job(first, ok=True, summary=SUMMARY)
            await h.until(lambda: h.status("t").get("last_execution_status") == "succeeded")
            h.clock.set(at(10, 10))
            second = await h.until(lambda: len(h.jobs("t")) == 2 and h.jobs("t")[1])
            await h.finish_job(second, ok=False)
            await h.until(lambda: receiver.requests, what="the failed event")
            [sent] = receiver.requests
            verify(sent)
            assert sent.payload["type"] == "cluster.execution.failed"
            assert sent.payload["execution"]["id"] == second["metadata"]["name"]
            [record] = await h.until(
                lambda: [d for d in deliveries(h, "t") if d["state"] == "Delivered"] or None
            )
            assert record["source"] == "install"
            await h.reconciled("t")
            assert len(receiver.requests) == 1, "the completed run was not chosen"
    finally:
        kube.cluster.delete("", "v1", "secrets", secret, RELEASE_NAMESPACE)


async def test_the_apiserver_refuses_webhook_urls_with_credentials(kube: LocalKube) -> None:
    async with Harness(kube) as h:
        for url, reason in (
            ("https://user:pw@hooks.example.com/x", "must not carry credentials"),
            ("gopher://hooks.example.com/x", "must start with http:// or https://"),
        ):
            with pytest.raises(KubeError) as refused:
                h.apply(with_webhook("t", url))
            assert refused.value.status == 422
            assert "spec.notifications.webhooks[0].url" in refused.value.message
            assert reason in refused.value.message
