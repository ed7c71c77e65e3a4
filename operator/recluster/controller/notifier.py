"""The webhook delivery worker: sends what the core says is due, off the reconcile path.

A thin shell around `core.notifications` (which decides what to send and when
to retry). Rules:

1. Never blocking the operator: the reconciler only `submit`s (a non-blocking
   put into a bounded queue; when it is full the delivery waits for the next
   reconcile, as it is still due); `workers` tasks do the HTTP, each attempt
   bounded by its webhook's timeout_seconds. A slow receiver holds a worker,
   never a reconcile.
2. One attempt at a time per delivery: a delivery in flight, or whose result the
   trigger's status does not yet show, is not submitted again.
3. Results go back through the reconciler: `results` hands them to the next
   reconcile of the trigger (the core folds them into status), `acknowledge`
   forgets them once that status is written; `wake` queues the trigger at once.
4. The signing key is read at each attempt through the SecretPort and used only to
   sign: never logged, stored or put in an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from ..api.notifications import Delivery, Webhook
from ..core import notifications
from ..core.notifications import AttemptResult
from .informer import Key
from .ports import DeliveryError, SecretPort, SecretUnavailable, WebhookPort

log = logging.getLogger(__name__)
DEFAULT_CAPACITY = 1000


@dataclass(frozen=True)
class DeliveryRequest:
    """One attempt to make: the delivery, where it goes, and what it needs to be built."""

    key: Key
    trigger: Mapping[str, str]
    delivery: Delivery
    webhook: Webhook
    secret_namespace: str | None
    """Where the signing key is; None for an install webhook when the operator does not
    know its own namespace ($POD_NAMESPACE)."""
    artifacts: Mapping[str, str]


class Notifier:
    """Bounded async delivery of webhook events (see the module's rules)."""

    def __init__(
        self,
        webhooks: WebhookPort,
        secrets: SecretPort,
        clock: Callable[[], datetime],
        wake: Callable[[Key], None],
        workers: int = 4,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self.webhooks, self.secrets, self.clock, self.wake = webhooks, secrets, clock, wake
        self.workers = workers
        self.queue: asyncio.Queue[DeliveryRequest] = asyncio.Queue(capacity)
        self.busy: set[tuple[Key, str, str]] = set()
        """Deliveries queued or in flight."""
        self.done: dict[Key, list[AttemptResult]] = {}
        """Results the trigger's status does not yet show."""
        self.attempts = 0
        """How many HTTP attempts were made (tests, metrics)."""

    # -- the reconciler's side ---------------------------------------------------------

    def results(self, key: Key) -> tuple[AttemptResult, ...]:
        return tuple(self.done.get(key, ()))

    def acknowledge(self, key: Key, results: tuple[AttemptResult, ...]) -> None:
        """The status now shows these results: forget them, their deliveries may go again."""
        left = [r for r in self.done.get(key, []) if r not in results]
        if left:
            self.done[key] = left
        else:
            self.done.pop(key, None)

    def submit(self, request: DeliveryRequest) -> bool:
        """Queue one attempt unless one is queued, in flight or unrecorded; never waits."""
        ident = (request.key, request.delivery.event_id, request.delivery.url)
        unrecorded = any((r.event_id, r.url) == ident[1:] for r in self.done.get(request.key, ()))
        if ident in self.busy or unrecorded:
            return False
        try:
            self.queue.put_nowait(request)
        except asyncio.QueueFull:
            log.warning("webhook queue full: %s waits for the next reconcile", ident[1])
            return False
        self.busy.add(ident)
        return True

    def forget(self, key: Key) -> None:
        self.done.pop(key, None)

    # -- the workers -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _work(self) -> None:
        while True:
            request = await self.queue.get()
            ident = (request.key, request.delivery.event_id, request.delivery.url)
            try:
                result = await self._attempt(request)
            except Exception as exc:  # a bug costs this attempt, not the worker
                log.exception("webhook attempt crashed")
                result = AttemptResult(
                    request.delivery.event_id,
                    request.delivery.url,
                    False,
                    f"internal error: {type(exc).__name__}",
                )
            finally:
                self.busy.discard(ident)
            self.done.setdefault(request.key, []).append(result)
            self.wake(request.key)

    async def _attempt(self, request: DeliveryRequest) -> AttemptResult:
        delivery, hook = request.delivery, request.webhook
        where = _endpoint(delivery.url)

        def failed(reason: str) -> AttemptResult:
            log.info(
                "webhook %s %s to %s failed: %s",
                delivery.event_type,
                delivery.event_id,
                where,
                reason,
            )
            return AttemptResult(delivery.event_id, delivery.url, False, reason)

        ref = hook.secret_ref
        if request.secret_namespace is None:
            return failed("the operator's namespace is unknown (set POD_NAMESPACE)")
        try:
            secret = await self.secrets.read_key(request.secret_namespace, ref.name, ref.key)
        except SecretUnavailable as exc:
            return failed(str(exc))
        body = notifications.payload(delivery, request.trigger, request.artifacts)
        headers = notifications.headers(delivery, secret, body, self.clock())
        self.attempts += 1
        try:
            status = await self.webhooks.post(delivery.url, body, headers, hook.timeout_seconds)
        except DeliveryError as exc:
            return failed(str(exc))
        if 200 <= status < 300:
            log.info(
                "webhook %s %s delivered to %s (HTTP %d)",
                delivery.event_type,
                delivery.event_id,
                where,
                status,
            )
            return AttemptResult(delivery.event_id, delivery.url, True)
        if 300 <= status < 400:
            return failed(f"HTTP {status} (redirects are not followed)")
        return failed(f"HTTP {status}")


def _endpoint(url: str) -> str:
    """scheme://host/path of a URL, for logs (a query may carry a receiver's token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
