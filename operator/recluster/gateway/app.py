"""The FastAPI application: the seed's Cluster Trigger API over ClusterTrigger resources."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

import aiohttp
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from ..kube.client import KubeClient
from ..kube.errors import KubeError
from ..store.factory import open_store
from .errors import install_error_handlers
from .events import EventRecorder
from .events import router as events_router
from .guard import RequestGuard
from .keys import KeyRing
from .kubeapi import TriggerApi
from .limits import BodySizeLimit
from .routes import router as triggers_router
from .runs import router as runs_router
from .service import TriggerService, cross_field_problems
from .settings import GatewaySettings

log = logging.getLogger("recluster.gateway")


def _version() -> str:
    try:
        return version("recluster")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def create_app(
    settings: GatewaySettings,
    kube_client: KubeClient,
    *,
    extra_routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The gateway app. The caller owns `kube_client` (and closes it after the app stops).

    `extra_routers` are mounted beside the trigger endpoints (the events endpoint
    lives in one); their handlers authorise with `auth.require_namespace`. Every
    path but the probes and the API docs needs a key (guard.py).
    """
    keys = KeyRing(kube_client, settings.keys_namespace, settings.key_refresh_seconds)
    events = EventRecorder(kube_client, settings)
    # Opening connects lazily (PostgreSQL on first use, Parquet never): no I/O here.
    store = open_store(settings.store_uri) if settings.store_uri else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await keys.start()
        try:
            yield
        finally:
            await events.close()
            await keys.stop()
            if store is not None:
                store.close()

    app = FastAPI(
        title="Recluster Cluster Trigger API",
        version=_version(),
        description=(
            "The Cluster Trigger REST API (`POST /v1/clusters/triggers` and friends), "
            "stored as ClusterTrigger resources so that kubectl, GitOps and REST clients "
            "see the same objects. Authenticate with `Authorization: Bearer <key>` and "
            "name the namespace in `X-Namespace`."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.keys = keys
    app.state.events = events
    app.state.store = store
    app.state.triggers = TriggerService(TriggerApi(kube_client), settings)
    install_error_handlers(app, cross_field_problems)

    async def kube_failed(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, KubeError)
        log.error("Kubernetes API error: %s", exc)
        return JSONResponse(
            {"detail": f"the Kubernetes API answered {exc.status} {exc.reason}"}, status_code=502
        )

    async def kube_unreachable(_: Request, exc: Exception) -> JSONResponse:
        log.error("Kubernetes API unreachable: %r", exc)
        return JSONResponse({"detail": "the Kubernetes API is unreachable"}, status_code=503)

    async def kube_garbled(_: Request, exc: Exception) -> JSONResponse:
        log.error("Kubernetes API answered something that is not JSON: %s", exc)
        return JSONResponse({"detail": "the Kubernetes API answered garbage"}, status_code=502)

    app.add_exception_handler(KubeError, kube_failed)
    app.add_exception_handler(json.JSONDecodeError, kube_garbled)
    app.add_exception_handler(aiohttp.ClientError, kube_unreachable)
    app.add_exception_handler(asyncio.TimeoutError, kube_unreachable)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> PlainTextResponse:
        if not keys.loaded:
            return PlainTextResponse("API keys not loaded", status_code=503)
        return PlainTextResponse("ok")

    app.include_router(triggers_router)
    app.include_router(runs_router)
    app.include_router(events_router)
    for router in extra_routers:
        app.include_router(router)
    # The last added runs first: the guard checks the key (and its rate) before
    # BodySizeLimit reads any of the body.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestGuard, keys=keys, limits=settings.rate_limits)
    return app
