"""Request bodies over the limit are refused with 413 before any handler sees them.

Runs inside the request guard (guard.py): only requests of a known key within
its rate get here, so only they can make the gateway hold a body.

Checked twice: a declared Content-Length over the limit is refused before
the body is buffered, and a body sent without one (chunked) is counted as it
streams and refused once it passes the limit; nothing larger is ever held in
memory. Before answering, the rest of a moderately large body is read and
discarded (nginx's "lingering close"): closing a connection with unread data
makes the kernel send a reset, and the client would lose the 413. A client
that sent `Expect: 100-continue` (curl does for large bodies) is answered at
once and never sends the body.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DRAIN_LIMIT = 16 << 20  # bodies up to this size are read to the end before a 413


class BodySizeLimit:
    """ASGI middleware: at most `max_bytes` of request body, else 413 with a JSON body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    @staticmethod
    async def _drain(receive: Receive, size: int) -> None:
        """Read and drop the rest of the body, up to DRAIN_LIMIT bytes in all."""
        while size <= DRAIN_LIMIT:
            message = await receive()
            if message["type"] != "http.request":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body larger than {self.max_bytes} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        try:
            declared = int(headers.get(b"content-length", b"-1"))
        except ValueError:
            declared = -1
        if declared > self.max_bytes:
            if declared <= DRAIN_LIMIT and b"100-continue" not in headers.get(b"expect", b""):
                await self._drain(receive, 0)
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        first: Message | None = None
        while True:
            message = await receive()
            if message["type"] != "http.request":
                first = message  # the client went away; let the app see the disconnect
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                if message.get("more_body", False):
                    await self._drain(receive, size)
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                if first is not None:
                    return first
                body = b"".join(chunks)
                chunks.clear()  # one copy of the body in memory while the app runs, not two
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
