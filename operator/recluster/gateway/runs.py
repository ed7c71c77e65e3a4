"""A trigger's runs, their artifacts and report: read from the store, reached through the trigger.

Isolation: every path goes through the trigger in the caller's namespace (404
if it does not exist there, 403 before anything is read if the key may not use
the namespace, exactly like the trigger endpoints), and a run is served only
if the trigger's history names it (its job_id): a run id of another trigger or
namespace is a 404. The store is read in the caller's namespace only.

Runs are the executions of `status.history` (newest first, as kept); `latest`
names the newest succeeded one. The store calls block, so they run on a thread.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from ..api.rest import DEFAULT_PAGE_SIZE
from ..api.results import (
    ArtifactFile,
    ClusterArtifact,
    RunArtifactsResponse,
    RunEntry,
    RunListResponse,
)
from ..api.trigger import HistoryEntry
from ..store import artifacts as layouts
from ..store.base import CollectionStore
from ..store.errors import ArtifactNotFound, RunNotFound, StoreUnavailable
from ..store.types import ARTIFACT_NAME
from .auth import CallerDep
from .errors import ApiProblem, responses
from .routes import NAME_PATTERN, ONE, Limit, Offset, TriggerId, service

LATEST = "latest"
RunId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=253,
        pattern=NAME_PATTERN,
        description="A run id (the job_id of an execution), or `latest`: the newest succeeded.",
    ),
]
ArtifactName = Annotated[
    str,
    Path(
        max_length=64,
        pattern=f"^{ARTIFACT_NAME.pattern}$",
        description="centroids.parquet, members.parquet, map.parquet, "
        "representatives.parquet, map.png or report.html.",
    ),
]

router = APIRouter(prefix="/v1/clusters/triggers", tags=["Cluster Trigger Runs"])
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "The file, as stored."}
}


def _store(request: Request) -> CollectionStore:
    store: CollectionStore | None = request.app.state.store
    if store is None:
        raise ApiProblem(
            503, "this gateway has no store configured (RECLUSTER_STORE_URI), so no run results"
        )
    return store


def _base(trigger_id: str, run_id: str) -> str:
    return f"{router.prefix}/{trigger_id}/runs/{run_id}"


async def _history(request: Request, caller: Any, trigger_id: str) -> list[HistoryEntry]:
    triggers = service(request)
    trigger = triggers.parse(await triggers.read(caller.namespace, trigger_id))
    return list((trigger.status.history if trigger.status else None) or [])


async def _run_of(request: Request, caller: Any, trigger_id: str, run_id: str) -> str:
    """The run id, if the trigger's history names it (`latest`: its newest success); else 404."""
    history = await _history(request, caller, trigger_id)
    if run_id == LATEST:
        found = next((h.job_id for h in history if h.status == "succeeded" and h.job_id), None)
        if found is None:
            raise ApiProblem(404, f"trigger {trigger_id!r} has no succeeded run yet")
        return found
    if not any(h.job_id == run_id for h in history):
        raise ApiProblem(404, f"run {run_id!r} is not in the history of trigger {trigger_id!r}")
    return run_id


async def _call(fn: Any, *args: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args)
    except StoreUnavailable as exc:
        raise ApiProblem(503, f"the store is unavailable: {exc}") from None


@router.get(
    "/{trigger_id}/runs",
    response_model=RunListResponse,
    summary="List Trigger Runs",
    responses=responses(*ONE),
)
async def list_runs(
    request: Request,
    caller: CallerDep,
    trigger_id: TriggerId,
    offset: Offset = 0,
    limit: Limit = DEFAULT_PAGE_SIZE,
) -> RunListResponse:
    """The trigger's runs (its executions that started a Job), newest first, with links to the
    artifacts and report of those that succeeded."""
    history = [h for h in await _history(request, caller, trigger_id) if h.job_id]
    entries = []
    for h in history[offset : offset + limit]:
        assert h.job_id is not None
        done = h.status == "succeeded"
        base = _base(trigger_id, h.job_id)
        entries.append(
            RunEntry(
                run_id=h.job_id,
                status=h.status,
                triggered_at=h.triggered_at,
                finished_at=h.finished_at,
                num_clusters=h.num_clusters,
                num_documents=h.num_documents,
                artifacts_url=f"{base}/artifacts" if done else None,
                report_url=f"{base}/report" if done else None,
            )
        )
    return RunListResponse(results=entries, total=len(history), offset=offset, limit=limit)


