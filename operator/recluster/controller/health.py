"""The operator's health endpoint, alive on standby replicas too (it answers whether leading)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlparse

import aiohttp.web


async def serve_health(endpoint: str, leading: Callable[[], bool]) -> aiohttp.web.AppRunner:
    """Serve `GET <path>` (e.g. http://0.0.0.0:8080/healthz): 200 with the leadership state."""
    url = urlparse(endpoint)
    if url.scheme != "http" or url.port is None:  # port 0: any free one (runner.addresses)
        raise ValueError(f"health endpoint must look like http://0.0.0.0:8080/healthz: {endpoint}")

    async def health(_: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({"status": "ok", "leading": leading()})

    app = aiohttp.web.Application()
    app.router.add_get(url.path or "/healthz", health)
    runner = aiohttp.web.AppRunner(app, access_log=None)
    await runner.setup()
    await aiohttp.web.TCPSite(runner, url.hostname or "0.0.0.0", url.port).start()
    return runner
