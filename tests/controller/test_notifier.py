"""The webhook delivery worker with fake ports: what it sends, what it reports, no server."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from aiohttp import web

from recluster.api.notifications import RunRecord, Webhook
from recluster.controller.fakes import FakeSecrets, FakeWebhooks
from recluster.controller.informer import Key
from recluster.controller.notifier import DeliveryRequest, Notifier
from recluster.controller.ports import DeliveryError, HttpWebhooks
from recluster.core import notifications as n

pytestmark = pytest.mark.asyncio
NOW = datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC)
KEY: Key = ("team-a", "nightly")
URL = "https://hooks.example.com/recluster?token=abc"


def job(outcome: str = "succeeded", secret: str = "hook-key") -> DeliveryRequest:
    hook = Webhook.model_validate({"url": URL, "secret_ref": {"name": secret}})
    run = RunRecord(
        execution_id="nightly-0123456789",
        outcome=outcome,  # type: ignore[arg-type]
        triggered_at=NOW,
        finished_at=NOW + timedelta(seconds=3),
    )
    [delivery] = n.record_outcome([], [n.Endpoint(hook)], "uid-1", run, NOW)
    trigger = {"name": "nightly", "namespace": "team-a", "uid": "uid-1"}
    return DeliveryRequest(
        KEY, trigger, delivery, hook, "team-a", {"run": "file:///store/team-a/runs/x/"}
    )


class Setup:
    def __init__(self, answers: list[int | str]) -> None:
        self.webhooks = FakeWebhooks(list(answers))
        self.secrets = FakeSecrets({("team-a", "hook-key"): {"secret": b"s3cret"}})
        self.woken: asyncio.Queue[Key] = asyncio.Queue()
        self.notifier = Notifier(
            self.webhooks, self.secrets, lambda: NOW, self.woken.put_nowait, workers=2
        )

    async def result(self) -> n.AttemptResult:
        key = await asyncio.wait_for(self.woken.get(), 10)
        return self.notifier.results(key)[-1]


Start = Callable[[list[int | str]], Setup]


@pytest_asyncio.fixture
async def start() -> AsyncIterator[Start]:
    """Starts a notifier with scripted answers; stops them all after the test."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    def started(answers: list[int | str]) -> Setup:
        setup = Setup(answers)
        tasks.append(asyncio.create_task(setup.notifier.run(stop)))
        return setup

    yield started
    stop.set()
    await asyncio.gather(*tasks)


async def test_a_delivery_is_signed_reported_and_not_sent_twice(start: Start) -> None:
    s: Setup = start([200])
    attempt = job()
    assert s.notifier.submit(attempt)
    assert not s.notifier.submit(attempt), "queued already"
    result = await s.result()
    assert (result.ok, result.event_id, result.url) == (True, attempt.delivery.event_id, URL)
    [(url, body, headers)] = s.webhooks.posts
    assert url == URL
    assert n.verify(b"s3cret", headers[n.TIMESTAMP_HEADER], body, headers[n.SIGNATURE_HEADER], NOW)
    assert headers[n.EVENT_ID_HEADER] == attempt.delivery.event_id
    assert json.loads(body)["artifacts"] == {"run": "file:///store/team-a/runs/x/"}
    # until the status shows the result, the delivery is not submitted again
    assert not s.notifier.submit(attempt)
    s.notifier.acknowledge(KEY, s.notifier.results(KEY))
    assert s.notifier.results(KEY) == ()
    assert s.notifier.submit(attempt)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (500, "HTTP 500"),
        (301, "HTTP 301 (redirects are not followed)"),
        ("no answer within 10s (timeout)", "no answer within 10s (timeout)"),
    ],
)
async def test_failed_attempts_report_a_short_reason(
    start: Start, answer: int | str, reason: str
) -> None:
    s: Setup = start([answer])
    s.notifier.submit(job())
    result = await s.result()
    assert (result.ok, result.error) == (False, reason)


async def test_a_missing_secret_fails_the_attempt_without_sending(start: Start) -> None:
    s: Setup = start([])
    s.notifier.submit(job(secret="absent"))
    result = await s.result()
    assert (result.ok, result.error) == (False, "Secret team-a/absent not found")
    assert s.webhooks.posts == []


async def test_submit_never_waits_and_a_full_queue_refuses() -> None:
    notifier = Notifier(FakeWebhooks(), FakeSecrets(), lambda: NOW, lambda key: None, capacity=1)
    first, second = job("succeeded"), job("failed")
    assert notifier.submit(first)  # no worker runs: it stays queued
    assert not notifier.submit(second), "the queue is full: it waits for the next reconcile"


async def test_the_http_port_reports_status_codes_and_short_reasons() -> None:
    """HttpWebhooks against local sockets: no redirect followed, bounded waits, short reasons."""
    release = asyncio.Event()

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/elsewhere"})

    async def hold(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/redirect", redirect)
    app.router.add_post("/hold", hold)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    http = HttpWebhooks()
    try:
        assert await http.post(f"{base}/redirect", b"{}", {}, 5) == 302
        with pytest.raises(DeliveryError, match=r"^no answer within 1s \(timeout\)$"):
            await http.post(f"{base}/hold", b"{}", {}, 1)
        with pytest.raises(DeliveryError, match=r"^cannot connect: connection refused$"):
            await http.post(f"http://127.0.0.1:{closed}/x", b"{}", {}, 5)
    finally:
        release.set()
        await http.close()
        await runner.cleanup()
