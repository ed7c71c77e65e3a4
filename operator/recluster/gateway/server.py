"""Serving the app with uvicorn from inside an existing event loop (CLI, `recluster dev`).

The connection limits (read timeouts, connection cap) are the app's settings,
applied by the protocol of protocol.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Generator

import uvicorn
from fastapi import FastAPI

from .protocol import guarded_protocol
from .settings import GatewaySettings


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: whoever runs us sets `stop_event`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve_gateway(
    app: FastAPI,
    host: str,
    port: int,
    stop_event: asyncio.Event,
    *,
    on_ready: Callable[[int], None] | None = None,
    log_level: str = "info",
    access_log: bool = True,
) -> None:
    """Serve until `stop_event` is set. `port` 0 picks a free one; `on_ready(port)` says which.

    Raises RuntimeError when the app cannot start (e.g. its lifespan failed).
    """
    settings: GatewaySettings = app.state.settings
    config = uvicorn.Config(
        app,
        http=guarded_protocol(settings),
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    server = _Server(config)
    sock = config.bind_socket()
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    stopping = asyncio.create_task(stop_event.wait())
    try:
        while not server.started and not serving.done() and not stop_event.is_set():
            await asyncio.sleep(0.01)
        if server.started and on_ready is not None:
            on_ready(int(sock.getsockname()[1]))
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping
        await serving
        sock.close()
    if not server.started:
        raise RuntimeError(f"the gateway did not start on {host}:{port}")