@router.get(
    "/{trigger_id}/runs/{run_id}/artifacts",
    response_model=RunArtifactsResponse,
    summary="Get Run Artifacts",
    responses=responses(*ONE, 503),
)
async def get_artifacts(
    request: Request, caller: CallerDep, trigger_id: TriggerId, run_id: RunId
) -> RunArtifactsResponse:
    """The run's clusters (label, keywords, size, share, spread, map position, most central
    documents) and its files. Centroid vectors and per-document distances are in the files."""
    run = await _run_of(request, caller, trigger_id, run_id)
    store = _store(request)
    try:
        listed: dict[str, int] = await _call(store.list_artifacts, caller.namespace, run)
    except RunNotFound:
        raise ApiProblem(404, f"run {run!r} has no results in the store") from None
    clusters: list[dict[str, Any]] = []
    if layouts.CENTROIDS in listed:
        centroids = await _call(store.read_artifact, caller.namespace, run, layouts.CENTROIDS)
        reps = None
        if layouts.REPRESENTATIVES in listed:
            reps = await _call(store.read_artifact, caller.namespace, run, layouts.REPRESENTATIVES)
        clusters = await asyncio.to_thread(layouts.cluster_summaries, centroids, reps)
    base = _base(trigger_id, run)
    return RunArtifactsResponse(
        trigger_id=trigger_id,
        run_id=run,
        num_clusters=len(clusters),
        clusters=[ClusterArtifact.model_validate(c) for c in clusters],
        files=[
            ArtifactFile(
                name=name,
                size_bytes=size,
                media_type=layouts.media_type(name),
                url=f"{base}/artifacts/{name}",
            )
            for name, size in sorted(listed.items())
        ],
        report_url=f"{base}/report" if layouts.REPORT_HTML in listed else None,
    )


async def _file(request: Request, caller: Any, trigger_id: str, run_id: str, name: str) -> Response:
    run = await _run_of(request, caller, trigger_id, run_id)
    store = _store(request)
    limit = request.app.state.settings.max_artifact_bytes
    try:
        listed: dict[str, int] = await _call(store.list_artifacts, caller.namespace, run)
        if listed.get(name, 0) > limit:
            raise ApiProblem(
                413,
                f"{name} of run {run!r} is {listed[name]} bytes, more than this gateway serves"
                f" (max_artifact_bytes: {limit}); read it from the store (docs/store.md)",
            )
        content: bytes = await _call(store.read_artifact, caller.namespace, run, name)
    except (ArtifactNotFound, RunNotFound):
        raise ApiProblem(
            404, f"run {run!r} has no {name} (runs written before artifacts existed have none)"
        ) from None
    return Response(
        content,
        media_type=layouts.media_type(name),
        headers={"Content-Disposition": f'inline; filename="{run}-{name}"'},
    )


@router.get(
    "/{trigger_id}/runs/{run_id}/artifacts/{name}",
    response_class=Response,
    summary="Download a Run Artifact",
    responses={**FILE_RESPONSES, **responses(*ONE, 413, 503)},
)
async def get_artifact_file(
    request: Request, caller: CallerDep, trigger_id: TriggerId, run_id: RunId, name: ArtifactName
) -> Response:
    """One file of the run, byte for byte as stored (Parquet layouts: docs/store.md)."""
    return await _file(request, caller, trigger_id, run_id, name)


@router.get(
    "/{trigger_id}/runs/{run_id}/report",
    response_class=Response,
    summary="Get Run Report",
    responses={**FILE_RESPONSES, **responses(*ONE, 413, 503)},
)
async def get_report(
    request: Request, caller: CallerDep, trigger_id: TriggerId, run_id: RunId
) -> Response:
    """The run's self-contained HTML report (cluster map, table, representatives)."""
    return await _file(request, caller, trigger_id, run_id, layouts.REPORT_HTML)
