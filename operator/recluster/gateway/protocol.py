"""Connection limits uvicorn lacks: header and body read timeouts, and a connection cap.

uvicorn closes a connection idle *between* requests (keep-alive timeout), but
waits forever for the first request's headers, for the rest of a slowly sent
header, and for a body that trickles in (slowloris); and its
`limit_concurrency` answers a plain-text 503. This is uvicorn's h11 protocol
with three additions, driven by the client's side of the h11 state machine:

- waiting for a request's headers (a new connection, or one kept alive after a
  response): at most `header_timeout_seconds`; then a connection that sent
  nothing is closed, one that sent part of a request gets 408 and is closed;
- waiting for the rest of a body once its headers are in: at most
  `body_timeout_seconds` in all (a total, so trickling a byte at a time does
  not help); then 408 (when nothing was answered yet) and the connection is closed;
- beyond `max_connections` open connections, a new connection's requests are
  answered 503 with Retry-After and the connection is closed.

The protocol is selected explicitly, so it holds whether or not httptools is installed.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import h11
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import problem_body, send_problem
from .settings import GatewaySettings

TIMED_OUT = "the request was not received in time; the connection is closed"
TOO_MANY_CONNECTIONS = "the gateway has too many open connections; retry shortly"


async def over_capacity(scope: Scope, receive: Receive, send: Send) -> None:
    """What a connection beyond the cap gets for any request."""
    await send_problem(send, 503, TOO_MANY_CONNECTIONS, {"Retry-After": "1", "Connection": "close"})


def _timed_out_response() -> bytes:
    body = problem_body(TIMED_OUT)
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with read timeouts and a connection cap (module docstring)."""

    settings: ClassVar[GatewaySettings]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._waiting_for: object = None  # the h11 state of the client we wait in

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.settings.max_connections:
            self.app = over_capacity
        self._follow()

    def handle_events(self) -> None:
        super().handle_events()
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _follow(self) -> None:
        """(Re)start the clock when the client's side enters a state we wait on."""
        state = self.conn.their_state
        waiting = state if state in (h11.IDLE, h11.SEND_BODY) else None
        if waiting is self._waiting_for:
            return
        self._waiting_for = waiting
        self._cancel()
        if self.transport.is_closing() or waiting is None:
            return
        seconds = (
            self.settings.header_timeout_seconds
            if waiting is h11.IDLE
            else self.settings.body_timeout_seconds
        )
        self._timer = self.loop.call_later(seconds, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self._waiting_for is h11.SEND_BODY:
            answer = cycle is not None and not cycle.response_started
        else:  # a new request: answer only one that has begun to arrive
            answer = bool(self.conn.trailing_data[0])
        if cycle is not None and not cycle.response_complete:
            # The app stops: its receive() says disconnected, its send() is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        if answer:
            self.transport.write(_timed_out_response())
        self.transport.close()


def guarded_protocol(settings: GatewaySettings) -> type[GuardedH11Protocol]:
    """The protocol class for uvicorn's `http=`, bound to these settings."""

    class Configured(GuardedH11Protocol):
        pass

    Configured.settings = settings
    return Configured
